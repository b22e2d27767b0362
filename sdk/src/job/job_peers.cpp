// The job's side of discovery and the swarm (job.h): discovery rounds, the swarm's events,
// the peer tick that refreshes bitmaps, demotes silent holders and notices a stall, and the
// settling of the first round before the origin opens.
#include "job/job.h"

#include <boost/asio/post.hpp>

namespace pd::core {

namespace asio = boost::asio;
using peer::peer_slot;

// A discovery round: static peers and what discovery backends find (their calls block, so
// they run on a source I/O thread), and the origin policy asked again (the office's RVP may
// have changed); then the swarm connects every new address. The round ends when each
// connection has answered its first HAVE or failed.
void job::discover_peers() {
    if (swarm_->busy() || state_ != PD_JOB_RUNNING) return;
    // Without a fleet key there is no peer to trust; blocks larger than the wire carries
    // cannot come from one.
    if (!session_.fleet_key() || manifest_->block_size > peer::wire::max_block_bytes) {
        settling_ = false;
        return;
    }
    swarm_->begin_round();
    auto backends = session_.plugins().backends();
    asio::post(session_.source_io(), [self = shared_from_this(), candidates = settings_.static_peers, backends]() mutable {
        auto ref = self->content_ref();
        for (auto &b : backends)
            for (auto &a : b->find_peers(ref)) candidates.push_back(a);
        std::string refused = source_chain::refused_by(backends, ref);
        asio::post(self->session_.net(), [self, candidates, refused] {
            if (self->state_ == PD_JOB_RUNNING) self->sources_->policy_answer(refused);
            self->swarm_->consider(candidates);
        });
    });
}

void job::on_round_done() {
    settle_initial_discovery();  // after the peers are in: they come before the origin
    dispatch();
    maybe_finish();
}

void job::on_availability(const peer_slot &peer, int sign) { picker_->count(peer.have, !peer.wan(), sign); }

void job::on_blocks_gained(const peer_slot &peer, const std::vector<std::uint64_t> &fresh) {
    picker_->count_gained(peer.have, fresh, !peer.wan());
}

void job::on_peer_joined(const std::shared_ptr<peer_slot> &) { dispatch(); }

void job::on_peer_gained(const std::shared_ptr<peer_slot> &peer, bool refreshed) {
    if (!refreshed) return dispatch_to(peer);
    settle_initial_discovery();
    dispatch();
}

void job::on_peer_failed(const std::string &why) { note_fallback(why); }

void job::raise_to_foreground(const std::string &why) {
    if (foreground_ || !active()) return;
    foreground_ = true;
    reload_settings();
    if (swarm_) swarm_->reconnect_wan("raised to the foreground class");
    emit(PD_EVENT_TRANSFER_RAISED, "transfers from other offices raised to the foreground class: " + why);
}

void job::on_yield(bool yielding, const std::string &message) {
    emit(yielding ? PD_EVENT_TRANSFER_PAUSED : PD_EVENT_TRANSFER_RESUMED, message);
}

// The origin waits for the first discovery round and, when a discovery backend is loaded,
// for peer.coop_settle_ms after the start and every peer's HAVE refreshed once after the
// first round (or three refresh periods passed), so devices starting together see each
// other as fetching before anyone computes the origin split.
void job::settle_initial_discovery() {
    if (!settling_) return;
    std::int64_t now = store::now_ms(), first_round = swarm_->first_round_ms();
    // A round that never ends (a peer that completes HELLO and then leaves its HAVE
    // unanswered once held a job at 0 bytes) holds the origin back a connect and a request.
    bool overdue = now - started_ms_ >= settings_.connect_timeout_ms + settings_.request_timeout_ms;
    if (!swarm_->first_round_done() && !overdue) return;
    bool finders = false;
    for (auto &b : session_.plugins().backends()) finders |= b->can_find_peers();
    bool refreshed = swarm_->all_refreshed_since(first_round + settings_.refresh_ms);
    bool settled = overdue || (now - started_ms_ >= settings_.coop_settle_ms &&
                               (refreshed || now - first_round >= 3 * settings_.refresh_ms));
    if (!finders || settled) {
        settling_ = false;
        session_.log(PD_LOG_DEBUG, "job " + std::to_string(id_) + ": origin opens after " + std::to_string(now - started_ms_) +
                                       " ms of discovery, " + std::to_string(swarm_->peers().size()) + " peers");
        dispatch();
    } else {
        discover_peers();  // a second look before the origin opens up
    }
}

void job::on_peer_tick() {
    peer_timer_armed_ = false;
    if (state_ != PD_JOB_RUNNING || shutting_down_) return;
    settle_initial_discovery();
    std::int64_t now = store::now_ms();
    if (now - last_discovery_ms_ >= settings_.discovery_interval_ms) {
        last_discovery_ms_ = now;
        discover_peers();
    }
    swarm_->refresh_stale(now);  // peers' bitmaps go stale as they download too
    swarm_->demote_silent(now);  // holders that answer nothing: their pieces go elsewhere
    // A job never stalls silently.
    std::int64_t stall = settings_.stall_timeout_ms;
    bool stalled = !picker_->queue_empty() && now - last_block_ms_ > stall && !sources_->stream();
    if (stalled && !sources_->withheld_by().empty() && !sources_->policy_overridden()) {
        // Held off the origin by a backend and the peers brought nothing: fall back anyway.
        note_fallback("no progress for " + std::to_string(stall) + " ms from peers while " + sources_->withheld_by() +
                      " kept this device off the origin: falling back to the origin");
        last_block_ms_ = now;
        sources_->override_policy();
    } else if (stalled && !sources_->opening() && picker_->in_flight() == 0) {
        std::string why = "no progress for " + std::to_string(stall) + " ms: no peer holds the missing blocks";
        for (auto &r : fallback_reasons_) why += "; " + r;
        return fail(PD_E_NO_SOURCE, why);
    }
    dispatch();
    arm_peer_timer();
}

void job::arm_peer_timer() {
    if (peer_timer_armed_ || state_ != PD_JOB_RUNNING) return;
    peer_timer_armed_ = true;
    peer_timer_.expires_after(std::chrono::milliseconds(settings_.refresh_ms));
    peer_timer_.async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
        if (ec) {
            self->peer_timer_armed_ = false;
            return;
        }
        self->on_peer_tick();
    });
}

}  // namespace pd::core
