#include "core/job.h"

#include "core/peer_link.h"

#include "util/error.h"
#include "util/hex.h"
#include "util/text.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <cstring>
#include <filesystem>
#include <limits>
#include <thread>

namespace pd::core {

namespace asio = boost::asio;

// An open stream from a backend; closed when the last piece using it lets go.
struct job::source_stream {
    std::shared_ptr<plugin_host::backend> backend;
    void *handle = nullptr;
    ~source_stream() {
        if (handle) backend->vtable().close(backend->self(), handle);
    }
};

static std::string hex(const store::hash &h) { return to_hex(h.data(), h.size()); }

pd_content_ref job::content_ref(const char *origin) const {
    pd_content_ref ref{};
    ref.struct_size = sizeof ref;
    std::memcpy(ref.id, manifest_->id.data(), 32);
    ref.size = manifest_->size;
    ref.name = manifest_->name.c_str();
    ref.origin = origin;
    ref.job_id = id_;
    return ref;
}

// Asks the backends with an origin policy (a hierarchy) whether this device may use the
// origin now; returns who said no, or "". Blocking: source I/O threads only.
std::string job::origin_refused_by() const {
    auto ref = content_ref("");
    for (auto &b : session_.plugins().backends())
        if (b->has_origin_policy() && b->vtable().origin_allowed(b->self(), &ref) == 0) return b->name();
    return {};
}

job::job(session &s, std::uint64_t id, std::shared_ptr<const content::manifest> m, job_request request)
    : session_(s), id_(id), manifest_(std::move(m)), request_(std::move(request)), peer_timer_(s.net()), flush_timer_(s.net()) {}

job::~job() = default;

bool job::active() const {
    return state_ == PD_JOB_QUEUED || state_ == PD_JOB_RUNNING || state_ == PD_JOB_PAUSED || state_ == PD_JOB_VERIFYING;
}

void job::emit(pd_event_type type, const std::string &message, int code) {
    auto e = make_event(type, id_, message.c_str());
    std::memcpy(e.content.bytes, manifest_->id.data(), 32);
    e.error_code = code;
    e.bytes_done = bytes_verified_;
    e.bytes_total = manifest_->size;
    session_.emit(e);
}

void job::emit_progress(bool force) {
    std::int64_t now = store::now_ms();
    if (!force && now - last_progress_ms_ < session_.config().get_int("job.progress_interval_ms")) return;
    last_progress_ms_ = now;
    emit(PD_EVENT_JOB_PROGRESS, "");
}

void job::start() {
    started_ms_ = store::now_ms();
    state_ = PD_JOB_RUNNING;
    mark_fetching(true);
    emit(PD_EVENT_JOB_STARTED, manifest_->name);
    preparing_ = true;
    auto self = shared_from_this();
    std::uint64_t size = manifest_->size;
    store::hash id = manifest_->id;
    auto busy = session_.busy_contents();
    busy.erase(id);
    asio::post(session_.workers(), [self, size, id, busy] {
        try {
            auto &st = self->session_.store();
            auto evicted = st.reserve(id, size, busy);
            for (auto &[eid, bytes] : evicted) {
                auto e = make_event(PD_EVENT_CACHE_EVICTED, self->id_, ("evicted " + hex(eid) + " to make room").c_str());
                std::memcpy(e.content.bytes, eid.data(), 32);
                e.bytes_total = bytes;
                self->session_.emit(e);
            }
            auto file = st.open_data(id, size);
            auto rec = st.get(id);
            if (!rec) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content vanished from the cache index");
            asio::post(self->session_.net(), [self, f = std::make_shared<platform::file>(std::move(file)),
                                              bits = std::move(rec->verified), vb = rec->verified_bytes]() mutable {
                self->preparing_ = false;
                self->on_prepared(std::move(*f), std::move(bits), vb);
            });
        } catch (const error &e) {
            asio::post(self->session_.net(), [self, code = e.code(), msg = std::string(e.what())] {
                self->preparing_ = false;
                self->fail(code, msg);
            });
        }
    });
}

void job::on_prepared(platform::file file, std::vector<std::uint8_t> verified, std::uint64_t verified_bytes) {
    if (!active()) return;
    file_ = std::make_shared<platform::file>(std::move(file));
    have_ = std::move(verified);
    have_.resize((manifest_->block_count() + 7) / 8);
    written_ = have_;
    resumed_ = have_;
    bytes_verified_ = verified_bytes;
    bytes_by_source_[PD_SOURCE_LOCAL] = verified_bytes;
    std::uint64_t per_piece = std::max<std::uint64_t>(1, session_.config().get_int("job.piece_size_kib") * 1024 / manifest_->block_size);
    std::uint64_t n = manifest_->block_count();
    for (std::uint64_t first = 0; first < n; first += per_piece) {
        std::uint64_t end = std::min(n, first + per_piece);
        std::uint64_t lo = end, hi = first;
        for (std::uint64_t b = first; b < end; ++b)
            if (!block_have(b)) {
                lo = std::min(lo, b);
                hi = b + 1;
            }
        if (lo < hi) pieces_.push_back({lo, static_cast<std::uint32_t>(hi - lo)});
    }
    for (std::uint32_t i = 0; i < pieces_.size(); ++i) todo_.push_back(i);
    flights_.assign(pieces_.size(), 0);
    flight_ms_.assign(pieces_.size(), 0);
    flight_peer_.assign(pieces_.size(), {});
    avail_.assign(pieces_.size(), 0);
    avail_lan_.assign(pieces_.size(), 0);
    if (bytes_verified_) emit_progress(true);
    if (todo_.empty()) {
        maybe_finish();
        return;
    }
    for (auto &b : session_.plugins().backends())
        if (b->can_stream()) sources_.push_back(b);
    // Source order (design §2): nearest class first; load order within a class.
    std::stable_sort(sources_.begin(), sources_.end(),
                     [](auto &a, auto &b) { return a->source_class() < b->source_class(); });
    last_progress_at_ = last_discovery_ms_ = store::now_ms();
    discover_peers();
    arm_peer_timer();
    open_next_source();
}

void job::open_next_source() {
    if (opening_ || state_ != PD_JOB_RUNNING) return;
    opening_ = true;
    auto self = shared_from_this();
    auto candidates = std::vector<std::shared_ptr<plugin_host::backend>>(sources_.begin() + static_cast<std::ptrdiff_t>(std::min(next_source_, sources_.size())), sources_.end());
    std::string requested_origin = request_.origin;
    bool override_policy = stall_override_;
    asio::post(session_.source_io(), [self, candidates, requested_origin, override_policy] {
        if (!override_policy) {
            if (auto who = self->origin_refused_by(); !who.empty()) {
                asio::post(self->session_.net(), [self, who] {
                    self->opening_ = false;
                    self->withhold_origin(who);
                });
                return;
            }
        }
        std::string origin = requested_origin;
        if (origin.empty()) {
            try {
                if (auto rec = self->session_.store().get(self->manifest_->id)) origin = rec->origin;
            } catch (const error &) {
                // No recorded origin: backends are asked without one and say so.
            }
        }
        std::vector<std::string> reasons;
        int last_code = PD_E_NO_SOURCE;
        std::shared_ptr<source_stream> opened;
        std::size_t tried = 0;
        for (auto &b : candidates) {
            ++tried;
            auto ref = self->content_ref(origin.c_str());
            char msg[512] = "";
            void *handle = nullptr;
            int rc = b->vtable().open(b->self(), &handle, &ref, msg, sizeof msg);
            if (rc == 0 && handle) {
                opened = std::make_shared<source_stream>();
                opened->backend = b;
                opened->handle = handle;
                break;
            }
            if (rc != PD_PLUGIN_E_NOT_FOUND) last_code = rc ? rc : PD_E_PLUGIN;
            reasons.push_back(b->name() + ": " + (msg[0] ? msg : "cannot serve this content"));
        }
        asio::post(self->session_.net(), [self, opened, reasons, last_code, tried] {
            self->opening_ = false;
            self->next_source_ += opened ? tried - 1 : tried;
            self->on_source_opened(opened, reasons, last_code);
        });
    });
}

// A backend keeps this device off the origin for now (hierarchy: another office fetches it);
// peers bring the content, and discovery rounds ask again.
void job::withhold_origin(const std::string &who) {
    if (origin_withheld_by_ != who)
        session_.log(PD_LOG_INFO, "job " + std::to_string(id_) + ": " + who + " keeps this device off the origin for now");
    origin_withheld_by_ = who;
    stream_.reset();
    mark_fetching(false);
    dispatch();
}

void job::note_fallback(const std::string &reason) {
    ++fallbacks_;
    fallback_reasons_.push_back(reason);
    emit(PD_EVENT_SOURCE_FALLBACK, reason);
}

void job::on_source_opened(std::shared_ptr<source_stream> stream, std::vector<std::string> reasons, int last_code) {
    for (auto &r : reasons) note_fallback(r);
    if (!active()) return;
    if (!stream && (!peers_.empty() || discovering_)) {
        // Peers may still provide everything; the stall check fails the job if not. Without
        // an origin this device cannot take its share of the split: say so in HAVE.
        mark_fetching(false);
        dispatch();
        return;
    }
    if (!stream) {
        std::string why = "no source can provide content " + hex(manifest_->id);
        if (sources_.empty()) why += ": no backend plugin with a data source is loaded";
        for (auto &r : fallback_reasons_) why += "; " + r;
        // Failures after the last source keep that source's reason (e.g. origin content changed).
        bool specific = !(last_code == PD_E_NO_SOURCE || last_code == PD_E_PLUGIN || last_code == PD_E_GENERIC);
        fail(specific ? last_code : (error_code_ ? error_code_ : PD_E_NO_SOURCE), why);
        return;
    }
    stream_ = std::move(stream);
    mark_fetching(true);
    dispatch();
}

std::vector<std::uint64_t> job::wanted_blocks(const piece &p) const {
    std::vector<std::uint64_t> wanted;
    for (std::uint64_t b = p.first_block; b < p.first_block + p.block_count; ++b)
        if (!block_have(b) && !((written_[b / 8] >> (b % 8)) & 1)) wanted.push_back(b);
    return wanted;
}

// Verifies each wanted block found in `data(b)` against the manifest before writing it.
template <class Lookup>
static void verify_and_write(const content::manifest &m, const platform::file &file, const std::vector<std::uint64_t> &wanted,
                             Lookup data, job::piece_result &r) {
    try {
        for (auto b : wanted) {
            const std::uint8_t *bytes = data(b);
            if (!bytes) continue;
            std::uint32_t blen = m.block_length(b);
            if (crypto::sha256(bytes, blen) != m.block_hashes[b]) {
                r.bad.push_back(b);
                continue;
            }
            file.pwrite(m.block_offset(b), bytes, blen);
            r.good.push_back(b);
        }
    } catch (const error &e) {
        r.error = e.code();
        r.fatal = true;
        r.message = e.what();
    }
}

bool job::holds(const peer_slot &peer, std::uint32_t index) const {
    const piece &p = pieces_[index];
    for (std::uint64_t b = p.first_block; b < p.first_block + p.block_count; ++b)
        if (!((peer.have[b / 8] >> (b % 8)) & 1)) return false;
    return true;
}

void job::count_availability(const peer_slot &peer, int sign) {
    if (peer.banned || peer.have.empty()) return;
    bool lan = peer.source_class == PD_SOURCE_LAN;
    for (std::uint32_t i = 0; i < pieces_.size(); ++i)
        if (holds(peer, i)) {
            avail_[i] = static_cast<std::uint16_t>(avail_[i] + sign);
            if (lan) avail_lan_[i] = static_cast<std::uint16_t>(avail_lan_[i] + sign);
        }
}

void job::take_from_todo(std::uint32_t index) {
    auto it = std::find(todo_.begin(), todo_.end(), index);
    if (it != todo_.end()) {
        *it = todo_.back();
        todo_.pop_back();
    }
    ++flights_[index];
    flight_ms_[index] = store::now_ms();
}

// Enough requests to keep the peer busy for peer.request_queue_ms at its measured rate
// (libtorrent's request queue time), at least two so one is always on the wire.
unsigned job::pipeline_depth(const peer_slot &peer) const {
    // A background link paces its blocks itself; two pieces keep it from running dry.
    if (peer.link->background()) return 2;
    auto max = static_cast<unsigned>(session_.config().get_int("peer.max_requests"));
    double piece_bytes = static_cast<double>(session_.config().get_int("job.piece_size_kib")) * 1024;
    double queue_s = static_cast<double>(session_.config().get_int("peer.request_queue_ms")) / 1000.0;
    auto depth = static_cast<unsigned>(peer.rate * queue_s / piece_bytes) + 1;
    return std::clamp(depth, std::min(2u, max), max);
}

static std::uint64_t mix64(std::uint64_t x);

std::uint32_t job::choose_piece(const peer_slot &peer) const {
    constexpr auto none = std::numeric_limits<std::uint32_t>::max();
    std::uint32_t best = none;
    std::pair<std::uint16_t, std::uint64_t> best_key{};
    std::uint64_t me = session_.node_id();
    // A WAN peer (another office) only gets what no LAN peer has: each byte crosses the WAN once.
    bool wan = peer.source_class == PD_SOURCE_WAN;
    for (auto i : todo_) {
        if (!holds(peer, i) || (wan && avail_lan_[i])) continue;
        std::pair<std::uint16_t, std::uint64_t> key{avail_[i], mix64(me ^ i)};
        if (best == none || key < best_key) best = i, best_key = key;
    }
    // No end-game over the WAN: a duplicate there spends the scarcest link (request timeouts
    // still move pieces off a WAN peer that stopped answering).
    if (best != none || !todo_.empty() || peer.requests || wan) return best;
    // End-game: everything is requested and this peer is idle; ask it too for a piece in
    // flight elsewhere that is overdue — in flight longer than twice what this peer would
    // need for it, and at least a second. Whichever answer verifies first wins;
    // the other is discarded. (Duplicating every in-flight piece at once measured 19 % of the
    // LAN bytes wasted with four devices; the server cannot cancel an answer already queued.)
    // At least a second: a busy seeder on a loaded machine stalls for a few hundred ms, and a
    // duplicate cannot be cancelled once the server queued it (measured: 250 ms wasted 3-7 %
    // of the LAN bytes with eight devices on two cores).
    constexpr std::int64_t endgame_min_ms = 1000;
    double piece_bytes = static_cast<double>(session_.config().get_int("job.piece_size_kib")) * 1024;
    std::int64_t overdue = endgame_min_ms;
    if (peer.rate > 0) overdue = std::max(overdue, static_cast<std::int64_t>(2000.0 * piece_bytes / peer.rate));
    std::int64_t now = store::now_ms();
    for (std::uint32_t i = 0; i < pieces_.size(); ++i) {
        if (flights_[i] != 1 || now - flight_ms_[i] <= overdue || !holds(peer, i) || (wan && avail_lan_[i])) continue;
        // A piece queued behind others on a link that is answering is not late, just queued.
        auto holder = flight_peer_[i].lock();
        if (holder && now - std::max(holder->last_answer_ms, flight_ms_[i]) <= overdue) continue;
        if (!wanted_blocks(pieces_[i]).empty()) return i;
    }
    return none;
}

// Fills one peer's pipeline.
void job::dispatch_to(const std::shared_ptr<peer_slot> &peer) {
    constexpr auto none = std::numeric_limits<std::uint32_t>::max();
    if (state_ != PD_JOB_RUNNING || shutting_down_ || peer->banned || !peer->link->open()) return;
    while (peer->requests < pipeline_depth(*peer)) {
        auto index = choose_piece(*peer);
        if (index == none) break;
        // The office WAN budget; a background link takes it block by block itself.
        if (peer->source_class == PD_SOURCE_WAN && !peer->link->background() &&
            session_.take_wan_budget(pieces_[index].block_count * static_cast<std::uint64_t>(manifest_->block_size)))
            break;  // the peer tick dispatches again once the budget refilled
        fetch_from_peer(index, peer);
    }
}

void job::dispatch() {
    if (state_ != PD_JOB_RUNNING || shutting_down_) return;
    // Peers first (LAN): the fastest choose first, each up to its pipeline depth.
    auto order = peers_;
    std::stable_sort(order.begin(), order.end(), [](auto &a, auto &b) { return a->rate > b->rate; });
    for (auto &peer : order) dispatch_to(peer);
    // The origin only for pieces no peer holds, after the first discovery round (peers
    // found there come first), and in turn with the devices fetching it too.
    if (initial_discovery_ || !stream_) return;
    const unsigned max_origin = static_cast<unsigned>(session_.config().get_int("job.max_pieces_in_flight"));
    auto candidates = todo_;
    std::sort(candidates.begin(), candidates.end());
    for (auto i : candidates) {
        if (origin_in_flight_ >= max_origin) break;
        if (avail_[i] == 0 && origin_turn(pieces_[i])) fetch_from_origin(i);
    }
}

static std::uint64_t mix64(std::uint64_t x) {  // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Devices fetching the same content at once split the origin's work: each piece belongs to
// the participant with the highest hash of (node id, piece) — rendezvous hashing, so every
// device computes the same owner from the same set — and the others wait for the owner to
// share it. Participants are peers whose link is up and whose HAVE says they fetch from the
// origin now; one that dies, pauses or loses its origin leaves the set at once. An owner whose
// bitmap has not grown for peer.coop_wait_ms is presumed stuck and its pieces are fetched
// here: a slow owner costs time, never completion. (That bound must exceed the time a piece
// takes on a shared thin link — eight devices with eight ranges each on 100 Mbit/s take
// about 5 s per 1 MiB piece — or devices take each other's pieces and the split collapses.)
bool job::origin_turn(const piece &p) {
    std::uint64_t me = session_.node_id();
    std::uint64_t best = mix64(me ^ mix64(p.first_block));
    std::uint64_t owner = me;
    std::int64_t owner_grew = 0;
    std::map<std::uint64_t, std::int64_t> participants;  // node id -> last growth
    for (auto &peer : peers_) {
        if (peer->banned || !peer->fetching) continue;
        auto &g = participants[peer->link->node_id()];
        g = std::max(g, peer->grew_ms);
    }
    for (auto &[node, grew] : participants) {
        if (node == me) continue;
        std::uint64_t h = mix64(node ^ mix64(p.first_block));
        if (h > best) best = h, owner = node, owner_grew = grew;
    }
    if (owner == me) return true;
    return store::now_ms() - owner_grew >= session_.config().get_int("peer.coop_wait_ms");
}

// Takes a refreshed bitmap; notes when it gained blocks (the owner is making progress).
void job::set_peer_have(peer_slot &peer, std::vector<std::uint8_t> have, bool fetching) {
    std::uint64_t before = 0, after = 0;
    for (auto b : peer.have) before += static_cast<std::uint64_t>(__builtin_popcount(b));
    for (auto b : have) after += static_cast<std::uint64_t>(__builtin_popcount(b));
    std::int64_t now = store::now_ms();
    if (after > before) peer.grew_ms = now;
    count_availability(peer, -1);
    peer.have = std::move(have);
    count_availability(peer, +1);
    peer.have_ms = now;
    peer.fetching = fetching;
}

void job::mark_fetching(bool on) {
    if (on == fetching_flag_) return;
    fetching_flag_ = on;
    session_.set_fetching(manifest_->id, on);
}

void job::fetch_from_origin(std::uint32_t index) {
    take_from_todo(index);
    flight_peer_[index].reset();
    ++in_flight_;
    ++origin_in_flight_;
    piece p = pieces_[index];
    auto wanted = wanted_blocks(p);
    const int retries = static_cast<int>(session_.config().get_int("job.read_retries"));
    const int backoff_ms = static_cast<int>(session_.config().get_int("job.retry_backoff_ms"));
    asio::post(session_.source_io(), [self = shared_from_this(), index, p, wanted = std::move(wanted), stream = stream_,
                                    file = file_, retries, backoff_ms] {
        piece_result r;
        r.index = index;
        r.p = p;
        r.stream = stream;
        r.source_class = stream->backend->source_class();
        r.source_name = stream->backend->name();
        auto &m = *self->manifest_;
        std::uint64_t offset = m.block_offset(p.first_block);
        std::uint64_t end = std::min(m.size, m.block_offset(p.first_block + p.block_count));
        std::size_t len = static_cast<std::size_t>(end - offset);
        std::vector<std::uint8_t> buf(len);
        auto &vt = stream->backend->vtable();
        for (int attempt = 0;; ++attempt) {
            if (self->session_.job_should_stop(self->id_)) {
                r.aborted = true;
                break;
            }
            char msg[512] = "";
            std::size_t got = 0;
            int rc = vt.read(stream->backend->self(), stream->handle, offset, buf.data(), len, &got, msg, sizeof msg);
            if (rc == 0 && got == len) {
                r.error = 0;
                r.bytes_fetched += got;
                break;
            }
            if (rc == PD_PLUGIN_E_CANCELLED) {
                r.aborted = true;
                break;
            }
            r.error = rc ? rc : PD_E_IO;
            r.message = rc ? (msg[0] ? msg : "read failed")
                           : "short read: " + std::to_string(got) + " of " + std::to_string(len) + " bytes at offset " +
                                 std::to_string(offset);
            if (rc == PD_PLUGIN_E_CHANGED || attempt >= retries) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms << std::min(attempt, 10)));
        }
        if (!r.aborted && r.error == 0)
            verify_and_write(m, *file, wanted, [&](std::uint64_t b) { return buf.data() + (m.block_offset(b) - offset); }, r);
        asio::post(self->session_.net(), [self, r = std::move(r)]() mutable { self->on_piece_done(std::move(r)); });
    });
}

