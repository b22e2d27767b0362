// Session settings: typed, validated, changeable at run time from any thread.
// Keys and ranges are documented in docs/settings.md.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace pd::core {

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
