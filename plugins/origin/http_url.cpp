#include "http_url.h"

#include <limits>

namespace pd_origin {

namespace {

bool starts_with(const std::string &s, const char *prefix) { return s.rfind(prefix, 0) == 0; }

// Printable ASCII without space: what a request line and a Host header can carry.
bool request_safe(const std::string &s) {
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

bool all_digits(const std::string &s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

// Decimal digits to a value, refusing overflow; `pos` moves past the digits.
std::optional<std::uint64_t> read_number(const std::string &s, std::size_t &pos) {
    std::size_t start = pos;
    std::uint64_t v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        auto digit = static_cast<std::uint64_t>(s[pos] - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
        ++pos;
    }
    if (pos == start) return std::nullopt;
    return v;
}

}  // namespace

std::string url::origin() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return (tls ? "https://" : "http://") + h + ":" + port;
}

std::string url::text() const { return origin() + target; }

std::optional<url> parse_url(const std::string &text) {
    if (!request_safe(text)) return std::nullopt;
    url u;
    std::string rest;
    if (starts_with(text, "http://")) rest = text.substr(7);
    else if (starts_with(text, "https://")) u.tls = true, rest = text.substr(8);
    else return std::nullopt;
    auto path = rest.find_first_of("/?#");
    std::string authority = rest.substr(0, path);
    u.target = path == std::string::npos ? "/" : rest.substr(path);
    u.target = u.target.substr(0, u.target.find('#'));  // a fragment never goes on the wire
    if (u.target.empty() || u.target[0] != '/') u.target = "/" + u.target;
    if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
    if (authority[0] == '[') {  // [v6]:port
        auto close = authority.find(']');
        if (close == std::string::npos) return std::nullopt;
        u.host = authority.substr(1, close - 1);
        std::string after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return std::nullopt;
            u.port = after.substr(1);
        }
        if (u.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) return std::nullopt;
    } else {
        auto colon = authority.find(':');
        u.host = authority.substr(0, colon);
        if (colon != std::string::npos) u.port = authority.substr(colon + 1);
        if (u.host.find_first_of("[]") != std::string::npos) return std::nullopt;
    }
    if (u.host.empty()) return std::nullopt;
    if (u.port.empty()) u.port = u.tls ? "443" : "80";
    if (!all_digits(u.port) || u.port.size() > 5) return std::nullopt;
    auto port = std::stoul(u.port);  // at most 5 digits: cannot throw
    if (port == 0 || port > 65535) return std::nullopt;
    return u;
}

std::optional<url> resolve(const url &base, const std::string &location) {
    if (starts_with(location, "http://") || starts_with(location, "https://")) return parse_url(location);
    if (starts_with(location, "//")) return parse_url((base.tls ? "https:" : "http:") + location);
    if (location.empty() || !request_safe(location) || location.find("://") != std::string::npos) return std::nullopt;
    url u = base;
    if (location[0] == '/') u.target = location;
    else u.target = base.target.substr(0, base.target.rfind('/') + 1) + location;
    u.target = u.target.substr(0, u.target.find('#'));
    if (u.target.empty()) return std::nullopt;
    return u;
}

std::optional<content_range> parse_content_range(const std::string &header) {
    if (!starts_with(header, "bytes ")) return std::nullopt;
    std::size_t pos = 6;
    content_range r;
    auto first = read_number(header, pos);
    if (!first || pos >= header.size() || header[pos++] != '-') return std::nullopt;
    auto last = read_number(header, pos);
    if (!last || pos >= header.size() || header[pos++] != '/') return std::nullopt;
    auto size = read_number(header, pos);
    if (!size || pos != header.size() || *first > *last || *last >= *size) return std::nullopt;
    r.first = *first, r.last = *last, r.size = *size;
    return r;
}

}  // namespace pd_origin
