// The origin plugin's parsers for what a server or a manifest controls: absolute http(s)
// URLs, Location headers resolved against the request's URL, and Content-Range headers.
// Pure functions without I/O, so the fuzz target (tests/fuzz) can reach them; every
// rejection is an empty optional, never an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pd_origin {

// An absolute http:// or https:// URL split for a request. `target` is the origin-form
// request target ("/path?query", never empty).
struct url {
    bool tls = false;
    std::string host, port, target;
    // "scheme://host:port", IPv6 hosts in brackets.
    std::string origin() const;
    // origin() + target: the URL as logged and as sent to a proxy.
    std::string text() const;
};

// Parses an absolute URL. Refused: other schemes, user information ("user@host"), an empty
// host, a port that is not 1-65535, and any byte a request line cannot carry (controls,
// spaces, non-ASCII) — a Location header must never inject a header line.
std::optional<url> parse_url(const std::string &text);

// Resolves a Location header against the URL it answered: absolute, scheme-relative
// ("//host/x"), absolute-path ("/x") and relative ("x", against the base's directory).
std::optional<url> resolve(const url &base, const std::string &location);

// A "bytes FIRST-LAST/SIZE" Content-Range (RFC 9110 §14.4) with a known complete length:
// decimal digits only, FIRST <= LAST < SIZE. "*" lengths and every other form are refused.
struct content_range {
    std::uint64_t first = 0, last = 0, size = 0;
};
std::optional<content_range> parse_content_range(const std::string &header);

}  // namespace pd_origin
