#include "util/key_file.h"

#include "platform/file.h"
#include "util/error.h"
#include "util/hex.h"

#include <algorithm>
#include <cerrno>
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

fleet_key read_fleet_key(const std::string &path) { return read_secret_key(path, "fleet key file"); }

fleet_key read_secret_key(const std::string &path, const std::string &what) {
    auto text = platform::read_private_file(path, 4096, what);
    auto key = parse_fleet_key(text);
    if (!key) fail(PD_E_INVALID, PD_CATEGORY_API, what + " '" + path + "' must hold a random key as 64 hex digits");
    return *key;
}

admin_credential parse_admin_credential(const std::string &text) {
    admin_credential c;
    bool have_admin = false, have_coordinator = false;
    std::istringstream in(text);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        auto where = "line " + std::to_string(number) + ": ";
        auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos || line[first] == '#') continue;
        auto eq = line.find('=');
        if (eq == std::string::npos) fail(PD_E_INVALID, PD_CATEGORY_API, where + "expected NAME = VALUE");
        auto trim = [](std::string s) {
            auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
            return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
        };
        auto name = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
        if (name == "admin_key") {
            if (have_admin) fail(PD_E_INVALID, PD_CATEGORY_API, where + "admin_key is given twice");
            auto seed = parse_fleet_key(value);  // the same rule: 64 hex digits of a random key
            if (!seed) fail(PD_E_INVALID, PD_CATEGORY_API, where + "admin_key must be 64 hex digits of a random key");
            c.admin_seed = *seed;
            have_admin = true;
        } else if (name == "coordinator_key") {
            if (have_coordinator) fail(PD_E_INVALID, PD_CATEGORY_API, where + "coordinator_key is given twice");
            auto key = from_hex(value);
            if (!key || key->size() != 32) fail(PD_E_INVALID, PD_CATEGORY_API, where + "coordinator_key must be 64 hex digits");
            std::copy(key->begin(), key->end(), c.coordinator_key.begin());
            have_coordinator = true;
        } else {
            fail(PD_E_INVALID, PD_CATEGORY_API, where + "unknown name '" + name.substr(0, 64) + "' (admin_key, coordinator_key)");
        }
    }
    if (!have_admin || !have_coordinator)
        fail(PD_E_INVALID, PD_CATEGORY_API, std::string("a credential needs ") + (have_admin ? "coordinator_key" : "admin_key"));
    return c;
}

std::string format_admin_credential(const admin_credential &c, const std::string &comment) {
    return "# " + comment + "\nadmin_key = " + to_hex(c.admin_seed.data(), 32) +
           "\ncoordinator_key = " + to_hex(c.coordinator_key.data(), 32) + "\n";
}

admin_credential read_admin_credential(const std::string &path) {
    auto text = platform::read_private_file(path, 4096, "administrator credential");
    try {
        return parse_admin_credential(text);
    } catch (const error &e) {
        fail(e.code(), e.category(), "administrator credential '" + path + "', " + e.what());
    }
}

}  // namespace pd