// One request to a peer in flight: its blocks are verified and written as they arrive (on
// workers), so a block can be shared moments after it was received and a connection that
// dies loses only what was on the wire. The piece completes once the answer has ended and
// every block task has finished.
struct job::peer_request {
    std::mutex mu;
    piece_result r;
    unsigned outstanding = 1;  // the answer itself, plus one per block task
    std::vector<std::uint64_t> wanted;
};

void job::fetch_from_peer(std::uint32_t index, const std::shared_ptr<peer_slot> &peer) {
    take_from_todo(index);
    flight_peer_[index] = peer;
    ++in_flight_;
    ++peer->requests;
    piece p = pieces_[index];
    auto st = std::make_shared<peer_request>();
    st->wanted = wanted_blocks(p);
    st->r.index = index;
    st->r.p = p;
    st->r.peer = peer;
    st->r.source_class = peer->source_class;
    st->r.source_name = (peer->source_class == PD_SOURCE_WAN ? "WAN peer " : "peer ") + peer->link->address();
    std::uint64_t first = st->wanted.front();
    auto count = static_cast<std::uint32_t>(st->wanted.back() - first + 1);
    std::int64_t sent_ms = store::now_ms();
    auto self = shared_from_this();
    // The last of the answer and the block tasks hands the piece to on_piece_done.
    auto finish_one = [self, st] {
        piece_result done;
        {
            std::lock_guard lk(st->mu);
            if (--st->outstanding) return;
            done = std::move(st->r);
        }
        asio::post(self->session_.net(), [self, done = std::move(done)]() mutable { self->on_piece_done(std::move(done)); });
    };
    peer->link->request(
        manifest_->id, first, count,
        [self, st, finish_one](std::uint64_t b, std::vector<std::uint8_t> bytes) {
            {
                std::lock_guard lk(st->mu);
                st->r.bytes_fetched += bytes.size();
                if (!std::binary_search(st->wanted.begin(), st->wanted.end(), b)) return;
                ++st->outstanding;
            }
            asio::post(self->session_.workers(), [self, st, finish_one, b, bytes = std::move(bytes), file = self->file_] {
                auto &m = *self->manifest_;
                bool good = false;
                std::string failure;
                try {
                    // A block of the wrong length is as bad as one with the wrong hash.
                    if (bytes.size() == m.block_length(b) && crypto::sha256(bytes.data(), bytes.size()) == m.block_hashes[b]) {
                        file->pwrite(m.block_offset(b), bytes.data(), bytes.size());
                        good = true;
                    }
                } catch (const error &e) {
                    failure = e.what();
                    std::lock_guard lk(st->mu);
                    st->r.error = e.code();
                    st->r.fatal = true;
                    st->r.message = e.what();
                }
                if (failure.empty()) {
                    std::lock_guard lk(st->mu);
                    (good ? st->r.good : st->r.bad).push_back(b);
                }
                if (good)
                    asio::post(self->session_.net(), [self, b, cls = st->r.source_class] { self->on_block_written(b, cls); });
                finish_one();
            });
        },
        [self, st, finish_one, peer, sent_ms](const error *why, const std::string &rejected) {
            {
                std::lock_guard lk(st->mu);
                st->r.rejected = rejected;
                if (why) {
                    st->r.error = why->code();
                    st->r.message = why->what();
                    st->r.aborted = why->code() == PD_E_CANCELLED;
                } else {
                    // Throughput: bytes over the time this answer took, counted from when it
                    // was sent or when the previous answer ended, whichever is later (pipelining).
                    std::int64_t now = store::now_ms();
                    double span = static_cast<double>(std::max<std::int64_t>(1, now - std::max(sent_ms, peer->last_answer_ms)));
                    double sample = static_cast<double>(st->r.bytes_fetched) * 1000.0 / span;
                    peer->rate = peer->rate == 0 ? sample : 0.7 * peer->rate + 0.3 * sample;
                    peer->last_answer_ms = now;
                }
            }
            finish_one();
        });
}

