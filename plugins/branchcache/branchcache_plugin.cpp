// The `branchcache` backend (design §6, serverless mode): devices on one subnet find each
// other's content by UDP multicast (with a subnet-broadcast fallback) — no server. Queries
// carry the host's keyed label of the content, sealed under the fleet's discovery key, so
// the LAN sees neither the content nor which queries ask for the same one. A device holding
// verified blocks answers, sealed and bound to the query, with its peer port and how many
// blocks it holds; the core then connects over the secure channel and verifies every
// block, so an answer is never trusted.
//
// Packets, the replay guard and the answer budget: discovery.h (docs/protocol.md §3).
// Settings (plugin.branchcache.*): enabled (1), port (34329), group (239.255.34.29),
// query_timeout_ms (300), max_answers_per_second (50), max_answers_per_source (5). Without a
// fleet key, or with enabled=0, the backend sends and listens to nothing of its own.
//
// With windows_peers=1 it also speaks to Windows' own BranchCache peers ([MS-PCCRD] and
// [MS-PCCRR]), a separate wire that needs no fleet key: it answers them (windows_peers.h)
// and, as a LAN-class stream the core tries before the origin, fetches from them
// (windows_fetch.h).
#include "discovery.h"
#include "host_settings.h"
#include "windows_fetch.h"
#include "windows_peers.h"

#include <peerdist/sys/plugin.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <thread>

namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;

using namespace pd_branchcache;

constexpr std::size_t max_answers = 64;  // peers one query may yield

std::uint64_t current_window() {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    return static_cast<std::uint64_t>(now.count()) / window_seconds;
}

struct backend {
    const pd_host_api *host = nullptr;
    asio::io_context io;  // the responder's
    udp::socket sock{io};  // bound to the discovery port: receives queries
    std::uint16_t port = 34329;
    asio::ip::address_v4 group;
    std::thread responder;
    pd_branchcache::key key{};  // the fleet's discovery key
    // Windows' own BranchCache peers answered (plugin.branchcache.windows_peers=1).
    std::unique_ptr<windows_peers> windows;
    // The responder thread's only:
    replay_guard seen;
    answer_budget budget;
    std::uint8_t query_in[128];
    udp::endpoint query_from;

    std::uint16_t peer_port() {
        char buf[256];
        int64_t n = host->listen_addresses(host->host, buf, sizeof buf);
        if (n <= 0 || n >= static_cast<int64_t>(sizeof buf)) return 0;
        std::string first(buf, static_cast<std::size_t>(n));
        first = first.substr(0, first.find(','));
        return static_cast<std::uint16_t>(std::atoi(first.substr(first.rfind(':') + 1).c_str()));
    }

    bool allow_answer(const std::string &source) {
        auto per_second = setting_uint(host, "max_answers_per_second", 50);
        auto per_source = setting_uint(host, "max_answers_per_source", 5);
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch());
        return budget.allow(source, static_cast<std::uint64_t>(now.count()), per_second, per_source);
    }

    void receive_query() {
        sock.async_receive_from(asio::buffer(query_in), query_from, [this](boost::system::error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;  // stopping
            if (!ec) answer(n);
            receive_query();
        });
    }

    void answer(std::size_t n) {
        auto q = decode_query(query_in, n, key);
        if (!q || !seen.admit(*q, current_window())) return;  // not ours, stale, or replayed
        pd_branchcache::answer a;
        a.query_id = q->id;
        if (host->lookup_label(host->host, q->content.data(), &a.verified_blocks, &a.block_count) != 0) return;
        a.port = peer_port();
        if (!a.port || !allow_answer(query_from.address().to_string())) return;
        boost::system::error_code ignored;  // the asker may be gone; it asks again
        sock.send_to(asio::buffer(encode(a, key)), query_from, 0, ignored);
    }
};

