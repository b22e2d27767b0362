// The `branchcache` backend (design §6, serverless mode): devices on one subnet find each
// other's content by UDP multicast (with a subnet-broadcast fallback) — no server. Queries
// carry a label the host derives from the content id with the fleet key, so the content id
// never appears on the LAN (BranchCache shows its segment ids). A device holding verified
// blocks answers with its peer port and how many blocks it holds; the core then connects
// over the secure channel and verifies every block, so an answer is never trusted.
//
// Packets (docs/protocol.md §3), 64 bytes at most, little-endian:
//   QUERY  "PDQ1" · nonce u64 · label (32)
//   ANSWER "PDA1" · nonce u64 · label (32) · port u16 · verified blocks u64 · block count u64
// Settings (plugin.branchcache.*): enabled (1), port (34329), group (239.255.34.29),
// query_timeout_ms (300), max_answers_per_second (50). Without a fleet key, or with enabled=0,
// the backend sends and listens to nothing.
#include <peerdist/sys/plugin.h>

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

constexpr std::size_t query_size = 4 + 8 + 32;
constexpr std::size_t answer_size = query_size + 2 + 8 + 8;

std::string setting(const pd_host_api *h, const char *key, const char *def) {
    char buf[256];
    int64_t n = h->get_setting(h->host, key, buf, sizeof buf);
    return n > 0 && n < static_cast<int64_t>(sizeof buf) ? std::string(buf, static_cast<std::size_t>(n)) : def;
}

