// The BranchCache wire mode's server side: windows_peers.h.
#include "windows_peers.h"

#include "discovery.h"
#include "host_settings.h"
#include "pccrd.h"
#include "pccrr.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <thread>

namespace pd_branchcache {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

std::uint64_t steady_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

bool has_services(const pd_host_api *h) {
    return h->struct_size >= offsetof(pd_host_api, read_block) + sizeof h->read_block && h->branchcache_segment && h->read_block;
}

}  // namespace

struct windows_peers::impl {
    const pd_host_api *host;
    // Before the io_context: its pending handlers, destroyed with it, release connections.
    std::map<std::string, unsigned> connections_by_source;
    unsigned connections = 0;
    asio::io_context io;
    udp::socket probes{io};
    tcp::acceptor acceptor{io};
    std::thread thread;

    // [MS-PCCRD] 2.2.2.2: who we are to Windows peers, for this run.
    std::string endpoint = pccrd::new_urn_uuid();
    std::uint64_t instance_id = static_cast<std::uint64_t>(std::time(nullptr));
    std::uint64_t message_number = 0;
    answer_budget budget;
    char probe_in[65536];
    udp::endpoint probe_from;

    explicit impl(const pd_host_api *h) : host(h) {}

    void log(int level, const std::string &message) const { host->log(host->host, level, ("branchcache: " + message).c_str()); }

    // ---- [MS-PCCRD]: Probes in, ProbeMatches out ----

