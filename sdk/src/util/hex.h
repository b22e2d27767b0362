#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pd {

std::string to_hex(const std::uint8_t *data, std::size_t len);
inline std::string to_hex(const std::vector<std::uint8_t> &v) { return to_hex(v.data(), v.size()); }
// Returns nullopt unless `text` is an even number of hex digits.
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text);

}  // namespace pd
