// The monotonic clock in µs that the peer wire's timestamps (PING, TIMED_DATA) and the
// background class's samples share: a serving peer stamps with it, a pulling peer subtracts.
#pragma once

#include <chrono>
#include <cstdint>

namespace pd {

inline std::int64_t steady_now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace pd
