// `pd serve`: pd_serve.h. A thread per connection with socket timeouts: an origin for a
// branch's worth of clients and for the tests, kept small enough to read top to bottom.
#include "pd_serve.h"

#include "cli.h"

#include <peerdist.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#ifndef _WIN32
#  include <sys/socket.h>
#  include <sys/time.h>
#endif

namespace pd_tool {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

using request = http::request<http::empty_body>;

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

std::string lower(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

// "a=b, c=d" as {a: b, c: d}, names lowercased.
std::map<std::string, std::string> parameters(std::string_view text) {
    std::map<std::string, std::string> out;
    while (!text.empty()) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        auto eq = item.find('=');
        if (eq != std::string_view::npos) out[lower(trim(item.substr(0, eq)))] = trim(item.substr(eq + 1));
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    }
    return out;
}

// "1.0" as 10, "2.0" as 20; 0 for anything else.
int version_number(const std::string &v) {
    if (v.size() != 3 || !std::isdigit(static_cast<unsigned char>(v[0])) || v[1] != '.' ||
        !std::isdigit(static_cast<unsigned char>(v[2])))
        return 0;
    return (v[0] - '0') * 10 + (v[2] - '0');
}

// What a request asks of PeerDist ([MS-PCCRTP] 3.2.5.1): the Content Information version to
// send (1 or 2) and the encoding version to name in the response; {0, 0} for the identity
// encoding.
struct peerdist_choice {
    unsigned info_version = 0;
    std::string encoding_version;
};

peerdist_choice choose_peerdist(const request &req) {
    bool accepted = false;  // "peerdist" among the accepted encodings, with no q=0
    std::string_view encodings = sv(req[http::field::accept_encoding]);
    while (!encodings.empty()) {
        auto comma = encodings.find(',');
        auto item = encodings.substr(0, comma);
        auto semi = item.find(';');
        if (lower(trim(item.substr(0, semi))) == "peerdist") {
            std::string q = semi == std::string_view::npos ? "" : parameters(item.substr(semi + 1))["q"];
            accepted = q.empty() || std::strtod(q.c_str(), nullptr) > 0;
        }
        encodings = comma == std::string_view::npos ? std::string_view() : encodings.substr(comma + 1);
    }
    auto p = parameters(sv(req["X-P2P-PeerDist"]));
    int version = version_number(p["version"]);
    if (!accepted || (version != 10 && version != 11)) return {};
    if (version == 10) return {1, "1.0"};  // 1.0 knows Content Information 1.0 only
    auto ex = parameters(sv(req["X-P2P-PeerDistEx"]));
    if (ex.empty()) return {1, "1.1"};
    int lo = version_number(ex["mincontentinformation"]), hi = version_number(ex["maxcontentinformation"]);
    if (lo && hi && lo <= 20 && 20 <= hi) return {2, "1.1"};
    if (lo && hi && lo <= 10 && 10 <= hi) return {1, "1.1"};
    return {};  // no version both speak: the identity encoding
}

// The request target as a path under `root`, or nothing (404) for anything that could leave it.
std::optional<fs::path> resolve(const fs::path &root, std::string_view target) {
    target = target.substr(0, target.find('?'));
    if (target.empty() || target.front() != '/') return std::nullopt;
    std::string decoded;
    for (std::size_t i = 0; i < target.size(); ++i) {
        if (target[i] != '%') {
            decoded += target[i];
            continue;
        }
        if (i + 2 >= target.size() || !std::isxdigit(static_cast<unsigned char>(target[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(target[i + 2])))
            return std::nullopt;
        decoded += static_cast<char>(std::stoi(std::string(target.substr(i + 1, 2)), nullptr, 16));
        i += 2;
    }
    fs::path rel;
    std::string_view rest = decoded;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        auto part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (part.empty()) continue;
        if (part == "." || part == ".." || part.find_first_of(std::string_view("\\:\0", 3)) != std::string_view::npos) return std::nullopt;
        rel /= fs::u8path(std::string(part));
    }
    if (rel.empty()) return std::nullopt;
    std::error_code ec;
    auto full = fs::weakly_canonical(root / rel, ec);
    if (ec) return std::nullopt;
    // A symbolic link may not lead out of the directory either.
    auto r = root.native(), f = full.native();
    if (f.size() <= r.size() || f.compare(0, r.size(), r) != 0 || (f[r.size()] != '/' && f[r.size()] != '\\')) return std::nullopt;
    if (!fs::is_regular_file(full, ec)) return std::nullopt;
    return full;
}

// A single "bytes=" range of a file of `size` bytes as [first, last]; nothing for no (or an
// ignored multi-) range; first > last for an unsatisfiable one (416).
std::optional<std::pair<std::uint64_t, std::uint64_t>> byte_range(std::string_view header, std::uint64_t size) {
    if (header.substr(0, 6) != "bytes=" || header.find(',') != std::string_view::npos) return std::nullopt;
    auto spec = header.substr(6);
    auto dash = spec.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto number = [](std::string_view s) -> std::optional<std::uint64_t> {
        if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::nullopt;
        return std::stoull(std::string(s));
    };
    auto a = number(spec.substr(0, dash)), b = number(spec.substr(dash + 1));
    if (!a && !b) return std::nullopt;
    if (!a) {  // the last *b bytes
        if (*b == 0) return std::make_pair(std::uint64_t{1}, std::uint64_t{0});
        return std::make_pair(size - std::min(size, *b), size - 1);
    }
    if (*a >= size) return std::make_pair(std::uint64_t{1}, std::uint64_t{0});
    if (spec.size() == dash + 1) return std::make_pair(*a, size - 1);
    if (!b || *b < *a) return std::nullopt;
    return std::make_pair(*a, std::min(*b, size - 1));
}

void set_timeouts(tcp::socket &s, unsigned ms) {
#ifdef _WIN32
    DWORD t = ms;
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<const char *>(&t), sizeof t);
    setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, reinterpret_cast<const char *>(&t), sizeof t);
#else
    timeval t{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
    setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
#endif
}

class server {
public:
    explicit server(const serve_options &o) : o_(o) {}

