#include "peer/background_path.h"

#include "peer/peer_link.h"
#include "util/clock.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace pd::peer {

background_path::background_path(boost::asio::io_context &io, const net::ledbat_config &config, target_fn target,
                                 budget_fn budget)
    : cc_(config), target_(std::move(target)), budget_(std::move(budget)), timer_(io) {}

std::uint32_t background_path::join(const std::shared_ptr<peer_link> &link) {
    links_.push_back(link);
    return next_source_++;
}

void background_path::leave(std::uint32_t source, std::uint64_t abandoned) {
    cc_.on_abandoned(abandoned);
    cc_.forget_source(source);
}

bool background_path::yield_changed(std::int64_t now_us) {
    constexpr std::int64_t hold_us = 1'000'000;
    if (cc_.yielding() == yielding_) {
        yield_seen_us_ = -1;
        return false;
    }
    if (yield_seen_us_ < 0) yield_seen_us_ = now_us;
    if (now_us - yield_seen_us_ < hold_us) return false;
    yielding_ = cc_.yielding();
    yield_seen_us_ = -1;
    return true;
}

void background_path::after_answer(peer_link &from, bool lost, std::int64_t now_us) {
    if (lost) from.renewal_.on_loss(cc_.yielding());
    if (cc_.yielding() == controller_yielding_) return;
    controller_yielding_ = cc_.yielding();
    if (controller_yielding_) return;
    for (auto &w : links_)
        if (auto l = w.lock(); l && l->open() && l->renewal_.yield_ended(now_us)) l->renew();
}

void background_path::pump() {
    if (timer_armed_) return;
    links_.erase(std::remove_if(links_.begin(), links_.end(),
                                [](auto &w) {
                                    auto l = w.lock();
                                    return !l || l->failed_;
                                }),
                 links_.end());
    if (target_) cc_.set_target_us(target_());
    for (;;) {
        // The link whose oldest request with blocks left to ask for came first: pieces finish
        // in the order the job asked for them, one after another, rather than all of them
        // crawling together. A child office can only pull the pieces its parent completed.
        // But first a link with blocks to ask for and none in flight: the serving peer's TCP
        // restarts its window from 10 segments after an idle spell longer than its
        // retransmission timeout, and a link that waited while another finished its piece
        // then took four round trips to get back up to speed — nothing at 0.2 ms, half the
        // link at 80 ms (measured in the hierarchy lab: branches at 1.6-2.1 x F/W).
        std::shared_ptr<peer_link> next;
        std::uint64_t first = 0;
        bool next_idle = false;
        for (auto &w : links_) {
            auto l = w.lock();
            if (!l || !l->open()) continue;
            auto order = l->oldest_unsent();
            if (!order) continue;
            bool idle = l->paced_in_flight() == 0;
            if (!next || (idle && !next_idle) || (idle == next_idle && *order < first))
                next = std::move(l), first = *order, next_idle = idle;
        }
        if (!next) return;
        auto t = steady_now_us();
        auto part = static_cast<std::uint32_t>(cc_.request_bytes(next->layout_.block_size));
        std::uint64_t bytes = next->next_paced_bytes(part);
        std::int64_t at = cc_.send_at(bytes, t);
        if (at == std::numeric_limits<std::int64_t>::max()) return;  // the next answer pumps
        std::int64_t wait_ms = 0;
        if (at > t) wait_ms = (at - t + 999) / 1000;
        else if (budget_) wait_ms = budget_(bytes);
        if (wait_ms > 0) {
            timer_armed_ = true;
            timer_.expires_after(std::chrono::milliseconds(wait_ms));
            timer_.async_wait([weak = weak_from_this()](const boost::system::error_code &ec) {
                auto self = weak.lock();
                if (!self || ec) return;
                self->timer_armed_ = false;
                self->pump();
            });
            return;
        }
        cc_.on_sent(bytes, t);
        next->send_next_paced(part);
    }
}

}  // namespace pd::peer
