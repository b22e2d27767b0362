// The peers one job talks to: their links, what each holds, how fast each answers, and who
// failed. Discovery rounds bring addresses (static peers and backends' find_peers, gathered by
// the job); each new one is connected over the secure channel and asked for its HAVE. A peer
// that breaks is forgotten with an exponential backoff before discovery may bring it back; one
// that sent a bad block is banned for the job. The cooperative origin split (which device
// fetches a piece from the origin) is decided here from the peers' HAVE flags. Network thread.
#pragma once

#include "job/job_settings.h"
#include "peer/peer_link.h"
#include "util/bitmap.h"

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace pd::core {
class session;
}

namespace pd::peer {

struct peer_slot {
    std::uint64_t id = 0;                 // unique within the swarm, never 0
    std::shared_ptr<peer_link> link;
    block_bitmap have;                    // its verified blocks, as last reported
    std::int64_t have_ms = 0;             // when `have` was last refreshed
    std::int64_t grew_ms = 0;             // when its bitmap last gained blocks
    bool fetching = false;                // downloading the content too: shares the origin work
    bool banned = false, have_pending = false;
    // Holds pieces but has answered nothing for peer.answer_deadline_ms: its bitmap stops
    // counting (the origin and other peers take its pieces) until it answers again.
    bool demoted = false;
    // Dropped or let go: out of the swarm. A verdict on its blocks can still come in after
    // (they were being verified when its link failed) and must not uncount it twice.
    bool gone = false;
    unsigned requests = 0;                // block requests outstanding on the link
    std::int64_t waiting_since_ms = 0;    // when its oldest outstanding request began to wait
    double rate = 0;                      // bytes/s: moving average over answered requests
    std::int64_t last_answer_ms = 0;
    std::uint32_t source_class = PD_SOURCE_LAN;  // WAN: another office's device

    bool wan() const { return source_class == PD_SOURCE_WAN; }
    bool counted() const { return !banned && !demoted && !gone; }  // in the availability counts
    bool usable() const { return counted() && link->open(); }
};

class swarm : public std::enable_shared_from_this<swarm> {
public:
    // What the job hears, on the network thread.
    struct listener {
        virtual ~listener() = default;
        // False once the job no longer takes peers (ended, shutting down).
        virtual bool wants_peers() const = 0;
        // A usable peer's bitmap is about to change (`sign` -1) or changed (+1).
        virtual void on_availability(const peer_slot &peer, int sign) = 0;
        // A usable peer's bitmap gained `fresh` blocks (already set).
        virtual void on_blocks_gained(const peer_slot &peer, const std::vector<std::uint64_t> &fresh) = 0;
        // A peer answered its first HAVE and joined.
        virtual void on_peer_joined(const std::shared_ptr<peer_slot> &peer) = 0;
        // A peer's bitmap grew (HAVE_DELTA) or was refreshed.
        virtual void on_peer_gained(const std::shared_ptr<peer_slot> &peer, bool refreshed) = 0;
        // A peer failed (it is forgotten for a while).
        virtual void on_peer_failed(const std::string &why) = 0;
        // Every connection of a discovery round answered or failed.
        virtual void on_round_done() = 0;
        // A background transfer started or stopped yielding to other traffic; `message` says
        // from which peer, the queueing delay measured and the target.
        virtual void on_yield(bool yielding, const std::string &message) = 0;
    };

    // `layout`: the content's size and block size (which blocks it has, where each ends).
    swarm(core::session &s, content::hash content, content::block_layout layout, std::uint64_t job_id,
          std::weak_ptr<listener> owner);

    void apply(const core::job_settings &settings) { settings_ = settings; }

    // A discovery round: begin(), then consider() with the addresses it found ("ip:port" or
    // "ip:port wan"). WAN peers no longer listed are let go (two devices of one office never
    // pull the same content over the WAN); new addresses are connected.
    void begin_round() { discovering_ = true; }
    void consider(const std::vector<std::string> &lines);
    // A round is under way or connections are being made.
    bool busy() const { return discovering_ || connecting_ > 0; }
    bool discovering() const { return discovering_; }
    bool first_round_done() const { return first_round_done_; }
    std::int64_t first_round_ms() const { return first_round_ms_; }

