// A rogue fleet member for the fleet lab (it holds the fleet key).
//
// usage: pd_test_rogue IP:PORT FLEET_KEY_FILE
//   Against a real agent's peer port it sends garbage, an oversized record, a truncated
//   record and a malformed message, each on its own connection, and checks that the agent
//   answers every one with a disconnect (exit 0 when every case was disconnected).
// usage: pd_test_rogue serve stall|bad|garbage|drip IP:PORT FLEET_KEY_FILE BLOCK_COUNT [DIR]
//   Serves as a peer until killed, to be listed in agents' peer.static_peers: it claims to
//   hold all BLOCK_COUNT blocks of whatever content it is asked about, then
//     stall    answers no request and pushes a HAVE_DELTA every 100 ms;
//     bad      answers every request with random bytes (every block fails verification);
//     garbage  answers every request with a malformed message;
//     drip     answers with the true bytes (read from DIR/<content id in hex>), one block
//              every 1.5 s: just inside the answer deadline, so it is never demoted for
//              silence and holds whatever it is asked for as long as it can.
// usage: pd_test_rogue discovery-flood IP FLEET_KEY_FILE CONTENT_ID SECONDS
//   Floods IP's discovery port for SECONDS: one valid query for CONTENT_ID (it holds the
//   fleet key, so it can make one) replayed as fast as it can, and fresh valid queries from
//   its own address, 20,000 a second in all. Before version 2 a replayed label used up the
//   answer budget and legitimate queries went unanswered.
#include "peer_identity.h"
#include "branchcache/discovery.h"
#include "coordinator_client/protocol.h"
#include "net/secure_channel.h"
#include "platform/socket.h"
#include "util/error.h"
#include "peer/wire.h"
#include "crypto/hash.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <chrono>
#include <ctime>
#include <random>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

// True when the server closes the connection (EOF or reset) within the socket timeout.
bool closed_by_server(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
    }
}

// One connection of the serving rogue: HELLO, then HAVE "all", then misbehave.
void serve_one(int fd, const std::string &mode, const std::uint8_t *key, std::uint64_t block_count, const std::string &dir) {
    namespace wire = pd::peer::wire;
    timeval tv{0, 100000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::mt19937_64 rng(static_cast<std::uint64_t>(fd));
    try {
        pd::net::blocking_channel ch(fd, pd::net::role::server, key);
        pd::content::hash content{};
        bool asked = false;
        for (;;) {
            pd::net::bytes in;
            try {
                in = ch.receive();
            } catch (const pd::error &e) {
                if (e.code() != PD_E_TIMEOUT) break;
                if (mode == "stall" && asked) ch.send(wire::encode(wire::have_delta{content, {0}}));
                continue;
            }
            auto m = wire::decode(in.data(), in.size());
            if (std::holds_alternative<wire::hello>(m)) {
                ch.send(wire::encode(pdtest::hello_for(ch, false)));
            } else if (auto *h = std::get_if<wire::have>(&m)) {
                if (asked) continue;  // answers stay in order
                content = h->content;
                wire::have all{content, block_count, 0, std::vector<std::uint8_t>((block_count + 7) / 8, 0xff)};
                if (block_count % 8) all.bitmap.back() = static_cast<std::uint8_t>((1u << (block_count % 8)) - 1);
                ch.send(wire::encode(all));
            } else if (auto *r = std::get_if<wire::request>(&m)) {
                asked = true;
                if (mode == "bad") {
                    for (std::uint32_t i = 0; i < r->count; ++i) {
                        wire::data d{r->id, r->content, r->first_block + i, std::vector<std::uint8_t>(65536)};
                        for (auto &b : d.bytes) b = static_cast<std::uint8_t>(rng());
                        ch.send(wire::encode(d));
                    }
                } else if (mode == "garbage") {
                    ch.send(std::vector<std::uint8_t>{5, 0xff, 0xff});
                } else if (mode == "drip") {
                    std::ifstream file(dir + "/" + pd::to_hex(r->content.data(), 32), std::ios::binary);
                    for (std::uint32_t i = 0; file && i < r->count; ++i) {
                        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
                        wire::data d{r->id, r->content, r->first_block + i, std::vector<std::uint8_t>(65536)};
                        file.seekg(static_cast<std::streamoff>(d.block) * 65536);
                        file.read(reinterpret_cast<char *>(d.bytes.data()), 65536);
                        d.bytes.resize(static_cast<std::size_t>(file.gcount()));
                        file.clear();
                        if (d.bytes.empty()) break;
                        ch.send(wire::encode(d));
                    }
                }
            }
        }
    } catch (const std::exception &) {
    }
    ::close(fd);
}

int serve(const std::string &mode, const std::string &address, const std::uint8_t *key, std::uint64_t block_count,
          const std::string &dir) {
    auto colon = address.rfind(':');
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listener, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(listener, 64) != 0) {
        std::perror("pd_test_rogue: listen");
        return 2;
    }
    std::printf("rogue %s listening on %s\n", mode.c_str(), address.c_str());
    std::fflush(stdout);
    for (;;) {
        int fd = ::accept(listener, nullptr, nullptr);
        if (fd >= 0) std::thread(serve_one, fd, mode, key, block_count, dir).detach();
    }
}

