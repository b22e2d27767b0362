// A download job: brings one content into the store block by verified block, then re-verifies
// it end to end and delivers it. The job holds the transitions; its parts own their state:
//
//   piece_picker   what is missing, in flight, and held by whom (job/piece_picker.h)
//   swarm          the peers, their bitmaps, rates, bans and backoff (peer/swarm.h)
//   source_chain   the backends that serve data, and the origin policy (job/source_chain.h)
//   flusher        durable batches and the verified index (job/flusher.h)
//
// States (pd_job_state): QUEUED -> RUNNING -> VERIFYING -> COMPLETED, with PAUSED, FAILED and
// CANCELLED. While RUNNING the origin stays closed until the first discovery round settled
// (`settling_`), so peers found there come first. Everything here runs on the network thread;
// worker tasks get copies of what they need and post their results back.
#pragma once

#include "core/session.h"
#include "job/fetch.h"
#include "job/flusher.h"
#include "job/job_settings.h"
#include "job/piece_picker.h"
#include "job/source_chain.h"
#include "peer/swarm.h"
#include "util/error.h"

#include <peerdist/job.h>

#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>

namespace pd::core {

class job : public std::enable_shared_from_this<job>,
            public flusher::listener,
            public source_chain::listener,
            public peer::swarm::listener {
public:
    job(session &s, std::uint64_t id, std::shared_ptr<const content::manifest> m, job_request request);
    ~job() override;

    std::uint64_t id() const { return id_; }
    const store::hash &content() const { return manifest_->id; }
    pd_job_state state() const { return state_; }
    bool active() const;
    // True while worker tasks, fetches, flushes or connections are outstanding.
    bool busy() const;

    void start();
    void pause();
    void resume();
    void cancel();
    // Session shutdown: stop fetching; blocks already written are flushed by flush_now().
    void stop_for_shutdown();
    // Synchronously makes written blocks durable and records them (shutdown path).
    void flush_now();
    void status(pd_job_status &out) const;
    // A backend moved from one of its sources to another: event + statistics.
    void note_fallback(const std::string &reason, int code = PD_OK);
    // A setting changed: the job reads its snapshot again.
    void reload_settings() {
        settings_ = job_settings::read(session_.config());
        if (foreground_) settings_.wan_background = false;
        if (swarm_) swarm_->apply(settings_);
    }
    // From now on the job's transfers from other offices use the foreground class (a
    // deadline): its background links reconnect as foreground ones. Says so in a
    // PD_EVENT_TRANSFER_RAISED once.
    void raise_to_foreground(const std::string &why);
    // The device with this key (hex) was revoked: the job lets its peer links go.
    void drop_device(const std::string &device_key) {
        if (swarm_) swarm_->drop_device(device_key);
    }

private:
    bool foreground_ = false;  // raised by an authority: WAN transfers in the foreground class

    // Preparing: space reserved, data file open, resume state read.
    void on_prepared(platform::file file, block_bitmap verified, std::uint64_t verified_bytes);
    plugin_host::content_ref content_ref() const;

    // Fetching.
    void dispatch();
    void dispatch_to(const std::shared_ptr<peer::peer_slot> &peer);
    void fetch_from_origin(std::uint32_t index);
    void fetch_from_peer(std::uint32_t index, const std::shared_ptr<peer::peer_slot> &peer);
    bool record_block(std::uint64_t block, std::uint32_t source_class);
    void on_block_written(std::uint64_t block, std::uint32_t source_class);
    void on_piece_done(piece_result r);
    void source_failed(const std::string &why);
    void reject_blocks(const piece_result &r);
    void mark_fetching(bool on);

    // Discovery and the peer tick.
    void discover_peers();
    void settle_initial_discovery();
    void on_peer_tick();
    void arm_peer_timer();

    // Finishing.
    void flush(bool now);
    void maybe_finish();
    void finalize();
    void deliver(std::optional<error> verify_error);
    void notify_finished();
    void fail(int code, const std::string &message);
    // Ends fetching: stops the timers, the origin stream and the peer links.
    void stop_fetching(const std::string &why);
    void emit(pd_event_type type, const std::string &message, int code = PD_OK);
    void emit_progress(bool force);

    // flusher::listener
    void on_durable(const std::vector<std::uint64_t> &blocks, std::uint64_t verified_bytes) override;
    void on_flush_failed(int code, const std::string &message) override;
    // source_chain::listener
    void on_source_opened(std::shared_ptr<plugin_host::stream> opened, std::vector<std::string> reasons,
                          int last_code) override;
    void on_origin_withheld(const std::string &who) override;
    // swarm::listener
    bool wants_peers() const override { return active() && !shutting_down_; }
    void on_availability(const peer::peer_slot &peer, int sign) override;
    void on_blocks_gained(const peer::peer_slot &peer, const std::vector<std::uint64_t> &fresh) override;
    void on_peer_joined(const std::shared_ptr<peer::peer_slot> &peer) override;
    void on_peer_gained(const std::shared_ptr<peer::peer_slot> &peer, bool refreshed) override;
    void on_peer_failed(const std::string &why) override;
    void on_round_done() override;
    void on_yield(bool yielding, const std::string &message) override;

    session &session_;
    const std::uint64_t id_;
    const std::shared_ptr<const content::manifest> manifest_;
    const job_request request_;
    job_settings settings_;
    pd_job_state state_ = PD_JOB_QUEUED;
    std::shared_ptr<platform::file> file_;

    // The parts; made once the data file is open (on_prepared).
    std::unique_ptr<piece_picker> picker_;
    std::shared_ptr<peer::swarm> swarm_;
    std::shared_ptr<source_chain> sources_;
    std::shared_ptr<flusher> flusher_;
    std::shared_ptr<block_sink> sink_;  // blocks from peers, verified and written

    block_bitmap resumed_;              // verified before this run started
    unsigned origin_in_flight_ = 0;
    bool preparing_ = false, finalizing_ = false, shutting_down_ = false;
    bool settling_ = true;              // the origin waits for the first discovery round
    bool fetching_flag_ = false;        // told the peer server we fetch (HAVE's flag)
    bool finished_notified_ = false;
    bool peer_timer_armed_ = false;
    boost::asio::steady_timer peer_timer_;
    std::int64_t last_discovery_ms_ = 0, last_block_ms_ = 0;

    // Statistics (pd_job_status).
    std::uint64_t bytes_by_source_[PD_SOURCE_CLASS_COUNT] = {};
    std::uint64_t bytes_fetched_ = 0, blocks_rejected_ = 0, fallbacks_ = 0;
    std::vector<std::string> fallback_reasons_;
    int error_code_ = PD_OK;
    std::string message_;
    std::int64_t started_ms_ = 0, finished_ms_ = 0, last_progress_ms_ = 0;
};

}  // namespace pd::core