    void receive_probe() {
        probes.async_receive_from(asio::buffer(probe_in), probe_from, [this](error_code ec, std::size_t n) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;
            if (!ec) answer_probe(n);
            receive_probe();
        });
    }

    // The address a peer reaches this device at: the source address of a route toward it.
    std::string local_address_toward(const udp::endpoint &peer) {
        udp::socket s(io);
        error_code ec;
        s.open(peer.protocol(), ec);
        if (!ec) s.connect(peer, ec);
        auto local = ec ? udp::endpoint() : s.local_endpoint(ec);
        if (ec) return {};
        auto a = local.address();
        return a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    }

    void answer_probe(std::size_t n) {
        auto p = pccrd::parse_probe(std::string_view(probe_in, n));
        if (!p.msg) return;  // 3.2.4.1: a malformed Probe is dropped silently
        pccrd::probe_match m;
        for (auto &id : p.msg->segments) {
            auto seg = segment(id);
            if (!seg || seg->verified_count == 0) continue;
            m.segments.push_back(id);
            m.block_counts.push_back(seg->verified_count);
        }
        if (m.segments.empty()) return;  // 3.2.4.1: nothing held, no answer
        auto source = probe_from.address().to_string();
        if (!budget.allow(source, steady_ms(), setting_uint(host, "max_probe_answers_per_second", 50),
                          setting_uint(host, "max_probe_answers_per_source", 5)))
            return;
        auto local = local_address_toward(probe_from);
        if (local.empty()) return;
        m.addresses.push_back(local + ":" + std::to_string(acceptor.local_endpoint().port()));
        m.message_id = pccrd::new_urn_uuid();
        m.relates_to = p.msg->message_id;
        m.endpoint = endpoint;
        m.instance_id = instance_id;
        m.message_number = ++message_number;
        auto text = pccrd::build(m);
        error_code ignored;  // the asker may be gone; it probes again
        probes.send_to(asio::buffer(text), probe_from, 0, ignored);
    }

    // ---- [MS-PCCRR]: requests in, responses out ----

    // The held segment a peer names by its ID (both protocols), or nothing.
    std::optional<pd_branchcache_segment> segment(const std::vector<std::uint8_t> &id) const {
        pd_branchcache_segment seg{};
        seg.struct_size = sizeof seg;
        if (host->branchcache_segment(host->host, id.data(), id.size(), &seg) != 0) return std::nullopt;
        return seg;
    }

    static bool held(const pd_branchcache_segment &seg, std::uint64_t i) {
        return i < seg.block_count && (seg.verified[i / 8] >> (i % 8) & 1);
    }

    // The held blocks among the needed ranges, as ranges (3.2.5.2).
    static std::vector<pccrr::block_range> held_ranges(const pd_branchcache_segment &seg, const std::vector<pccrr::block_range> &needed) {
        std::vector<pccrr::block_range> out;
        for (auto &r : needed)
            for (std::uint64_t i = r.index; i < std::uint64_t{r.index} + r.count; ++i) {
                if (!held(seg, i)) continue;
                if (!out.empty() && std::uint64_t{out.back().index} + out.back().count == i) ++out.back().count;
                else out.push_back({static_cast<std::uint32_t>(i), 1});
            }
        return out;
    }

    pccrr::blk block_answer(const pccrr::get_blks &req, pccrr::crypto_algo algo) {
        pccrr::blk out;
        out.segment_id = req.segment_id;
        if (req.ranges.empty()) return out;
        // One block an exchange (3.1.4.3): the first asked for; NextBlockIndex the next one.
        out.block_index = req.ranges[0].index;
        if (req.ranges[0].count > 1) out.next_block_index = out.block_index + 1;
        else if (req.ranges.size() > 1) out.next_block_index = req.ranges[1].index;
        auto seg = segment(req.segment_id);
        if (!seg || !held(*seg, out.block_index)) return out;  // an empty block: not held
        pccrr::bytes block(pccrr::max_block_bytes);
        auto n = host->read_block(host->host, seg->content, seg->first_block + out.block_index, block.data(), block.size());
        if (n < 0 || static_cast<std::size_t>(n) > block.size()) return out;
        block.resize(static_cast<std::size_t>(n));
        if (algo != pccrr::crypto_algo::none) {
            out.iv.resize(16);
            randombytes_buf(out.iv.data(), out.iv.size());
        }
        auto cipher = pccrr::encrypt_block(algo, pccrr::bytes(seg->secret, seg->secret + 32), out.iv, block);
        if (cipher) out.block = std::move(*cipher);
        return out;
    }

    // The response to a request's bytes, transport header included; nothing for a message
    // that is not a request of this protocol.
    std::optional<pccrr::bytes> answer(const pccrr::bytes &request) {
        auto p = pccrr::parse_request(request.data(), request.size());
        pccrr::message reply;
        if (p.unsupported_version || (p.msg && p.msg->type() == pccrr::msg_type::nego_req)) {
            reply.content = pccrr::nego_resp{{1, 0}, {1, 0}};  // 3.2.5.1, and 3.2.5 for another version
        } else if (!p.msg) {
            return std::nullopt;
        } else if (auto *list = std::get_if<pccrr::get_blk_list>(&p.msg->content)) {
            auto seg = segment(list->segment_id);
            reply.content = pccrr::blk_list{list->segment_id, seg ? held_ranges(*seg, list->needed) : std::vector<pccrr::block_range>{}, 0};
        } else if (auto *get = std::get_if<pccrr::get_blks>(&p.msg->content)) {
            reply.algo = p.msg->algo;  // the cipher the client asked for
            reply.content = block_answer(*get, reply.algo);
        } else {
            return std::nullopt;
        }
        return pccrr::with_transport_header(pccrr::build(reply));
    }

    class connection;
    void accept();
    void release(const std::string &source) {
        --connections;
        if (--connections_by_source[source] == 0) connections_by_source.erase(source);
    }
};

class windows_peers::impl::connection : public std::enable_shared_from_this<connection> {
public:
    connection(impl &owner, tcp::socket s, std::string source) : owner_(owner), stream_(std::move(s)), source_(std::move(source)) {}
    ~connection() { owner_.release(source_); }

    void read() {
        parser_.emplace();
        parser_->header_limit(8192);
        parser_->body_limit(pccrr::max_message_bytes);
        stream_.expires_after(std::chrono::milliseconds(setting_uint(owner_.host, "pccrr_timeout_ms", 10000)));
        http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
            if (!ec) return self->respond();
            // Over a bound: said, then the connection ends (what is left unread is not read).
            if (ec == http::error::body_limit) self->refuse(http::status::payload_too_large);
            else if (ec == http::error::header_limit) self->refuse(http::status::request_header_fields_too_large);
        });
    }

