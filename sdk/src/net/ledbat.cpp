#include "net/ledbat.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <limits>

namespace pd::net {

namespace {
constexpr std::int64_t minute_us = 60'000'000;
constexpr double current_window_us = 100000;  // the current delay averages about this long
constexpr double decrease_gain = 4;
constexpr double min_weight_per_byte = 0.05 / (64 * 1024);
// A queue over twice the target, and at least this, is a loss-based flow's: with a small
// target, this flow's own few requests can reach twice it.
constexpr std::int64_t foreground_queue_us = 100000;
// How long a flow that filled the queue is presumed still there (on_delivered): longer than
// cubic's sawtooth, whose troughs otherwise read as a path it left.
constexpr std::int64_t foreground_hold_us = 5'000'000;
// How long a queue over three quarters of a shallow buffer must last to be a foreground flow's.
constexpr std::int64_t shallow_foreground_us = 100000;
constexpr std::int64_t after_next_delivery = std::numeric_limits<std::int64_t>::max();
// A slowdown costs its duration; repeating it at nine times that keeps the cost ≤ 10 %.
constexpr std::int64_t slowdown_spacing = 9;
}  // namespace

std::int64_t ledbat::round_trip_us() const { return std::max<std::int64_t>(static_cast<std::int64_t>(smoothed_delay_us_), 1000); }

ledbat::ledbat(const ledbat_config &config) : config_(config), window_(static_cast<double>(config.initial_window)) {
    config_.min_window = std::max<std::uint64_t>(config_.min_window, 1);
    config_.max_window = std::max(config_.max_window, config_.min_window);
    window_ = std::clamp(window_, static_cast<double>(config_.min_window), static_cast<double>(config_.max_window));
}

std::int64_t ledbat::queue_delay_us() const {
    return current_queue_us_ < 0 ? 0 : static_cast<std::int64_t>(current_queue_us_);
}

ledbat::excesses ledbat::queueing(std::uint32_t source, std::int64_t delay_us, std::int64_t rtt_us, std::int64_t now_us) {
    auto it = std::find_if(bases_.begin(), bases_.end(), [&](auto &b) { return b.source == source; });
    if (it == bases_.end()) {
        bases_.push_back({});
        it = bases_.end() - 1;
        it->source = source;
    }
    auto &b = *it;
    auto turnaround = rtt_us - delay_us;
    if (b.count == 0 || now_us - b.bucket_start_us >= minute_us) {
        // the oldest minute falls off
        std::rotate(b.minimum.rbegin(), b.minimum.rbegin() + 1, b.minimum.rend());
        std::rotate(b.turnaround.rbegin(), b.turnaround.rbegin() + 1, b.turnaround.rend());
        b.minimum[0] = delay_us;
        b.turnaround[0] = turnaround;
        b.count = std::min(b.count + 1, base_minutes);
        b.bucket_start_us = now_us;
    } else {
        b.minimum[0] = std::min(b.minimum[0], delay_us);
        b.turnaround[0] = std::min(b.turnaround[0], turnaround);
    }
    return {delay_us - *std::min_element(b.minimum.begin(), b.minimum.begin() + b.count),
            turnaround - *std::min_element(b.turnaround.begin(), b.turnaround.begin() + b.count)};
}

void ledbat::forget_source(std::uint32_t source) {
    bases_.erase(std::remove_if(bases_.begin(), bases_.end(), [&](auto &b) { return b.source == source; }), bases_.end());
}

std::int64_t ledbat::send_at(std::uint64_t bytes, std::int64_t now_us) {
    if (phase_ == phase::slowdown) {
        if (now_us < slowdown_ends_us_) return slowdown_ends_us_;
        phase_ = phase::ramp;  // back up in slow start, to the window it had
    }
    // LEDBAT++ periodic slowdown: everyone's queue drains now and then, so each flow's base
    // stays true (a latecomer otherwise takes the standing queue for the base). Pointless
    // while someone else's traffic holds the queue: then the window is at its minimum anyway;
    // and while it refills a path it yielded, which began over the emptied queue, a base
    // measured as a slowdown would (see also on_delivered). One put off through a yield came
    // due in the middle of the refill after the foreground flow left and cost it 1.3–1.5 s at
    // 200 ms (lab traces, 2026-12-06: the refill slowed by answers the serving TCP held).
    // Due later, it runs once the path is full. (Scheduling the next one from the refill's
    // end, as after a slowdown, cut the slowdowns that keep two flows fair: simulated Jain
    // under 0.95.)
    if (phase_ == phase::avoidance && next_slowdown_us_ >= 0 && now_us >= next_slowdown_us_) {
        if (yielding_ || refilling_) {
            next_slowdown_us_ = now_us + std::max<std::int64_t>(target_us(), static_cast<std::int64_t>(smoothed_delay_us_));
        } else {
            start_slowdown(now_us);
            return slowdown_ends_us_;
        }
    }
    double b = static_cast<double>(bytes);
    if (in_flight_ == 0) {
        // One request always may leave, but a window smaller than a request spaces them out:
        // one request every (request / window) round trips averages the window's rate.
        bool growing = phase_ == phase::slow_start || phase_ == phase::ramp;
        if (growing || window_ >= b / 2) return 0;
        auto wait = static_cast<std::int64_t>((b / window_ - 1.0) * smoothed_delay_us_);
        if (now_us >= last_delivery_us_ + wait) return 0;
        window_limited_ = true;
        return last_delivery_us_ + wait;
    }
    // Round to the nearest whole request: requests are blocks or parts of 16 KiB and more,
    // much larger than a segment.
    if (static_cast<double>(in_flight_) + b > window_ + b / 2) {
        window_limited_ = true;
        return after_next_delivery;
    }
    return 0;
}

void ledbat::on_sent(std::uint64_t bytes, std::int64_t) {
    in_flight_ += bytes;
    if (static_cast<double>(in_flight_) + static_cast<double>(bytes) / 2 > window_) window_limited_ = true;
}

void ledbat::on_loss(std::int64_t now_us) {
    // One loss event a round trip: the packets of one burst are one event.
    if (last_halving_us_ >= 0 && now_us - last_halving_us_ < round_trip_us()) return;
    last_halving_us_ = now_us;
    // The queue at a loss is as deep as the buffer goes, or nearly (the delay is averaged
    // over ~100 ms). A loss at a nearly empty queue says nothing about the buffer (a noisy
    // link), nor does one over the target: an answer that waited for a resent packet reads a
    // round trip late. And one loss is not a buffer: a burst in a deep one (a latecomer's
    // slow start) lowered a flow's target under its neighbour's standing queue, and it
    // starved (the lab: 0.01 of the link). A shallow buffer loses again and again, so it
    // takes shallow_losses events under the target within shallow_evidence_us.
    auto queue = queue_delay_us();
    if (queue >= config_.target_us / 4 && queue < config_.target_us) {
        if (now_us - shallow_first_loss_us_ > shallow_evidence_us) shallow_loss_count_ = 0, shallow_deepest_us_ = 0;
        if (shallow_loss_count_++ == 0) shallow_first_loss_us_ = now_us;
        shallow_deepest_us_ = std::max(shallow_deepest_us_, queue);
        if (shallow_loss_count_ >= shallow_losses || shallow_buffer()) {
            auto half = std::max(min_target_us, shallow_deepest_us_ / 2);
            shallow_target_us_ = shallow_buffer() ? std::max(shallow_target_us_, half) : half;
            shallow_until_us_ = now_us + base_minutes * minute_us;
        }
    }
    window_ = std::max(window_ / 2, static_cast<double>(config_.min_window));
    if (phase_ == phase::slow_start || phase_ == phase::ramp) end_phase(now_us);
    update_yielding(now_us);
}

void ledbat::on_abandoned(std::uint64_t bytes) { in_flight_ -= std::min(bytes, in_flight_); }

std::uint64_t ledbat::request_bytes(std::uint64_t block) {
    auto part = block;
    while (part / 2 >= min_request_bytes) part /= 2;
    return part;
}

void ledbat::on_progress(std::uint64_t bytes) { in_flight_ -= std::min(bytes, in_flight_); }

void ledbat::start_slowdown(std::int64_t now_us) {
    ssthresh_ = window_;
    // One request's worth: the ramp after it starts where a new transfer does.
    window_ = std::max(static_cast<double>(config_.min_window), static_cast<double>(config_.initial_window));
    phase_ = phase::slowdown;
    slowdown_started_us_ = now_us;
    // One round trip with nothing new requested: every answer in flight arrives and the
    // queue this flow built drains behind it, so the next request's answer sees the base.
    // (LEDBAT++ waits two; the second costs a round trip of link, 3 % of the goodput on a
    // long path, and measures nothing the first did not.)
    slowdown_ends_us_ = now_us + std::max<std::int64_t>(static_cast<std::int64_t>(smoothed_delay_us_), 10000);
    next_slowdown_us_ = -1;
}

void ledbat::end_phase(std::int64_t now_us) {
    if (phase_ == phase::slow_start)
        next_slowdown_us_ = now_us + 2 * round_trip_us();  // the first slowdown soon: the base may be wrong
    else
        next_slowdown_us_ = now_us + slowdown_spacing * std::max(now_us - slowdown_started_us_, round_trip_us());
    phase_ = phase::avoidance;
}

void ledbat::on_delivered(std::uint64_t bytes, std::int64_t delay_us, std::int64_t rtt_us, std::int64_t now_us,
                          std::uint32_t source, std::uint64_t progressed) {
    auto rest = bytes - std::min(progressed, bytes);
    in_flight_ -= std::min(rest, in_flight_);
    // A peer's clock says what it likes: no sample beyond ±2^52 µs (142 years) is a clock's
    // offset, and within it the differences below cannot overflow.
    constexpr std::int64_t sane_us = std::int64_t{1} << 52;
    delay_us = std::clamp(delay_us, -sane_us, sane_us);
    rtt_us = std::clamp<std::int64_t>(rtt_us, 0, sane_us);
    auto [queue_sample, wait_sample] = queueing(source, delay_us, rtt_us, now_us);
    auto sample = static_cast<double>(queue_sample);
    // Time-weighted, not per sample: flows sharing a queue then see the same current delay
    // whatever their rates. (RFC 6817's minimum of the last few samples favours the faster
    // flow: its samples are close together and the minimum catches the trough of its own
    // block-sized sawtooth, while a slow flow's few samples land anywhere — measured: one of
    // two flows held at its minimum window for 16 s.) One late answer moves the average by
    // the time it covers, not more.
    double since = current_queue_us_ < 0 ? 0 : static_cast<double>(std::max<std::int64_t>(0, now_us - last_delivery_us_));
    double weight = current_queue_us_ < 0 ? 1.0 : 1.0 - std::exp(-since / current_window_us);
    // Back-to-back answers still move it, by their size: a 64 KiB answer 5 %. Per answer, the
    // parts of a block moved it four times as much as the block did, and a burst of them
    // (a ramp's doubling, queued at the bottleneck behind each other) ended the ramp early:
    // at 200 ms and 100 Mbit/s the window then refilled linearly for 7 s after each slowdown.
    weight = std::max(weight, min_weight_per_byte * static_cast<double>(bytes));
    bool first = current_queue_us_ < 0;
    current_queue_us_ = first ? sample : current_queue_us_ + weight * (sample - current_queue_us_);
    last_delivery_us_ = now_us;
    if (now_us >= base_rtt_until_us_ || rtt_us < base_rtt_us_) {
        base_rtt_us_ = std::max<std::int64_t>(rtt_us, 1);
        base_rtt_until_us_ = now_us + base_minutes * minute_us;
    }
    auto wait = static_cast<double>(wait_sample);
    waiting_us_ = first ? wait : waiting_us_ + weight * (wait - waiting_us_);
    smoothed_delay_us_ = smoothed_delay_us_ == 0 ? static_cast<double>(rtt_us)
                                                 : 0.875 * smoothed_delay_us_ + 0.125 * static_cast<double>(rtt_us);

    double b = static_cast<double>(bytes);
    if (now_us >= shallow_until_us_) shallow_target_us_ = none;
    double target = static_cast<double>(target_us());
    double queue = static_cast<double>(queue_delay_us());
    double min = static_cast<double>(config_.min_window);
    // Grow only a window that held a request back since the last answer (RFC 7661's
    // congestion window validation). A transfer short of blocks to ask for (a child office
    // pulling what its parent has just received) would otherwise grow it without limit while
    // it waits, and then ask for all of its parent's next blocks at once: a burst that fills
    // the parent office's uplink, where the parent's own requests and acknowledgements queue.
    bool limited = std::exchange(window_limited_, false);
    double grow = limited ? 1.0 : 0.0;
    // A queue twice the target is not another background flow (they all aim at the target):
    // a loss-based flow is filling the buffer. Get out of its way at once, not over a few
    // halvings (measured: halving per round trip left the transfer above a quarter of the
    // link for 2.5 s after an iperf3 cubic flow started).
    // In a buffer shallower than the target (on_loss), three quarters of the buffer is as
    // full as a queue gets: only a loss-based flow keeps it there — for more than a few round
    // trips. This flow's own step reaches it too: three quarters of a 20 ms buffer at
    // 20 Mbit/s is 15 ms, a request and a half over the lowered target, and the refill over
    // an emptied queue overshot it within a round trip; taken for a foreground flow, the
    // overshoot dropped the window to its minimum, the queue emptied, the refill overshot
    // again (the lab at 20 ms × 20 Mbit/s × 1 × BDP: 0.53 of the link alone). The decrease
    // halves such an overshoot within a round trip or two; what is still there after
    // shallow_foreground_us or three round trips is someone else's. Meanwhile the window does
    // not grow (LEDBAT++'s increase goes on over the target, and at the minimum window it
    // outweighs the decrease: beside this flow a simulated cubic sawtooth kept 0.89 of the
    // link, not 0.95).
    bool over = queue > (shallow_buffer() ? 1.5 * target : std::max(2.0 * target, static_cast<double>(foreground_queue_us)));
    if (!over)
        over_since_us_ = -1;
    else if (over_since_us_ < 0)
        over_since_us_ = now_us;
    if (over) grow = 0;
    bool foreground = over && (!shallow_buffer() || now_us - over_since_us_ >= std::max(shallow_foreground_us, 3 * round_trip_us()));
    if (foreground) foreground_until_us_ = now_us + foreground_hold_us;
    // Answers that wait at the serving peer (waiting_us_): the round trip exceeds the path's,
    // its base and the queue the one-way samples show, by more than a target. The window then
    // holds more than the path delivers — the serving TCP's window is the limit, or the peer
    // is busy — and the excess waits where no delay sample sees it (answers are stamped as
    // they leave). In a buffer shallower than the target the queue never reached the point
    // where slow start ends, and a latecomer's window grew to 8 MiB at 20 ms × 100 Mbit/s
    // (round trips of 600 ms); a loss then halved a window its TCP never used, and the first
    // flow, whose own losses had lowered its target, yielded the whole link to it (the lab,
    // twice: a 0.98 share). The window grows no further until the serving TCP caught up, and
    // keeps no more than twice what the path delivered over its round trip: room for that TCP
    // to double (its slow start on a fresh connection), no more. Slow start goes on once it
    // caught up: ending it here ended it early at 200 ms × 100 Mbit/s, where the serving
    // TCP's own slow start lags a little (the lab, one run each: 0.72 of the link, 0.93 going
    // on). A target, not less: a request of 16 KiB is 6.5 ms of a 20 Mbit/s link, and at a
    // quarter of the target the wait's own granularity stopped the growth (the lab at
    // 20 ms × 20 Mbit/s: 0.80 of the link alone).
    bool overfull = last_rate_ > 0 && waiting_us_ > static_cast<double>(config_.target_us);
    if (overfull && !foreground) {
        window_ = std::min(window_, std::max(2 * last_rate_ * (static_cast<double>(base_rtt_us_) + queue), min));
        grow = 0;
    }
    switch (phase_) {
    case phase::slowdown:
        break;
    case phase::slow_start:
        // LEDBAT++ leaves slow start at three quarters of the target, before overshooting it.
        if (foreground) window_ = min;
        if (foreground || queue >= 0.75 * target)
            end_phase(now_us);
        else
            window_ += grow * b;
        break;
    case phase::ramp:
        // Back to the window it gave up unless the queue is over the target: stopping at
        // three quarters of it (slow start's rule) handed this flow's share to whoever had
        // not slowed down; ramping regardless took the link back from a cubic flow that had
        // just arrived.
        if (foreground) window_ = min;
        if (foreground || window_ >= ssthresh_ || queue > target)
            end_phase(now_us);
        else
            window_ += grow * b;
        break;
    case phase::avoidance: {
        if (queue <= target) decrease_started_us_ = -1;
        if (foreground) {
            window_ = min;
        } else if (queue > target) {
            // LEDBAT++'s multiplicative decrease, scaled to the path: per round trip
            // W += GAIN - C * W * (delay/target - 1) * min(1, target / base round trip), at
            // most halving. The excess queue is (delay - target) / round trip of the window;
            // on a path longer than the target LEDBAT++'s (delay/target - 1) overstates it —
            // at 200 ms it took half the window for an excess of a tenth, and the link
            // refilled for seconds (simulated at 20 Mbit/s: 0.81 of the link alone, 0.95
            // scaled; the configured target, not a shallow buffer's, sets the scale, so a
            // shallow buffer on a short path keeps the full decrease). The constant increase
            // against a decrease proportional to W is what makes flows that see the same
            // queue converge to equal windows. C = 4, not LEDBAT++'s 1: a cubic flow that
            // left slow start early (HyStart sees our queue) grows slowly and holds the queue
            // only a little over the target; with C = 1 the transfer kept over a quarter of
            // the link for 2.5 s against it.
            //
            // One round trip of answers decreases, then the next round trip's only waits: the
            // delay those answers carry was queued before the decrease took effect. Decreasing
            // on them too halved the window again and again on a long path (at 80 ms, from
            // 1.2 × the bandwidth-delay product to 0.4 × in one cycle: 0.83 of the link).
            std::int64_t sent_us = now_us - rtt_us;
            if (sent_us < hold_decrease_until_sent_us_) {
                // sent before the last decrease ended: its delay says nothing new
            } else if (decrease_started_us_ < 0 || sent_us < decrease_started_us_) {
                if (decrease_started_us_ < 0) decrease_started_us_ = now_us;
                // LEDBAT++'s increase term, held (as below) while a foreground flow was here lately:
                // at the minimum window one answer's share of it outweighs the decrease.
                double excess = (queue / target - 1.0) * std::min(1.0, static_cast<double>(config_.target_us) / static_cast<double>(base_rtt_us_));
                double gain = now_us >= foreground_until_us_ ? grow * static_cast<double>(config_.gain_bytes) * b / window_ : 0.0;
                window_ += gain - std::min(0.5, decrease_gain * excess) * b;
            } else {
                decrease_started_us_ = -1;  // a round trip of it: see what it did
                hold_decrease_until_sent_us_ = now_us;
            }
        } else if (queue < 0.25 * target) {
            // The queue is nearly empty: whoever held it left. A block more per round trip,
            // additive, so flows stay fair. Refilling a path it yielded, an eighth of what the
            // path carried lately (its rate times this round trip and the target) if that is
            // more: eight round trips to refill, and no step overshoots by more than an eighth
            // of the path. (A block per round trip took 40 round trips at 100 Mbit/s and
            // 200 ms; doubling back to the path's window overshot by the round trip its queue
            // took to show.) Only then: each flow's own rate sets the step, and flows that
            // share a path would grow unequally. Below a step per round trip, at most one
            // request per answer: a jump from the minimum straight to four requests overshot
            // into the foreground rule, a cycle. In bytes, not requests: a request may be a
            // part of a block.
            double carried = refilling_ ? max_rate_ * (smoothed_delay_us_ + target) : 0;
            double step = std::max(static_cast<double>(config_.refill_bytes), carried / 8);
            window_ += grow * std::min(b, step * b / window_);
            // Far from refilled, the next slowdown stays a spacing away even once the refill
            // is over: a queue that late answers inflate can end the refill early. (96
            // simulated refills at 200 ms with answers 3-10 ms late: 23 slowed down on the way
            // with this rule alone, 39 with the one in send_at alone, 3 with both.)
            if (window_ < carried / 2 && next_slowdown_us_ >= 0)
                next_slowdown_us_ = std::max(next_slowdown_us_, now_us + slowdown_spacing * round_trip_us());
        } else if (now_us >= foreground_until_us_) {
            // Between a quarter of the target and the target: the additive increase. Not
            // while a foreground flow filled the queue lately: after each of its losses cubic
            // cuts its window by 30 % and the queue falls under the target for the second or
            // more it takes to regrow, and this flow grew into every trough — simulated at
            // 100 Mbit/s with a 20 ms buffer it kept 16 % of the link from cubic, 4 % held.
            // An emptied queue (the branch above) still says the foreground flow left.
            window_ += grow * static_cast<double>(config_.gain_bytes) * b / window_;
        }
        break;
    }
    }
    window_ = std::clamp(window_, static_cast<double>(config_.min_window), static_cast<double>(config_.max_window));
    measure_rate(bytes, now_us);
    update_yielding(now_us);
}

void ledbat::measure_rate(std::uint64_t bytes, std::int64_t now_us) {
    if (rate_since_us_ < 0) {
        rate_since_us_ = now_us;  // this answer's bytes arrived before the interval
        return;
    }
    rate_bytes_ += static_cast<double>(bytes);
    auto elapsed = static_cast<double>(now_us - rate_since_us_);
    if (elapsed < std::max(smoothed_delay_us_, current_window_us)) return;
    last_rate_ = rate_bytes_ / elapsed;
    if (!yielding_) {
        if (now_us >= max_rate_until_us_) max_rate_ = 0;
        max_rate_ = std::max(max_rate_, rate_bytes_ / elapsed);
        max_rate_until_us_ = now_us + base_minutes * minute_us;
    }
    rate_since_us_ = now_us;
    rate_bytes_ = 0;
}

void ledbat::update_yielding(std::int64_t now_us) {
    auto queue = queue_delay_us();
    // "A few requests" of the smallest size: under a standing queue the window settles
    // near one request (the additive increase there equals the largest decrease), not at
    // the minimum, which only the foreground rule reaches.
    double request = static_cast<double>(std::max(config_.min_window, min_request_bytes));
    double small = 4.0 * request;
    if (!yielding_ && phase_ == phase::avoidance && queue > target_us() && window_ <= 2.0 * request)
        yielding_ = refilling_ = true;
    else if (yielding_ && (queue < target_us() / 2 || window_ > small))
        yielding_ = false, refill_started_us_ = now_us;
    // The path is full again once its own queue is back and its window at half of what the
    // path carried: a queue alone ended the refill early — a fresh connection's slow start
    // (peer_link::renew) queued 13 ms for a round trip at 200 ms in the lab, and the periodic
    // slowdown put off through the yield then ran in the middle of the refill. After
    // refill_round_trips the queue alone says so: what the path carried may be more than
    // this flow's share now (another background flow arrived), and a refill that never ended
    // would never slow down — the slowdowns keep a latecomer's base true.
    else if (refilling_ && !yielding_ && queue >= target_us() / 2 &&
             (window_ >= max_rate_ * (smoothed_delay_us_ + static_cast<double>(target_us())) / 2 ||
              now_us - refill_started_us_ >= refill_round_trips * round_trip_us()))
        refilling_ = false;
}

}  // namespace pd::net
