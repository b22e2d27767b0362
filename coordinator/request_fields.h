// Reading a request's fields: each typed and bounded, a wrong one a pd::error that names it
// (the server answers it; the connection goes on). Shared by the server's parts.
#pragma once

#include "coordinator_client/protocol.h"
#include "util/error.h"

#include <string>
#include <vector>

namespace pd::coord::fields {

// Identifiers, names and addresses; a topology CSV or a list is not read through here.
inline constexpr std::size_t max_text = 1024;

inline std::string text(const json &j, const char *key, const std::string &fallback = {}, std::size_t limit = max_text) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_string()) fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' must be a string");
    if (it->get_ref<const std::string &>().size() > limit)
        fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' is longer than " + std::to_string(limit) + " bytes");
    return it->get<std::string>();
}

inline std::string required(const json &j, const char *key) {
    auto v = text(j, key);
    if (v.empty()) fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' is required");
    return v;
}

inline std::uint64_t number(const json &j, const char *key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return 0;
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
        fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' must be a non-negative integer");
    return it->get<std::uint64_t>();
}

inline std::string content_id(const json &j) {
    auto id = required(j, "content");
    if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos)
        fail(PD_E_INVALID, PD_CATEGORY_API, "'content' must be 64 lowercase hex digits");
    return id;
}

inline std::vector<std::string> strings(const json &j, const char *key) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end()) return out;
    if (!it->is_array()) fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' must be an array of strings");
    for (auto &v : *it) {
        if (!v.is_string()) fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + key + "' must be an array of strings");
        out.push_back(v.get<std::string>());
    }
    return out;
}

}  // namespace pd::coord::fields
