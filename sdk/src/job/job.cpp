#include "job/job.h"

#include "util/hex.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace pd::core {

namespace asio = boost::asio;
using peer::peer_slot;

job::job(session &s, std::uint64_t id, std::shared_ptr<const content::manifest> m, job_request request)
    : session_(s), id_(id), manifest_(std::move(m)), request_(std::move(request)),
      settings_(job_settings::read(s.config())), peer_timer_(s.net()) {}

job::~job() = default;

bool job::active() const {
    return state_ == PD_JOB_QUEUED || state_ == PD_JOB_RUNNING || state_ == PD_JOB_PAUSED || state_ == PD_JOB_VERIFYING;
}

bool job::busy() const {
    return preparing_ || finalizing_ || (picker_ && picker_->in_flight()) || (flusher_ && flusher_->busy()) ||
           (sources_ && sources_->opening()) || (swarm_ && swarm_->busy());
}

plugin_host::content_ref job::content_ref() const {
    plugin_host::content_ref ref;
    ref.id = manifest_->id;
    ref.size = manifest_->size;
    ref.name = manifest_->name;
    ref.job_id = id_;
    return ref;
}

void job::emit(pd_event_type type, const std::string &message, int code) {
    auto e = make_event(type, id_, message.c_str());
    std::memcpy(e.content.bytes, manifest_->id.data(), 32);
    e.error_code = code;
    e.bytes_done = flusher_ ? flusher_->verified_bytes() : 0;
    e.bytes_total = manifest_->size;
    session_.emit(e);
}

void job::emit_progress(bool force) {
    std::int64_t now = store::now_ms();
    if (!force && now - last_progress_ms_ < settings_.progress_interval_ms) return;
    last_progress_ms_ = now;
    emit(PD_EVENT_JOB_PROGRESS, "");
}

void job::note_fallback(const std::string &reason, int code) {
    ++fallbacks_;
    fallback_reasons_.push_back(reason);
    emit(PD_EVENT_SOURCE_FALLBACK, reason, code);
}

void job::mark_fetching(bool on) {
    if (on == fetching_flag_) return;
    fetching_flag_ = on;
    session_.set_fetching(manifest_->id, on);
}

// ---- preparing ----

void job::start() {
    started_ms_ = store::now_ms();
    state_ = PD_JOB_RUNNING;
    mark_fetching(true);
    emit(PD_EVENT_JOB_STARTED, manifest_->name);
    preparing_ = true;
    auto busy = session_.busy_contents();
    busy.erase(manifest_->id);
    asio::post(session_.workers(), [self = shared_from_this(), busy] {
        try {
            auto &m = *self->manifest_;
            self->session_.reserve_space(m.id, m.size, busy, self->id_);
            auto file = self->session_.store().open_data(m.id, m.size);
            auto rec = self->session_.store().get(m.id);
            if (!rec) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content vanished from the cache index");
            asio::post(self->session_.net(), [self, f = std::make_shared<platform::file>(std::move(file)),
                                              bits = std::move(rec->verified), vb = rec->verified_bytes]() mutable {
                self->preparing_ = false;
                self->on_prepared(std::move(*f), block_bitmap(std::move(bits), self->manifest_->block_count()), vb);
            });
        } catch (const error &e) {
            asio::post(self->session_.net(), [self, code = e.code(), msg = std::string(e.what())] {
                self->preparing_ = false;
                self->fail(code, msg);
            });
        }
    });
}

