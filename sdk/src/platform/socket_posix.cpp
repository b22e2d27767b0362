#include "platform/socket.h"

#include "util/endpoint.h"
#include "util/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pd::platform {

namespace {

// One non-blocking connect bounded by `timeout_ms`; returns 0 or an errno value.
int connect_one(int fd, const addrinfo &ai, int timeout_ms) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (::connect(fd, ai.ai_addr, ai.ai_addrlen) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

}  // namespace

native_socket connect_tcp(const std::string &address, int timeout_ms) {
    auto ep = require_endpoint(address, "address");
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (ep.is_name ? 0 : AI_NUMERICHOST);
    int gai = ::getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
    if (gai != 0 || !res)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "cannot resolve '" + ep.host + "' of address '" + address + "': " + ::gai_strerror(gai));
    // A name may resolve to several addresses (localhost: ::1 and 127.0.0.1): each in turn,
    // the timeout bounding each.
    int fd = -1, err = 0;
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_one(fd, *ai, timeout_ms);
        if (err == 0) break;
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0)
        fail(err == ETIMEDOUT ? PD_E_TIMEOUT : PD_E_IO, PD_CATEGORY_NET, "cannot connect to " + address + ": " + std::strerror(err));
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

// SO_RCVTIMEO/SO_SNDTIMEO expiring reads as EAGAIN on a blocking socket.
[[noreturn]] static void fail_transfer(int err, const char *what, const char *verb) {
    if (err == EAGAIN || err == EWOULDBLOCK)
        fail(PD_E_TIMEOUT, PD_CATEGORY_NET, std::string(what) + ": " + verb + " timed out");
    fail(PD_E_IO, PD_CATEGORY_NET, std::string(what) + ": " + verb + " failed: " + std::strerror(err));
}

void send_all(native_socket s, const void *data, std::size_t size, const char *what) {
    auto p = static_cast<const char *>(data);
    while (size) {
        ssize_t k = ::send(static_cast<int>(s), p, size, MSG_NOSIGNAL);  // a closed peer is an error, not SIGPIPE
        if (k < 0) {
            if (errno == EINTR) continue;
            fail_transfer(errno, what, "send");
        }
        p += k;
        size -= static_cast<std::size_t>(k);
    }
}

std::size_t receive_some(native_socket s, void *buffer, std::size_t size, const char *what) {
    for (;;) {
        ssize_t k = ::recv(static_cast<int>(s), buffer, size, 0);
        if (k >= 0) return static_cast<std::size_t>(k);
        if (errno != EINTR) fail_transfer(errno, what, "receive");
    }
}

void prepare_listener(native_socket s) {
    int one = 1;
    ::setsockopt(static_cast<int>(s), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
}

bool address_taken(int system_error) { return system_error == EADDRINUSE; }

void close_socket(native_socket s) {
    if (s != invalid_socket) ::close(static_cast<int>(s));
}

}  // namespace pd::platform