int32_t PD_CALLBACK bc_create(void **self, const pd_host_api *host, const char *) {
    if (host->struct_size < offsetof(pd_host_api, listen_addresses) + sizeof(host->listen_addresses)) return PD_PLUGIN_E_GENERIC;
    auto b = new (std::nothrow) backend;
    if (!b) return PD_PLUGIN_E_GENERIC;
    b->host = host;
    // Nothing goes on the network unless discovery can work: a fleet key (labels, the
    // discovery key; hosts before 0.5 have no discovery key) and plugin.branchcache.enabled
    // (default 1). Such an instance stays silent.
    bool has_key = host->struct_size >= offsetof(pd_host_api, discovery_key) + sizeof(host->discovery_key) &&
                   host->discovery_key && host->discovery_key(host->host, b->key.data()) == 0;
    // The BranchCache wire mode needs no fleet key: Windows peers have none.
    if (setting(host, "windows_peers", "0") == "1") b->windows = windows_peers::start(host);
    if (setting(host, "enabled", "1") == "0" || !has_key || sodium_init() < 0) {
        *self = b;
        return PD_PLUGIN_OK;
    }
    b->port = static_cast<std::uint16_t>(std::atoi(setting(host, "port", "34329").c_str()));
    boost::system::error_code ec;
    b->group = asio::ip::make_address_v4(setting(host, "group", "239.255.34.29"), ec);
    if (ec || !b->group.is_multicast()) {
        delete b;
        return PD_PLUGIN_E_INVALID;
    }
    b->sock.open(udp::v4(), ec);
    // Several agents on one host (the loopback lab) share the port: multicast reaches each.
    if (!ec) b->sock.set_option(udp::socket::reuse_address(true), ec);
#ifdef SO_REUSEPORT
    if (!ec) b->sock.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
#endif
    if (!ec) b->sock.bind(udp::endpoint(asio::ip::address_v4::any(), b->port), ec);
    if (ec) {
        std::string why = "branchcache: cannot listen for discovery on UDP port " + std::to_string(b->port) + ": " + ec.message();
        host->log(host->host, 0, why.c_str());
        delete b;
        return PD_PLUGIN_E_IO;
    }
    b->sock.set_option(asio::ip::multicast::join_group(b->group), ec);
    if (ec) {
        // No multicast route (a bare container): broadcast queries still reach us.
        std::string why = "branchcache: multicast unavailable (" + ec.message() + "); answering broadcast queries only";
        host->log(host->host, 1, why.c_str());
    }
    b->receive_query();
    b->responder = std::thread([b] { b->io.run(); });
    *self = b;
    return PD_PLUGIN_OK;
}

void PD_CALLBACK bc_destroy(void *self) {
    auto b = static_cast<backend *>(self);
    b->windows.reset();
    b->io.stop();
    if (b->responder.joinable()) b->responder.join();
    delete b;
}