void job::on_prepared(platform::file file, block_bitmap verified, std::uint64_t verified_bytes) {
    if (!active()) return;
    auto self = shared_from_this();
    file_ = std::make_shared<platform::file>(std::move(file));
    sink_ = std::make_shared<block_sink>(manifest_, file_, session_.workers(), session_.net());
    resumed_ = verified;
    bytes_by_source_[PD_SOURCE_LOCAL] = verified_bytes;
    // A piece is one REQUEST to a peer: never more blocks than the wire allows in one.
    std::uint64_t blocks_per_piece = std::min<std::uint64_t>(settings_.piece_bytes / manifest_->block_size,
                                                             peer::wire::max_request_blocks);
    picker_ = std::make_unique<piece_picker>(manifest_->block_count(), blocks_per_piece, verified);
    flusher_ = std::make_shared<flusher>(session_, manifest_->id, file_, verified, verified_bytes,
                                         std::weak_ptr<flusher::listener>(self));
    sources_ = std::make_shared<source_chain>(session_, content_ref(), request_.origin,
                                              std::weak_ptr<source_chain::listener>(self));
    swarm_ = std::make_shared<peer::swarm>(session_, manifest_->id, manifest_->layout(), id_,
                                           std::weak_ptr<peer::swarm::listener>(self));
    swarm_->apply(settings_);
    if (verified_bytes) emit_progress(true);
    if (picker_->done()) return maybe_finish();
    last_block_ms_ = last_discovery_ms_ = store::now_ms();
    discover_peers();
    arm_peer_timer();
    sources_->open_next();
}

// ---- sources ----

void job::on_source_opened(std::shared_ptr<plugin_host::stream> opened, std::vector<std::string> reasons, int last_code) {
    for (auto &r : reasons) note_fallback(r);
    if (!active()) {
        sources_->close();
        return;
    }
    if (!opened && (!swarm_->peers().empty() || swarm_->discovering())) {
        // Peers may still provide everything; the stall check fails the job if not. Without
        // an origin this device cannot take its share of the split: say so in HAVE.
        mark_fetching(false);
        return dispatch();
    }
    if (!opened) {
        std::string why = "no source can provide content " + to_hex(manifest_->id.data(), 32);
        if (sources_->none_loaded()) why += ": no backend plugin with a data source is loaded";
        for (auto &r : fallback_reasons_) why += "; " + r;
        // Failures after the last source keep that source's reason (e.g. origin content changed).
        bool specific = !(last_code == PD_E_NO_SOURCE || last_code == PD_E_PLUGIN || last_code == PD_E_GENERIC);
        return fail(specific ? last_code : (error_code_ ? error_code_ : PD_E_NO_SOURCE), why);
    }
    mark_fetching(true);
    dispatch();
}

// The stream in use failed: an event with the job's error code, and the next source.
void job::source_failed(const std::string &why) {
    note_fallback(why, error_code_);
    sources_->failed();
    if (state_ == PD_JOB_RUNNING) sources_->open_next();
}

// A backend keeps this device off the origin for now (hierarchy: another office fetches it);
// peers bring the content, and discovery rounds ask again.
void job::on_origin_withheld(const std::string &) {
    mark_fetching(false);
    dispatch();
}

// ---- fetching ----

// Fills one peer's pipeline.
void job::dispatch_to(const std::shared_ptr<peer_slot> &peer) {
    if (state_ != PD_JOB_RUNNING || shutting_down_ || !peer->usable()) return;
    piece_picker::peer_view view{peer->have, peer->wan(), false, peer->rate, session_.node_id(),
                                 static_cast<double>(settings_.piece_bytes), 0,
                                 [this](piece_picker::holder_id h) -> std::int64_t {
                                     auto holder = swarm_->find(h);
                                     return holder ? holder->last_answer_ms : -1;
                                 }};
    while (peer->requests < swarm_->pipeline_depth(*peer)) {
        view.idle = peer->requests == 0;
        view.now_ms = store::now_ms();
        auto index = picker_->choose_for(view);
        if (index == piece_picker::none) break;
        // The office WAN budget; a background link takes it block by block itself.
        if (peer->wan() && !peer->link->background() &&
            session_.take_wan_budget(picker_->at(index).block_count * static_cast<std::uint64_t>(manifest_->block_size)))
            break;  // the peer tick dispatches again once the budget refilled
        fetch_from_peer(index, peer);
    }
}

