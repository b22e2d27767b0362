#include "util/key_file.h"

#include "platform/file.h"
#include "util/error.h"
#include "util/hex.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>

namespace pd {

std::optional<fleet_key> parse_fleet_key(const std::string &text) {
    fleet_key key{};
    auto first = text.find_first_not_of(" \t\r\n"), last = text.find_last_not_of(" \t\r\n");
    if (first == std::string::npos) return std::nullopt;
    auto raw = from_hex(text.substr(first, last - first + 1));
    if (!raw || raw->size() != key.size()) return std::nullopt;
    std::copy(raw->begin(), raw->end(), key.begin());
    std::set<std::uint8_t> distinct(key.begin(), key.end());
    if (distinct.size() < 16) return std::nullopt;
    return key;
}

fleet_key read_fleet_key(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_errno(errno, "reading the fleet key file '" + path + "'");
    platform::require_private_file(path, "fleet key file");
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > 4096) fail(PD_E_INVALID, PD_CATEGORY_API, "fleet key file '" + path + "' is too large to be a key");
    auto key = parse_fleet_key(text.str());
    if (!key)
        fail(PD_E_INVALID, PD_CATEGORY_API,
             "fleet key file '" + path + "' must hold a random key as 64 hex digits (pd-coordinator init writes one)");
    return *key;
}

}  // namespace pd