// A block from a peer is verified and on disk: it becomes durable with the next flush and
// is announced to peers following this content right after.
void job::on_block_written(std::uint64_t b, std::uint32_t source_class) {
    if ((written_[b / 8] >> (b % 8)) & 1) return;  // end-game: the other copy was first
    written_[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
    pending_durable_.push_back(b);
    std::uint32_t len = manifest_->block_length(b);
    pending_bytes_ += len;
    bytes_by_source_[source_class] += len;
    last_progress_at_ = store::now_ms();
    if (!active()) return;
    if (pending_bytes_ >= static_cast<std::uint64_t>(session_.config().get_int("job.flush_bytes")))
        schedule_flush(true);
    else
        schedule_flush(false);
}

void job::on_piece_done(piece_result r) {
    --in_flight_;
    if (!r.peer) --origin_in_flight_;
    bytes_fetched_ += r.bytes_fetched;
    --flights_[r.index];
    std::uint32_t cls = r.source_class;
    std::uint64_t fresh_bytes = 0;
    for (auto b : r.good) {
        // In end-game two sources may deliver the same block: count it once.
        if ((written_[b / 8] >> (b % 8)) & 1) continue;
        written_[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
        pending_durable_.push_back(b);
        fresh_bytes += manifest_->block_length(b);
    }
    pending_bytes_ += fresh_bytes;
    bytes_by_source_[cls] += fresh_bytes;
    if (fresh_bytes) last_progress_at_ = store::now_ms();
    if (r.peer) {
        --r.peer->requests;
        // A peer that turned a request down has a newer (or smaller) bitmap than we think.
        if (!r.rejected.empty()) refresh_have(r.peer);
    }
    if (r.fatal) {
        fail(r.error, r.message);
        return;
    }
    if (!active()) {
        schedule_flush(true);
        return;
    }
    // Whatever was not written goes back to the queue (unless another fetch of it is out).
    if (flights_[r.index] == 0 && !wanted_blocks(r.p).empty()) todo_.push_back(r.index);
    if (!r.bad.empty()) {
        blocks_rejected_ += r.bad.size();
        for (auto b : r.bad) {
            auto e = make_event(PD_EVENT_BLOCK_REJECTED, id_,
                                ("block " + std::to_string(b) + " (offset " + std::to_string(manifest_->block_offset(b)) +
                                 ") failed verification; data from source '" + r.source_name + "' discarded")
                                    .c_str());
            std::memcpy(e.content.bytes, manifest_->id.data(), 32);
            e.count = b;
            e.error_code = PD_E_INTEGRITY;
            e.source_class = cls;
            session_.emit(e);
        }
        // A source that sent bad bytes is banned for this job (design §5).
        std::string why = "source '" + r.source_name + "' sent block " + std::to_string(r.bad.front()) + " (offset " +
                          std::to_string(manifest_->block_offset(r.bad.front())) + ") that failed verification (" +
                          std::to_string(r.bad.size()) + " bad block(s) in this piece)";
        if (r.peer) {
            note_fallback(why + "; peer banned for this content");
            ban_peer(r.peer);
        } else {
            error_code_ = PD_E_INTEGRITY;
            if (r.stream == stream_) source_failed(why);
        }
    } else if (r.error && !r.aborted) {
        if (r.peer) {
            // A broken or silent connection: forget the peer; discovery may bring it back.
            drop_peer(r.peer, r.message);
        } else {
            error_code_ = r.error;
            if (r.stream == stream_) source_failed("source '" + r.source_name + "' failed: " + r.message);
        }
    }
    dispatch();
    // The last blocks are made durable at once rather than on the flush timer.
    bool last = todo_.empty() && in_flight_ == 0;
    if (last || pending_bytes_ >= static_cast<std::uint64_t>(session_.config().get_int("job.flush_bytes")))
        schedule_flush(true);
    else if (!pending_durable_.empty())
        schedule_flush(false);
    maybe_finish();
}

// ---- peers ----

// A discovery round: static peers and what discovery backends find (their calls block, so
// they run on a worker); then every new address is connected on the network thread. The
// round ends when each connection has answered its first HAVE or failed.
void job::discover_peers() {
    if (discovering_ || state_ != PD_JOB_RUNNING) return;
    if (!session_.fleet_key()) {
        initial_discovery_ = false;
        return;
    }
    discovering_ = true;
    auto candidates = split_list(session_.config().get("peer.static_peers").value_or(""), ',');
    std::vector<std::shared_ptr<plugin_host::backend>> finders;
    for (auto &b : session_.plugins().backends())
        if (b->can_find_peers()) finders.push_back(b);
    asio::post(session_.source_io(), [self = shared_from_this(), candidates, finders]() mutable {
        for (auto &b : finders) {
            auto ref = self->content_ref("");
            std::vector<char> out(16384);
            if (b->vtable().find_peers(b->self(), &ref, out.data(), out.size()) <= 0) continue;
            for (auto &a : split_list(out.data(), '\n')) candidates.push_back(a);
        }
        // Ask the origin policy again: the office's RVP may have changed.
        std::string refused = self->origin_refused_by();
        asio::post(self->session_.net(), [self, candidates, refused] {
            if (!self->stall_override_ && self->state_ == PD_JOB_RUNNING) {
                if (!refused.empty() && (self->stream_ || self->origin_withheld_by_ != refused)) {
                    self->withhold_origin(refused);
                } else if (refused.empty() && !self->origin_withheld_by_.empty()) {
                    self->origin_withheld_by_.clear();
                    if (!self->stream_) self->open_next_source();
                }
            }
            auto own = self->session_.listen_addresses();
            std::int64_t now = store::now_ms();
            // WAN peers come from a backend's plan (the office's RVP pulls from the office
            // above); a device that is no longer told to use them lets them go, so two
            // devices of one office never pull the same content over the WAN.
            std::set<std::string> listed;
            for (auto &line : candidates) listed.insert(line.substr(0, line.find(' ')));
            auto peers = self->peers_;
            for (auto &p : peers)
                if (p->source_class == PD_SOURCE_WAN && !listed.count(p->link->address())) {
                    self->session_.log(PD_LOG_INFO, "job " + std::to_string(self->id_) + ": WAN peer " +
                                                        p->link->address() + " is no longer a source of this device");
                    self->remove_peer(p, "no longer a source");
                }
            for (auto &line : candidates) {
                // "ip:port" or "ip:port wan" (a peer in another office).
                auto space = line.find(' ');
                std::string a = line.substr(0, space);
                std::uint32_t cls = space != std::string::npos && line.substr(space + 1) == "wan" ? PD_SOURCE_WAN : PD_SOURCE_LAN;
                if (self->known_peers_.count(a) || std::find(own.begin(), own.end(), a) != own.end()) continue;
                auto backoff = self->peer_backoff_.find(a);
                if (backoff != self->peer_backoff_.end() && now < backoff->second.second) continue;
                self->known_peers_.insert(a);
                self->connect_peer(a, cls);
            }
            if (!self->connecting_) self->on_discovery_round_done();
        });
    });
}

void job::connect_peer(const std::string &address, std::uint32_t source_class) {
    if (state_ != PD_JOB_RUNNING) return;
    ++connecting_;
    auto link = std::make_shared<peer_link>(session_.net(), address, *session_.fleet_key(), session_.node_id());
    link->set_request_timeout(static_cast<int>(session_.config().get_int("peer.request_timeout_ms")));
    auto self = shared_from_this();
    bool wan = source_class == PD_SOURCE_WAN;
    if (session_.config().get(wan ? "wan.transport" : "lan.transport") == std::string("background")) {
        // One window for every link across this office's WAN link (they share it); a LAN
        // peer's path is its own.
        net::ledbat_config cc;
        auto target_setting = [s = &session_] { return s->config().get_int("wan.target_delay_ms") * 1000; };
        cc.target_us = target_setting();
        std::shared_ptr<background_path> path;
        if (!wan)
            path = std::make_shared<background_path>(session_.net(), cc, target_setting);
        else if (!(path = wan_path_))
            path = wan_path_ = std::make_shared<background_path>(
                session_.net(), cc, target_setting, [s = &session_](std::uint64_t bytes) { return s->take_wan_budget(bytes); });
        link->set_background(std::move(path), manifest_->block_size);
        std::weak_ptr<job> weak = self;
        link->on_yield_change([weak, address, wan](bool yielding, std::int64_t queue_us, std::int64_t target_us) {
            auto j = weak.lock();
            if (!j || !j->active()) return;
            std::string who = (wan ? "WAN peer " : "peer ") + address;
            std::string delay = std::to_string(queue_us / 1000) + " ms";
            std::string target = std::to_string(target_us / 1000) + " ms target";
            if (yielding)
                j->emit(PD_EVENT_TRANSFER_PAUSED, "background transfer from " + who + " yields: queueing delay " + delay +
                                                      " over the " + target + " (other traffic is using the link); down to its minimum rate");
            else
                j->emit(PD_EVENT_TRANSFER_RESUMED, "background transfer from " + who + " resumes: queueing delay " + delay +
                                                       " (the " + target + "); the link is free again");
        });
    }
    auto give_up = [self, address](const std::string &why) {
        self->session_.log(PD_LOG_INFO, "job " + std::to_string(self->id_) + ": " + why);
        self->forget_peer(address);
        if (--self->connecting_ == 0) self->on_discovery_round_done();
    };
    link->connect(static_cast<int>(session_.config().get_int("peer.connect_timeout_ms")), [self, link, give_up, source_class](const error *why) {
        if (why) return give_up(why->what());
        if (link->node_id() == self->session_.node_id()) {
            // Discovery also finds this device itself (it answers its own query): remember
            // the address so it is not dialled again.
            link->close("this device itself");
            if (--self->connecting_ == 0) self->on_discovery_round_done();
            return;
        }
        link->query_have(self->manifest_->id, self->manifest_->block_count(),
                         [self, link, give_up, source_class](const error *failed, peer_link::have_answer a) {
                             if (failed) return give_up(failed->what());
                             if (!self->active() || self->shutting_down_) {
                                 link->close("job ended");
                             } else {
                                 auto slot = std::make_shared<peer_slot>();
                                 slot->link = link;
                                 slot->source_class = source_class;
                                 std::weak_ptr<peer_slot> weak_slot = slot;
                                 link->on_have_delta([self, weak_slot](const content::hash &id,
                                                                       const std::vector<std::uint64_t> &blocks) {
                                     auto peer = weak_slot.lock();
                                     if (!peer || id != self->manifest_->id || !self->active()) return;
                                     auto bits = peer->have;
                                     for (auto b : blocks)
                                         if (b / 8 < bits.size()) bits[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
                                     self->set_peer_have(*peer, std::move(bits), peer->fetching);
                                     // Only this peer gained pieces: only its pipeline can fill.
                                     // (Dispatching every peer on every delta cost 16 devices
                                     // on two cores more CPU than the transfers.)
                                     self->dispatch_to(peer);
                                 });
                                 slot->have.assign(self->have_.size(), 0);
                                 self->set_peer_have(*slot, std::move(a.bitmap), a.fetching);
                                 slot->grew_ms = slot->have_ms;
                                 self->peers_.push_back(slot);
                                 std::uint64_t held = 0;
                                 for (auto byte : slot->have) held += static_cast<std::uint64_t>(__builtin_popcount(byte));
                                 self->session_.log(PD_LOG_INFO, "job " + std::to_string(self->id_) + ": peer " +
                                                                     link->address() + " holds " + std::to_string(held) +
                                                                     " of " + std::to_string(self->manifest_->block_count()) +
                                                                     " blocks");
                             }
                             if (--self->connecting_ == 0) self->on_discovery_round_done();
                             self->dispatch();
                         });
    });
}

void job::on_discovery_round_done() {
    if (!discovering_) return;
    discovering_ = false;
    if (!first_round_done_) first_round_ms_ = store::now_ms();
    first_round_done_ = true;
    settle_initial_discovery();  // after the peers are in: they come before the origin
    dispatch();
    maybe_finish();
}

// The origin waits for the first discovery round and, when a discovery backend is loaded,
// for peer.coop_settle_ms after the start, so devices starting together see each other
// before anyone takes the origin (each later round can only add participants).
void job::settle_initial_discovery() {
    if (!initial_discovery_ || !first_round_done_) return;
    bool finders = false;
    for (auto &b : session_.plugins().backends()) finders |= b->can_find_peers();
    // With a discovery backend: peer.coop_settle_ms after the start, and every peer's HAVE
    // refreshed once after the first round (or three refresh periods passed), so peers that
    // started a moment after us already show as fetching when the owners are computed.
    std::int64_t now = store::now_ms(), refresh = session_.config().get_int("peer.refresh_ms");
    bool refreshed = std::all_of(peers_.begin(), peers_.end(), [&](auto &p) { return p->have_ms >= first_round_ms_ + refresh; });
    bool settled = now - started_ms_ >= session_.config().get_int("peer.coop_settle_ms") &&
                   (refreshed || now - first_round_ms_ >= 3 * refresh);
    if (!finders || settled) {
        initial_discovery_ = false;
        session_.log(PD_LOG_DEBUG, "job " + std::to_string(id_) + ": origin opens after " +
                                       std::to_string(store::now_ms() - started_ms_) + " ms of discovery, " +
                                       std::to_string(peers_.size()) + " peers");
        dispatch();
    } else if (!discovering_) {
        discover_peers();  // a second look before the origin opens up
    }
}

void job::refresh_have(const std::shared_ptr<peer_slot> &peer) {
    if (peer->have_pending || peer->banned || !peer->link->open()) return;
    peer->have_pending = true;
    peer->link->query_have(manifest_->id, manifest_->block_count(),
                           [self = shared_from_this(), peer](const error *why, peer_link::have_answer a) {
                               peer->have_pending = false;
                               if (why) {
                                   if (why->code() != PD_E_CANCELLED) self->drop_peer(peer, why->what());
                                   return;
                               }
                               if (!self->active()) return;
                               self->set_peer_have(*peer, std::move(a.bitmap), a.fetching);
                               self->settle_initial_discovery();
                               self->dispatch();
                           });
}

void job::on_peer_tick() {
    peer_timer_armed_ = false;
    if (state_ != PD_JOB_RUNNING || shutting_down_) return;
    settle_initial_discovery();
    std::int64_t now = store::now_ms();
    if (now - last_discovery_ms_ >= session_.config().get_int("peer.discovery_interval_ms")) {
        last_discovery_ms_ = now;
        discover_peers();
    }
    // Peers' bitmaps go stale as they download too.
    std::int64_t refresh = session_.config().get_int("peer.refresh_ms");
    for (auto &p : peers_)
        if (now - p->have_ms >= refresh) refresh_have(p);
    // A job never stalls silently.
    std::int64_t stall = session_.config().get_int("job.stall_timeout_ms");
    if (!todo_.empty() && now - last_progress_at_ > stall && !stream_ && !origin_withheld_by_.empty() && !stall_override_) {
        // Held off the origin by a backend and the peers brought nothing: fall back anyway.
        stall_override_ = true;
        note_fallback("no progress for " + std::to_string(stall) + " ms from peers while " + origin_withheld_by_ +
                      " kept this device off the origin: falling back to the origin");
        origin_withheld_by_.clear();
        last_progress_at_ = now;
        open_next_source();
    } else if (!todo_.empty() && now - last_progress_at_ > stall && !stream_ && !opening_ && in_flight_ == 0) {
        std::string why = "no progress for " + std::to_string(stall) + " ms: no peer holds the missing blocks";
        for (auto &r : fallback_reasons_) why += "; " + r;
        fail(PD_E_NO_SOURCE, why);
        return;
    }
    dispatch();
    arm_peer_timer();
}

// Takes a peer out of the job: its availability, its slot, its address, its link (the
// outstanding requests come back as aborted pieces).
void job::remove_peer(const std::shared_ptr<peer_slot> &peer, const std::string &why) {
    count_availability(*peer, -1);
    peers_.erase(std::remove(peers_.begin(), peers_.end(), peer), peers_.end());
    known_peers_.erase(peer->link->address());
    peer->link->close(why);
}

void job::drop_peer(const std::shared_ptr<peer_slot> &peer, const std::string &why) {
    if (std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) return;
    note_fallback("peer " + peer->link->address() + " failed: " + why);
    forget_peer(peer->link->address());
    remove_peer(peer, why);
}

// A peer that keeps failing (say, one that advertises blocks and never sends them) must not
// hold pieces hostage: each failure doubles its wait, from 1 s up to a minute, and the
// origin takes the pieces only it held meanwhile.
void job::forget_peer(const std::string &address) {
    known_peers_.erase(address);
    auto &[failures, not_before] = peer_backoff_[address];
    ++failures;
    not_before = store::now_ms() + std::min<std::int64_t>(60000, std::int64_t{1000} << std::min(failures - 1, 6));
}

// A peer that sent a block failing verification is banned for this job (design §5): it
// stays known, so discovery does not bring it back, and its link is closed.
void job::ban_peer(const std::shared_ptr<peer_slot> &peer) {
    if (peer->banned) return;
    count_availability(*peer, -1);
    peer->banned = true;
    peer->link->close("banned: sent a block that failed verification");
}

void job::close_links(const std::string &why) {
    auto peers = std::move(peers_);
    peers_.clear();
    for (auto &p : peers) p->link->close(why);
}

void job::arm_peer_timer() {
    if (peer_timer_armed_ || state_ != PD_JOB_RUNNING) return;
    peer_timer_armed_ = true;
    peer_timer_.expires_after(std::chrono::milliseconds(session_.config().get_int("peer.refresh_ms")));
    peer_timer_.async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
        if (ec) {
            self->peer_timer_armed_ = false;
            return;
        }
        self->on_peer_tick();
    });
}

void job::source_failed(const std::string &reason) {
    if (!stream_) return;
    ++fallbacks_;
    fallback_reasons_.push_back(reason);
    emit(PD_EVENT_SOURCE_FALLBACK, reason, error_code_);
    stream_.reset();  // closed once in-flight pieces let go
    ++next_source_;
    open_next_source();
}

void job::schedule_flush(bool now) {
    if (pending_durable_.empty()) return;
    if (flushing_) {
        flush_again_ = true;
        return;
    }
    if (!now) {
        if (flush_timer_armed_) return;
        flush_timer_armed_ = true;
        flush_timer_.expires_after(std::chrono::milliseconds(session_.config().get_int("job.flush_interval_ms")));
        flush_timer_.async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
            self->flush_timer_armed_ = false;
            if (!ec) self->schedule_flush(true);
        });
        return;
    }
    flushing_ = true;
    auto blocks = std::move(pending_durable_);
    pending_durable_.clear();
    pending_bytes_ = 0;
    asio::post(session_.workers(), [self = shared_from_this(), blocks = std::move(blocks), file = file_]() mutable {
        std::uint64_t verified = 0;
        std::string err;
        int code = 0;
        try {
            // Durable first, then recorded: a crash between the two only loses the record.
            file->datasync();
            verified = self->session_.store().mark_verified(self->manifest_->id, blocks);
        } catch (const error &e) {
            err = e.what();
            code = e.code();
        }
        asio::post(self->session_.net(), [self, verified, blocks = std::move(blocks), err, code]() mutable {
            self->on_flushed(verified, std::move(blocks), err, code);
        });
    });
}

