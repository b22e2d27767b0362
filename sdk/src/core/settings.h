// Session settings: typed, validated, changeable at run time from any thread.
// Keys and ranges are documented in docs/settings.md.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace pd::core {

constexpr std::size_t max_publisher_keys = 16;
// The trusted publisher keys a `trust.publisher_keys` value lists (hex, comma-separated; ""
// lists none). Throws PD_E_INVALID naming the entry that is not 64 hex digits.
std::vector<std::array<std::uint8_t, 32>> parse_publisher_keys(const std::string &list);

class settings {
public:
    settings();
    // Throws PD_E_NOT_FOUND for unknown keys, PD_E_INVALID for bad values.
    void set(const std::string &key, const std::string &value);
    std::optional<std::string> get(const std::string &key) const;
    std::int64_t get_int(const std::string &key) const;

private:
    struct spec {
        std::int64_t def, min, max;
    };
    std::map<std::string, spec> specs_;
    std::map<std::string, std::string> string_defaults_;  // free-text settings
    mutable std::mutex mu_;
    std::map<std::string, std::string> values_;
};

}  // namespace pd::core
