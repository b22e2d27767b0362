// A job's connection to one peer, on the network thread: the secure channel, then HAVE
// queries and block requests, pipelined — many may be outstanding and the peer answers
// them in order. Blocks arrive as they are decrypted; the job verifies them on workers.
// A peer that sends nothing for the request timeout while something is outstanding is
// failed, and every outstanding operation gets the error.
#pragma once

#include "content/manifest.h"
#include "peer/background_path.h"
#include "net/async_channel.h"
#include "peer/wire.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pd::peer {

class peer_link : public std::enable_shared_from_this<peer_link> {
public:
    struct have_answer {
        std::vector<std::uint8_t> bitmap;
        bool fetching = false;  // the peer downloads this content too
    };
    using connect_fn = std::function<void(const error *why)>;
    using have_fn = std::function<void(const error *why, have_answer)>;
    using block_fn = std::function<void(std::uint64_t block, std::vector<std::uint8_t> bytes)>;
    // `rejected` holds the peer's REJECT reason when it ended the answer early.
    using done_fn = std::function<void(const error *why, const std::string &rejected)>;

    // `me`: this device's key, proven in HELLO; the peer must prove its own.
    peer_link(boost::asio::io_context &io, std::string address, const std::array<std::uint8_t, 32> &fleet_key,
              std::uint64_t own_node_id, wire::device_identity me);
    ~peer_link();
    peer_link(const peer_link &) = delete;
    peer_link &operator=(const peer_link &) = delete;

    // TCP connect, secure channel and HELLO exchange, bounded by `timeout_ms` together.
    // Errors: PD_E_INVALID (bad address or protocol), PD_E_IO, PD_E_TIMEOUT, PD_E_AUTH
    // ("shared key mismatch"), PD_E_VERSION.
    void connect(int timeout_ms, connect_fn done);
    // How long the oldest outstanding operation may wait for the next part of its answer
    // (default 10 s); records that answer nothing (HAVE_DELTA, PONG) do not count.
    void set_request_timeout(int ms) { request_timeout_ms_ = ms; }
    // The peer's verified-block bitmap for a content, sized to `block_count` bits.
    void query_have(const content::hash &id, std::uint64_t block_count, have_fn done);
    // Requests [first, first + count): `on_block` for each block in order, then `done`.
    void request(const content::hash &id, std::uint64_t first, std::uint32_t count, block_fn on_block, done_fn done);
    // Called for each HAVE_DELTA the peer pushes (blocks it verified since its HAVE answer).
    using delta_fn = std::function<void(const content::hash &id, const std::vector<std::uint64_t> &blocks)>;
    void on_have_delta(delta_fn f) { on_delta_ = std::move(f); }
    // Operations sent and not yet answered.
    std::size_t outstanding() const { return ops_.size(); }

