// The BranchCache wire mode's client side: windows_fetch.h.
#include "windows_fetch.h"

#include "host_settings.h"
#include "pccrd.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>

namespace pd_branchcache {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// "ip:port" or "[v6]:port" split; nothing for anything else.
std::optional<std::pair<asio::ip::address, std::uint16_t>> split_address(const std::string &text) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size() || text.size() - colon > 6) return std::nullopt;
    std::string host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    unsigned long p = std::stoul(port);
    error_code ec;
    auto a = asio::ip::make_address(host, ec);
    if (ec || p == 0 || p > 65535) return std::nullopt;
    return std::make_pair(a, static_cast<std::uint16_t>(p));
}

pccrr::crypto_algo cipher_setting(const pd_host_api *host) {
    auto name = setting(host, "pccrr_cipher", "aes128");
    if (name == "none") return pccrr::crypto_algo::none;
    if (name == "aes192") return pccrr::crypto_algo::aes_192;
    if (name == "aes256") return pccrr::crypto_algo::aes_256;
    return pccrr::crypto_algo::aes_128;
}

// One keep-alive HTTP connection to a peer's [MS-PCCRR] server. Operations are asynchronous
// with Beast's timeouts, run to completion on the calling thread: blocking with a bound.
class connection {
public:
    // Room for a whole response from the start: Beast reads what the buffer has room for,
    // and a fresh buffer would take a 64 KiB block in many small reads.
    explicit connection(std::string address) : address_(std::move(address)) { buffer_.reserve(2 * pccrr::max_message_bytes); }
    const std::string &address() const { return address_; }

    bool connect(std::chrono::milliseconds timeout, std::string &why) {
        auto at = split_address(address_);
        if (!at) return why = "bad address " + address_, false;
        error_code ec;
        stream_.expires_after(timeout);
        stream_.async_connect(tcp::endpoint(at->first, at->second), [&](error_code e) { ec = e; });
        run();
        if (ec) why = "cannot connect to " + address_ + ": " + ec.message();
        return !ec;
    }

