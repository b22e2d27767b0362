// Which pieces a job still needs and which source should bring each: the queue of missing
// pieces, the pieces in flight, how many peers hold each piece (availability), the
// rarest-first choice for a peer and the end-game. Bookkeeping only, on the network thread:
// no I/O, no clock (times are passed in), so it is tested on its own (test_job_parts.cpp).
#pragma once

#include "util/bitmap.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace pd::core {

class piece_picker {
public:
    static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
    // Who a fetch went to: a swarm's peer id, or `origin`.
    using holder_id = std::uint64_t;
    static constexpr holder_id origin = 0;

    // A run of blocks fetched together: one request to a peer, one read from the origin.
    struct piece {
        std::uint64_t first_block;
        std::uint32_t block_count;
    };

    // Splits the blocks not in `held` into pieces of at most `blocks_per_piece` (each
    // trimmed to its first and last missing block) and queues them all.
    piece_picker(std::uint64_t block_count, std::uint64_t blocks_per_piece, const block_bitmap &held);

    std::uint32_t piece_count() const { return static_cast<std::uint32_t>(pieces_.size()); }
    const piece &at(std::uint32_t index) const { return pieces_[index]; }
    // Nothing queued (pieces may still be in flight).
    bool queue_empty() const { return queue_.empty(); }
    // Every piece has come back and none needs fetching again.
    bool done() const { return queue_.empty() && in_flight_ == 0; }
    unsigned in_flight() const { return in_flight_; }

    // Verified and written, in this run or before it.
    bool written(std::uint64_t block) const { return written_.test(block); }
    bool all_written() const { return written_count_ == block_count_; }
    // Records a block as written; false when it already was (the end-game's second copy).
    bool mark_written(std::uint64_t block);
    // The piece's blocks not written yet, in order.
    std::vector<std::uint64_t> wanted(std::uint32_t index) const;

    // A usable peer's bitmap joins (+1) or leaves (-1) the availability counts.
    void count(const block_bitmap &have, bool lan, int sign);
    // A counted peer gained `fresh` blocks (now set in `have`): only the pieces holding them
    // can have become available, so a HAVE_DELTA costs its own size, not the content's.
    void count_gained(const block_bitmap &have, const std::vector<std::uint64_t> &fresh, bool lan);
    bool holds(const block_bitmap &have, std::uint32_t index) const;
    // Peers holding the whole piece.
    unsigned availability(std::uint32_t index) const { return avail_[index]; }

    // What the choice for one peer looks at.
    struct peer_view {
        const block_bitmap &have;
        bool wan;                  // another office: only pieces no LAN peer holds, no end-game
        bool idle;                 // nothing outstanding on its link
        double rate;               // its measured bytes/s (0: unknown)
        std::uint64_t node_id;     // this device's: ties broken per device so devices spread out
        double piece_bytes;
        std::int64_t now_ms;
        // When a holder last answered anything (end-game: a piece queued behind others on a
        // link that is answering is not late); negative when the holder is gone.
        std::function<std::int64_t(holder_id)> last_answer_ms;
    };
    // The rarest queued piece the peer holds or, in end-game, an overdue piece in flight
    // elsewhere it could duplicate; `none` when there is none.
    std::uint32_t choose_for(const peer_view &peer) const;
    // Queued pieces no peer holds, in block order: the origin's share.
    std::vector<std::uint32_t> unheld() const;
    // Pieces whose only fetch out is with `holder`.
    std::vector<std::uint32_t> in_flight_only_at(holder_id holder) const;

    // A fetch of the piece goes out.
    void take(std::uint32_t index, holder_id holder, std::int64_t now_ms);
    // A fetch came back; a piece with blocks still unwritten and no other fetch out goes
    // back to the queue.
    void give_back(std::uint32_t index);

private:
    std::vector<piece> pieces_;
    std::vector<std::uint32_t> queue_;      // pieces with no fetch outstanding
    std::vector<std::uint8_t> flights_;     // per piece: fetches outstanding (2 in end-game)
    std::vector<std::int64_t> flight_ms_;   // per piece: when its latest fetch went out
    std::vector<holder_id> holder_;         // per piece: who was asked last
    std::vector<std::uint16_t> avail_;      // per piece: usable peers holding all of it
    std::vector<std::uint16_t> avail_lan_;  // the same, LAN peers only
    block_bitmap written_;
    std::uint64_t block_count_, written_count_;
    unsigned in_flight_ = 0;
};

}  // namespace pd::core
