// Kernel receive timestamps on a TCP socket: when the bytes a read returns reached this host,
// not when this process got round to reading them. The background class times the first
// bytes of each answer; a user-space clock there counts the reader's own scheduling delays
// (a busy or oversubscribed machine) as queueing on the path, and the transfer yields to its
// own CPU. Linux (SO_TIMESTAMPNS); elsewhere unsupported and the caller keeps its own clock.
// And the matching send side, limit_unsent_bytes.
#pragma once

#include "platform/socket.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// The send side: keeps at most about `bytes` written and not yet sent by TCP in `socket`'s
// buffer — the socket reports writable, and takes more, only below it — so a record stamped
// as it is written leaves within `bytes` of the stamp instead of waiting behind a send buffer
// of megabytes for the connection's congestion window. Linux (TCP_NOTSENT_LOWAT); false
// where unsupported.
bool limit_unsent_bytes(native_socket socket, std::size_t bytes);

// Packets that arrived out of order on a connected TCP socket so far: a packet the sender
// lost makes the ones after it arrive first, so a rise is the receiver's sign of a loss on
// the path (or, rarely, of reordering). Linux 5.4 and later (TCP_INFO's tcpi_rcv_ooopack);
// nullopt where unsupported.
std::optional<std::uint64_t> out_of_order_arrivals(native_socket socket);

}  // namespace pd::platform