// The core's derivations (sdk/src/core/session.cpp), written out as an attacker would.
int discovery_flood(const std::string &ip, const std::uint8_t fleet_key[32], const std::string &content_hex, int seconds) {
    auto id = pd::from_hex(content_hex);
    if (!id || id->size() != 32) throw std::runtime_error("CONTENT_ID must be 64 hex digits");
    static const char key_tag[] = "peerdist discovery key v2", label_tag[] = "peerdist discovery label v1";
    auto k = pd::crypto::hmac_sha256(fleet_key, 32, key_tag, sizeof key_tag - 1);
    std::vector<std::uint8_t> m(label_tag, label_tag + sizeof label_tag - 1);
    m.insert(m.end(), id->begin(), id->end());
    pd_branchcache::key key;
    std::copy(k.begin(), k.end(), key.begin());
    pd_branchcache::query q;
    auto l = pd::crypto::hmac_sha256(fleet_key, 32, m.data(), m.size());
    std::copy(l.begin(), l.end(), q.content.begin());
    q.window = static_cast<std::uint64_t>(std::time(nullptr)) / pd_branchcache::window_seconds;
    randombytes_buf(q.id.data(), q.id.size());
    auto recorded = pd_branchcache::encode(q, key);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(34329);
    if (::inet_pton(AF_INET, ip.c_str(), &to.sin_addr) != 1) throw std::runtime_error("IP must be an IPv4 address");
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::uint64_t sent = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int i = 0; i < 200; ++i, ++sent) {
            if (i % 2) {  // a fresh one now and then
                randombytes_buf(q.id.data(), q.id.size());
                auto fresh = pd_branchcache::encode(q, key);
                ::sendto(fd, fresh.data(), fresh.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
            } else {
                ::sendto(fd, recorded.data(), recorded.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::close(fd);
    std::printf("sent %llu queries\n", static_cast<unsigned long long>(sent));
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc == 6 && std::string(argv[1]) == "discovery-flood") {
        try {
            auto key = pd::read_fleet_key(argv[3]);
            return discovery_flood(argv[2], key.data(), argv[4], std::atoi(argv[5]));
        } catch (const std::exception &e) {
            std::fprintf(stderr, "pd_test_rogue: %s\n", e.what());
            return 2;
        }
    }
    if ((argc == 6 || argc == 7) && std::string(argv[1]) == "serve") {
        try {
            static pd::fleet_key key = pd::read_fleet_key(argv[4]);
            return serve(argv[2], argv[3], key.data(), std::stoull(argv[5]), argc == 7 ? argv[6] : "");
        } catch (const std::exception &e) {
            std::fprintf(stderr, "pd_test_rogue: %s\n", e.what());
            return 2;
        }
    }
    if (argc != 3) {
        std::fprintf(stderr, "usage: pd_test_rogue IP:PORT FLEET_KEY_FILE\n");
        return 2;
    }
    std::string address = argv[1];
    pd::fleet_key fleet_key;
    try {
        fleet_key = pd::read_fleet_key(argv[2]);
    } catch (const pd::error &e) {
        std::fprintf(stderr, "pd_test_rogue: %s\n", e.what());
        return 2;
    }
    const std::uint8_t *key = fleet_key.data();
    struct rogue_case {
        const char *name;
        std::function<void(int fd)> act;
    };
    std::vector<rogue_case> cases = {
        {"garbage instead of a HELLO", [](int fd) {
             std::vector<std::uint8_t> junk(4096, 0xA5);
             ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
         }},
        {"a 2 GiB record length", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             std::uint8_t huge[4] = {0, 0, 0, 0x80};
             ::send(fd, huge, 4, MSG_NOSIGNAL);
         }},
        {"a truncated record, then hang-up", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             std::uint8_t prefix[4] = {0, 0x10, 0, 0};  // 4096 bytes announced, 100 sent
             ::send(fd, prefix, 4, MSG_NOSIGNAL);
             std::vector<std::uint8_t> part(100, 1);
             ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
             ::shutdown(fd, SHUT_WR);
         }},
        {"a malformed message in a valid record", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             ch.send(std::vector<std::uint8_t>{4, 1, 2, 3});  // a REQUEST cut short
         }},
    };
    int failures = 0;
    for (auto &c : cases) {
        try {
            int fd = static_cast<int>(pd::platform::connect_tcp(address, 5000));  // a POSIX tool
            c.act(fd);
            bool closed = closed_by_server(fd);
            ::close(fd);
            std::printf("%s: %s\n", c.name, closed ? "disconnected" : "NOT disconnected");
            failures += !closed;
        } catch (const pd::error &e) {
            std::printf("%s: error %s\n", c.name, e.what());
            ++failures;
        }
    }
    return failures ? 1 : 0;
}