void job::dispatch() {
    if (state_ != PD_JOB_RUNNING || shutting_down_ || !picker_) return;
    // Peers first (LAN): the fastest choose first, each up to its pipeline depth.
    for (auto &peer : swarm_->fastest_first()) dispatch_to(peer);
    // The origin only for pieces no peer holds, after the first discovery round (peers
    // found there come first), and in turn with the devices fetching it too.
    if (settling_ || !sources_->stream()) return;
    std::int64_t now = store::now_ms();
    for (auto i : picker_->unheld()) {
        if (origin_in_flight_ >= settings_.max_origin_pieces) return;
        if (swarm_->origin_turn(picker_->at(i).first_block, session_.node_id(), now)) fetch_from_origin(i);
    }
    // What a demoted peer (silent while holding requests) has in flight is fetched again from
    // the origin; the first copy that verifies wins.
    for (auto &peer : swarm_->peers()) {
        if (!peer->demoted) continue;
        for (auto i : picker_->in_flight_only_at(peer->id)) {
            if (origin_in_flight_ >= settings_.max_origin_pieces) return;
            fetch_from_origin(i);
        }
    }
}

void job::fetch_from_origin(std::uint32_t index) {
    picker_->take(index, piece_picker::origin, store::now_ms());
    ++origin_in_flight_;
    piece_result r;
    r.index = index;
    r.piece = picker_->at(index);
    r.stream = sources_->stream();
    r.source_class = r.stream->source().source_class();
    r.source_name = r.stream->source().name();
    asio::post(session_.source_io(), [self = shared_from_this(), r = std::move(r), wanted = picker_->wanted(index)]() mutable {
        if (self->session_.job_should_stop(self->id_))
            r.aborted = true;
        else
            read_piece(*self->manifest_, *self->file_, *r.stream, wanted, r);
        asio::post(self->session_.net(), [self, r = std::move(r)]() mutable { self->on_piece_done(std::move(r)); });
    });
}

void job::fetch_from_peer(std::uint32_t index, const std::shared_ptr<peer_slot> &peer) {
    std::int64_t now = store::now_ms();
    picker_->take(index, peer->id, now);
    swarm_->record_request(*peer, now);
    piece_result r;
    r.index = index;
    r.piece = picker_->at(index);
    r.peer = peer;
    r.source_class = peer->source_class;
    r.source_name = (peer->wan() ? "WAN peer " : "peer ") + peer->link->address();
    auto self = shared_from_this();
    peer_fetch_context ctx{manifest_->id, sink_, &session_.net(),
                           [self, cls = r.source_class](std::uint64_t b) { self->on_block_written(b, cls); },
                           [self, peer](std::uint64_t bytes, std::int64_t sent_ms) {
                               self->swarm_->record_answer(*peer, bytes, sent_ms, store::now_ms());
                           },
                           [self](piece_result done) { self->on_piece_done(std::move(done)); }};
    core::fetch_from_peer(ctx, std::move(r), picker_->wanted(index));
}

// A verified block is on disk: it becomes durable with the next flush and is announced to
// peers following this content right after. False when it already was (in end-game two
// sources may deliver the same block: it counts once).
bool job::record_block(std::uint64_t b, std::uint32_t source_class) {
    if (!picker_->mark_written(b)) return false;
    std::uint32_t len = manifest_->block_length(b);
    flusher_->add(b, len);
    bytes_by_source_[source_class] += len;
    last_block_ms_ = store::now_ms();
    return true;
}

// A block from a peer, verified and written by the sink as it arrived.
void job::on_block_written(std::uint64_t b, std::uint32_t source_class) {
    if (record_block(b, source_class) && active()) flush(false);
}

void job::on_piece_done(piece_result r) {
    bytes_fetched_ += r.bytes_fetched;
    for (auto b : r.good) record_block(b, r.source_class);
    // Whatever was not written goes back to the queue (unless another fetch of it is out).
    picker_->give_back(r.index);
    if (!r.peer) {
        --origin_in_flight_;
    } else {
        --r.peer->requests;
        // A peer that turned a request down has a newer (or smaller) bitmap than we think.
        if (!r.rejected.empty()) swarm_->refresh(r.peer);
    }
    if (r.fatal) return fail(r.error, r.message);
    if (!active()) return flush(true);
    if (!r.bad.empty()) {
        reject_blocks(r);
    } else if (r.error && !r.aborted) {
        if (r.peer) {
            // A broken or silent connection: forget the peer; discovery may bring it back.
            swarm_->drop(r.peer, error(r.error, PD_CATEGORY_NET, r.message));
        } else {
            error_code_ = r.error;
            if (r.stream == sources_->stream()) source_failed("source '" + r.source_name + "' failed: " + r.message);
        }
    }
    dispatch();
    // The last blocks are made durable at once rather than on the flush timer.
    flush(picker_->done());
    maybe_finish();
}