void put64(std::uint8_t *p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get64(const std::uint8_t *p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

struct backend {
    const pd_host_api *host = nullptr;
    int sock = -1;  // bound to the discovery port: receives queries
    std::uint16_t port = 34329;
    in_addr group{};
    std::atomic<bool> stop{false};
    std::thread responder;
    std::mutex rate_mu;
    std::chrono::steady_clock::time_point window{};
    unsigned answers_in_window = 0;

    std::uint16_t peer_port() {
        char buf[256];
        int64_t n = host->listen_addresses(host->host, buf, sizeof buf);
        if (n <= 0 || n >= static_cast<int64_t>(sizeof buf)) return 0;
        std::string first(buf, static_cast<std::size_t>(n));
        first = first.substr(0, first.find(','));
        return static_cast<std::uint16_t>(std::atoi(first.substr(first.rfind(':') + 1).c_str()));
    }

    bool allow_answer() {
        unsigned limit = static_cast<unsigned>(std::atoi(setting(host, "max_answers_per_second", "50").c_str()));
        std::lock_guard lk(rate_mu);
        auto now = std::chrono::steady_clock::now();
        if (now - window >= std::chrono::seconds(1)) window = now, answers_in_window = 0;
        return ++answers_in_window <= limit;
    }

    void respond_loop() {
        std::uint8_t pkt[128];
        while (!stop) {
            pollfd p{sock, POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) continue;
            sockaddr_in from{};
            socklen_t len = sizeof from;
            ssize_t n = ::recvfrom(sock, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr *>(&from), &len);
            if (n != static_cast<ssize_t>(query_size) || std::memcmp(pkt, "PDQ1", 4) != 0) continue;  // not ours
            std::uint64_t verified = 0, total = 0;
            if (host->lookup_label(host->host, pkt + 12, &verified, &total) != 0) continue;
            std::uint16_t pp = peer_port();
            if (!pp || !allow_answer()) continue;
            std::uint8_t ans[answer_size];
            std::memcpy(ans, "PDA1", 4);
            std::memcpy(ans + 4, pkt + 4, 8 + 32);  // nonce and label
            ans[44] = static_cast<std::uint8_t>(pp), ans[45] = static_cast<std::uint8_t>(pp >> 8);
            put64(ans + 46, verified);
            put64(ans + 54, total);
            ::sendto(sock, ans, sizeof ans, 0, reinterpret_cast<sockaddr *>(&from), len);
        }
    }
};

int32_t PD_CALLBACK bc_create(void **self, const pd_host_api *host, const char *) {
    if (host->struct_size < offsetof(pd_host_api, listen_addresses) + sizeof(host->listen_addresses)) return PD_PLUGIN_E_GENERIC;
    auto b = new (std::nothrow) backend;
    if (!b) return PD_PLUGIN_E_GENERIC;
    b->host = host;
    // Nothing goes on the network unless discovery can work: a fleet key (labels) and
    // plugin.branchcache.enabled (default 1). Such an instance stays silent.
    std::uint8_t probe_id[32] = {0}, probe_label[32];
    if (setting(host, "enabled", "1") == "0" || host->content_label(host->host, probe_id, probe_label) != 0) {
        *self = b;
        return PD_PLUGIN_OK;
    }
    b->port = static_cast<std::uint16_t>(std::atoi(setting(host, "port", "34329").c_str()));
    if (::inet_pton(AF_INET, setting(host, "group", "239.255.34.29").c_str(), &b->group) != 1) {
        delete b;
        return PD_PLUGIN_E_INVALID;
    }
    b->sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;
    // Several agents on one host (the loopback lab) share the port: multicast reaches each.
    ::setsockopt(b->sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(b->sock, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(b->port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    ip_mreq mreq{};
    mreq.imr_multiaddr = b->group;
    mreq.imr_interface.s_addr = htonl(INADDR_ANY);
    if (::bind(b->sock, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        std::string why = std::string("branchcache: cannot listen for discovery on UDP port ") + std::to_string(b->port) +
                          ": " + std::strerror(errno);
        host->log(host->host, 0, why.c_str());
        ::close(b->sock);
        delete b;
        return PD_PLUGIN_E_IO;
    }
    if (::setsockopt(b->sock, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) != 0) {
        // No multicast route (a bare container): broadcast queries still reach us.
        std::string why = std::string("branchcache: multicast unavailable (") + std::strerror(errno) +
                          "); answering broadcast queries only";
        host->log(host->host, 1, why.c_str());
    }
    b->responder = std::thread([b] { b->respond_loop(); });
    *self = b;
    return PD_PLUGIN_OK;
}

void PD_CALLBACK bc_destroy(void *self) {
    auto b = static_cast<backend *>(self);
    b->stop = true;
    if (b->responder.joinable()) b->responder.join();
    if (b->sock >= 0) ::close(b->sock);
    delete b;
}

int32_t PD_CALLBACK bc_find_peers(void *self, const pd_content_ref *content, char *out, size_t out_size) {
    auto b = static_cast<backend *>(self);
    if (b->sock < 0) return 0;  // silent instance
    std::uint8_t query[query_size];
    std::memcpy(query, "PDQ1", 4);
    std::uint64_t nonce = std::random_device{}() * 0x100000001ull ^ std::random_device{}();
    put64(query + 4, nonce);
    if (b->host->content_label(b->host->host, content->id, query + 12) != 0) return PD_PLUGIN_E_NOT_FOUND;
    // A fresh socket per query: answers come back to it, unicast.
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1, ttl = 1;
    ::setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    ::setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);  // never past the subnet
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(b->port);
    to.sin_addr = b->group;
    ::sendto(s, query, sizeof query, 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
    to.sin_addr.s_addr = htonl(INADDR_BROADCAST);  // fallback where multicast is filtered
    ::sendto(s, query, sizeof query, 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
    int timeout = std::atoi(setting(b->host, "query_timeout_ms", "300").c_str());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
    std::set<std::string> peers;
    std::uint8_t pkt[128];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) break;
        pollfd p{s, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(s, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr *>(&from), &len);
        if (n != static_cast<ssize_t>(answer_size) || std::memcmp(pkt, "PDA1", 4) != 0 || get64(pkt + 4) != nonce ||
            std::memcmp(pkt + 12, query + 12, 32) != 0)
            continue;
        std::uint16_t port = static_cast<std::uint16_t>(pkt[44] | pkt[45] << 8);
        char ip[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        peers.insert(std::string(ip) + ":" + std::to_string(port));
    }
    ::close(s);
    std::string list;
    for (auto &p : peers) list += p + "\n";
    if (out && out_size) std::snprintf(out, out_size, "%s", list.c_str());
    return static_cast<int32_t>(peers.size());
}

const pd_backend_vtable bc_vtable = {
    sizeof(pd_backend_vtable), 1 /* PD_SOURCE_LAN */, bc_create, bc_destroy, nullptr, nullptr, nullptr, nullptr, bc_find_peers,
    nullptr, nullptr,
};

const pd_backend_vtable *PD_CALLBACK bc_backend_for(uint32_t abi) { return abi == 1 ? &bc_vtable : nullptr; }

const pd_plugin_descriptor bc_descriptor = {
    sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "branchcache", "0.1.0", "Apache-2.0",
    "Serverless peer discovery on the subnet (UDP multicast, keyed labels)", bc_backend_for,
};

}  // namespace

extern "C" PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) { return &bc_descriptor; }