    // The background class (docs/background-transport.md). From now on a request() is sent
    // a block, or a part of one, at a time, as the window of `path` — shared with the other
    // links across the same bottleneck — and its budget allow. `layout` is the content's the
    // link fetches: where its blocks end.
    void set_background(std::shared_ptr<background_path> path, content::block_layout layout);
    // Called when the transfer starts or stops yielding to other traffic on the path (on the
    // link whose answer showed it).
    using yield_fn = std::function<void(bool yielding, std::int64_t queue_delay_us, std::int64_t target_us)>;
    void on_yield_change(yield_fn f) { on_yield_ = std::move(f); }
    // The background path; null for the foreground class.
    background_path *background() const { return path_.get(); }
    // Says goodbye and fails every outstanding operation with PD_E_CANCELLED.
    void close(const std::string &why);
    bool open() const { return ready_ && !failed_; }
    const std::string &address() const { return address_; }
    std::uint64_t node_id() const { return node_id_; }
    // The device key the peer proved in its HELLO (hex), once connected: what bans name.
    const std::string &peer_device() const { return peer_device_; }

private:
    // A request() of the background class: its blocks leave one by one.
    struct paced_request {
        content::hash content{};
        std::uint64_t next_block = 0;
        std::uint32_t next_offset = 0; // of next_block: the bytes before it are asked for
        std::uint64_t order = 0;       // its number at the path: the oldest goes first
        std::uint32_t unsent = 0;      // blocks not wholly requested yet
        unsigned outstanding = 0;      // requests (blocks or parts) sent, not answered
        bool finished = false;
        block_fn on_block;
        done_fn on_done;
    };
    struct op {
        bool is_have = false;
        content::hash content{};
        std::uint64_t block_count = 0;  // have: the bitmap size
        std::uint32_t id = 0;           // request: its id
        std::uint64_t next_block = 0;
        std::uint32_t remaining = 0;
        have_fn on_have;
        block_fn on_block;
        done_fn on_done;
        std::shared_ptr<paced_request> paced;  // background: the request this block belongs to
        std::int64_t sent_us = 0;
        // Background: the bytes asked for — a whole block, or the part from `offset`.
        bool part = false;
        std::uint32_t offset = 0, length = 0;
    };
    void read_next();
    // Sends REQUEST for [first, first + count), or REQUEST_PART when `o.part`, and queues `o`
    // for its answer.
    void send_request(op o, std::uint64_t first, std::uint32_t count);
    friend class background_path;
    // Background: the path's number for this link's oldest request with blocks left to ask
    // for; none when every block is asked for.
    std::optional<std::uint64_t> oldest_unsent() const;
    std::shared_ptr<paced_request> oldest_unsent_request() const;
    // Background: the size of what send_next_paced() would ask for next, at most `part` bytes
    // when the peer answers parts (0: nothing to ask for).
    std::uint32_t next_paced_bytes(std::uint32_t part) const;
    // Background: asks for the next block, or the next part of it, of the oldest request with
    // blocks left to ask for.
    void send_next_paced(std::uint32_t part);
    // Background: this link's paced requests sent and not answered, in bytes.
    std::uint64_t paced_in_flight() const;
    // Background: the bytes of the answer being read leave the path's window as they arrive.
    void count_answers_as_they_drain();
    void finish_paced(const std::shared_ptr<paced_request> &p, const error *why, const std::string &rejected);
    void on_message(wire::message m);
    void fail(const error &why);
    void arm_timer();
    error closed_error() const { return error(PD_E_IO, PD_CATEGORY_NET, "peer " + address_ + ": connection is closed"); }

    boost::asio::io_context &io_;
    std::string address_;
    std::array<std::uint8_t, 32> fleet_key_;
    std::uint64_t own_node_id_;
    wire::device_identity me_;
    std::uint64_t node_id_ = 0;
    std::string peer_device_;
    std::shared_ptr<net::async_channel> channel_;
    boost::asio::steady_timer timer_;
    int request_timeout_ms_ = 10000;
    std::deque<op> ops_;
    std::uint32_t next_request_ = 1;
    connect_fn on_connected_;
    delta_fn on_delta_;
    std::shared_ptr<background_path> path_;
    std::uint32_t source_ = 0;  // this link's id for the path's delay samples
    content::block_layout layout_;  // background: where the fetched content's blocks end
    bool peer_answers_parts_ = false;   // its HELLO said so (wire::capability_parts)
    std::vector<std::uint8_t> assembling_;  // the parts of the block being received, so far
    std::uint64_t head_arrived_ = 0;   // bytes of the oldest paced answer read so far
    std::optional<std::uint64_t> out_of_order_seen_;  // the socket's count at the last paced answer
    std::uint64_t head_progress_ = 0;  // of them, counted out of the path's window
    yield_fn on_yield_;
    std::deque<std::shared_ptr<paced_request>> paced_;
    bool ready_ = false, failed_ = false;
};

}  // namespace pd::peer
