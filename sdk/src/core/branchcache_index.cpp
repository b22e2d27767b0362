#include "core/branchcache_index.h"

#include "util/error.h"
#include "util/hex.h"

#include <algorithm>
#include <cstring>

namespace pd::core {

namespace pccrc = content::pccrc;

std::vector<branchcache_segment> branchcache_index::segments_from(const store::hash &content, const std::uint8_t *info,
                                                                  std::size_t len) {
    auto m = store_.manifest(content);
    if (!m) fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content " + to_hex(content.data(), 32) + " is not in the cache");
    auto ci = pccrc::v1_info::parse(info, len);  // PD_E_INVALID when malformed
    auto refuse = [&](const std::string &why) {
        fail(PD_E_INTEGRITY, PD_CATEGORY_CONTENT, "Content Information does not describe content " + to_hex(content.data(), 32) + ": " + why);
    };
    if (ci.hash_algo != pccrc::v1_hash_sha256) refuse("not SHA-256");
    if (ci.offset_in_first_segment || ci.read_bytes_in_last_segment) refuse("a range, not the whole content");
    if (m->block_size != pccrc::block_size || m->segment_size != pccrc::segment_size) refuse("the manifest's blocks are not BranchCache's");
    std::uint64_t blocks_per_segment = m->blocks_per_segment();
    if (ci.segments.size() != (m->block_count() + blocks_per_segment - 1) / blocks_per_segment) refuse("another number of segments");
    std::vector<branchcache_segment> out;
    std::uint64_t first = 0;
    for (std::size_t i = 0; i < ci.segments.size(); ++i) {
        auto &s = ci.segments[i];
        std::uint64_t count = std::min<std::uint64_t>(blocks_per_segment, m->block_count() - first);
        std::uint64_t bytes = std::min<std::uint64_t>(m->segment_size, m->size - s.offset);
        if (s.offset != first * m->block_size || s.length != bytes || s.block_size != m->block_size ||
            s.block_hashes.size() != count || !std::equal(s.block_hashes.begin(), s.block_hashes.end(), m->block_hashes.begin() + static_cast<std::ptrdiff_t>(first)))
            refuse("segment " + std::to_string(i) + " differs");
        branchcache_segment seg;
        seg.content = content;
        seg.index = static_cast<std::uint32_t>(i);
        seg.first_block = first;
        seg.block_count = static_cast<std::uint32_t>(count);
        seg.id = pccrc::v1_segment_id(s.kp, s.hod);
        seg.secret = s.kp;
        out.push_back(seg);
        first += count;
    }
    return out;
}

void branchcache_index::forget(const store::hash &content) {
    std::lock_guard lk(mu_);
    forget_locked(content);
}

void branchcache_index::forget_locked(const store::hash &content) {
    by_content_.erase(content);
    for (auto it = by_id_.begin(); it != by_id_.end();) it = it->second.content == content ? by_id_.erase(it) : std::next(it);
    // A segment this content shared with another stays answerable through the other.
    for (auto &[other, segments] : by_content_)
        for (auto &s : segments) by_id_.try_emplace(s.id, s);
}

void branchcache_index::add_locked(std::vector<branchcache_segment> segments) {
    if (segments.empty()) return;
    for (auto &s : segments) by_id_[s.id] = s;
    by_content_[segments.front().content] = std::move(segments);
}

void branchcache_index::set_info(const store::hash &content, const std::uint8_t *info, std::size_t len) {
    auto segments = segments_from(content, info, len);
    store_.set_branchcache_info(content, std::vector<std::uint8_t>(info, info + len));
    std::lock_guard lk(mu_);
    load_locked();
    forget_locked(content);
    add_locked(std::move(segments));
}

void branchcache_index::load_locked() {
    if (loaded_) return;
    loaded_ = true;
    for (auto &rec : store_.list()) {
        auto info = store_.branchcache_info(rec.id);
        if (info.empty()) continue;
        try {
            add_locked(segments_from(rec.id, info.data(), info.size()));
        } catch (const error &) {
            // Recorded after the same check: only a damaged database gets here; the content
            // keeps serving peerdist's own peers.
        }
    }
}

std::optional<branchcache_segment> branchcache_index::find(const std::uint8_t *segment_id, std::size_t len) {
    if (len != sizeof(pccrc::hash)) return std::nullopt;  // V1 with SHA-256 only
    pccrc::hash id;
    std::memcpy(id.data(), segment_id, id.size());
    std::lock_guard lk(mu_);
    load_locked();
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return std::nullopt;
    return it->second;
}

std::vector<branchcache_segment> branchcache_index::segments_of(const store::hash &content) {
    std::lock_guard lk(mu_);
    load_locked();
    auto it = by_content_.find(content);
    return it == by_content_.end() ? std::vector<branchcache_segment>{} : it->second;
}

}  // namespace pd::core
