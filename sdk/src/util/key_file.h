// The fleet key as a file holds it — one rule for the agent, `pd`, `pd-coordinator` and the
// hierarchy plugin: 64 hexadecimal digits (as `pd-coordinator init --key-out` writes them),
// surrounding whitespace allowed, or exactly 32 raw bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace pd {

using fleet_key = std::array<std::uint8_t, 32>;

// nullopt when `text` is neither form.
std::optional<fleet_key> parse_fleet_key(const std::string &text);

// Reads and parses a key file. Throws pd::error: PD_E_NOT_FOUND / PD_E_IO when it cannot be
// read, PD_E_INVALID (naming the path and the rule) when it holds anything else.
fleet_key read_fleet_key(const std::string &path);

}  // namespace pd
