// A download job: brings one content into the store block by verified block, then
// re-verifies it end to end and delivers it. All members are owned by the network
// thread; worker tasks get copies of what they need and post results back.
#pragma once

#include "core/peer_link.h"
#include "core/session.h"

#include <peerdist/job.h>

#include <boost/asio/steady_timer.hpp>

#include "util/error.h"

#include <deque>
#include <map>
#include <set>
#include <optional>

namespace pd::core {

class job : public std::enable_shared_from_this<job> {
public:
    job(session &s, std::uint64_t id, std::shared_ptr<const content::manifest> m, job_request request);
    ~job();

    std::uint64_t id() const { return id_; }
    const store::hash &content() const { return manifest_->id; }
    pd_job_state state() const { return state_; }
    bool active() const;
    // True while worker tasks or flushes are outstanding.
    bool busy() const { return in_flight_ || flushing_ || finalizing_ || preparing_ || opening_ || discovering_ || connecting_; }

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
    void note_fallback(const std::string &reason);

    // Internal, public only for the worker-side helpers in job.cpp.
    struct source_stream;
    struct peer_request;
    struct peer_slot {
        std::shared_ptr<peer_link> link;
        std::vector<std::uint8_t> have;  // its verified blocks, as last reported
        std::int64_t have_ms = 0;        // when `have` was last refreshed
        std::int64_t grew_ms = 0;        // when its bitmap last gained blocks
        bool fetching = false;           // downloading the content too: shares the origin work
        bool banned = false, have_pending = false;
        unsigned requests = 0;           // block requests outstanding on the link
        double rate = 0;                 // bytes/s: moving average over answered requests
        std::int64_t last_answer_ms = 0;
        std::uint32_t source_class = PD_SOURCE_LAN;  // WAN: another office's device
    };
    struct piece {
        std::uint64_t first_block;
        std::uint32_t block_count;
    };
    struct piece_result {
        std::uint32_t index = 0;  // into pieces_
        piece p{};
        std::shared_ptr<source_stream> stream;  // the origin-side source the bytes came from, or
        std::shared_ptr<peer_slot> peer;        // the peer they came from
        std::uint32_t source_class = PD_SOURCE_ORIGIN;
        std::string source_name;
        std::string rejected;                   // a peer's REJECT reason
        std::vector<std::uint64_t> good;
        std::vector<std::uint64_t> bad;
        std::uint64_t bytes_fetched = 0;
        int error = 0;
        bool fatal = false;    // a local failure (disk): the job fails
        bool aborted = false;  // stopped by pause/cancel: requeue silently
        std::string message;
    };

private:
    void on_prepared(platform::file file, std::vector<std::uint8_t> verified, std::uint64_t verified_bytes);
    void open_next_source();
    pd_content_ref content_ref(const char *origin) const;
    std::string origin_refused_by() const;
    void withhold_origin(const std::string &who);
    void notify_finished();
    void on_source_opened(std::shared_ptr<source_stream> stream, std::vector<std::string> reasons, int last_code);
    void dispatch();
    void dispatch_to(const std::shared_ptr<peer_slot> &peer);
    std::vector<std::uint64_t> wanted_blocks(const piece &p) const;
    void fetch_from_origin(std::uint32_t index);
    void fetch_from_peer(std::uint32_t index, const std::shared_ptr<peer_slot> &peer);
    // Rarest piece in todo_ the peer holds (ties broken per device, so devices spread out),
    // or in end-game an in-flight piece it could duplicate; npos when none.
    std::uint32_t choose_piece(const peer_slot &peer) const;
    unsigned pipeline_depth(const peer_slot &peer) const;
    bool holds(const peer_slot &peer, std::uint32_t index) const;
    void set_peer_have(peer_slot &peer, std::vector<std::uint8_t> have, bool fetching);
    void count_availability(const peer_slot &peer, int sign);
    void take_from_todo(std::uint32_t index);
    void discover_peers();
    void connect_peer(const std::string &address, std::uint32_t source_class);
    void on_discovery_round_done();
    void refresh_have(const std::shared_ptr<peer_slot> &peer);
    void on_peer_tick();
    void arm_peer_timer();
    void remove_peer(const std::shared_ptr<peer_slot> &peer, const std::string &why);
    // A failed peer: an event, a backoff, then removal.
    void drop_peer(const std::shared_ptr<peer_slot> &peer, const std::string &why);
    // Forget a failed address; discovery may bring it back after an exponential backoff.
    void forget_peer(const std::string &address);
    void ban_peer(const std::shared_ptr<peer_slot> &peer);
    void close_links(const std::string &why);
    // Cooperative origin split: should this device fetch the piece from the origin now?
    bool origin_turn(const piece &p);
    void mark_fetching(bool on);
    void settle_initial_discovery();
    void on_piece_done(piece_result r);
    void on_block_written(std::uint64_t block, std::uint32_t source_class);
    void source_failed(const std::string &reason);
    void schedule_flush(bool now);
    void on_flushed(std::uint64_t verified_bytes, std::vector<std::uint64_t> blocks, std::string error, int code);
    void maybe_finish();
    void finalize();
    void verify_blocks(const platform::file &file, std::uint64_t first, std::uint64_t last);
    void deliver(std::optional<error> verify_error);
    void fail(int code, const std::string &message);
    void emit(pd_event_type type, const std::string &message, int code = PD_OK);
    void emit_progress(bool force);
    bool block_have(std::uint64_t b) const { return (have_[b / 8] >> (b % 8)) & 1; }
    void set_have(std::uint64_t b) { have_[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8)); }