void job::on_flushed(std::uint64_t verified_bytes, std::vector<std::uint64_t> blocks, std::string err, int code) {
    flushing_ = false;
    if (!err.empty()) {
        fail(code, "making blocks durable failed: " + err);
        return;
    }
    for (auto b : blocks) set_have(b);
    bytes_verified_ = verified_bytes;
    session_.blocks_verified(manifest_->id, blocks);  // peers waiting for them hear at once
    emit_progress(false);
    if (flush_again_) {
        flush_again_ = false;
        schedule_flush(true);
    }
    maybe_finish();
}

void job::flush_now() {
    if (pending_durable_.empty() || !file_) return;
    try {
        file_->datasync();
        bytes_verified_ = session_.store().mark_verified(manifest_->id, pending_durable_);
        for (auto b : pending_durable_) set_have(b);
        pending_durable_.clear();
        pending_bytes_ = 0;
    } catch (const error &e) {
        session_.log(PD_LOG_ERROR, std::string("flushing at shutdown: ") + e.what());
    }
}

void job::maybe_finish() {
    if (state_ != PD_JOB_RUNNING || in_flight_ || flushing_ || !todo_.empty() || !pending_durable_.empty()) return;
    for (std::uint64_t b = 0; b < manifest_->block_count(); ++b)
        if (!block_have(b)) return;
    finalize();
}

