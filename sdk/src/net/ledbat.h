// The background transport class's congestion controller: LEDBAT (RFC 6817) with the
// LEDBAT++ changes (multiplicative decrease, periodic slowdowns), driven by the receiver.
//
// A device pulling from peers in another office asks for blocks (or parts of them); each
// answer brings a delay sample (one-way from the peer's clock, or the round trip). The
// minimum over the last minutes is the base — one per source, since every peer's clock has
// its own offset; the excess is queueing delay. One controller may serve several sources
// that share a bottleneck (docs/background-transport.md, "One window per path"). The window
// — bytes requested and not yet received — grows while that queue is below the target and
// shrinks multiplicatively above it, so the transfer fills an idle link with a small
// standing queue and falls to a trickle when a foreground flow fills the router's buffer.
// Pure logic, no clock or socket of its own: time comes in as arguments, which is what lets
// tests drive it through a simulated link. docs/background-transport.md explains the
// constants and the measurements behind them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

namespace pd::net {

struct ledbat_config {
    std::int64_t target_us = 25000;          // queueing delay the transfer may add (docs/background-transport.md)
    // A quarter of the smallest request: below a request, requests are spaced out, so at its
    // minimum the transfer asks once every four round trips. (At one 16 KiB request per round
    // trip it kept 19 % of a 20 Mbit/s link with 20 ms of round trip while yielding.)
    std::uint64_t min_window = 4 * 1024;
    std::uint64_t max_window = 64ull << 20;
    std::uint64_t initial_window = 16 * 1024;   // what a new TCP connection carries in its first round trip
    std::uint64_t gain_bytes = 8 * 1024;     // additive increase per round trip
    std::uint64_t refill_bytes = 64 * 1024;  // increase per round trip over a nearly empty queue
};

class ledbat {
public:
    enum class phase { slow_start, avoidance, slowdown, ramp };

    explicit ledbat(const ledbat_config &config = {});