    const std::vector<std::shared_ptr<peer_slot>> &peers() const { return peers_; }
    std::vector<std::shared_ptr<peer_slot>> fastest_first() const;
    std::shared_ptr<peer_slot> find(std::uint64_t id) const;
    // Every peer's HAVE was refreshed at or after `since_ms`.
    bool all_refreshed_since(std::int64_t since_ms) const;

    // Asks peers whose bitmaps are older than peer.refresh_ms for a fresh HAVE.
    void refresh_stale(std::int64_t now_ms);
    void refresh(const std::shared_ptr<peer_slot> &peer);
    // A request went out to the peer.
    void record_request(peer_slot &peer, std::int64_t now_ms);
    // An answer ended: `bytes` arrived for a request sent at `sent_ms`. A demoted peer counts
    // again.
    void record_answer(peer_slot &peer, std::uint64_t bytes, std::int64_t sent_ms, std::int64_t now_ms);
    // Demotes peers with requests outstanding that answered nothing for
    // peer.answer_deadline_ms (a peer that advertises blocks and never sends them); true
    // when one was.
    bool demote_silent(std::int64_t now_ms);
    // Requests to keep on the peer's link: enough for peer.request_queue_ms at its measured
    // rate (libtorrent's request queue time), at least two so one is always on the wire.
    unsigned pipeline_depth(const peer_slot &peer) const;

    // A broken or silent peer: an event, a backoff, then removal; one the session penalized
    // for expired requests (PD_E_TIMEOUT, session::note_peer_expired) is not dialled again.
    void drop(const std::shared_ptr<peer_slot> &peer, const error &why);
    // A peer that sent a block failing verification: its device is banned for this job
    // (design §5), whatever address it comes back from.
    void ban(const std::shared_ptr<peer_slot> &peer);
    void close_all(const std::string &why);
    // The device with this key (hex) was revoked (session::refuse_device): its links close
    // and its addresses are not dialled again in this job.
    void drop_device(const std::string &device_key);
    // The WAN links close and the next discovery round dials the same peers again with the
    // settings in force (a job raised to the foreground class).
    void reconnect_wan(const std::string &why);

    // The cooperative origin split: should this device (`node_id`) fetch the piece starting
    // at `first_block` from the origin now?
    bool origin_turn(std::uint64_t first_block, std::uint64_t node_id, std::int64_t now_ms) const;
    // Rendezvous hashing: of the devices `participants` (node ids, this one among them), the
    // one that owns the piece starting at `first_block`. Every device computes the same
    // owner from the same set, and a device leaving moves only its own pieces.
    static std::uint64_t origin_owner(std::uint64_t first_block, const std::vector<std::uint64_t> &participants);

private:
    // `expected_device`: the device key (hex) the peer must prove in HELLO, or "" for any.
    void connect(const std::string &address, std::uint32_t source_class, const std::string &expected_device = {});
    void watch_deltas(const std::shared_ptr<peer_slot> &slot);
    void connection_settled();
    void remove(const std::shared_ptr<peer_slot> &peer, const std::string &why);
    void forget(const std::string &address);
    void set_have(peer_slot &peer, block_bitmap have, bool fetching);
    std::shared_ptr<background_path> path_for(bool wan);

    core::session &session_;
    content::hash content_;
    content::block_layout layout_;
    std::uint64_t block_count_;
    std::uint64_t job_id_;
    std::weak_ptr<listener> owner_;
    core::job_settings settings_;

    std::vector<std::shared_ptr<peer_slot>> peers_;
    std::uint64_t next_id_ = 1;
    std::set<std::string> known_;  // connected, connecting, or this device itself
    std::set<std::string> banned_devices_;  // device keys (hex) that sent a bad block in this job
    // Peers that failed: address -> (failures, not before ms).
    std::map<std::string, std::pair<int, std::int64_t>> backoff_;
    unsigned connecting_ = 0;
    bool discovering_ = false, first_round_done_ = false;
    std::int64_t first_round_ms_ = 0;
    // The background window shared by the links to other offices (peer/background_path.h).
    std::shared_ptr<background_path> wan_path_;
};

}  // namespace pd::peer