void job::finalize() {
    state_ = PD_JOB_VERIFYING;
    finalizing_ = true;
    stream_.reset();
    close_links("content complete");
    reverify_all_ = session_.config().get_int("job.reverify") >= 2;
    // End to end: every block is re-read from disk and re-hashed before "complete",
    // split over the workers (hashing is the bound).
    auto &m = *manifest_;
    std::uint64_t blocks = m.block_count();
    std::uint64_t parts = std::max<std::uint64_t>(1, std::min<std::uint64_t>(session_.worker_count(), (blocks + 63) / 64));
    auto remaining = std::make_shared<std::atomic<std::uint64_t>>(parts);
    auto first_error = std::make_shared<std::pair<std::mutex, std::optional<error>>>();
    auto self = shared_from_this();
    for (std::uint64_t part = 0; part < parts; ++part) {
        std::uint64_t first = blocks * part / parts, last = blocks * (part + 1) / parts;
        asio::post(session_.workers(), [self, first, last, remaining, first_error, file = file_] {
            try {
                self->verify_blocks(*file, first, last);
            } catch (const error &e) {
                std::lock_guard lk(first_error->first);
                if (!first_error->second) first_error->second = e;
            }
            if (--*remaining == 0) self->deliver(first_error->second);
        });
    }
}

