// The secure channel (secure_channel.h) driven over an Asio TCP socket, for the network
// thread: the handshake, then a record at a time in, a queue of records out. Both the peer
// server's connections and the job's peer links run on it. It owns no timers: the owner
// bounds the handshake and idle time and calls close().
#pragma once

#include "net/secure_channel.h"

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>

namespace pd::net {

class async_channel : public std::enable_shared_from_this<async_channel> {
public:
    // `why` is null on success. Errors carry PD_E_AUTH ("shared key mismatch"), PD_E_VERSION,
    // PD_E_INVALID or PD_E_IO (with "closed by the peer" on a clean EOF).
    using done_fn = std::function<void(const error *why)>;
    using record_fn = std::function<void(const error *why, bytes plaintext)>;

    // The message of the PD_E_IO error a clean EOF from the peer reports.
    static constexpr const char *closed_by_peer = "closed by the peer";

    // `fleet_key` null: a keyless client; `policy`: whether a server admits one (net::keyless).
    async_channel(boost::asio::ip::tcp::socket socket, role r, const std::uint8_t *fleet_key,
                  keyless policy = keyless::refused);
    async_channel(const async_channel &) = delete;
    async_channel &operator=(const async_channel &) = delete;

    // Sends our HELLO at once, then runs the exchange; `done` once both proofs verified.
    void handshake(done_fn done);
    // After the handshake: whether the peer proved the fleet key, and the transcript an
    // identity proof signs (handshake::transcript()).
    bool fleet_key_proven() const { return hs_.fleet_key_proven(); }
    cipher record_cipher() const { return hs_.record_cipher(); }
    const std::array<std::uint8_t, 32> &transcript() const { return hs_.transcript(); }
    // Reads exactly one record; call again for the next (the owner paces its reads). `done`
    // never runs inside this call. Unless arrivals are timed or counted (below), records
    // come from a buffer that one system call fills with several of them.
    void receive(record_fn done);
    // Seals and queues a record. A write error is reported once through on_write_error.
    void send(const bytes &plaintext);
    // Queues a record the owner sealed with sealer() itself (e.g. on a worker, while no
    // other send() can run for this channel). Never while a send_stamped() record waits:
    // records are sealed in the order they go out (the channel fails with a write error).
    void send_sealed(bytes record);
    // Queues a record stamped as it is written: `stamp` edits the plaintext (writes the
    // time) just before the channel seals it and hands it to the socket — after
    // stamp_as_sent(), only once the socket has room below its unsent limit, so the stamp is
    // within that many bytes of when TCP sends the record. Records queued behind it are
    // sealed as they are written too, in order.
    using stamp_fn = std::function<void(bytes &plaintext)>;
    void send_stamped(bytes plaintext, stamp_fn stamp);
    // Keeps at most about `unsent_bytes` written and not yet sent by TCP in the socket
    // (platform::limit_unsent_bytes) and writes stamped records only when it has room. False
    // where unsupported: stamped records are then stamped as they are written to the socket's
    // buffer, which may hold them longer.
    bool stamp_as_sent(std::size_t unsent_bytes);
    record_sealer &sealer() { return sealer_; }
    void on_write_error(done_fn f) { write_error_ = std::move(f); }
    // When the first bytes of the record receive() delivered last arrived: the background
    // class times a request to the start of its answer, which TCP's window cannot delay.
    // By the kernel's receive timestamp after use_kernel_arrival_times(), otherwise when
    // this process read them.
    std::chrono::steady_clock::time_point record_started() const { return record_started_; }
    // Called as parts of a record's body arrive, with the bytes each brought — not for the
    // part that completes the record, which receive() delivers. The background class counts
    // an answer out of its window as it drains, not only once it is whole.
    using progress_fn = std::function<void(std::size_t bytes)>;
    void on_body_progress(progress_fn f) { progress_ = std::move(f); }
    // Bytes queued and not yet written: owners use it for back-pressure.
    std::size_t queued_bytes() const { return queued_bytes_; }
    // Calls `f` once (on the network thread) as soon as queued_bytes() is at most `at_most`;
    // at once when it already is. Never after close().
    void when_drained(std::size_t at_most, std::function<void()> f);
    // Time arrivals by the kernel's receive timestamps (platform/socket_stamps.h), so this
    // process's own scheduling delays do not read as queueing on the path. False where the
    // platform has none. Like on_body_progress, set before the handshake: such a channel
    // reads record by record.
    bool use_kernel_arrival_times();
    void close();
    bool closed() const { return closed_; }
    boost::asio::ip::tcp::socket &socket() { return socket_; }

private:
    template <class Fn>
    void read_exact(std::uint8_t *p, std::size_t n, Fn next);
    void write_next();
    void write_batch();
    void write_failed(const std::string &why);
    void read_prefix_stamped(std::size_t got, record_fn done);
    void read_body(record_fn done);
    void read_body_in_parts(std::size_t got, record_fn done);
    void open_record(const record_fn &done);
    void next_buffered(record_fn done, bool from_owner);

    // The input buffer of next_buffered: [in_begin_, in_end_) is received and not yet opened.
    static constexpr std::size_t min_input = 64 * 1024, max_input = 2 * (4 + max_record_plaintext + 32);
    // One vectored write carries at most this much of the queue.
    static constexpr std::size_t max_write_records = 64, max_write_bytes = 1024 * 1024;

    boost::asio::ip::tcp::socket socket_;
    net::handshake hs_;  // qualified: the member function handshake() hides the type
    record_sealer sealer_;
    record_opener opener_;
    std::array<std::uint8_t, hello_size> in_hello_{};
    std::array<std::uint8_t, finish_size> in_finish_{};
    std::array<std::uint8_t, max_stream_header> in_header_{};
    std::array<std::uint8_t, 4> prefix_{};
    bytes record_;
    bytes in_;
    std::size_t in_begin_ = 0, in_end_ = 0;
    std::chrono::steady_clock::time_point record_started_{};
    // A record waiting to be written: sealed, or a plaintext sealed (and stamped, if
    // `stamp`) as it is written. `counted` is what it added to queued_bytes_.
    struct outgoing {
        bytes data;
        bool sealed = true;
        stamp_fn stamp;
        std::size_t counted = 0;
    };
    std::deque<outgoing> out_;
    std::size_t unsealed_ = 0;      // records in out_ still plaintext
    std::size_t unsent_limit_ = 0;  // stamp_as_sent()'s limit; 0: off
    std::size_t queued_bytes_ = 0;
    done_fn write_error_;
    progress_fn progress_;
    std::function<void()> drained_;
    std::size_t drained_at_ = 0;
    bool closed_ = false;
    bool kernel_stamps_ = false;
};

}  // namespace pd::net