int32_t PD_CALLBACK bc_find_peers(void *self, const pd_content_ref *content, char *out, size_t out_size) {
    auto b = static_cast<backend *>(self);
    if (!b->sock.is_open()) return 0;  // silent instance
    // An authority forbids broadcast discovery in this device's office (WiFi): no query goes
    // out; answering other devices' queries is unicast and stays.
    auto &h = *b->host;
    if (h.struct_size >= offsetof(pd_host_api, discovery_broadcast_allowed) + sizeof h.discovery_broadcast_allowed &&
        h.discovery_broadcast_allowed && !h.discovery_broadcast_allowed(h.host))
        return 0;
    query q;
    q.window = current_window();
    randombytes_buf(q.id.data(), q.id.size());
    if (b->host->content_label(b->host->host, content->id, q.content.data()) != 0) return PD_PLUGIN_E_NOT_FOUND;
    auto datagram = encode(q, b->key);
    // A fresh socket per query: answers come back to it, unicast.
    asio::io_context io;
    udp::socket s(io);
    boost::system::error_code ec;
    s.open(udp::v4(), ec);
    if (ec) return PD_PLUGIN_E_IO;
    s.set_option(udp::socket::broadcast(true), ec);
    s.set_option(asio::ip::multicast::hops(1), ec);  // never past the subnet
    s.send_to(asio::buffer(datagram), udp::endpoint(b->group, b->port), 0, ec);
    s.send_to(asio::buffer(datagram), udp::endpoint(asio::ip::address_v4::broadcast(), b->port), 0, ec);  // where multicast is filtered
    int timeout = std::atoi(setting(b->host, "query_timeout_ms", "300").c_str());
    std::set<std::string> peers, sources;
    std::uint8_t pkt[128];
    udp::endpoint from;
    std::function<void()> receive = [&] {
        s.async_receive_from(asio::buffer(pkt), from, [&](boost::system::error_code rec, std::size_t n) {
            if (rec == asio::error::operation_aborted) return;
            if (rec) return receive();
            auto a = decode_answer(pkt, n, b->key);
            // Only a fleet member can seal an answer to this query; one per address, and the
            // first max_answers are kept (each peer is verified block by block anyway).
            auto source = from.address().to_string();
            if (a && a->query_id == q.id && peers.size() < max_answers && sources.insert(source).second)
                peers.insert(source + ":" + std::to_string(a->port));
            receive();
        });
    };
    receive();
    io.run_for(std::chrono::milliseconds(timeout));
    std::string list;
    for (auto &p : peers) list += p + "\n";
    if (out && out_size) std::snprintf(out, out_size, "%s", list.c_str());
    return static_cast<int32_t>(peers.size());
}

void set_message(char *out, size_t size, const std::string &text) {
    if (out && size) std::snprintf(out, size, "%s", text.c_str());
}

// The wire mode's stream: blocks from Windows' BranchCache peers. Without the mode, or for a
// content without recorded Content Information, none of this backend's business (NOT_FOUND
// with no message: the core moves on to the next source without a fallback event).
int32_t PD_CALLBACK bc_open(void *self, void **stream, const pd_content_ref *content, char *message, size_t message_size) {
    auto b = static_cast<backend *>(self);
    set_message(message, message_size, "");
    if (!b->windows) return PD_PLUGIN_E_NOT_FOUND;
    std::string why;
    auto s = windows_stream::open(b->host, *content, why);
    if (!s) {
        set_message(message, message_size, why);
        return PD_PLUGIN_E_NOT_FOUND;
    }
    *stream = s.release();
    return PD_PLUGIN_OK;
}

int32_t PD_CALLBACK bc_read(void *, void *stream, uint64_t offset, void *buffer, size_t length, size_t *read, char *message,
                            size_t message_size) {
    std::string why;
    int32_t rc = static_cast<windows_stream *>(stream)->read(offset, static_cast<std::uint8_t *>(buffer), length, why);
    *read = rc == PD_PLUGIN_OK ? length : 0;
    if (rc != PD_PLUGIN_OK) set_message(message, message_size, "branchcache wire mode: " + why);
    return rc;
}

void PD_CALLBACK bc_close(void *, void *stream) { delete static_cast<windows_stream *>(stream); }

const pd_backend_vtable bc_vtable = {
    sizeof(pd_backend_vtable), 1 /* PD_SOURCE_LAN */, bc_create, bc_destroy, bc_open, bc_read, bc_close, nullptr, bc_find_peers,
    nullptr, nullptr, nullptr, nullptr, nullptr,
};

const pd_backend_vtable *PD_CALLBACK bc_backend_for(uint32_t abi) { return abi == 1 ? &bc_vtable : nullptr; }

const pd_plugin_descriptor bc_descriptor = {
    sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "branchcache", "0.1.0", "Apache-2.0",
    "Serverless peer discovery on the subnet (UDP multicast, sealed under the fleet key)", bc_backend_for,
};

}  // namespace

extern "C" PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) { return &bc_descriptor; }