    session &session_;
    std::uint64_t id_;
    std::shared_ptr<const content::manifest> manifest_;
    job_request request_;
    pd_job_state state_ = PD_JOB_QUEUED;
    std::shared_ptr<platform::file> file_;

    std::vector<std::uint8_t> have_;        // durable and verified
    std::vector<std::uint8_t> written_;     // verified and written, maybe not durable yet
    std::vector<std::uint8_t> resumed_;     // verified before this run started
    bool reverify_all_ = true;
    std::vector<piece> pieces_;             // what this run must fetch
    std::vector<std::uint32_t> todo_;       // indexes of pieces_ with no fetch outstanding
    std::vector<std::uint8_t> flights_;     // per piece: fetches outstanding (2 in end-game)
    std::vector<std::int64_t> flight_ms_;   // per piece: when its latest fetch was sent
    std::vector<std::weak_ptr<peer_slot>> flight_peer_;  // per piece: the peer asked last (empty: origin)
    std::vector<std::uint16_t> avail_;      // per piece: usable peers holding all of it
    std::vector<std::uint16_t> avail_lan_;  // the same, LAN peers only (WAN peers get the rest)
    std::vector<std::uint64_t> pending_durable_;
    std::uint64_t pending_bytes_ = 0;

    std::vector<std::shared_ptr<plugin_host::backend>> sources_;
    std::size_t next_source_ = 0;
    std::shared_ptr<source_stream> stream_;
    std::vector<std::string> fallback_reasons_;

    std::vector<std::shared_ptr<peer_slot>> peers_;
    // The background window shared by the links to other offices (core/background_path.h).
    std::shared_ptr<background_path> wan_path_;
    std::set<std::string> known_peers_;     // connected, connecting, or this device itself
    // Peers that failed (unreachable, silent, broken): address -> (failures, not before ms).
    std::map<std::string, std::pair<int, std::int64_t>> peer_backoff_;
    unsigned connecting_ = 0;
    bool discovering_ = false, initial_discovery_ = true, first_round_done_ = false, peer_timer_armed_ = false;
    boost::asio::steady_timer peer_timer_;
    std::int64_t last_discovery_ms_ = 0, last_progress_at_ = 0, first_round_ms_ = 0;
    unsigned origin_in_flight_ = 0;
    bool fetching_flag_ = false;
    std::string origin_withheld_by_;        // a backend's "not now" for the origin
    bool stall_override_ = false;           // stalled: the origin is used whatever backends say
    bool finished_notified_ = false;

    unsigned in_flight_ = 0;
    bool preparing_ = false, opening_ = false, flushing_ = false, flush_again_ = false, finalizing_ = false;
    bool shutting_down_ = false;
    boost::asio::steady_timer flush_timer_;
    bool flush_timer_armed_ = false;

    std::uint64_t bytes_verified_ = 0;
    std::uint64_t bytes_by_source_[PD_SOURCE_CLASS_COUNT] = {};
    std::uint64_t bytes_fetched_ = 0;
    std::uint64_t blocks_rejected_ = 0;
    std::uint64_t fallbacks_ = 0;
    int error_code_ = PD_OK;
    std::string message_;
    std::int64_t started_ms_ = 0, finished_ms_ = 0, last_progress_ms_ = 0;
};

}  // namespace pd::core
