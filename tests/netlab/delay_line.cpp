// pd_delay_line: a lab link's propagation delay, in user space (this kernel has no netem).
// Run in a namespace holding two interfaces, it forwards every Ethernet frame that arrives on
// one out of the other after a one-way delay (with optional jitter and loss), both ways, so
// the lab's WAN links get real round trips (docs/netlab.md "Delay lines"). Frames keep their
// order (jitter never reorders), and each direction holds at most --max-bytes in flight.
//
// usage: pd_delay_line IF_A IF_B --delay-ms D [--jitter-ms J] [--loss P] [--max-bytes N]
//
// One thread per direction: it waits in ppoll() until a frame arrives or the oldest held
// frame is due, reads every frame that is ready, and sends every frame that is due.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct options {
    std::string a, b;
    std::int64_t delay_ns = 0, jitter_ns = 0;
    double loss = 0;
    std::size_t max_bytes = 64u << 20;
};

std::int64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// A raw socket that sees every frame arriving on `ifname` and sends frames out of it.
int open_port(const std::string &ifname) {
    int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) return -1;
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (a.sll_ifindex == 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) return ::close(fd), -1;
    // Frames for the far end's address are not this interface's: receive them anyway.
    packet_mreq m{};
    m.mr_ifindex = a.sll_ifindex;
    m.mr_type = PACKET_MR_PROMISC;
    ::setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof m);
    int size = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    return fd;
}

struct held_frame {
    std::int64_t due_ns;
    std::vector<std::uint8_t> bytes;
};

// Frames from `in` out of `out`, each `delay` later, until the process ends.
void forward(int in, int out, const options &o, unsigned seed) {
    ::prctl(PR_SET_TIMERSLACK, 1UL);  // wake within a microsecond of a frame's due time
    std::deque<held_frame> held;
    std::size_t held_bytes = 0;
    std::int64_t last_due = 0;
    std::mt19937_64 random(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<std::uint8_t> buf(65536);
    for (;;) {
        std::int64_t now = now_ns();
        while (!held.empty() && held.front().due_ns <= now) {
            auto &f = held.front();
            // A full send buffer waits for the next turn rather than dropping a frame.
            if (::send(out, f.bytes.data(), f.bytes.size(), 0) < 0 && (errno == EAGAIN || errno == ENOBUFS)) break;
            held_bytes -= f.bytes.size();
            held.pop_front();
        }
        timespec wait{}, *timeout = nullptr;
        if (!held.empty()) {
            auto left = std::max<std::int64_t>(0, held.front().due_ns - now_ns());
            wait.tv_sec = left / 1000000000;
            wait.tv_nsec = left % 1000000000;
            timeout = &wait;
        }
        pollfd p{in, POLLIN, 0};
        if (::ppoll(&p, 1, timeout, nullptr) <= 0) continue;
        for (;;) {
            sockaddr_ll from{};
            socklen_t len = sizeof from;
            auto n = ::recvfrom(in, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr *>(&from), &len);
            if (n <= 0) break;
            if (from.sll_pkttype == PACKET_OUTGOING) continue;  // our own sends on this port
            if (o.loss > 0 && unit(random) < o.loss) continue;
            if (held_bytes + static_cast<std::size_t>(n) > o.max_bytes) continue;  // the line's own bound
            std::int64_t due = now_ns() + o.delay_ns;
            if (o.jitter_ns) due += static_cast<std::int64_t>((unit(random) * 2 - 1) * static_cast<double>(o.jitter_ns));
            due = std::max(due, last_due);  // jitter never reorders
            last_due = due;
            held.push_back({due, std::vector<std::uint8_t>(buf.begin(), buf.begin() + n)});
            held_bytes += static_cast<std::size_t>(n);
        }
    }
}

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr, "pd_delay_line: %s\nusage: pd_delay_line IF_A IF_B --delay-ms D [--jitter-ms J] [--loss P] [--max-bytes N]\n", why);
    std::exit(2);
}

double number(const char *text, const char *what) {
    char *end = nullptr;
    double v = std::strtod(text, &end);
    if (!end || *end || v < 0 || v > 1e9) usage((std::string(what) + " must be a non-negative number").c_str());
    return v;
}

}  // namespace

int main(int argc, char **argv) {
    options o;
    std::vector<std::string> names;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) usage((arg + " needs a value").c_str());
            return argv[++i];
        };
        if (arg == "--delay-ms") o.delay_ns = static_cast<std::int64_t>(number(value(), "--delay-ms") * 1e6);
        else if (arg == "--jitter-ms") o.jitter_ns = static_cast<std::int64_t>(number(value(), "--jitter-ms") * 1e6);
        else if (arg == "--loss") o.loss = number(value(), "--loss");
        else if (arg == "--max-bytes") o.max_bytes = static_cast<std::size_t>(number(value(), "--max-bytes"));
        else if (arg.rfind("--", 0) == 0) usage(("unknown option " + arg).c_str());
        else names.push_back(arg);
    }
    if (names.size() != 2) usage("name two interfaces");
    if (o.loss > 1) usage("--loss is a probability, 0 to 1");
    int a = open_port(names[0]), b = open_port(names[1]);
    if (a < 0 || b < 0) {
        std::fprintf(stderr, "pd_delay_line: cannot open %s: %s\n", a < 0 ? names[0].c_str() : names[1].c_str(), std::strerror(errno));
        return 1;
    }
    std::fprintf(stderr, "pd_delay_line: %s <-> %s, %.3f ms one way\n", names[0].c_str(), names[1].c_str(),
                 static_cast<double>(o.delay_ns) / 1e6);
    std::thread back([&] { forward(b, a, o, 2); });
    forward(a, b, o, 1);
}