    // May a request for `bytes` leave at `now_us`? Returns 0 when it may, otherwise the
    // time (µs, same clock) to ask again. Advances time-driven phases (slowdowns).
    std::int64_t send_at(std::uint64_t bytes, std::int64_t now_us);
    // A request for `bytes` left at `now_us`.
    void on_sent(std::uint64_t bytes, std::int64_t now_us);
    // Bytes of an answer that arrived before the whole of it leave the window: the next
    // request goes out while this answer still drains through the bottleneck, and the link
    // does not idle between blocks for the request's round trip and the peer's scheduling —
    // at WAN rates and a 25 ms target the window is one or two blocks.
    void on_progress(std::uint64_t bytes);
    // How much of an answer of `size` bytes, `arrived` of them in, counts as out of the
    // window: none until half of it is in, then its second half as it drains. Counted whole
    // until the last byte, answers made the window act in whole blocks — 1.4 blocks asked
    // like one, the next request only once the answer was in — and the link idled for that
    // request's round trip and the serving peer's scheduling, which a host short of CPU
    // stretches (hierarchy lab at 20-30 % steal: 0.82-0.89 of the link, 0.88-0.95 now).
    // Counting every byte at once instead let flows that share a link each pipeline a block
    // over the target, fall to their minimum windows and idle the link (simulated: two flows
    // 0.88 of it; 0.98 counting the second half).
    static std::uint64_t drained(std::uint64_t arrived, std::uint64_t size) {
        return arrived > size / 2 ? std::min(arrived, size) - size / 2 : 0;
    }
    // Its answer arrived whole. `delay_us`: the delay sample — one-way from the sender's clock
    // (any offset: only differences from the same `source` count) or, without one, the round
    // trip; `rtt_us`: from the request to the answer, which times slowdowns and spaced
    // requests — and, less the delay sample, shows answers that waited at the serving peer.
    // Any values: both are clamped to ±2^52 µs. `progressed`: bytes of it already counted
    // by on_progress.
    void on_delivered(std::uint64_t size, std::int64_t delay_us, std::int64_t rtt_us, std::int64_t now_us,
                      std::uint32_t source = 0, std::uint64_t progressed = 0);
    // The path lost a packet of an answer (the serving peer's TCP retransmits it; this side
    // saw the packets after it arrive first). RFC 6817 §2.4.2: the window halves, at most
    // once a round trip. A loss while the queue is under the target also says the buffer
    // is shallower than the target: the target falls to half the queue seen then (no lower
    // than min_target_us), so the transfer keeps its queue inside the buffer and still sees
    // a foreground flow that fills it — otherwise, in a buffer of 20 ms, the queue never
    // reached the target and the transfer competed like plain TCP (docs/background-transport.md
    // "Buffers shallower than the target"). It takes `shallow_losses` such loss events (at
    // most one a round trip) within `shallow_evidence_us`; the configured target returns
    // after `base_minutes` without one.
    void on_loss(std::int64_t now_us);
    static constexpr std::int64_t min_target_us = 10000;
    static constexpr int shallow_losses = 3;
    static constexpr std::int64_t shallow_evidence_us = 10'000'000;
    // A source that will send no more samples: its base is dropped.
    void forget_source(std::uint32_t source);
    // A request that will never be answered (connection lost, peer refused).
    void on_abandoned(std::uint64_t bytes);
    // How much one request should ask for, where a request may be a part of a `block`: the
    // smallest halving of it no smaller than `min_request_bytes` (each request costs the
    // serving peer a disk read and a record) — the same size for every flow, whatever its
    // window. A window of a few whole blocks moved in steps of a block (26 ms of a 20 Mbit/s
    // link, as much as the target) and the queue swung by as much; and when the size
    // followed each flow's window, flows sharing a path read its queue differently — at
    // 200 ms × 100 Mbit/s the one asking for parts read it 3 ms deeper than the one asking for
    // whole blocks and held a fifth of its window (docs/background-transport.md "Sub-block
    // requests").
    static std::uint64_t request_bytes(std::uint64_t block);
    static constexpr std::uint64_t min_request_bytes = 16 * 1024;

    std::uint64_t window() const { return static_cast<std::uint64_t>(window_); }
    // Bytes requested and not yet received.
    std::uint64_t in_flight() const { return in_flight_; }
    phase current_phase() const { return phase_; }
    // Filtered queueing delay (samples minus their source's base), µs; 0 before the first.
    std::int64_t queue_delay_us() const;
    // How long answers wait at the serving peer beyond its shortest turnaround, µs, averaged
    // as the queue is (on_delivered).
    std::int64_t waiting_us() const { return static_cast<std::int64_t>(waiting_us_); }
    // The target in force: the configured one, or less in a buffer shallower than it (on_loss).
    std::int64_t target_us() const { return std::min(config_.target_us, shallow_target_us_); }
    void set_target_us(std::int64_t t) { config_.target_us = t; }
    // True while the path is busy with someone else's traffic: the queue is over the target
    // and the window has shrunk to a few requests. Hysteresis keeps it from flapping.
    bool yielding() const { return yielding_; }

private:
    void start_slowdown(std::int64_t now_us);
    void end_phase(std::int64_t now_us);
    void update_yielding(std::int64_t now_us);
    void measure_rate(std::uint64_t bytes, std::int64_t now_us);
    // The smoothed request-to-answer time, at least 1 ms: what "a round trip" times here.
    std::int64_t round_trip_us() const;

