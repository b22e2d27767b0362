// The agent versions a coordinator supports (docs/coordinator.md "Health"): "MIN" or
// "MIN-MAX", each MAJOR.MINOR.PATCH; the health check lists agents by version and flags
// those outside. Versions are compared numerically, part by part.
#pragma once

#include "util/error.h"

#include <peerdist/common.h>

#include <array>
#include <optional>
#include <string>

namespace pd::coord {

class version_range {
public:
    using version = std::array<unsigned, 3>;

    // Released agents of this minor and the one before it (a rolling upgrade), up to this build.
    version_range()
        : min_{PD_VERSION_MAJOR, PD_VERSION_MINOR ? PD_VERSION_MINOR - 1u : 0u, 0},
          max_{PD_VERSION_MAJOR, PD_VERSION_MINOR, PD_VERSION_PATCH} {}

    // "MIN" (no upper bound) or "MIN-MAX"; throws PD_E_INVALID naming what is wrong.
    static version_range parse(const std::string &text) {
        version_range r;
        auto dash = text.find('-');
        auto min = parse_version(text.substr(0, dash));
        std::optional<version> max;
        if (dash != std::string::npos) max = parse_version(text.substr(dash + 1));
        if (!min || (dash != std::string::npos && !max))
            fail(PD_E_INVALID, PD_CATEGORY_API, "agent versions '" + text + "' must be MIN or MIN-MAX, each like 0.5.0");
        r.min_ = *min;
        r.max_ = max ? *max : version{~0u, ~0u, ~0u};
        if (r.max_ < r.min_) fail(PD_E_INVALID, PD_CATEGORY_API, "agent versions '" + text + "': MAX is below MIN");
        return r;
    }

    // False for a version outside the range, and for one that is not MAJOR.MINOR.PATCH.
    bool admits(const std::string &text) const {
        auto v = parse_version(text);
        return v && min_ <= *v && *v <= max_;
    }

    std::string text() const {
        auto s = str(min_);
        return max_[0] == ~0u ? s : s + "-" + str(max_);
    }

    // "1.2.3" (a suffix after the patch, "-rc1", is ignored); nullopt otherwise.
    static std::optional<version> parse_version(const std::string &text) {
        version v{};
        std::size_t at = 0;
        for (int i = 0; i < 3; ++i) {
            std::size_t digits = 0;
            unsigned n = 0;
            while (at < text.size() && text[at] >= '0' && text[at] <= '9' && digits < 6) n = n * 10 + unsigned(text[at++] - '0'), ++digits;
            if (!digits) return std::nullopt;
            v[i] = n;
            if (i < 2) {
                if (at >= text.size() || text[at] != '.') return std::nullopt;
                ++at;
            }
        }
        if (at < text.size() && text[at] != '-' && text[at] != '+') return std::nullopt;
        return v;
    }

private:
    static std::string str(const version &v) {
        return std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]);
    }
    version min_, max_;
};

}  // namespace pd::coord