void job::verify_blocks(const platform::file &file, std::uint64_t first, std::uint64_t last) {
    auto &m = *manifest_;
    constexpr std::uint64_t chunk_blocks = 64;
    std::vector<std::uint8_t> buf(chunk_blocks * m.block_size);
    // With job.reverify=1 only blocks that were on disk before this run are re-read:
    // blocks fetched in this run were hashed from the very buffer that was written.
    bool all = reverify_all_;
    auto wanted = [&](std::uint64_t b) { return all || ((resumed_[b / 8] >> (b % 8)) & 1); };
    for (std::uint64_t b = first; b < last;) {
        if (!wanted(b)) {
            ++b;
            continue;
        }
        if (session_.job_should_stop(id_)) pd::fail(PD_E_CANCELLED, PD_CATEGORY_JOB, "stopped during final verification");
        std::uint64_t n = 1;
        while (n < chunk_blocks && b + n < last && wanted(b + n)) ++n;
        std::uint64_t off = m.block_offset(b);
        std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(n * m.block_size, m.size - off));
        if (file.pread(off, buf.data(), len) != len)
            pd::fail(PD_E_INTEGRITY, PD_CATEGORY_STORE, "cached data file is shorter than the content");
        for (std::uint64_t i = 0; i < n; ++i) {
            std::size_t boff = static_cast<std::size_t>(i * m.block_size);
            if (crypto::sha256(buf.data() + boff, m.block_length(b + i)) != m.block_hashes[b + i]) {
                session_.store().unmark_verified(m.id, {b + i});
                pd::fail(PD_E_INTEGRITY, PD_CATEGORY_STORE,
                         "end-to-end verification failed: block " + std::to_string(b + i) +
                             " changed on disk after it was verified; the content must be fetched again");
            }
        }
        b += n;
    }
}

