#include "util/key_file.h"

#include "util/error.h"
#include "util/hex.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace pd {

std::optional<fleet_key> parse_fleet_key(const std::string &text) {
    fleet_key key{};
    if (text.size() == key.size()) {  // raw (64 hex digits never fit in 32 bytes)
        std::copy(text.begin(), text.end(), key.begin());
        return key;
    }
    auto first = text.find_first_not_of(" \t\r\n"), last = text.find_last_not_of(" \t\r\n");
    if (first == std::string::npos) return std::nullopt;
    auto raw = from_hex(text.substr(first, last - first + 1));
    if (!raw || raw->size() != key.size()) return std::nullopt;
    std::copy(raw->begin(), raw->end(), key.begin());
    return key;
}

fleet_key read_fleet_key(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_errno(errno, "reading the fleet key file '" + path + "'");
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > 4096) fail(PD_E_INVALID, PD_CATEGORY_API, "fleet key file '" + path + "' is too large to be a key");
    auto key = parse_fleet_key(text.str());
    if (!key)
        fail(PD_E_INVALID, PD_CATEGORY_API,
             "fleet key file '" + path + "' must hold the key as 64 hex digits (or exactly 32 raw bytes)");
    return *key;
}

}  // namespace pd