    fs::path root;

    // Serves one connection's requests, keep-alive, until it ends or breaks a bound.
    void connection(tcp::socket s) {
        set_timeouts(s, o_.timeout_ms);
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::empty_body> parser;
            parser.header_limit(8192);
            parser.body_limit(0);  // GET and HEAD carry no body
            error_code ec;
            http::read(s, buffer, parser, ec);
            if (ec == http::error::header_limit) return refuse(s, http::status::request_header_fields_too_large);
            if (ec == http::error::body_limit) return refuse(s, http::status::payload_too_large);
            if (ec) return;
            if (!respond(s, parser.get()) || !parser.get().keep_alive()) return;
        }
    }

private:
    void refuse(tcp::socket &s, http::status status) {
        http::response<http::empty_body> res{status, 11};
        res.keep_alive(false);
        res.prepare_payload();
        error_code ignored;
        http::write(s, res, ignored);
    }

    // The file's Content Information of `version`, generated once per file state.
    std::shared_ptr<const std::vector<std::uint8_t>> content_info(const fs::path &file, std::uint64_t size,
                                                                  fs::file_time_type mtime, unsigned version) {
        auto key = file.u8string() + "|" + std::to_string(size) + "|" + std::to_string(mtime.time_since_epoch().count()) +
                   "|" + std::to_string(version);
        {
            std::lock_guard lk(mu_);
            if (auto it = infos_.find(key); it != infos_.end()) return it->second;
        }
        pd_buf out = PD_BUF_INIT;
        if (pd_content_info_generate(&out, file.u8string().c_str(), version, o_.passphrase.data(), o_.passphrase.size()) != PD_OK)
            return nullptr;
        auto info = std::make_shared<const std::vector<std::uint8_t>>(out.ptr, out.ptr + out.size);
        pd_buf_dispose(&out);
        std::lock_guard lk(mu_);
        if (infos_.size() >= 32) infos_.erase(infos_.begin());  // bounded; regenerated when asked again
        infos_[key] = info;
        return info;
    }

