#include "util/endpoint.h"

#include "util/error.h"

#include <boost/asio/ip/address.hpp>

#include <charconv>

namespace pd {

namespace {

bool is_dns_name(const std::string &host) {
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-') return false;
    std::size_t label = 0;
    for (char c : host) {
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (alnum || c == '-') {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<endpoint> parse_endpoint(const std::string &text, port_rule rule) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    std::string host = text.substr(0, colon);
    bool bracketed = host.front() == '[';
    if (bracketed) {
        if (host.size() < 3 || host.back() != ']') return std::nullopt;
        host = host.substr(1, host.size() - 2);
    }
    unsigned port = 0;
    const char *first = text.data() + colon + 1, *last = text.data() + text.size();
    auto res = std::from_chars(first, last, port);
    if (first == last || res.ec != std::errc() || res.ptr != last || port > 65535) return std::nullopt;
    if (port == 0 && rule == port_rule::connect) return std::nullopt;
    boost::system::error_code ec;
    auto ip = boost::asio::ip::make_address(host, ec);
    endpoint out{host, static_cast<std::uint16_t>(port), false};
    if (!ec) {
        // An IPv6 literal needs its brackets (else "::1:80" is ambiguous); IPv4 must not have them.
        if (ip.is_v6() != bracketed) return std::nullopt;
        return out;
    }
    if (bracketed || !is_dns_name(host)) return std::nullopt;
    out.is_name = true;
    return out;
}

endpoint require_endpoint(const std::string &text, const std::string &what, port_rule rule) {
    auto e = parse_endpoint(text, rule);
    if (!e)
        fail(PD_E_INVALID, PD_CATEGORY_NET,
             what + " '" + text + "' is not host:port (an IPv4 address, [IPv6] or a DNS name; port " +
                 (rule == port_rule::listen ? "0-65535, 0: any free port)" : "1-65535)"));
    return *e;
}

}  // namespace pd