// Blocks that failed verification: an event each, and the source that sent them is banned
// for this job (design §5).
void job::reject_blocks(const piece_result &r) {
    blocks_rejected_ += r.bad.size();
    for (auto b : r.bad) session_.emit(block_rejected_event(id_, *manifest_, b, r));
    std::string why = "source '" + r.source_name + "' sent block " + std::to_string(r.bad.front()) + " (offset " +
                      std::to_string(manifest_->block_offset(r.bad.front())) + ") that failed verification (" +
                      std::to_string(r.bad.size()) + " bad block(s) in this piece)";
    if (r.peer) {
        note_fallback(why + "; peer banned for this content");
        swarm_->ban(r.peer);
    } else {
        error_code_ = PD_E_INTEGRITY;
        if (r.stream == sources_->stream()) source_failed(why);
    }
}

// ---- finishing ----

void job::flush(bool now) { flusher_->schedule(now, settings_.flush_bytes, settings_.flush_interval_ms); }

void job::on_durable(const std::vector<std::uint64_t> &blocks, std::uint64_t) {
    session_.blocks_verified(manifest_->id, blocks);  // peers waiting for them hear at once
    emit_progress(false);
    maybe_finish();
}

void job::on_flush_failed(int code, const std::string &message) { fail(code, message); }

void job::flush_now() {
    if (flusher_) flusher_->flush_sync();
}

void job::maybe_finish() {
    if (state_ != PD_JOB_RUNNING || !picker_) return;
    // Every block is written but fetches are still out: those with demoted peers will not
    // come back soon, and nothing they bring is needed.
    if (picker_->queue_empty() && picker_->in_flight() && picker_->all_written())
        for (auto &peer : std::vector<std::shared_ptr<peer_slot>>(swarm_->peers()))
            if (peer->demoted && peer->requests)
                swarm_->drop(peer, error(PD_E_TIMEOUT, PD_CATEGORY_NET, "answered nothing while its pieces came from elsewhere"));
    if (!picker_->done() || flusher_->busy() || flusher_->pending()) return;
    if (!flusher_->all_durable(manifest_->block_count())) return;
    finalize();
}

// End to end: every block is re-read from disk and re-hashed before "complete", split over
// the workers (hashing is the bound). With job.reverify=1 only blocks that were on disk
// before this run are re-read: blocks fetched in this run were hashed from the very buffer
// that was written.
void job::finalize() {
    state_ = PD_JOB_VERIFYING;
    finalizing_ = true;
    sources_->close();
    swarm_->close_all("content complete");
    auto self = shared_from_this();
    verify_in_parts(session_.workers(), session_.worker_count(), *manifest_, *file_, settings_.reverify_all ? nullptr : &resumed_,
                    [self] { return self->session_.job_should_stop(self->id_); },
                    [self](std::uint64_t b) { self->session_.store().unmark_verified(self->manifest_->id, {b}); },
                    [self](std::optional<error> failed) { self->deliver(std::move(failed)); });
}

// Runs on the worker that finished the last verification part.
void job::deliver(std::optional<error> verify_error) {
    std::string err, delivered;
    int code = 0;
    try {
        if (verify_error) throw *verify_error;
        delivered = complete_and_deliver(session_.store(), *manifest_, *file_, request_);
    } catch (const error &e) {
        err = e.what();
        code = e.code();
    }
    asio::post(session_.net(), [self = shared_from_this(), err, code, delivered] {
        self->finalizing_ = false;
        if (!err.empty()) {
            if (code != PD_E_CANCELLED) return self->fail(code, err);
            if (self->state_ == PD_JOB_VERIFYING) self->state_ = PD_JOB_PAUSED;
            return;
        }
        if (self->state_ != PD_JOB_VERIFYING) return;
        self->state_ = PD_JOB_COMPLETED;
        // Nothing more is written or read through the job: its data file's handles go.
        self->file_.reset();
        self->sink_.reset();
        self->flusher_->release_file();
        self->mark_fetching(false);
        self->finished_ms_ = store::now_ms();
        self->message_ = delivered;
        self->emit(PD_EVENT_JOB_COMPLETED, delivered);
        auto ref = self->content_ref();
        for (auto &b : self->session_.plugins().backends()) b->content_available(ref);
        self->notify_finished();
    });
}