    ledbat_config config_;
    phase phase_ = phase::slow_start;
    double window_;
    std::uint64_t in_flight_ = 0;
    double ssthresh_ = 0;                      // ramp: the window to return to
    // What the path carried, for the refill over an empty queue (on_delivered): bytes
    // delivered per µs, measured over a round trip at a time; the highest in the last
    // base_minutes while the flow was not yielding. A rate, not a window: no burst makes it
    // exceed the bottleneck.
    std::int64_t rate_since_us_ = -1;
    double rate_bytes_ = 0;
    double max_rate_ = 0;
    std::int64_t max_rate_until_us_ = 0;
    double last_rate_ = 0;                     // over the last interval measured; 0: none yet
    std::int64_t next_slowdown_us_ = -1;       // -1: none scheduled
    std::int64_t slowdown_started_us_ = 0, slowdown_ends_us_ = 0;
    std::int64_t last_delivery_us_ = 0;
    // A decrease lasts one round trip of answers: those to requests sent before it began
    // (-1: none under way). Then decreases wait until the answers to requests sent after it
    // ended arrive: until then the delay still shows the window from before the decrease.
    std::int64_t decrease_started_us_ = -1, hold_decrease_until_sent_us_ = -1;
    // The window held a request back (or was filled by one) since the last answer.
    bool window_limited_ = false;
    double smoothed_delay_us_ = 0;             // EWMA of request-to-answer times, for timing
    // The shortest request-to-answer time in the last base_minutes (a new low restarts them):
    // the path's round trip without a queue, which scales the decrease.
    std::int64_t base_rtt_us_ = 1, base_rtt_until_us_ = 0;
    // The current queueing delay: a time-weighted average of the samples, each less its
    // source's base, over the last ~100 ms (see on_delivered for why not RFC 6817's minimum
    // of the last few). A base: the minimum over per-minute buckets (RFC 6817), so a route
    // change ages out. Three minutes, not RFC 6817's ten: one-way samples come from two
    // clocks, and a drift of 50 ppm moves them 3 ms a minute; the periodic slowdowns
    // re-measure the base anyway.
    static constexpr int base_minutes = 3;
    // Per minute, the lowest delay sample, and the lowest round trip less its delay sample
    // (the request's way there and the serving peer's turnaround, plus the clocks' offset).
    struct base_history {
        std::uint32_t source = 0;
        std::array<std::int64_t, base_minutes> minimum{}, turnaround{};
        int count = 0;
        std::int64_t bucket_start_us = 0;
    };
    // One answer's samples less the bases of its source, after adding them to those bases:
    // the queueing delay, and how long it waited beyond the shortest turnaround.
    struct excesses {
        std::int64_t queue_us, wait_us;
    };
    excesses queueing(std::uint32_t source, std::int64_t delay_us, std::int64_t rtt_us, std::int64_t now_us);
    double current_queue_us_ = -1;  // -1: no sample yet
    // How long answers waited beyond their source's shortest turnaround — at the serving
    // peer, behind the requests before them (on_delivered) — averaged as the queue is.
    double waiting_us_ = 0;
    std::vector<base_history> bases_;  // a few sources: a vector beats a map
    bool yielding_ = false;
    // It yielded and has not filled the path since: the refill may take larger steps, and no
    // periodic slowdown interrupts it. When it stopped yielding; how long the refill may
    // wait for its window, not only its queue, to say the path is full (update_yielding).
    bool refilling_ = false;
    std::int64_t refill_started_us_ = 0;
    static constexpr std::int64_t refill_round_trips = 16;
    // A foreground flow filled the queue lately: until then the window grows only over an
    // emptied queue.
    std::int64_t foreground_until_us_ = 0;
    // Since when the queue is over the foreground rule's bound (-1: it is not).
    std::int64_t over_since_us_ = -1;
    // The target losses under the configured one set, until when (on_loss); none: not set.
    static constexpr std::int64_t none = std::numeric_limits<std::int64_t>::max();
    bool shallow_buffer() const { return shallow_target_us_ != none; }
    std::int64_t shallow_target_us_ = none;
    std::int64_t shallow_until_us_ = 0;
    std::int64_t last_halving_us_ = -1;
    // Loss events under the target since the first of them (on_loss), and the deepest queue.
    int shallow_loss_count_ = 0;
    std::int64_t shallow_first_loss_us_ = 0, shallow_deepest_us_ = 0;
};

}  // namespace pd::net