private:
    void refuse(http::status status) {
        response_ = {};
        response_.result(status);
        response_.keep_alive(false);
        response_.prepare_payload();
        http::async_write(stream_, response_, [self = shared_from_this()](error_code, std::size_t) {
            error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        });
    }

    void respond() {
        auto &req = parser_->get();
        response_ = {};
        response_.version(req.version());
        response_.keep_alive(req.keep_alive());
        if (req.target() != pccrr::retrieval_path) {
            response_.result(http::status::not_found);
        } else if (req.method() != http::verb::post) {
            response_.result(http::status::method_not_allowed);
            response_.set(http::field::allow, "POST");
        } else if (auto body = owner_.answer(req.body())) {
            response_.result(http::status::ok);
            response_.set(http::field::content_type, "application/octet-stream");
            response_.body() = std::move(*body);
        } else {
            response_.result(http::status::bad_request);
            response_.keep_alive(false);
        }
        response_.prepare_payload();
        http::async_write(stream_, response_, [self = shared_from_this()](error_code ec, std::size_t) {
            if (!ec && self->response_.keep_alive()) self->read();
        });
    }

    impl &owner_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::vector_body<std::uint8_t>>> parser_;
    http::response<http::vector_body<std::uint8_t>> response_;
    std::string source_;
};

void windows_peers::impl::accept() {
    acceptor.async_accept([this](error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) return;
        if (!ec) {
            error_code ignored;
            auto source = s.remote_endpoint(ignored).address().to_string();
            // Bounded: a flood of connections from one address uses up its own share only.
            if (connections < setting_uint(host, "max_pccrr_connections", 64) &&
                connections_by_source[source] < setting_uint(host, "max_pccrr_connections_per_source", 8)) {
                ++connections;
                ++connections_by_source[source];
                std::make_shared<connection>(*this, std::move(s), source)->read();
            } else {
                if (connections_by_source[source] == 0) connections_by_source.erase(source);
                s.close(ignored);
            }
        }
        accept();
    });
}

windows_peers::windows_peers(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

windows_peers::~windows_peers() {
    impl_->io.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t windows_peers::pccrd_port() const {
    error_code ec;
    return impl_->probes.local_endpoint(ec).port();
}

std::uint16_t windows_peers::pccrr_port() const {
    error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

std::unique_ptr<windows_peers> windows_peers::start(const pd_host_api *host) {
    auto i = std::make_unique<impl>(host);
    if (!has_services(host)) {
        i->log(0, "the host lends no BranchCache services (older than 0.5): no BranchCache wire mode");
        return nullptr;
    }
    if (sodium_init() < 0) return nullptr;
    auto pccrd_port = static_cast<std::uint16_t>(setting_uint(host, "pccrd_port", pccrd::port));
    auto pccrr_port = static_cast<std::uint16_t>(setting_uint(host, "pccrr_port", 54321));
    error_code ec;
    // WS-Discovery's port is shared with other responders on the device (wsdd, WSDAPI).
    i->probes.open(udp::v4(), ec);
    if (!ec) i->probes.set_option(udp::socket::reuse_address(true), ec);
    if (!ec) i->probes.bind(udp::endpoint(asio::ip::address_v4::any(), pccrd_port), ec);
    if (ec) {
        i->log(0, "cannot listen for BranchCache Probes on UDP port " + std::to_string(pccrd_port) + ": " + ec.message());
        return nullptr;
    }
    i->probes.set_option(asio::ip::multicast::join_group(asio::ip::make_address_v4(pccrd::ipv4_group)), ec);
    if (ec) i->log(1, "multicast unavailable for BranchCache Probes (" + ec.message() + "): answering unicast ones only");
    tcp::endpoint at(asio::ip::address_v4::any(), pccrr_port);
    i->acceptor.open(at.protocol(), ec);
    if (!ec) i->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) i->acceptor.bind(at, ec);
    if (!ec) i->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        i->log(0, "cannot serve BranchCache retrieval on TCP port " + std::to_string(pccrr_port) + ": " + ec.message());
        return nullptr;
    }
    i->receive_probe();
    i->accept();
    auto *raw = i.get();
    i->thread = std::thread([raw] { raw->io.run(); });
    i->log(2, "answering Windows BranchCache peers: Probes on UDP " + std::to_string(i->probes.local_endpoint().port()) +
                  ", retrieval on TCP " + std::to_string(i->acceptor.local_endpoint().port()));
    return std::unique_ptr<windows_peers>(new windows_peers(std::move(i)));
}

}  // namespace pd_branchcache
