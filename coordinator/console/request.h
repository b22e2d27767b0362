// The parts of an HTTP request the console reads itself (Beast parses the rest): a cookie, a
// query string, an API path. Untrusted input: each returns nothing rather than guess, and
// tests/fuzz/fuzz_parsers.cpp feeds them arbitrary bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace pd::coord::console {

// The value of cookie `name` in a Cookie header, "" when absent.
std::string cookie_value(const std::string &header, const std::string &name);

// A query string's parameters ("a=1&b=x%20y"), percent-decoded, as a JSON object of strings;
// nullopt for a malformed escape, an empty name, or a parameter named "op" (the path names
// the operation).
std::optional<nlohmann::json> query_fields(const std::string &query);

// The admin operation an API path names: "/api/v1/topology/import" is
// "admin.topology.import". Segments of a-z and _ only (no "..", no empty ones), at most 64
// characters; nullopt for anything else.
std::optional<std::string> operation_of(const std::string &path);

}  // namespace pd::coord::console