// Backends hear how the job went (a coordinator keeps per-office statistics).
void job::notify_finished() {
    if (finished_notified_) return;
    finished_notified_ = true;
    auto ref = content_ref();
    for (auto &b : session_.plugins().backends()) b->job_finished(ref, state_, bytes_by_source_, PD_SOURCE_CLASS_COUNT);
}

void job::stop_fetching(const std::string &why) {
    mark_fetching(false);
    session_.set_job_stop_flag(id_, true);
    peer_timer_.cancel();
    if (flusher_) flusher_->cancel_timer();
    if (sources_) sources_->close();
    if (swarm_) swarm_->close_all(why);
}

void job::fail(int code, const std::string &message) {
    if (!active()) return;
    state_ = PD_JOB_FAILED;
    error_code_ = code;
    message_ = message;
    finished_ms_ = store::now_ms();
    stop_fetching("job failed");
    // Blocks already verified and written are still worth keeping.
    if (flusher_) flush(true);
    emit(PD_EVENT_JOB_FAILED, message, code);
    notify_finished();
}

void job::pause() {
    if (state_ != PD_JOB_RUNNING && state_ != PD_JOB_QUEUED && state_ != PD_JOB_VERIFYING)
        pd::fail(PD_E_STATE, PD_CATEGORY_JOB, "job is not running");
    state_ = PD_JOB_PAUSED;
    mark_fetching(false);
    session_.set_job_stop_flag(id_, true);
    if (flusher_) flush(true);
    emit(PD_EVENT_JOB_PAUSED, "paused by the host");
}

void job::resume() {
    if (state_ != PD_JOB_PAUSED) pd::fail(PD_E_STATE, PD_CATEGORY_JOB, "job is not paused");
    session_.set_job_stop_flag(id_, false);
    state_ = PD_JOB_RUNNING;
    mark_fetching(true);
    emit(PD_EVENT_JOB_RESUMED, "resumed by the host");
    if (!file_) {
        if (!preparing_) start();
        return;
    }
    if (!picker_->queue_empty() && !sources_->stream()) sources_->open_next();
    dispatch();
    maybe_finish();
}

void job::cancel() {
    if (!active()) pd::fail(PD_E_STATE, PD_CATEGORY_JOB, "job has already finished");
    state_ = PD_JOB_CANCELLED;
    finished_ms_ = store::now_ms();
    stop_fetching("job cancelled");
    if (flusher_) flush(true);
    emit(PD_EVENT_JOB_CANCELLED, "cancelled by the host", PD_E_CANCELLED);
    notify_finished();
}

void job::stop_for_shutdown() {
    shutting_down_ = true;
    stop_fetching("session stopping");
}

void job::status(pd_job_status &out) const {
    out.state = state_;
    out.job_id = id_;
    std::memcpy(out.content.bytes, manifest_->id.data(), 32);
    out.bytes_total = manifest_->size;
    out.bytes_verified = flusher_ ? flusher_->verified_bytes() : 0;
    for (int i = 0; i < PD_SOURCE_CLASS_COUNT; ++i) out.bytes_by_source[i] = bytes_by_source_[i];
    out.bytes_fetched = bytes_fetched_;
    out.blocks_rejected = blocks_rejected_;
    out.error_code = state_ == PD_JOB_FAILED ? error_code_ : PD_OK;
    out.started_ms = started_ms_;
    out.finished_ms = finished_ms_;
    std::strncpy(out.message, message_.c_str(), sizeof out.message - 1);
    out.message[sizeof out.message - 1] = '\0';
    out.source_fallbacks = fallbacks_;
}

}  // namespace pd::core
