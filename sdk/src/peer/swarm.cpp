#include "peer/swarm.h"

#include "core/session.h"
#include "store/block_store.h"

#include <algorithm>
#include <sstream>

namespace pd::peer {

swarm::swarm(core::session &s, content::hash content, content::block_layout layout,
             std::uint64_t job_id, std::weak_ptr<listener> owner)
    : session_(s), content_(content), layout_(layout), block_count_(layout.block_count()), job_id_(job_id),
      owner_(std::move(owner)) {}

void swarm::consider(const std::vector<std::string> &lines) {
    auto own = session_.listen_addresses();
    std::int64_t now = store::now_ms();
    std::set<std::string> listed;
    for (auto &line : lines) listed.insert(line.substr(0, line.find(' ')));
    for (auto &p : std::vector<std::shared_ptr<peer_slot>>(peers_))
        if (p->wan() && !listed.count(p->link->address())) {
            session_.log(PD_LOG_INFO, "job " + std::to_string(job_id_) + ": WAN peer " + p->link->address() +
                                          " is no longer a source of this device");
            remove(p, "no longer a source");
        }
    for (auto &line : lines) {
        // "ADDRESS [wan] [device=KEY]" (docs/plugin-abi.md, find_peers).
        std::istringstream tokens(line);
        std::string address, token, device;
        tokens >> address;
        bool wan = false;
        while (tokens >> token) {
            if (token == "wan") wan = true;
            if (token.rfind("device=", 0) == 0) device = token.substr(7);
        }
        if (address.empty() || known_.count(address) || std::find(own.begin(), own.end(), address) != own.end()) continue;
        if (session_.peer_penalized(address)) continue;
        auto b = backoff_.find(address);
        if (b != backoff_.end() && now < b->second.second) continue;
        known_.insert(address);
        connect(address, wan ? PD_SOURCE_WAN : PD_SOURCE_LAN, device);
    }
    if (!connecting_) connection_settled();
}

// One window for every link across this office's WAN link (they share it); a LAN peer's
// path is its own.
std::shared_ptr<background_path> swarm::path_for(bool wan) {
    net::ledbat_config cc;
    auto target = [s = &session_] { return s->config().get_int("wan.target_delay_ms") * 1000; };
    cc.target_us = target();
    if (!wan) return std::make_shared<background_path>(session_.net(), cc, target);
    if (!wan_path_)
        wan_path_ = std::make_shared<background_path>(session_.net(), cc, target,
                                                      [s = &session_](std::uint64_t bytes) { return s->take_wan_budget(bytes); });
    return wan_path_;
}

void swarm::connect(const std::string &address, std::uint32_t source_class, const std::string &expected_device) {
    ++connecting_;
    bool wan = source_class == PD_SOURCE_WAN;
    auto link = std::make_shared<peer_link>(session_.net(), address, *session_.fleet_key(), session_.node_id(),
                                            session_.device_identity());
    link->set_request_timeout(settings_.request_timeout_ms);
    std::weak_ptr<swarm> weak = shared_from_this();
    if (wan ? settings_.wan_background : settings_.lan_background) {
        link->set_background(path_for(wan), layout_);
        std::string who = (wan ? "WAN peer " : "peer ") + address;
        link->on_yield_change([weak, who](bool yielding, std::int64_t queue_us, std::int64_t target_us) {
            auto self = weak.lock();
            auto owner = self ? self->owner_.lock() : nullptr;
            if (!owner || !owner->wants_peers()) return;
            std::string delay = std::to_string(queue_us / 1000) + " ms";
            std::string target = std::to_string(target_us / 1000) + " ms target";
            owner->on_yield(yielding, yielding ? "background transfer from " + who + " yields: queueing delay " + delay +
                                                     " over the " + target +
                                                     " (other traffic is using the link); down to its minimum rate"
                                               : "background transfer from " + who + " resumes: queueing delay " + delay +
                                                     " (the " + target + "); the link is free again");
        });
        link->on_renewal([weak, who, job = job_id_](bool moved, const std::string &detail) {
            auto self = weak.lock();
            if (!self) return;
            // A renewal dropped because another device answered at the address is worth a
            // warning: someone else holds that address now.
            self->session_.log(moved ? PD_LOG_INFO : PD_LOG_WARN,
                               "job " + std::to_string(job) + ": " + who + ": " +
                                   (moved ? "moved to a fresh connection after a yield in which its TCP lost packets"
                                          : "a fresh connection was not used (" + detail + "); the old one goes on"));
        });
    }
    auto self = shared_from_this();
    auto give_up = [self, address](const std::string &why) {
        self->session_.log(PD_LOG_INFO, "job " + std::to_string(self->job_id_) + ": " + why);
        self->forget(address);
        self->connection_settled();
    };
    link->connect(settings_.connect_timeout_ms, [self, link, give_up, source_class, expected_device](const error *why) {
        if (why) return give_up(why->what());
        if (!expected_device.empty() && link->peer_device() != expected_device) {
            // The backend named the device it vouches for (the coordinator, by its enrolled
            // key): whoever answers at that address is not it.
            link->close("not the device the backend named");
            return give_up("peer " + link->address() + " is not the device its backend named (device key " +
                           link->peer_device().substr(0, 16) + "…, expected " + expected_device.substr(0, 16) + "…)");
        }
        if (link->node_id() == self->session_.node_id()) {
            // Discovery also finds this device itself (it answers its own query): the
            // address stays known so it is not dialled again.
            link->close("this device itself");
            return self->connection_settled();
        }
        if (self->banned_devices_.count(link->peer_device()) || self->session_.peer_penalized("device " + link->peer_device())) {
            // A device banned or penalized before, back at another address.
            link->close("a banned device");
            return self->connection_settled();
        }
        if (self->session_.device_refused(link->peer_device())) {
            // The address stays known: not dialled again in this job.
            link->close("a revoked device");
            self->session_.log(PD_LOG_WARN, "job " + std::to_string(self->job_id_) + ": peer " + link->address() +
                                                " is a revoked device: not used");
            return self->connection_settled();
        }
        link->query_have(self->content_, self->block_count_,
                         [self, link, give_up, source_class](const error *failed, peer_link::have_answer a) {
                             if (failed) return give_up(failed->what());
                             auto owner = self->owner_.lock();
                             if (!owner || !owner->wants_peers()) {
                                 link->close("job ended");
                                 return self->connection_settled();
                             }
                             auto slot = std::make_shared<peer_slot>();
                             slot->id = self->next_id_++;
                             slot->link = link;
                             slot->source_class = source_class;
                             slot->have = block_bitmap(self->block_count_);
                             self->set_have(*slot, block_bitmap(std::move(a.bitmap), self->block_count_), a.fetching);
                             slot->grew_ms = slot->have_ms;
                             self->watch_deltas(slot);
                             self->peers_.push_back(slot);
                             self->session_.log(PD_LOG_INFO, "job " + std::to_string(self->job_id_) + ": peer " +
                                                                 link->address() + " holds " + std::to_string(slot->have.count()) +
                                                                 " of " + std::to_string(self->block_count_) + " blocks");
                             self->connection_settled();
                             owner->on_peer_joined(slot);
                         });
    });
}

// The peer pushes HAVE_DELTAs from now on: only its own pipeline can fill from one.
// (Dispatching every peer on every delta cost 16 devices on two cores more CPU than the
// transfers.)
void swarm::watch_deltas(const std::shared_ptr<peer_slot> &slot) {
    std::weak_ptr<swarm> weak_self = shared_from_this();
    std::weak_ptr<peer_slot> weak_slot = slot;
    slot->link->on_have_delta([weak_self, weak_slot](const content::hash &id, const std::vector<std::uint64_t> &blocks) {
        auto self = weak_self.lock();
        auto peer = weak_slot.lock();
        if (!self || !peer || id != self->content_) return;
        auto owner = self->owner_.lock();
        if (!owner || !owner->wants_peers()) return;
        // In place: a delta costs its own size, not the content's (a copy and two counts of
        // the whole bitmap per delta once dominated large contents).
        std::vector<std::uint64_t> fresh;
        for (auto b : blocks)
            if (b < self->block_count_ && !peer->have.test(b)) {
                peer->have.set(b);
                fresh.push_back(b);
            }
        if (fresh.empty()) return;
        peer->grew_ms = store::now_ms();
        if (peer->counted()) owner->on_blocks_gained(*peer, fresh);
        owner->on_peer_gained(peer, false);
    });
}

void swarm::connection_settled() {
    if (connecting_ && --connecting_) return;
    if (!discovering_) return;
    discovering_ = false;
    if (!first_round_done_) first_round_ms_ = store::now_ms();
    first_round_done_ = true;
    if (auto owner = owner_.lock()) owner->on_round_done();
}

std::vector<std::shared_ptr<peer_slot>> swarm::fastest_first() const {
    auto order = peers_;
    std::stable_sort(order.begin(), order.end(), [](auto &a, auto &b) { return a->rate > b->rate; });
    return order;
}

std::shared_ptr<peer_slot> swarm::find(std::uint64_t id) const {
    for (auto &p : peers_)
        if (p->id == id) return p;
    return nullptr;
}

bool swarm::all_refreshed_since(std::int64_t since_ms) const {
    return std::all_of(peers_.begin(), peers_.end(), [&](auto &p) { return p->have_ms >= since_ms; });
}

// Takes a refreshed bitmap; notes when it gained blocks (the owner is making progress).
void swarm::set_have(peer_slot &peer, block_bitmap have, bool fetching) {
    std::int64_t now = store::now_ms();
    if (have.count() > peer.have.count()) peer.grew_ms = now;
    auto owner = owner_.lock();
    bool counted = peer.counted() && owner;
    if (counted) owner->on_availability(peer, -1);
    peer.have = std::move(have);
    if (counted) owner->on_availability(peer, +1);
    peer.have_ms = now;
    peer.fetching = fetching;
}

void swarm::refresh_stale(std::int64_t now_ms) {
    for (auto &p : std::vector<std::shared_ptr<peer_slot>>(peers_))
        if (now_ms - p->have_ms >= settings_.refresh_ms) refresh(p);
}

void swarm::refresh(const std::shared_ptr<peer_slot> &peer) {
    if (peer->have_pending || !peer->usable()) return;
    peer->have_pending = true;
    peer->link->query_have(content_, block_count_, [self = shared_from_this(), peer](const error *why, peer_link::have_answer a) {
        peer->have_pending = false;
        if (why) {
            if (why->code() != PD_E_CANCELLED) self->drop(peer, *why);
            return;
        }
        auto owner = self->owner_.lock();
        if (!owner || !owner->wants_peers()) return;
        self->set_have(*peer, block_bitmap(std::move(a.bitmap), self->block_count_), a.fetching);
        owner->on_peer_gained(peer, true);
    });
}

// Throughput: bytes over the time this answer took, counted from when it was sent or when
// the previous answer ended, whichever is later (pipelining).
void swarm::record_answer(peer_slot &peer, std::uint64_t bytes, std::int64_t sent_ms, std::int64_t now_ms) {
    double span = static_cast<double>(std::max<std::int64_t>(1, now_ms - std::max(sent_ms, peer.last_answer_ms)));
    double sample = static_cast<double>(bytes) * 1000.0 / span;
    peer.rate = peer.rate == 0 ? sample : 0.7 * peer.rate + 0.3 * sample;
    peer.last_answer_ms = peer.waiting_since_ms = now_ms;
    if (peer.demoted && !peer.banned && !peer.gone) {
        peer.demoted = false;
        if (auto owner = owner_.lock()) owner->on_availability(peer, +1);
    }
}

void swarm::record_request(peer_slot &peer, std::int64_t now_ms) {
    if (peer.requests++ == 0) peer.waiting_since_ms = now_ms;
}

bool swarm::demote_silent(std::int64_t now_ms) {
    bool any = false;
    auto owner = owner_.lock();
    for (auto &p : peers_) {
        if (!p->counted() || p->requests == 0 || now_ms - p->waiting_since_ms < settings_.answer_deadline_ms) continue;
        if (owner) owner->on_availability(*p, -1);
        p->demoted = any = true;
        session_.log(PD_LOG_INFO, "job " + std::to_string(job_id_) + ": peer " + p->link->address() + " answered nothing for " +
                                      std::to_string(now_ms - p->waiting_since_ms) +
                                      " ms: its pieces go to other sources until it answers");
    }
    return any;
}

unsigned swarm::pipeline_depth(const peer_slot &peer) const {
    unsigned max = settings_.max_requests;
    // A background link paces its blocks itself: enough pieces to fill its path's window, and
    // two more so it never runs dry. (Two alone capped the window at two pieces: 2 MiB is
    // less than a 100 Mbit/s path with 200 ms of round trip holds, and the window, which
    // grows only when it held a request back, stopped there — 0.55 of the link.)
    if (auto *path = peer.link->background()) {
        auto pieces = path->controller().window() / std::max<std::uint64_t>(settings_.piece_bytes, 1);
        return 2 + static_cast<unsigned>(std::min<std::uint64_t>(pieces, max));
    }
    double queue_s = static_cast<double>(settings_.request_queue_ms) / 1000.0;
    auto depth = static_cast<unsigned>(peer.rate * queue_s / static_cast<double>(settings_.piece_bytes)) + 1;
    return std::clamp(depth, std::min(2u, max), max);
}

// Takes a peer out: its availability, its slot, its address, its link (the outstanding
// requests come back as aborted pieces).
void swarm::remove(const std::shared_ptr<peer_slot> &peer, const std::string &why) {
    if (auto owner = owner_.lock(); owner && peer->counted()) owner->on_availability(*peer, -1);
    peer->gone = true;
    peers_.erase(std::remove(peers_.begin(), peers_.end(), peer), peers_.end());
    known_.erase(peer->link->address());
    peer->link->close(why);
}

void swarm::drop_device(const std::string &device_key) {
    for (auto &p : std::vector<std::shared_ptr<peer_slot>>(peers_))
        if (p->link->peer_device() == device_key) {
            session_.log(PD_LOG_WARN, "job " + std::to_string(job_id_) + ": peer " + p->link->address() +
                                          " is a revoked device: let go");
            auto address = p->link->address();
            remove(p, "its device was revoked");
            known_.insert(address);
        }
}

void swarm::reconnect_wan(const std::string &why) {
    for (auto &p : std::vector<std::shared_ptr<peer_slot>>(peers_))
        if (p->wan()) remove(p, why);
}

void swarm::drop(const std::shared_ptr<peer_slot> &peer, const error &why) {
    if (std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) return;
    const auto &address = peer->link->address();
    if (auto owner = owner_.lock()) owner->on_peer_failed("peer " + address + " failed: " + why.what());
    // A peer whose requests expire before it ever answered one is lying about what it holds:
    // the session remembers it, and once penalized it stays out of this job and of the next
    // ones until the penalty ends. (One that answered before is slow, not lying: it is only
    // backed off, so a loaded WAN peer is not shut out of later jobs.)
    const auto device = "device " + peer->link->peer_device();
    if (why.code() == PD_E_TIMEOUT && peer->last_answer_ms == 0) {
        session_.note_peer_expired(address);
        session_.note_peer_expired(device);
    }
    if (session_.peer_penalized(address) || session_.peer_penalized(device)) {
        session_.log(PD_LOG_WARN, "job " + std::to_string(job_id_) + ": peer " + address + " let " +
                                      std::to_string(core::session::max_peer_expiries) +
                                      " requests expire: not asked again for 10 minutes");
        remove(peer, why.what());
        known_.insert(address);  // never dialled again in this job, like a banned peer
        return;
    }
    forget(address);
    remove(peer, why.what());
}

// A peer that keeps failing (say, one that advertises blocks and never sends them) must not
// hold pieces hostage: each failure doubles its wait, from 1 s up to a minute, and the
// origin takes the pieces only it held meanwhile.
void swarm::forget(const std::string &address) {
    known_.erase(address);
    auto &[failures, not_before] = backoff_[address];
    ++failures;
    not_before = store::now_ms() + std::min<std::int64_t>(60000, std::int64_t{1000} << std::min(failures - 1, 6));
}

// A banned peer stays known, so discovery does not bring it back.
void swarm::ban(const std::shared_ptr<peer_slot> &peer) {
    if (peer->banned) return;
    if (auto owner = owner_.lock(); owner && peer->counted()) owner->on_availability(*peer, -1);
    peer->banned = true;
    // The ban names the device, not the address: it proved its key in HELLO, and coming back
    // from another address (or port) does not lift it.
    banned_devices_.insert(peer->link->peer_device());
    peer->link->close("banned: sent a block that failed verification");
}

void swarm::close_all(const std::string &why) {
    auto peers = std::move(peers_);
    peers_.clear();
    for (auto &p : peers) p->link->close(why);
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
std::uint64_t swarm::origin_owner(std::uint64_t first_block, const std::vector<std::uint64_t> &participants) {
    std::uint64_t owner = 0, best = 0;
    for (auto node : participants) {
        std::uint64_t h = mix64(node ^ mix64(first_block));
        if (owner == 0 || h > best) best = h, owner = node;
    }
    return owner;
}

bool swarm::origin_turn(std::uint64_t first_block, std::uint64_t node_id, std::int64_t now_ms) const {
    std::map<std::uint64_t, std::int64_t> grew{{node_id, now_ms}};  // node id -> last growth
    for (auto &peer : peers_) {
        if (peer->banned || !peer->fetching || peer->link->node_id() == node_id) continue;
        auto &g = grew.emplace(peer->link->node_id(), 0).first->second;
        g = std::max(g, peer->grew_ms);
    }
    std::vector<std::uint64_t> participants;
    for (auto &[node, _] : grew) participants.push_back(node);
    auto owner = origin_owner(first_block, participants);
    return owner == node_id || now_ms - grew[owner] >= settings_.coop_wait_ms;
}

}  // namespace pd::peer