    // POSTs a request and returns the response's body; nothing (and the reason) on failure,
    // after which the connection is not used again.
    std::optional<pccrr::bytes> post(const pccrr::bytes &body, std::chrono::milliseconds timeout, std::string &why) {
        http::request<http::vector_body<std::uint8_t>> req{http::verb::post, pccrr::retrieval_path, 11};
        req.set(http::field::host, address_);
        req.set(http::field::content_type, "application/octet-stream");
        req.keep_alive(true);
        req.body() = body;
        req.prepare_payload();
        error_code ec;
        stream_.expires_after(timeout);
        http::async_write(stream_, req, [&](error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return why = "sending to " + address_ + " failed: " + ec.message(), std::nullopt;
        http::response_parser<http::vector_body<std::uint8_t>> parser;
        parser.header_limit(8192);
        parser.body_limit(pccrr::transport_header_size + pccrr::max_message_bytes);
        stream_.expires_after(timeout);
        http::async_read(stream_, buffer_, parser, [&](error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return why = "reading from " + address_ + " failed: " + ec.message(), std::nullopt;
        auto &res = parser.get();
        if (res.result() != http::status::ok)
            return why = address_ + " answered HTTP " + std::to_string(res.result_int()), std::nullopt;
        reusable_ = res.keep_alive();
        return std::move(res.body());
    }

    bool reusable() const { return reusable_; }

private:
    void run() {
        io_.restart();
        io_.run();
    }

    std::string address_;
    asio::io_context io_;
    beast::tcp_stream stream_{io_};
    beast::flat_buffer buffer_;
    bool reusable_ = false;
};

}  // namespace

std::map<pccrr::bytes, std::vector<offer>> probe(const std::vector<pccrr::bytes> &ids, const std::string &to,
                                                 unsigned timeout_ms) {
    std::map<pccrr::bytes, std::vector<offer>> found;
    auto target = split_address(to);
    if (!target || ids.empty()) return found;
    udp::endpoint dest(target->first, target->second);
    pccrd::probe p;
    p.message_id = pccrd::new_urn_uuid();
    p.segments.assign(ids.begin(), ids.end());
    std::set<pccrr::bytes> asked(ids.begin(), ids.end());
    auto text = pccrd::build(p);

    asio::io_context io;
    udp::socket s(io);
    error_code ec;
    s.open(dest.protocol(), ec);
    if (ec) return found;
    if (dest.address().is_multicast()) s.set_option(asio::ip::multicast::hops(1), ec);  // never past the subnet
    s.send_to(asio::buffer(text), dest, 0, ec);
    if (ec) return found;

    std::set<std::pair<pccrr::bytes, std::string>> seen;  // (segment, peer): once each
    // One ProbeMatch from `from`: its offers for the probed segments.
    auto take = [&](const pccrd::probe_match &m, const udp::endpoint &from) {
        if (m.relates_to != p.message_id) return;
        // Only a retrieval address on the answering host: a forged ProbeMatch cannot send
        // this device's requests to a third host.
        std::string address;
        for (auto &a : m.addresses)
            if (auto at = split_address(a); at && at->first == from.address()) {
                address = a;
                break;
            }
        if (address.empty()) return;
        for (std::size_t i = 0; i < m.segments.size(); ++i) {
            auto &id = m.segments[i];
            if (!asked.count(id) || m.block_counts[i] == 0 || !seen.insert({id, address}).second) continue;
            auto &offers = found[id];
            if (offers.size() < max_offers) offers.push_back({address, m.block_counts[i]});
        }
    };
    std::vector<char> in(65536);
    udp::endpoint from;
    std::function<void()> receive = [&] {
        s.async_receive_from(asio::buffer(in), from, [&](error_code rec, std::size_t n) {
            if (rec == asio::error::operation_aborted) return;
            if (!rec) {
                auto m = pccrd::parse_probe_match(std::string_view(in.data(), n));
                if (m.msg) take(*m.msg, from);
            }
            receive();
        });
    };
    receive();
    io.run_for(std::chrono::milliseconds(timeout_ms));
    return found;
}

struct windows_stream::impl {
    const pd_host_api *host;
    std::uint64_t size = 0;
    std::vector<pd_branchcache_segment> segments;
    std::map<std::uint32_t, std::vector<offer>> offers;  // by segment index, fullest first
    pccrr::crypto_algo cipher = pccrr::crypto_algo::aes_128;
    std::chrono::milliseconds timeout{10000};
    std::mutex mu;
    std::vector<std::unique_ptr<connection>> idle;

    std::unique_ptr<connection> take(const std::string &address, std::string &why) {
        {
            std::lock_guard lk(mu);
            for (auto it = idle.begin(); it != idle.end(); ++it)
                if ((*it)->address() == address) {
                    auto c = std::move(*it);
                    idle.erase(it);
                    return c;
                }
        }
        auto c = std::make_unique<connection>(address);
        if (!c->connect(timeout, why)) return nullptr;
        return c;
    }

    void give_back(std::unique_ptr<connection> c) {
        if (!c->reusable()) return;
        std::lock_guard lk(mu);
        if (idle.size() < 16) idle.push_back(std::move(c));
    }

    // One request to the peer at `address` and its response, parsed; nothing (and why) when
    // the exchange or the response fails.
    std::optional<pccrr::message> exchange(const std::string &address, const pccrr::message &request, std::string &why) {
        auto c = take(address, why);
        if (!c) return std::nullopt;
        auto body = c->post(pccrr::build(request), timeout, why);
        if (!body) return std::nullopt;
        auto p = pccrr::parse_response(body->data(), body->size());
        if (!p.msg) return why = address + " sent a malformed response: " + p.error, std::nullopt;
        give_back(std::move(c));
        return std::move(p.msg);
    }

    // What this device learnt of a peer: whether it speaks 1.0, and which blocks of which
    // segments it holds ([MS-PCCRR] 3.1.5: MSG_NEGO_REQ once, MSG_GETBLKLIST once a segment).
    struct peer_state {
        std::optional<bool> speaks_1_0;
        std::map<std::uint32_t, std::vector<bool>> held;  // by segment index
    };
    std::map<std::string, peer_state> peers;  // under mu

    bool negotiated(const std::string &address, std::string &why) {
        {
            std::lock_guard lk(mu);
            if (auto &v = peers[address].speaks_1_0) return *v;
        }
        pccrr::message req;
        req.content = pccrr::nego_req{{1, 0}, {1, 0}};
        auto m = exchange(address, req, why);
        auto *resp = m ? std::get_if<pccrr::nego_resp>(&m->content) : nullptr;
        if (!resp) return why = address + " did not negotiate (" + (m ? "another message" : why) + ")", false;
        bool ok = !(pccrr::version{1, 0} < resp->min_version) && !(resp->max_version < pccrr::version{1, 0});
        if (!ok) why = address + " does not speak version 1.0";
        std::lock_guard lk(mu);
        peers[address].speaks_1_0 = ok;
        return ok;
    }

    // Whether the peer holds block `i` of the segment, from its block list (asked once).
    bool holds(const std::string &address, const pd_branchcache_segment &seg, std::uint32_t i, std::string &why) {
        {
            std::lock_guard lk(mu);
            auto &held = peers[address].held;
            if (auto it = held.find(seg.index); it != held.end()) return it->second[i];
        }
        std::vector<bool> held(seg.block_count);
        pccrr::bytes id(seg.id, seg.id + sizeof seg.id);
        // A list may end early and say where the next starts (NextBlockIndex): at most one
        // request a block, so a peer cannot keep this going.
        for (std::uint32_t from = 0, asked = 0; from < seg.block_count && asked < seg.block_count; ++asked) {
            pccrr::message req;
            req.content = pccrr::get_blk_list{id, {{from, seg.block_count - from}}};
            auto m = exchange(address, req, why);
            auto *list = m ? std::get_if<pccrr::blk_list>(&m->content) : nullptr;
            if (!list || list->segment_id != id) return why = address + " sent no block list for the segment", false;
            for (auto &r : list->ranges)
                for (std::uint64_t b = r.index; b < std::uint64_t{r.index} + r.count && b < seg.block_count; ++b) held[b] = true;
            if (list->next_block_index <= from || list->next_block_index >= seg.block_count) break;
            from = list->next_block_index;
        }
        bool has = held[i];
        std::lock_guard lk(mu);
        peers[address].held[seg.index] = std::move(held);
        if (!has) why = address + " does not list block " + std::to_string(i) + " of the segment";
        return has;
    }

    // Block `i` of a segment from the peer at `address`, decrypted; nothing when it does not
    // serve it (an empty MSG_BLK) or fails.
    std::optional<pccrr::bytes> fetch(const pd_branchcache_segment &seg, std::uint32_t i, std::size_t length,
                                      const std::string &address, std::string &why) {
        pccrr::message req;
        req.algo = cipher;
        pccrr::bytes id(seg.id, seg.id + sizeof seg.id);
        pccrr::get_blks get;
        get.segment_id = id;
        get.ranges = {{i, 1}};
        req.content = std::move(get);
        auto m = exchange(address, req, why);
        if (!m) return std::nullopt;
        const pccrr::blk *blk = std::get_if<pccrr::blk>(&m->content);
        if (!blk) return why = address + " sent no MSG_BLK", std::nullopt;
        if (blk->segment_id != id || blk->block_index != i)
            return why = address + " sent another block than the one asked for", std::nullopt;
        if (blk->block.empty()) return why = address + " does not hold block " + std::to_string(i) + " of the segment", std::nullopt;
        auto plain = pccrr::decrypt_block(m->algo, pccrr::bytes(seg.secret, seg.secret + sizeof seg.secret), blk->iv, blk->block,
                                          length);
        if (!plain) return why = address + " sent a block that does not decrypt to its length", std::nullopt;
        return plain;
    }

    // Content block `b` into `out` (its length), from the first peer that serves it.
    int32_t read_block(std::uint64_t b, std::uint8_t *out, std::size_t length, std::string &why) {
        auto s = std::upper_bound(segments.begin(), segments.end(), b,
                                  [](std::uint64_t v, const pd_branchcache_segment &seg) { return v < seg.first_block; });
        if (s == segments.begin()) return why = "block outside the content", PD_PLUGIN_E_INVALID;
        auto &seg = *--s;
        auto i = static_cast<std::uint32_t>(b - seg.first_block);
        auto it = offers.find(seg.index);
        if (it == offers.end() || it->second.empty()) {
            why = "no Windows BranchCache peer offered segment " + std::to_string(seg.index);
            return PD_PLUGIN_E_NOT_FOUND;
        }
        // Spread the blocks over the peers that hold the segment; the next on failure.
        auto &offered = it->second;
        std::string last;
        for (std::size_t k = 0; k < offered.size(); ++k) {
            auto &peer = offered[(i + k) % offered.size()];
            if (!negotiated(peer.address, last) || !holds(peer.address, seg, i, last)) continue;
            if (auto plain = fetch(seg, i, length, peer.address, last)) {
                std::memcpy(out, plain->data(), length);
                return PD_PLUGIN_OK;
            }
        }
        why = "no Windows BranchCache peer served block " + std::to_string(b) + " (" + last + ")";
        return PD_PLUGIN_E_NOT_FOUND;
    }
};

windows_stream::windows_stream(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
windows_stream::~windows_stream() = default;

std::unique_ptr<windows_stream> windows_stream::open(const pd_host_api *host, const pd_content_ref &content, std::string &why) {
    if (host->struct_size < offsetof(pd_host_api, branchcache_segment_of) + sizeof host->branchcache_segment_of ||
        !host->branchcache_segment_of)
        return nullptr;
    auto i = std::make_unique<impl>();
    i->host = host;
    i->size = content.size;
    // The content's segments as its Content Information names them (none recorded: not ours).
    std::uint64_t most = content.size / (512ull * 65536) + 1;
    for (std::uint32_t n = 0; n < most; ++n) {
        pd_branchcache_segment seg{};
        seg.struct_size = sizeof seg;
        if (host->branchcache_segment_of(host->host, content.id, n, &seg) != 0) break;
        i->segments.push_back(seg);
    }
    if (i->segments.empty()) return nullptr;

    std::vector<pccrr::bytes> needed;
    for (auto &seg : i->segments)
        if (seg.verified_count < seg.block_count) needed.emplace_back(seg.id, seg.id + sizeof seg.id);
    if (needed.empty()) return why = "every segment is held already", nullptr;

    auto to = setting(host, "pccrd_probe_to", "");
    if (to.empty()) to = std::string(pccrd::ipv4_group) + ":" + std::to_string(setting_uint(host, "pccrd_port", pccrd::port));
    auto timeout = setting_uint(host, "probe_timeout_ms", 500);
    std::map<pccrr::bytes, std::vector<offer>> found;
    for (std::size_t k = 0; k < needed.size(); k += pccrd::max_segments) {
        std::vector<pccrr::bytes> batch(needed.begin() + static_cast<std::ptrdiff_t>(k),
                                        needed.begin() + static_cast<std::ptrdiff_t>(std::min(needed.size(), k + pccrd::max_segments)));
        for (auto &[id, offers] : probe(batch, to, timeout)) found[id] = offers;
    }
    std::size_t offered = 0;
    for (auto &seg : i->segments) {
        if (seg.verified_count == seg.block_count) continue;
        auto it = found.find(pccrr::bytes(seg.id, seg.id + sizeof seg.id));
        if (it == found.end()) continue;
        auto offers = it->second;
        std::stable_sort(offers.begin(), offers.end(), [](const offer &a, const offer &b) { return a.blocks > b.blocks; });
        i->offers[seg.index] = std::move(offers);
        ++offered;
    }
    if (offered < needed.size()) {
        why = "Windows BranchCache peers offered " + std::to_string(offered) + " of the " + std::to_string(needed.size()) +
              " segments this device needs";
        return nullptr;
    }
    i->cipher = cipher_setting(host);
    i->timeout = std::chrono::milliseconds(setting_uint(host, "pccrr_timeout_ms", 10000));
    return std::unique_ptr<windows_stream>(new windows_stream(std::move(i)));
}

int32_t windows_stream::read(std::uint64_t offset, std::uint8_t *buffer, std::size_t length, std::string &why) {
    constexpr std::uint64_t block = 65536;
    if (offset > impl_->size || length > impl_->size - offset) return why = "read past the content's end", PD_PLUGIN_E_INVALID;
    pccrr::bytes scratch;
    for (std::uint64_t at = offset; at < offset + length;) {
        std::uint64_t b = at / block, start = b * block;
        auto len = static_cast<std::size_t>(std::min(block, impl_->size - start));
        // A whole block goes straight to the buffer; a partial one through scratch.
        std::size_t skip = static_cast<std::size_t>(at - start);
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(len - skip, offset + length - at));
        std::uint8_t *dest = buffer + (at - offset);
        if (skip || take < len) {
            scratch.resize(len);
            if (auto rc = impl_->read_block(b, scratch.data(), len, why); rc != PD_PLUGIN_OK) return rc;
            std::memcpy(dest, scratch.data() + skip, take);
        } else if (auto rc = impl_->read_block(b, dest, len, why); rc != PD_PLUGIN_OK) {
            return rc;
        }
        at += take;
    }
    return PD_PLUGIN_OK;
}

}  // namespace pd_branchcache
