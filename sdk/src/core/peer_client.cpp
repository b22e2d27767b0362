#include "core/peer_client.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pd::core {

peer_client::peer_client(const std::string &address, const std::array<std::uint8_t, 32> &fleet_key, int timeout_ms,
                         std::uint64_t own_node_id)
    : address_(address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) fail(PD_E_INVALID, PD_CATEGORY_NET, "peer address '" + address + "' is not ip:port");
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "peer address '" + address + "' is not ip:port");
    fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Connect with a timeout, then blocking I/O with socket timeouts.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    int rc = ::connect(fd_, res->ai_addr, res->ai_addrlen);
    ::freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd_, POLLOUT, 0};
        rc = ::poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
        int err = 0;
        socklen_t len = sizeof err;
        if (rc == 0 && (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)) {
            errno = err;
            rc = -1;
        } else if (rc != 0) {
            errno = ETIMEDOUT;
        }
    }
    if (rc != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        fail(err == ETIMEDOUT ? PD_E_TIMEOUT : PD_E_IO, PD_CATEGORY_NET,
             "cannot connect to peer " + address + ": " + std::strerror(err));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    try {
        channel_ = std::make_unique<net::blocking_channel>(fd_, net::role::client, fleet_key.data());
        net::wire::hello mine;
        mine.node_id = own_node_id;
        channel_->send(net::wire::encode(mine));
        auto reply = next();
        auto *h = std::get_if<net::wire::hello>(&reply);
        if (!h) fail(PD_E_INVALID, PD_CATEGORY_NET, "peer " + address + " did not answer HELLO");
        node_id_ = h->node_id;
    } catch (const error &e) {
        ::close(fd_);
        fd_ = -1;
        fail(e.code(), e.category(), "peer " + address + ": " + e.what());
    }
}

peer_client::~peer_client() {
    if (fd_ >= 0) {
        try {
            channel_->send(net::wire::encode(net::wire::goodbye{0, "done"}));
        } catch (...) {
        }
        ::close(fd_);
    }
}

net::wire::message peer_client::next() {
    auto r = channel_->receive();
    return net::wire::decode(r.data(), r.size());
}

std::vector<std::uint8_t> peer_client::have(const content::hash &id, std::uint64_t block_count, bool *fetching) {
    channel_->send(net::wire::encode(net::wire::have{id, 0, 0, {}}));
    auto m = next();
    auto *h = std::get_if<net::wire::have>(&m);
    if (!h || h->content != id) fail(PD_E_INVALID, PD_CATEGORY_NET, "peer " + address_ + " answered HAVE with something else");
    if (h->block_count != block_count && h->block_count != 0)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "peer " + address_ + " describes the content with another block count");
    if (fetching) *fetching = (h->flags & net::wire::have_fetching) != 0;
    h->bitmap.resize(static_cast<std::size_t>((block_count + 7) / 8));
    return std::move(h->bitmap);
}

std::vector<peer_client::block> peer_client::fetch(const content::hash &id, std::uint64_t first, std::uint32_t count,
                                                   std::string &rejected) {
    std::uint32_t rid = next_request_++;
    channel_->send(net::wire::encode(net::wire::request{rid, id, first, count}));
    std::vector<block> out;
    while (out.size() < count) {
        auto m = next();
        if (auto *d = std::get_if<net::wire::data>(&m)) {
            if (d->id != rid || d->content != id || d->block != first + out.size())
                fail(PD_E_INVALID, PD_CATEGORY_NET, "peer " + address_ + " sent a block that was not asked for");
            out.push_back({d->block, std::move(d->bytes)});
        } else if (auto *r = std::get_if<net::wire::reject>(&m)) {
            rejected = r->reason;
            break;
        } else {
            fail(PD_E_INVALID, PD_CATEGORY_NET, std::string("peer ") + address_ + " sent " + net::wire::name(m) + " during a request");
        }
    }
    return out;
}

}  // namespace pd::core
