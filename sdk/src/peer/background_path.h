// The background class's window for one bottleneck, shared by every link that pulls across it.
//
// A job in a branch office pulls over its WAN link from several peers of the parent office.
// Those links share one bottleneck, so they share one LEDBAT window: samples from every peer
// (each less that peer's own base: their clocks differ) feed one controller, and requests
// leave on whichever link as the window opens. With a window per link, the few blocks a 25 ms
// target allows at WAN rates were split into shares below one block each, and each link fell
// back to spacing single requests a round trip apart: the link idled between them (measured in
// the hierarchy lab, docs/background-transport.md "One window per path"). One window is also
// what the office's traffic should see: one background flow, not one per peer. Requests go out
// in the order the job made them, whichever link they are on, so pieces complete one after
// another: a child office pulls only what its parent office has completed. The exception: a
// link with blocks to ask for and none in flight is served first, so no serving peer's TCP
// sits idle long enough to restart its window (at 80 ms that cost half the link).
//
// On the network thread, like the links.
#pragma once

#include "net/ledbat.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace pd::peer {

class peer_link;

// When a link should renew its connection (peer_link::renew): once the path stops yielding,
// if the serving peer's TCP lost packets of this link's answers during the yield — its
// slow-start threshold fell with them, and it would regrow linearly for seconds at a long
// round trip (docs/background-transport.md "A fresh connection after a lossy yield") — and
// at most once per min_interval_us, so a path that yields often does not churn connections.
class lossy_yield_rule {
public:
    static constexpr std::int64_t min_interval_us = 30'000'000;
    // A paced answer showed a loss; `yielding`: the path's controller yields now.
    void on_loss(bool yielding) { lost_while_yielding_ |= yielding; }
    // The path stopped yielding at `now_us`: true when the link should renew now.
    bool yield_ended(std::int64_t now_us) {
        if (!std::exchange(lost_while_yielding_, false)) return false;
        if (renewed_us_ != never && now_us - renewed_us_ < min_interval_us) return false;
        renewed_us_ = now_us;
        return true;
    }

private:
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::min();
    bool lost_while_yielding_ = false;
    std::int64_t renewed_us_ = never;
};

class background_path : public std::enable_shared_from_this<background_path> {
public:
    // Returns 0 when `bytes` may leave now (and takes them), otherwise how many ms to wait:
    // the office's WAN budget.
    using budget_fn = std::function<std::int64_t(std::uint64_t bytes)>;
    // The target queueing delay (µs) now: settings change at run time.
    using target_fn = std::function<std::int64_t()>;

    background_path(boost::asio::io_context &io, const net::ledbat_config &config, target_fn target = nullptr,
                    budget_fn budget = nullptr);
    background_path(const background_path &) = delete;
    background_path &operator=(const background_path &) = delete;

    const net::ledbat &controller() const { return cc_; }

private:
    friend class peer_link;
    // A link joins when it turns background; returns its source id for delay samples.
    std::uint32_t join(const std::shared_ptr<peer_link> &link);
    // A link failed or closed with `abandoned` bytes requested and never answered.
    void leave(std::uint32_t source, std::uint64_t abandoned);
    // Sends requests, oldest first, while the window and the budget allow; otherwise
    // waits for the next answer on any link, or arms the pacing timer.
    void pump();
    // After `from` read a paced answer at `now_us` (`lost`: it showed a loss): when the
    // controller stops yielding, links that lost packets during the yield renew
    // (lossy_yield_rule).
    void after_answer(peer_link &from, bool lost, std::int64_t now_us);

    net::ledbat cc_;
    target_fn target_;
    budget_fn budget_;
    std::vector<std::weak_ptr<peer_link>> links_;
    std::uint64_t next_order_ = 0;  // numbers the links' requests as the job makes them
    std::uint32_t next_source_ = 0;
    boost::asio::steady_timer timer_;
    bool timer_armed_ = false;
    // Whether the controller's yielding state changed for good: it must hold a second before it
    // is reported, so a transfer sharing the link with another background flow, whose window
    // hovers near the minimum, does not flap between paused and resumed events.
    bool yield_changed(std::int64_t now_us);
    bool yielding_ = false;  // last reported to the links' yield callbacks
    bool controller_yielding_ = false;  // the controller's state at the last answer
    std::int64_t yield_seen_us_ = -1;  // when the controller's state first differed from it
};

}  // namespace pd::peer
