#include "platform/socket.h"

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

native_socket connect_tcp(const std::string &address, int timeout_ms) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) fail(PD_E_INVALID, PD_CATEGORY_NET, "address '" + address + "' is not ip:port");
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "address '" + address + "' is not ip:port");
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ::freeaddrinfo(res);
        fail_errno(errno, "creating a socket");
    }
    // Non-blocking only for the connect, so the timeout bounds it.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
    ::freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
        int err = 0;
        socklen_t len = sizeof err;
        if (rc == 0 && (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)) {
            errno = err;
            rc = -1;
        } else if (rc != 0) {
            errno = ETIMEDOUT;
        }
    }
    if (rc != 0) {
        int err = errno;
        ::close(fd);
        fail(err == ETIMEDOUT ? PD_E_TIMEOUT : PD_E_IO, PD_CATEGORY_NET, "cannot connect to " + address + ": " + std::strerror(err));
    }
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
        ssize_t k = ::send(s, p, size, MSG_NOSIGNAL);  // a closed peer is an error, not SIGPIPE
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
        ssize_t k = ::recv(s, buffer, size, 0);
        if (k >= 0) return static_cast<std::size_t>(k);
        if (errno != EINTR) fail_transfer(errno, what, "receive");
    }
}

void close_socket(native_socket s) {
    if (s != invalid_socket) ::close(s);
}

}  // namespace pd::platform