// Runs on the worker that finished the last verification part.
void job::deliver(std::optional<error> verify_error) {
    std::string err, delivered;
    int code = 0;
    try {
        if (verify_error) throw *verify_error;
        auto &m = *manifest_;
        auto &st = session_.store();
        st.mark_complete(m.id);
        if (request_.pin) st.set_pinned(m.id, true);
        if (!request_.destination.empty()) {
            platform::deliver_file(*file_, st.data_path(m.id), request_.destination, m.size,
                                   request_.hardlink ? platform::delivery::hardlink : platform::delivery::copy);
            delivered = request_.destination;
        } else {
            delivered = st.data_path(m.id);
        }
    } catch (const error &e) {
        err = e.what();
        code = e.code();
    }
    asio::post(session_.net(), [self = shared_from_this(), err, code, delivered] {
        self->finalizing_ = false;
        if (!err.empty()) {
            if (code == PD_E_CANCELLED) {
                if (self->state_ == PD_JOB_VERIFYING) self->state_ = PD_JOB_PAUSED;
                return;
            }
            self->fail(code, err);
            return;
        }
        if (self->state_ != PD_JOB_VERIFYING) return;
        self->state_ = PD_JOB_COMPLETED;
        self->mark_fetching(false);
        self->finished_ms_ = store::now_ms();
        self->message_ = delivered;
        self->emit(PD_EVENT_JOB_COMPLETED, delivered);
        auto ref = self->content_ref("");
        for (auto &b : self->session_.plugins().backends())
            if (b->vtable().content_available) b->vtable().content_available(b->self(), &ref);
        self->notify_finished();
    });
}

