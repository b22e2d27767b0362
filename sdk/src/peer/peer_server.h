// The peer server every session with listen addresses runs (design §5): it accepts TCP
// connections, runs the secure channel (a peer without the fleet key is refused before any
// content byte), and answers peer wire requests with *verified* blocks only. It lives on the
// network thread; block reads happen on the workers. Limits: connections, upload rate, idle time.
#pragma once

#include <atomic>

#include "net/secure_channel.h"
#include "peer/wire.h"

#include <utility>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <set>

namespace pd::core {
class session;
}

namespace pd::peer {

using core::session;

class peer_server {
public:
    peer_server(session &s, const std::array<std::uint8_t, 32> &fleet_key);
    ~peer_server();
    // Starts accepting on an acceptor already bound and listening (network thread).
    void serve(boost::asio::ip::tcp::acceptor &acceptor);
    // Closes every connection (network thread).
    void stop();
    // Closes the connections of the device with this key (hex); the session refuses its
    // HELLOs from now on (session::refuse_device). Network thread.
    void drop_device(const std::string &device_key);

    // Blocks of `content` just became verified and durable here: clients that asked for this
    // content's HAVE get a HAVE_DELTA (network thread).
    void blocks_verified(const content::hash &content, const std::vector<std::uint64_t> &blocks);

    struct counters {
        std::uint64_t bytes_uploaded = 0, blocks_uploaded = 0;
        std::uint64_t connections_accepted = 0, connections_refused = 0;
        std::uint32_t connections_open = 0;
    };
    // Network thread.
    counters stats() const;
    // Bytes served to peers so far. Any thread.
    std::uint64_t bytes_served() const { return bytes_served_.load(std::memory_order_relaxed); }

private:
    class connection;
    friend class connection;
    void accept_next(boost::asio::ip::tcp::acceptor &acceptor);
    void closed(connection *c);
    // Delay before `bytes` more may be sent under peer.upload_rate_bytes (0: none).
    std::chrono::steady_clock::duration reserve_upload(std::size_t bytes);

    // Connections from one address that have not authenticated yet.
    static constexpr std::size_t max_handshaking_per_address = 8;

    session &session_;
    std::array<std::uint8_t, 32> fleet_key_;
    std::set<std::shared_ptr<connection>> connections_;
    std::chrono::steady_clock::time_point upload_free_{};
    counters counters_;
    std::atomic<std::uint64_t> bytes_served_{0};  // counters_.bytes_uploaded, for any thread
    bool stopped_ = false;
};

}  // namespace pd::peer
