// platform/socket.h with Winsock: the same blocking client calls, SOCKET in native_socket,
// timeouts as DWORD milliseconds.
#include "platform/socket.h"

#include "platform/win32.h"
#include "util/endpoint.h"
#include "util/error.h"

#include <winsock2.h>
#include <ws2tcpip.h>

namespace pd::platform {

namespace {

SOCKET s_of(native_socket s) { return static_cast<SOCKET>(s); }

// Winsock is started once per process and stays up (Asio does the same).
void ensure_winsock() {
    static const int started = [] {
        WSADATA data;
        return ::WSAStartup(MAKEWORD(2, 2), &data);
    }();
    if (started != 0) fail(PD_E_IO, PD_CATEGORY_NET, "Winsock did not start: " + win32::message(static_cast<DWORD>(started)));
}

// One non-blocking connect bounded by `timeout_ms`; returns 0 or a WSA error.
int connect_one(SOCKET s, const addrinfo &ai, int timeout_ms) {
    u_long on = 1;
    ::ioctlsocket(s, FIONBIO, &on);
    if (::connect(s, ai.ai_addr, static_cast<int>(ai.ai_addrlen)) == 0) return 0;
    int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) return err;
    fd_set writable, failed;
    FD_ZERO(&writable);
    FD_ZERO(&failed);
    FD_SET(s, &writable);
    FD_SET(s, &failed);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (::select(0, nullptr, &writable, &failed, &tv) != 1) return WSAETIMEDOUT;
    int so_error = 0;
    int len = sizeof so_error;
    if (::getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char *>(&so_error), &len) != 0) return ::WSAGetLastError();
    return so_error;
}

[[noreturn]] void fail_transfer(int err, const char *what, const char *verb) {
    if (err == WSAETIMEDOUT || err == WSAEWOULDBLOCK)
        fail(PD_E_TIMEOUT, PD_CATEGORY_NET, std::string(what) + ": " + verb + " timed out");
    fail(PD_E_IO, PD_CATEGORY_NET, std::string(what) + ": " + verb + " failed: " + win32::message(static_cast<DWORD>(err)));
}

}  // namespace

native_socket connect_tcp(const std::string &address, int timeout_ms) {
    ensure_winsock();
    auto ep = require_endpoint(address, "address");
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (ep.is_name ? 0 : AI_NUMERICHOST);
    int gai = ::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
    if (gai != 0 || !res)
        fail(PD_E_INVALID, PD_CATEGORY_NET,
             "cannot resolve '" + ep.host + "' of address '" + address + "': " + win32::message(static_cast<DWORD>(gai)));
    // A name may resolve to several addresses: each in turn, the timeout bounding each.
    SOCKET s = INVALID_SOCKET;
    int err = 0;
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        s = ::WSASocketW(ai->ai_family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_NO_HANDLE_INHERIT);
        if (s == INVALID_SOCKET) {
            err = ::WSAGetLastError();
            continue;
        }
        err = connect_one(s, *ai, timeout_ms);
        if (err == 0) break;
        ::closesocket(s);
        s = INVALID_SOCKET;
    }
    ::freeaddrinfo(res);
    if (s == INVALID_SOCKET)
        fail(err == WSAETIMEDOUT ? PD_E_TIMEOUT : PD_E_IO, PD_CATEGORY_NET,
             "cannot connect to " + address + ": " + win32::message(static_cast<DWORD>(err)));
    u_long off = 0;
    ::ioctlsocket(s, FIONBIO, &off);
    DWORD ms = static_cast<DWORD>(timeout_ms);
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<const char *>(&ms), sizeof ms);
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, reinterpret_cast<const char *>(&ms), sizeof ms);
    BOOL one = TRUE;
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char *>(&one), sizeof one);
    return static_cast<native_socket>(s);
}

void send_all(native_socket s, const void *data, std::size_t size, const char *what) {
    auto p = static_cast<const char *>(data);
    while (size) {
        int k = ::send(s_of(s), p, static_cast<int>(std::min<std::size_t>(size, 1u << 30)), 0);
        if (k == SOCKET_ERROR) fail_transfer(::WSAGetLastError(), what, "send");
        p += k;
        size -= static_cast<std::size_t>(k);
    }
}

std::size_t receive_some(native_socket s, void *buffer, std::size_t size, const char *what) {
    int k = ::recv(s_of(s), static_cast<char *>(buffer), static_cast<int>(std::min<std::size_t>(size, 1u << 30)), 0);
    if (k == SOCKET_ERROR) fail_transfer(::WSAGetLastError(), what, "receive");
    return static_cast<std::size_t>(k);
}

void prepare_listener(native_socket s) {
    BOOL one = TRUE;
    ::setsockopt(s_of(s), SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char *>(&one), sizeof one);
}

bool address_taken(int system_error) { return system_error == WSAEADDRINUSE || system_error == WSAEACCES; }

void close_socket(native_socket s) {
    if (s != invalid_socket) ::closesocket(s_of(s));
}

}  // namespace pd::platform
