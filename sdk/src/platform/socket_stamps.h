// Kernel receive timestamps on a TCP socket: when the bytes a read returns reached this host,
// not when this process got round to reading them. The background class times the first
// bytes of each answer; a user-space clock there counts the reader's own scheduling delays
// (a busy or oversubscribed machine) as queueing on the path, and the transfer yields to its
// own CPU. Linux (SO_TIMESTAMPNS); elsewhere unsupported and the caller keeps its own clock.
#pragma once

#include "platform/socket.h"

#include <chrono>
#include <cstddef>
#include <optional>

namespace pd::platform {

// Asks the kernel to stamp received data on `socket` (a native handle). False where
// unsupported: then read_stamped must not be used.
bool enable_receive_timestamps(native_socket socket);

struct stamped_read {
    long count = 0;   // bytes read; 0 at end of stream; -1 on error (see `would_block`, `error`)
    bool would_block = false;
    int error = 0;    // errno
    // When the kernel received the last segment the read took bytes from, if it said.
    std::optional<std::chrono::system_clock::time_point> arrived;
};

// Reads up to `size` bytes without blocking from a socket stamped by enable_receive_timestamps.
stamped_read read_stamped(native_socket socket, void *buffer, std::size_t size);

}  // namespace pd::platform
