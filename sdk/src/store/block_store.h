// The verified block store (design §4): one preallocated data file per content under
// <cache>/data, and a SQLite index (WAL) of contents, manifests, verified-block bitmaps,
// pins, last use and quota accounting. A block's bit is set only by mark_verified(),
// which callers invoke after the block's bytes were made durable, so a crash never
// leaves a "verified" block with bad bytes. Thread-safe: one mutex around the database.
#pragma once

#include "content/manifest.h"
#include "platform/file.h"

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <memory>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace pd::store {

using content::hash;

enum class content_state { known = 0, partial = 1, complete = 2 };

struct content_record {
    hash id{};
    std::string name;
    std::uint64_t size = 0;
    std::string origin;
    content_state state = content_state::known;
    std::vector<std::uint8_t> verified;  // bitmap, bit i = block i
    std::uint64_t verified_blocks = 0;
    std::uint64_t verified_bytes = 0;
    bool pinned = false;
    std::int64_t last_used_ms = 0;
    std::uint64_t bytes_on_disk = 0;
    // Set while a delivered file shares the data file (hard link): its modification time then.
    std::optional<std::int64_t> shared_mtime_ns;

    bool block_verified(std::uint64_t i) const { return (verified[i / 8] >> (i % 8)) & 1; }
};

struct quota {
    std::uint64_t bytes = 0;    // 0: no byte cap
    std::uint32_t percent = 0;  // 0: no percentage cap
};

class block_store {
public:
    // Opens (creating if needed) the store; takes the directory's lock.
    block_store(const std::string &cache_dir, quota q);
    ~block_store();

    const std::string &dir() const { return dir_; }
    std::string data_path(const hash &id) const;

    // Records a manifest (idempotent); updates the origin when `origin` is non-empty.
    void put_manifest(const content::manifest &m, const std::string &origin);
    std::shared_ptr<const content::manifest> manifest(const hash &id);
    std::optional<content_record> get(const hash &id);
    // The same record, shared rather than copied (nullptr: not in the cache): what the peer
    // server reads for every request it answers.
    std::shared_ptr<const content_record> find(const hash &id);
    std::vector<content_record> list();

    // Makes room for `size` bytes of content `id` under the quota, evicting completed,
    // unpinned, least recently used contents not in `busy`. Returns the evicted ids.
    // Throws PD_E_QUOTA when even eviction cannot make room.
    std::vector<std::pair<hash, std::uint64_t>> reserve(const hash &id, std::uint64_t size, const std::set<hash> &busy);
    // Opens the content's data file, preallocated to its size (PD_E_NOSPACE if the disk is full).
    platform::file open_data(const hash &id, std::uint64_t size);

    // Sets the verified bits of durable blocks. Returns the new verified byte count.
    std::uint64_t mark_verified(const hash &id, const std::vector<std::uint64_t> &blocks);
    void mark_complete(const hash &id);
    // Forgets verified bits of damaged blocks (after an end-to-end check found them).
    void unmark_verified(const hash &id, const std::vector<std::uint64_t> &blocks);
    // A delivered file now shares the content's data file (hard link): its modification time
    // is recorded, and shared_file_intact() compares against it from now on.
    void mark_shared(const hash &id);
    // False when a delivered file that shares the content's data file was written since it
    // was delivered: the cache has then let go of its link (the file is the host's; the
    // cache never writes into it) and forgotten the content's blocks. True otherwise. Called
    // before a block is served or the data file is opened for writing (open_data).
    bool shared_file_intact(const hash &id);
    void remove(const hash &id);
    void set_pinned(const hash &id, bool pinned);
    // The content's BranchCache Content Information V1 (unchecked here: the session checks it
    // against the manifest). Empty: none recorded.
    void set_branchcache_info(const hash &id, const std::vector<std::uint8_t> &info);
    std::vector<std::uint8_t> branchcache_info(const hash &id);
    void touch(const hash &id);

    std::uint64_t used_bytes();
    // Effective byte cap now (0: unlimited).
    std::uint64_t quota_bytes();
    void set_quota(quota q);

private:
    std::optional<content_record> get_locked(const hash &id);
    std::shared_ptr<const content_record> find_locked(const hash &id);
    void drop_data_locked(const hash &id);
    std::uint64_t used_bytes_locked();
    std::uint64_t quota_bytes_locked();

    std::string dir_;
    std::unique_ptr<platform::dir_lock> lock_;
    std::mutex mu_;
    std::unique_ptr<SQLite::Database> db_;
    quota quota_;
    // Parsed manifests, most recently used last: the peer server looks one up for every
    // REQUEST and HAVE it answers. Bounded by their block count (32 B a block).
    static constexpr std::uint64_t max_cached_blocks = 1u << 20;
    std::list<std::shared_ptr<const content::manifest>> manifests_;
    std::map<hash, std::list<std::shared_ptr<const content::manifest>>::iterator> manifest_index_;
    std::uint64_t cached_blocks_ = 0;
    // Rows of the index read since they last changed: the peer server reads one for every
    // request it answers, and reading it from SQLite each time was the largest part of its
    // cost per request (28 % of its profile serving 16 KiB parts). Every write to a row drops
    // its entry (only this process writes the index: the directory is locked); a few hundred
    // contents at most, then it starts over.
    static constexpr std::size_t max_cached_records = 256;
    std::map<hash, std::shared_ptr<const content_record>> records_;
};

std::int64_t now_ms();

}  // namespace pd::store
