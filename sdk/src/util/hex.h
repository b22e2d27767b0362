// Bytes as text, for JSON messages: hex for keys and short records, base64 (RFC 4648, with
// padding) for bulky ones such as manifests.
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
std::string to_base64(const std::uint8_t *data, std::size_t len);
// Returns nullopt unless `text` is canonical padded base64 (no whitespace).
std::optional<std::vector<std::uint8_t>> from_base64(std::string_view text);

}  // namespace pd
