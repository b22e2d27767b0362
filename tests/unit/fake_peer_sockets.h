// Raw TCP for the tests' fake peers and attackers — a loopback listener, accept with a
// deadline, receive timeouts and buffers — over POSIX sockets or Winsock, in the platform's socket type (the client side
// is the SDK's own: platform/socket.h).
#pragma once

#include "platform/socket.h"

#include <string>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#endif

namespace pdtest {

using pd::platform::native_socket;

#ifdef _WIN32
inline SOCKET raw(native_socket s) { return static_cast<SOCKET>(s); }
#else
inline int raw(native_socket s) { return static_cast<int>(s); }
#endif

// A listener on 127.0.0.1 with a free port; `addr` receives "127.0.0.1:PORT".
inline native_socket listen_on_loopback(std::string &addr) {
#ifdef _WIN32
    WSADATA data;
    ::WSAStartup(MAKEWORD(2, 2), &data);
#endif
    auto fd = static_cast<native_socket>(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(raw(fd), reinterpret_cast<sockaddr *>(&a), sizeof a);
    ::listen(raw(fd), 16);
    socklen_t len = sizeof a;
    ::getsockname(raw(fd), reinterpret_cast<sockaddr *>(&a), &len);
    addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    return fd;
}

// The next connection, or invalid_socket when none came within 100 ms (so a fake peer's
// thread can look at its stop flag).
inline native_socket accept_within(native_socket listener) {
    fd_set ready;
    FD_ZERO(&ready);
    FD_SET(raw(listener), &ready);
    timeval tv{0, 100000};
    if (::select(static_cast<int>(raw(listener)) + 1, &ready, nullptr, nullptr, &tv) != 1) return pd::platform::invalid_socket;
    auto fd = ::accept(raw(listener), nullptr, nullptr);
#ifdef _WIN32
    return fd == INVALID_SOCKET ? pd::platform::invalid_socket : static_cast<native_socket>(fd);
#else
    return fd < 0 ? pd::platform::invalid_socket : static_cast<native_socket>(fd);
#endif
}

// Reads on `s` give up after `ms` (the blocking channel then throws PD_E_TIMEOUT).
inline void set_receive_timeout(native_socket s, int ms) {
#ifdef _WIN32
    DWORD t = static_cast<DWORD>(ms);
    ::setsockopt(raw(s), SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<const char *>(&t), sizeof t);
#else
    timeval t{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(raw(s), SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
#endif
}

// A small receive window: a client that never reads fills it at once.
inline void set_receive_buffer(native_socket s, int bytes) {
#ifdef _WIN32
    ::setsockopt(raw(s), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char *>(&bytes), sizeof bytes);
#else
    ::setsockopt(raw(s), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
#endif
}

}  // namespace pdtest