// Backends hear how the job went (a coordinator keeps per-office statistics).
void job::notify_finished() {
    if (finished_notified_) return;
    finished_notified_ = true;
    auto ref = content_ref("");
    for (auto &b : session_.plugins().backends())
        if (b->vtable().job_finished)
            b->vtable().job_finished(b->self(), &ref, state_, bytes_by_source_, PD_SOURCE_CLASS_COUNT);
}

void job::fail(int code, const std::string &message) {
    if (!active()) return;
    state_ = PD_JOB_FAILED;
    mark_fetching(false);
    error_code_ = code;
    message_ = message;
    finished_ms_ = store::now_ms();
    session_.set_job_stop_flag(id_, true);
    stream_.reset();
    close_links("job failed");
    flush_timer_.cancel();
    peer_timer_.cancel();
    // Blocks already verified and written are still worth keeping.
    schedule_flush(true);
    emit(PD_EVENT_JOB_FAILED, message, code);
    notify_finished();
}

void job::pause() {
    if (state_ != PD_JOB_RUNNING && state_ != PD_JOB_QUEUED && state_ != PD_JOB_VERIFYING)
        pd::fail(PD_E_STATE, PD_CATEGORY_JOB, "job is not running");
    state_ = PD_JOB_PAUSED;
    mark_fetching(false);
    session_.set_job_stop_flag(id_, true);
    schedule_flush(true);
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
    if (!todo_.empty() && !stream_) open_next_source();
    dispatch();
    maybe_finish();
}

void job::cancel() {
    if (!active()) pd::fail(PD_E_STATE, PD_CATEGORY_JOB, "job has already finished");
    state_ = PD_JOB_CANCELLED;
    mark_fetching(false);
    finished_ms_ = store::now_ms();
    session_.set_job_stop_flag(id_, true);
    stream_.reset();
    close_links("job cancelled");
    flush_timer_.cancel();
    peer_timer_.cancel();
    schedule_flush(true);
    emit(PD_EVENT_JOB_CANCELLED, "cancelled by the host", PD_E_CANCELLED);
    notify_finished();
}

void job::stop_for_shutdown() {
    shutting_down_ = true;
    mark_fetching(false);
    session_.set_job_stop_flag(id_, true);
    flush_timer_.cancel();
    peer_timer_.cancel();
    stream_.reset();
    close_links("session stopping");
}

void job::status(pd_job_status &out) const {
    out.state = state_;
    out.job_id = id_;
    std::memcpy(out.content.bytes, manifest_->id.data(), 32);
    out.bytes_total = manifest_->size;
    out.bytes_verified = bytes_verified_;
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
