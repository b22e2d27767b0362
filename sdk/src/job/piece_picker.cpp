#include "job/piece_picker.h"

#include <algorithm>
#include <utility>

namespace pd::core {

piece_picker::piece_picker(std::uint64_t block_count, std::uint64_t blocks_per_piece, const block_bitmap &held)
    : written_(held.bytes(), block_count), block_count_(block_count), written_count_(written_.count()) {
    blocks_per_piece = std::max<std::uint64_t>(1, blocks_per_piece);
    for (std::uint64_t first = 0; first < block_count; first += blocks_per_piece) {
        std::uint64_t end = std::min(block_count, first + blocks_per_piece);
        std::uint64_t lo = end, hi = first;
        for (std::uint64_t b = first; b < end; ++b)
            if (!written_.test(b)) {
                lo = std::min(lo, b);
                hi = b + 1;
            }
        if (lo < hi) pieces_.push_back({lo, static_cast<std::uint32_t>(hi - lo)});
    }
    for (std::uint32_t i = 0; i < pieces_.size(); ++i) queue_.push_back(i);
    flights_.assign(pieces_.size(), 0);
    flight_ms_.assign(pieces_.size(), 0);
    holder_.assign(pieces_.size(), origin);
    avail_.assign(pieces_.size(), 0);
    avail_lan_.assign(pieces_.size(), 0);
}

bool piece_picker::mark_written(std::uint64_t block) {
    if (written_.test(block)) return false;
    written_.set(block);
    ++written_count_;
    return true;
}

std::vector<std::uint64_t> piece_picker::wanted(std::uint32_t index) const {
    std::vector<std::uint64_t> out;
    const piece &p = pieces_[index];
    for (std::uint64_t b = p.first_block; b < p.first_block + p.block_count; ++b)
        if (!written_.test(b)) out.push_back(b);
    return out;
}

bool piece_picker::holds(const block_bitmap &have, std::uint32_t index) const {
    const piece &p = pieces_[index];
    for (std::uint64_t b = p.first_block; b < p.first_block + p.block_count; ++b)
        if (!have.test(b)) return false;
    return true;
}

void piece_picker::count(const block_bitmap &have, bool lan, int sign) {
    if (have.empty()) return;
    for (std::uint32_t i = 0; i < pieces_.size(); ++i)
        if (holds(have, i)) {
            avail_[i] = static_cast<std::uint16_t>(avail_[i] + sign);
            if (lan) avail_lan_[i] = static_cast<std::uint16_t>(avail_lan_[i] + sign);
        }
}

void piece_picker::count_gained(const block_bitmap &have, const std::vector<std::uint64_t> &fresh, bool lan) {
    std::uint32_t last = none;
    for (auto b : fresh) {
        // The piece holding b, if any (pieces are in block order; held blocks have none).
        auto it = std::upper_bound(pieces_.begin(), pieces_.end(), b, [](std::uint64_t x, const piece &p) { return x < p.first_block; });
        if (it == pieces_.begin()) continue;
        --it;
        if (b >= it->first_block + it->block_count) continue;
        auto index = static_cast<std::uint32_t>(it - pieces_.begin());
        // A piece with a fresh block was not held before; count it once if it is now.
        if (index == last || !holds(have, index)) continue;
        last = index;
        ++avail_[index];
        if (lan) ++avail_lan_[index];
    }
}

std::uint32_t piece_picker::choose_for(const peer_view &peer) const {
    std::uint32_t best = none;
    std::pair<std::uint16_t, std::uint64_t> best_key{};
    // A WAN peer (another office) only gets what no LAN peer has: each byte crosses the WAN once.
    for (auto i : queue_) {
        if (!holds(peer.have, i) || (peer.wan && avail_lan_[i])) continue;
        std::pair<std::uint16_t, std::uint64_t> key{avail_[i], mix64(peer.node_id ^ i)};
        if (best == none || key < best_key) best = i, best_key = key;
    }
    // No end-game over the WAN: a duplicate there spends the scarcest link (request timeouts
    // still move pieces off a WAN peer that stopped answering).
    if (best != none || !queue_.empty() || !peer.idle || peer.wan) return best;
    // End-game: everything is requested and this peer is idle; ask it too for a piece in
    // flight elsewhere that is overdue — in flight longer than twice what this peer would
    // need for it, and at least a second. Whichever answer verifies first wins; the other is
    // discarded. (Duplicating every in-flight piece at once measured 19 % of the LAN bytes
    // wasted with four devices; the server cannot cancel an answer already queued.) At least
    // a second: a busy seeder on a loaded machine stalls for a few hundred ms (measured:
    // 250 ms wasted 3-7 % of the LAN bytes with eight devices on two cores).
    constexpr std::int64_t endgame_min_ms = 1000;
    std::int64_t overdue = endgame_min_ms;
    if (peer.rate > 0) overdue = std::max(overdue, static_cast<std::int64_t>(2000.0 * peer.piece_bytes / peer.rate));
    for (std::uint32_t i = 0; i < pieces_.size(); ++i) {
        if (flights_[i] != 1 || peer.now_ms - flight_ms_[i] <= overdue || !holds(peer.have, i) || (peer.wan && avail_lan_[i]))
            continue;
        if (holder_[i] != origin && peer.last_answer_ms) {
            std::int64_t answered = peer.last_answer_ms(holder_[i]);
            if (answered >= 0 && peer.now_ms - std::max(answered, flight_ms_[i]) <= overdue) continue;
        }
        if (!wanted(i).empty()) return i;
    }
    return none;
}

std::vector<std::uint32_t> piece_picker::unheld() const {
    std::vector<std::uint32_t> out;
    for (auto i : queue_)
        if (avail_[i] == 0) out.push_back(i);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::uint32_t> piece_picker::in_flight_only_at(holder_id holder) const {
    std::vector<std::uint32_t> out;
    for (std::uint32_t i = 0; i < pieces_.size(); ++i)
        if (flights_[i] == 1 && holder_[i] == holder) out.push_back(i);
    return out;
}

void piece_picker::take(std::uint32_t index, holder_id holder, std::int64_t now_ms) {
    auto it = std::find(queue_.begin(), queue_.end(), index);
    if (it != queue_.end()) {
        *it = queue_.back();
        queue_.pop_back();
    }
    ++flights_[index];
    ++in_flight_;
    flight_ms_[index] = now_ms;
    holder_[index] = holder;
}

void piece_picker::give_back(std::uint32_t index) {
    --flights_[index];
    --in_flight_;
    if (flights_[index] == 0 && !wanted(index).empty()) queue_.push_back(index);
}

}  // namespace pd::core
