// A job's connection to one peer, on the network thread: the secure channel, then HAVE
// queries and block requests, pipelined — many may be outstanding and the peer answers
// them in order. Blocks arrive as they are decrypted; the job verifies them on workers.
// A peer that sends nothing for the request timeout while something is outstanding is
// failed, and every outstanding operation gets the error.
//
// A link can renew its connection (renew()): it opens a second one to the same peer and,
// once the peer proves the same device key on it, sends new requests there while the old
// one answers what was asked on it and closes — the background class does so after a yield
// in which the serving peer's TCP lost packets (docs/background-transport.md "A fresh
// connection after a lossy yield").
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
    // Requests [first, first + count): `on_block` for each block as it arrives (in order,
    // except that blocks asked for after a renewal may overtake ones asked for before it),
    // then `done`.
    void request(const content::hash &id, std::uint64_t first, std::uint32_t count, block_fn on_block, done_fn done);
    // Called for each HAVE_DELTA the peer pushes (blocks it verified since its HAVE answer).
    using delta_fn = std::function<void(const content::hash &id, const std::vector<std::uint64_t> &blocks)>;
    void on_have_delta(delta_fn f) { on_delta_ = std::move(f); }
    // Operations sent and not yet answered.
    std::size_t outstanding() const { return (live_ ? live_->ops.size() : 0) + (draining_ ? draining_->ops.size() : 0); }

    // Opens a fresh connection to the same peer (same address, same connect timeout) and
    // moves to it once the peer proves the same device key there, at a block boundary: new
    // requests go out on it, the old connection answers what was sent on it and closes. A
    // fresh TCP connection slow-starts from the peer's initial window, where the old one may
    // be growing back linearly from a threshold its losses cut. If the fresh connection
    // fails, times out or proves another device, it is dropped and the link goes on as
    // before. False (nothing done) while the link is not open or a renewal is under way.
    bool renew();
    // Renewals that moved the link to a fresh connection.
    unsigned renewals() const { return renewals_; }
    // Called when a renewal moved the link (`moved`) or was dropped (`detail`: why, a sentence
    // that names the peer).
    using renewal_fn = std::function<void(bool moved, const std::string &detail)>;
    void on_renewal(renewal_fn f) { on_renewal_ = std::move(f); }

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
    // One TCP connection to the peer: the secure channel and what was sent on it, answered in
    // order. Two are open only during a renewal (renew()).
    struct connection {
        std::shared_ptr<net::async_channel> channel;
        std::deque<op> ops;
        bool proven = false;                    // the peer's HELLO proved its device key here
        bool answers_parts = false;             // a renewal's HELLO offered parts (wire::capability_parts):
                                                // taken when the link moves to it
        std::vector<std::uint8_t> assembling;   // the parts of the block being received, so far
        std::uint64_t head_arrived = 0;         // bytes of the oldest paced answer read so far
        std::uint64_t head_progress = 0;        // of them, counted out of the path's window
        std::optional<std::uint64_t> out_of_order_seen;  // the socket's count at the last paced answer
    };
    using connection_ptr = std::shared_ptr<connection>;
    // TCP connect (resolving a name first), the secure channel, our HELLO; then reads.
    void dial(const connection_ptr &c);
    void read_next(const connection_ptr &c);
    // An error on `c`: the link fails, unless `c` is a renewal not yet moved to (dropped) or
    // a drained old connection (closed).
    void connection_failed(const connection_ptr &c, const error &why);
    bool ours(const connection_ptr &c) const { return c == live_ || c == draining_ || c == fresh_; }
    // The peer's HELLO on `c`.
    void on_hello(const connection_ptr &c, const wire::hello &h);
    void on_message(const connection_ptr &c, wire::message m);
    // The renewal's connection proved the peer: new requests go to it (at a block boundary).
    void move_to_fresh();
    void drop_fresh(const std::string &why);
    // The old connection answered everything sent on it: it says goodbye and closes.
    void close_drained();
    // Sends HAVE on the live connection and queues its answer for `done` (query_have, and a
    // renewal asking again).
    void send_have(const content::hash &id, std::uint64_t block_count, have_fn done);
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
    // Background: the bytes of the answer being read on `c` leave the path's window as they
    // arrive.
    void count_answers_as_they_drain(const connection_ptr &c);
    void finish_paced(const std::shared_ptr<paced_request> &p, const error *why, const std::string &rejected);
    void fail(const error &why);
    void arm_timer();
    error closed_error() const { return error(PD_E_IO, PD_CATEGORY_NET, "peer " + address_ + ": connection is closed"); }
    // A block is being asked for in parts and not all of them are out: a renewal waits, so
    // one connection answers every part of a block.
    bool mid_block() const;

    boost::asio::io_context &io_;
    std::string address_;
    std::array<std::uint8_t, 32> fleet_key_;
    std::uint64_t own_node_id_;
    wire::device_identity me_;
    std::uint64_t node_id_ = 0;
    std::string peer_device_;
    connection_ptr live_;      // where requests go
    connection_ptr draining_;  // the connection a renewal replaced, until it answered all
    connection_ptr fresh_;     // a renewal's connection, until the peer proves itself on it
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer renew_timer_;  // bounds a renewal's connect like connect()'s
    int connect_timeout_ms_ = 0;
    int request_timeout_ms_ = 10000;
    unsigned renewals_ = 0;
    // The contents whose HAVE was asked (and their block counts): a renewal asks again on the
    // fresh connection, since the peer pushes HAVE_DELTAs only where it was asked.
    std::vector<std::pair<content::hash, std::uint64_t>> interests_;
    static constexpr std::size_t max_interests = 16;
    std::uint32_t next_request_ = 1;
    connect_fn on_connected_;
    delta_fn on_delta_;
    std::shared_ptr<background_path> path_;
    std::uint32_t source_ = 0;  // this link's id for the path's delay samples
    content::block_layout layout_;  // background: where the fetched content's blocks end
    bool peer_answers_parts_ = false;   // its HELLO said so (wire::capability_parts)
    yield_fn on_yield_;
    renewal_fn on_renewal_;
    // Its serving peer's TCP lost packets during the path's current yield; when it last renewed.
    lossy_yield_rule renewal_;
    std::deque<std::shared_ptr<paced_request>> paced_;
    bool ready_ = false, failed_ = false;
};

}  // namespace pd::peer
