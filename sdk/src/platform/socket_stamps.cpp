#include "platform/socket_stamps.h"

#include <algorithm>

#ifdef __linux__
// The kernel's own tcp_info: glibc's copy predates tcpi_rcv_ooopack.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>
#endif

namespace pd::platform {

#ifdef __linux__

bool enable_receive_timestamps(native_socket socket) {
    int on = 1;
    return ::setsockopt(static_cast<int>(socket), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0;
}

stamped_read read_stamped(native_socket socket, void *buffer, std::size_t size) {
    stamped_read r;
    iovec iov{buffer, size};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec)) * 2];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(static_cast<int>(socket), &msg, MSG_DONTWAIT);
    if (n < 0) {
        r.count = -1;
        r.error = errno;
        r.would_block = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;  // try again
        return r;
    }
    r.count = static_cast<long>(n);
    for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        r.arrived = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
    }
    return r;
}

bool limit_unsent_bytes(native_socket socket, std::size_t bytes) {
    int limit = static_cast<int>(std::min<std::size_t>(bytes, 1u << 30));
    return ::setsockopt(static_cast<int>(socket), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &limit, sizeof limit) == 0;
}

std::optional<std::uint64_t> out_of_order_arrivals(native_socket socket) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(static_cast<int>(socket), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
    // An older kernel fills a shorter struct.
    if (len < offsetof(tcp_info, tcpi_rcv_ooopack) + sizeof info.tcpi_rcv_ooopack) return std::nullopt;
    return info.tcpi_rcv_ooopack;
}

#else

bool enable_receive_timestamps(native_socket) { return false; }

std::optional<std::uint64_t> out_of_order_arrivals(native_socket) { return std::nullopt; }

bool limit_unsent_bytes(native_socket, std::size_t) { return false; }

stamped_read read_stamped(native_socket, void *, std::size_t) {
    stamped_read r;
    r.count = -1;
    return r;
}

#endif

}  // namespace pd::platform
