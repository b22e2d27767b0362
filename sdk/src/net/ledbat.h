// The background transport class's congestion controller: LEDBAT (RFC 6817) with the
// LEDBAT++ changes (multiplicative decrease, periodic slowdowns), driven by the receiver.
//
// A device pulling from a peer in another office asks for blocks; the time from a request
// leaving to its block arriving is the delay sample (the peer answers at once, so it is the
// round trip plus whatever queue sits on the path). The minimum over the last minutes is the
// base; the excess is queueing delay. The window — bytes requested and not yet received —
// grows while that queue is below the target and shrinks multiplicatively above it, so the
// transfer fills an idle link with a small standing queue and falls to a trickle when a
// foreground flow fills the router's buffer. Pure logic, no clock or socket of its own:
// time comes in as arguments, which is what lets tests drive it through a simulated link.
// docs/background-transport.md explains the constants and the measurements behind them.
#pragma once

#include <array>
#include <cstdint>

namespace pd::net {

struct ledbat_config {
    std::int64_t target_us = 25000;          // queueing delay the transfer may add (docs/background-transport.md)
    std::uint64_t min_window = 16 * 1024;    // below one request: requests are spaced out instead
    std::uint64_t max_window = 64ull << 20;
    std::uint64_t initial_window = 128 * 1024;
    std::uint64_t gain_bytes = 8 * 1024;     // additive increase per round trip
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
    // Its answer arrived. `delay_us`: the delay sample — one-way from the sender's clock (any
    // offset: only differences count) or, without one, the round trip; `rtt_us`: request to
    // answer, which times slowdowns and spaced requests.
    void on_delivered(std::uint64_t bytes, std::int64_t delay_us, std::int64_t rtt_us, std::int64_t now_us);
    // A request that will never be answered (connection lost, peer refused).
    void on_abandoned(std::uint64_t bytes);

    std::uint64_t window() const { return static_cast<std::uint64_t>(window_); }
    std::uint64_t in_flight() const { return in_flight_; }
    phase current_phase() const { return phase_; }
    // Filtered queueing delay (current minus base), µs; 0 before the first sample.
    std::int64_t queue_delay_us() const;
    std::int64_t base_delay_us() const;
    std::int64_t target_us() const { return config_.target_us; }
    void set_target_us(std::int64_t t) { config_.target_us = t; }
    // True while the path is busy with someone else's traffic: the queue is over the target
    // and the window has shrunk to a few requests. Hysteresis keeps it from flapping.
    bool yielding() const { return yielding_; }

private:
    void start_slowdown(std::int64_t now_us);
    void end_phase(std::int64_t now_us);
    void update_yielding();

    ledbat_config config_;
    phase phase_ = phase::slow_start;
    double window_;
    std::uint64_t in_flight_ = 0;
    double ssthresh_ = 0;                      // ramp: the window to return to after a slowdown
    std::int64_t next_slowdown_us_ = -1;       // -1: none scheduled
    std::int64_t slowdown_started_us_ = 0, slowdown_ends_us_ = 0;
    std::int64_t last_delivery_us_ = 0;
    double smoothed_delay_us_ = 0;             // EWMA of round trips, for timing
    // The current delay: a time-weighted average of the samples over the last ~100 ms (see
    // on_delivered for why not RFC 6817's minimum of the last few). The base: the minimum
    // over per-minute buckets (RFC 6817), so a route change ages out.
    // Three minutes, not RFC 6817's ten: one-way samples come from two clocks, and a drift of
    // 50 ppm moves them 3 ms a minute; the periodic slowdowns re-measure the base anyway.
    static constexpr int base_minutes = 3;
    double current_delay_us_ = -1;  // -1: no sample yet
    std::array<std::int64_t, base_minutes> base_{};
    int base_count_ = 0;
    std::int64_t base_bucket_start_us_ = 0;
    bool yielding_ = false;
};

}  // namespace pd::net