    bool respond(tcp::socket &s, const request &req) {
        error_code ec;
        auto simple = [&](http::status status) {
            http::response<http::empty_body> res{status, req.version()};
            res.keep_alive(req.keep_alive());
            if (status == http::status::method_not_allowed) res.set(http::field::allow, "GET, HEAD");
            res.prepare_payload();
            http::write(s, res, ec);
            return !ec;
        };
        if (req.method() != http::verb::get && req.method() != http::verb::head) return simple(http::status::method_not_allowed);
        auto file = resolve(root, sv(req.target()));
        if (!file) return simple(http::status::not_found);
        std::error_code fec;
        std::uint64_t size = fs::file_size(*file, fec);
        auto mtime = fs::last_write_time(*file, fec);
        if (fec) return simple(http::status::not_found);
        std::string etag = "\"" + std::to_string(size) + "-" + std::to_string(mtime.time_since_epoch().count()) + "\"";
        bool head = req.method() == http::verb::head;

        // PeerDist: the Content Information instead of the bytes, for a whole-file GET.
        auto choice = choose_peerdist(req);
        if (choice.info_version && req[http::field::range].empty() && size >= o_.peerdist_min_size) {
            if (auto info = content_info(*file, size, mtime, choice.info_version)) {
                http::response<http::vector_body<std::uint8_t>> res{http::status::ok, req.version()};
                res.set(http::field::content_encoding, "peerdist");
                res.set("X-P2P-PeerDist", "Version=" + choice.encoding_version + ", ContentLength=" + std::to_string(size));
                res.set(http::field::content_type, "application/octet-stream");
                res.set(http::field::vary, "Accept-Encoding");
                res.set(http::field::etag, etag);
                res.keep_alive(req.keep_alive());
                if (!head) res.body() = *info;
                res.prepare_payload();
                if (head) res.content_length(info->size());
                http::response_serializer<http::vector_body<std::uint8_t>> sr{res};
                if (head) http::write_header(s, sr, ec);
                else http::write(s, sr, ec);
                return !ec;
            }
        }

        std::uint64_t first = 0, last = size ? size - 1 : 0;
        http::status status = http::status::ok;
        if (auto r = byte_range(sv(req[http::field::range]), size)) {
            if (r->first > r->second) {
                http::response<http::empty_body> res{http::status::range_not_satisfiable, req.version()};
                res.set(http::field::content_range, "bytes */" + std::to_string(size));
                res.keep_alive(req.keep_alive());
                res.prepare_payload();
                http::write(s, res, ec);
                return !ec;
            }
            first = r->first, last = r->second, status = http::status::partial_content;
        }
        std::uint64_t length = size ? last - first + 1 : 0;
        std::ifstream in(*file, std::ios::binary);
        if (!in || !in.seekg(static_cast<std::streamoff>(first))) return simple(http::status::not_found);
        http::response<http::buffer_body> res{status, req.version()};
        res.set(http::field::content_type, "application/octet-stream");
        res.set(http::field::accept_ranges, "bytes");
        res.set(http::field::vary, "Accept-Encoding");
        res.set(http::field::etag, etag);
        if (status == http::status::partial_content)
            res.set(http::field::content_range, "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
        res.keep_alive(req.keep_alive());
        res.content_length(length);
        res.body().data = nullptr;
        res.body().more = !head && length > 0;
        http::response_serializer<http::buffer_body> sr{res};
        http::write_header(s, sr, ec);
        if (ec || head) return !ec;
        std::vector<char> chunk(256 * 1024);
        for (std::uint64_t left = length; left;) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
            if (!in.read(chunk.data(), static_cast<std::streamsize>(n))) return false;  // the file shrank: end the connection
            left -= n;
            res.body().data = chunk.data();
            res.body().size = n;
            res.body().more = left > 0;
            http::write(s, sr, ec);
            if (ec == http::error::need_buffer) ec = {};
            if (ec) return false;
        }
        return true;
    }

    const serve_options &o_;
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<const std::vector<std::uint8_t>>> infos_;
};

}  // namespace

int serve(const serve_options &o) {
    std::error_code fec;
    server srv(o);
    srv.root = fs::canonical(fs::u8path(o.root), fec);
    if (fec || !fs::is_directory(srv.root)) throw pd_cli::failure(pd_cli::exit_not_found, "cannot serve '" + o.root + "': not a directory");
    auto colon = o.listen.rfind(':');
    error_code ec;
    auto address = asio::ip::make_address(colon == std::string::npos ? "" : o.listen.substr(0, colon), ec);
    if (ec || colon + 1 >= o.listen.size()) throw pd_cli::usage_error("--listen takes ip:port, not '" + o.listen + "'");
    tcp::endpoint at(address, static_cast<std::uint16_t>(std::stoul(o.listen.substr(colon + 1))));
    asio::io_context io;
    tcp::acceptor acceptor(io);
    acceptor.open(at.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(at, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw pd_cli::failure(pd_cli::exit_unreachable, "cannot listen on " + o.listen + ": " + ec.message());
    auto bound = acceptor.local_endpoint();
    std::printf("listening on %s:%u\n", bound.address().to_string().c_str(), bound.port());
    std::fflush(stdout);

    auto active = std::make_shared<std::atomic<unsigned>>(0);
    std::function<void()> accept = [&] {
        acceptor.async_accept([&](error_code e, tcp::socket s) {
            if (e == asio::error::operation_aborted) return;
            if (!e) {
                if (active->load() >= o.max_connections) {
                    error_code ignored;
                    s.close(ignored);  // over the bound: the client tries again later
                } else {
                    ++*active;
                    std::thread([&srv, active, s = std::move(s)]() mutable {
                        srv.connection(std::move(s));
                        --*active;
                    }).detach();
                }
            }
            accept();
        });
    };
    accept();
    asio::signal_set stop(io, SIGINT, SIGTERM);
    stop.async_wait([&](error_code, int) { io.stop(); });
    io.run();
    // Connections in flight end with the process (their threads are detached).
    std::fflush(stdout);
    std::_Exit(pd_cli::exit_ok);
}

}  // namespace pd_tool
