// The BranchCache identities of the cached contents. Windows' BranchCache peers name
// segments, never contents: a segment's ID (HoHoDk) and secret (Kp) come from the content's
// Content Information ([MS-PCCRC] V1), which only the content's origin can give, since both
// derive from the origin's server secret. For each content whose Content Information is
// recorded, this index maps segment IDs to the content's blocks, so that the branchcache
// backend's wire mode can answer [MS-PCCRD]/[MS-PCCRR] peers (docs/protocol.md §5–6).
#pragma once

#include "content/pccrc.h"
#include "store/block_store.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace pd::core {

struct branchcache_segment {
    store::hash content{};
    std::uint32_t index = 0;        // the segment's index in the content
    std::uint64_t first_block = 0;  // the content's index of the segment's first block
    std::uint32_t block_count = 0;  // blocks in the segment
    content::pccrc::hash id{};      // HoHoDk
    content::pccrc::hash secret{};  // Kp
};

class branchcache_index {
public:
    explicit branchcache_index(store::block_store &store) : store_(store) {}

    // Records the content's Content Information V1 once it is checked to describe exactly
    // the blocks of the content's manifest: SHA-256, the whole content, the same segments and
    // block hashes (the secrets are the origin's). Throws PD_E_NOT_FOUND for a content the
    // cache does not know, PD_E_INVALID for bytes that are not Content Information V1, and
    // PD_E_INTEGRITY for Content Information of other blocks. Any thread.
    void set_info(const store::hash &content, const std::uint8_t *info, std::size_t len);

    // The segment with this ID among the contents still cached (every way a content leaves
    // the cache ends in session::content_removed, which calls forget), or nothing. Any thread.
    std::optional<branchcache_segment> find(const std::uint8_t *segment_id, std::size_t len);

    // The content left the cache: its segments are no longer answered for. Any thread.
    void forget(const store::hash &content);

    // The content's segments in order; empty without recorded Content Information. Any thread.
    std::vector<branchcache_segment> segments_of(const store::hash &content);

private:
    // Parses and checks recorded or offered Content Information against the manifest.
    std::vector<branchcache_segment> segments_from(const store::hash &content, const std::uint8_t *info, std::size_t len);
    void load_locked();
    void add_locked(std::vector<branchcache_segment> segments);
    void forget_locked(const store::hash &content);

    store::block_store &store_;
    std::mutex mu_;
    std::map<content::pccrc::hash, branchcache_segment> by_id_;
    // Every recorded content's segments, in order. A segment two contents share (the same
    // bytes from the same origin) is in both lists, and in by_id_ once.
    std::map<store::hash, std::vector<branchcache_segment>> by_content_;
    bool loaded_ = false;
};

}  // namespace pd::core
