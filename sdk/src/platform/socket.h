// Blocking TCP for the blocking clients — the coordinator client in plugins and tools, the
// rogue peer and tests — behind one small interface: the only socket calls the core makes
// outside Asio. POSIX in socket_posix.cpp, Winsock in socket_win32.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pd::platform {

// A descriptor (POSIX) or a SOCKET (Windows, whose INVALID_SOCKET is also all ones).
using native_socket = std::intptr_t;
constexpr native_socket invalid_socket = -1;

// Connects to "host:port" (util/endpoint.h; a name is resolved, blocking) within
// `timeout_ms`; the socket then has send and receive timeouts of `timeout_ms` and
// TCP_NODELAY. Throws PD_E_INVALID (not host:port, or a name that does not resolve),
// PD_E_TIMEOUT, PD_E_IO. The caller owns the socket (close_socket).
native_socket connect_tcp(const std::string &address, int timeout_ms);

// Sends all `size` bytes. Throws PD_E_TIMEOUT when the socket's send timeout passes,
// PD_E_IO otherwise; `what` names the channel in the message.
void send_all(native_socket s, const void *data, std::size_t size, const char *what);

// Receives up to `size` bytes (at least one); returns 0 when the peer closed the connection.
// Throws PD_E_TIMEOUT when the socket's receive timeout passes, PD_E_IO otherwise.
std::size_t receive_some(native_socket s, void *buffer, std::size_t size, const char *what);

// Options for a listening socket, set before bind: on POSIX SO_REUSEADDR (a restarted
// agent binds while its old connections wait in TIME_WAIT); on Windows SO_EXCLUSIVEADDRUSE
// (SO_REUSEADDR there would let another process bind the same port and take connections).
void prepare_listener(native_socket s);
// Whether a bind failed with this system error code because another socket holds the
// address (Windows says "access denied" for a port held with SO_EXCLUSIVEADDRUSE).
bool address_taken(int system_error);

// Closes a socket; invalid_socket is ignored.
void close_socket(native_socket s);

}  // namespace pd::platform
