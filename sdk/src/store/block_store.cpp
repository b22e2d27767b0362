#include "store/block_store.h"

#include "platform/file.h"
#include "util/error.h"
#include "util/hex.h"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sqlite3.h>
#include <filesystem>

namespace pd::store {

namespace fs = std::filesystem;

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

constexpr int schema_version = 1;

static const char *schema = R"sql(
CREATE TABLE IF NOT EXISTS contents (
    id BLOB PRIMARY KEY,
    manifest BLOB NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    block_size INTEGER NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    state INTEGER NOT NULL DEFAULT 0,
    verified BLOB NOT NULL,
    verified_blocks INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0,
    last_used INTEGER NOT NULL,
    created INTEGER NOT NULL,
    bytes_on_disk INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contents_lru ON contents(state, pinned, last_used);
)sql";

// Columns added after schema 1 was released. They leave user_version alone: a library that
// does not know them reads and writes the same database, ignoring them.
static const std::pair<const char *, const char *> added_columns[] = {
    // A delivered file shares this content's data file (hard link): the file's modification
    // time (ns) when it was delivered. NULL otherwise.
    {"shared_mtime_ns", "INTEGER"},
    // The content's BranchCache Content Information (V1, [MS-PCCRC]) as its origin gave it,
    // checked against the manifest: the segment IDs and secrets BranchCache peers use. NULL
    // when none is known.
    {"branchcache_info", "BLOB"},
};

template <class Fn>
static auto guarded(const char *what, Fn fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const SQLite::Exception &e) {
        int code = e.getErrorCode();
        int pd_code = PD_E_IO;
        if (code == SQLITE_FULL) pd_code = PD_E_NOSPACE;
        else if (code == SQLITE_READONLY || code == SQLITE_CANTOPEN) pd_code = PD_E_READONLY;
        else if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) pd_code = PD_E_INVALID;
        else if (code == SQLITE_BUSY || code == SQLITE_LOCKED) pd_code = PD_E_BUSY;
        fail(pd_code, PD_CATEGORY_STORE, std::string(what) + ": " + e.what());
    }
}

block_store::block_store(const std::string &cache_dir, quota q) : dir_(cache_dir), quota_(q) {
    platform::ensure_writable_dir(dir_);
    platform::ensure_writable_dir(dir_ + "/data");
    lock_ = std::make_unique<platform::dir_lock>(dir_ + "/peerdist.lock");
    guarded("opening the cache database", [&] {
        db_ = std::make_unique<SQLite::Database>(dir_ + "/peerdist.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db_->exec("PRAGMA journal_mode=WAL");
        // NORMAL is crash-safe for the process (kill -9); verified bits follow fdatasync of the data.
        db_->exec("PRAGMA synchronous=NORMAL");
        db_->exec("PRAGMA busy_timeout=5000");
        int version = db_->execAndGet("PRAGMA user_version").getInt();
        if (version > schema_version)
            fail(PD_E_VERSION, PD_CATEGORY_STORE,
                 "cache database schema " + std::to_string(version) + " is newer than this library (" +
                     std::to_string(schema_version) + ")");
        db_->exec(schema);
        for (auto &[column, type] : added_columns) {
            SQLite::Statement has(*db_, "SELECT COUNT(*) FROM pragma_table_info('contents') WHERE name = ?");
            has.bind(1, column);
            if (has.executeStep() && has.getColumn(0).getInt() == 0)
                db_->exec(std::string("ALTER TABLE contents ADD COLUMN ") + column + " " + type);
        }
        db_->exec("PRAGMA user_version=" + std::to_string(schema_version));
        db_->exec("PRAGMA quick_check");
    });
}

block_store::~block_store() = default;

std::string block_store::data_path(const hash &id) const { return dir_ + "/data/" + to_hex(id.data(), id.size()) + ".data"; }

// A bitmap as a BLOB; an empty content's is a zero-length BLOB, never NULL (SQLite binds a
// null pointer as NULL, which the schema refuses).
static void bind_bitmap(SQLite::Statement &s, int index, const std::vector<std::uint8_t> &bits) {
    static const std::uint8_t none = 0;
    s.bind(index, bits.empty() ? &none : bits.data(), static_cast<int>(bits.size()));
}

void block_store::put_manifest(const content::manifest &m, const std::string &origin) {
    auto blob = m.serialize();
    std::lock_guard lk(mu_);
    guarded("recording a manifest", [&] {
        SQLite::Statement ins(*db_,
                              "INSERT INTO contents(id, manifest, name, size, block_size, origin, verified, last_used, created) "
                              "VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                              "origin = CASE WHEN excluded.origin <> '' THEN excluded.origin ELSE origin END");
        ins.bind(1, m.id.data(), 32);
        ins.bind(2, blob.data(), static_cast<int>(blob.size()));
        ins.bind(3, m.name);
        ins.bind(4, static_cast<std::int64_t>(m.size));
        ins.bind(5, static_cast<std::int64_t>(m.block_size));
        ins.bind(6, origin);
        std::vector<std::uint8_t> bitmap((m.block_count() + 7) / 8);
        bind_bitmap(ins, 7, bitmap);
        ins.bind(8, now_ms());
        ins.bind(9, now_ms());
        ins.exec();
        records_.erase(m.id);
    });
}

std::shared_ptr<const content::manifest> block_store::manifest(const hash &id) {
    std::vector<std::uint8_t> blob;
    {
        std::lock_guard lk(mu_);
        if (auto it = manifest_index_.find(id); it != manifest_index_.end()) {
            manifests_.splice(manifests_.end(), manifests_, it->second);  // most recent last
            return manifests_.back();
        }
        bool found = guarded("reading a manifest", [&] {
            SQLite::Statement q(*db_, "SELECT manifest FROM contents WHERE id = ?");
            q.bind(1, id.data(), 32);
            if (!q.executeStep()) return false;
            auto col = q.getColumn(0);
            auto p = static_cast<const std::uint8_t *>(col.getBlob());
            blob.assign(p, p + col.getBytes());
            return true;
        });
        if (!found) return nullptr;
    }
    auto m = std::make_shared<content::manifest>(content::manifest::parse(blob.data(), blob.size()));
    if (m->id != id) fail(PD_E_INVALID, PD_CATEGORY_STORE, "cache database holds a manifest under the wrong id");
    std::lock_guard lk(mu_);
    if (!manifest_index_.count(id) && m->block_count() <= max_cached_blocks) {
        manifest_index_[id] = manifests_.insert(manifests_.end(), m);
        cached_blocks_ += m->block_count();
        while (cached_blocks_ > max_cached_blocks) {
            cached_blocks_ -= manifests_.front()->block_count();
            manifest_index_.erase(manifests_.front()->id);
            manifests_.pop_front();
        }
    }
    return m;
}

static content_record read_row(SQLite::Statement &q) {
    content_record r;
    auto idc = q.getColumn(0);
    if (idc.getBytes() == 32) std::memcpy(r.id.data(), idc.getBlob(), 32);
    r.name = q.getColumn(1).getString();
    r.size = static_cast<std::uint64_t>(q.getColumn(2).getInt64());
    std::uint64_t block_size = static_cast<std::uint64_t>(q.getColumn(3).getInt64());
    r.origin = q.getColumn(4).getString();
    r.state = static_cast<content_state>(q.getColumn(5).getInt());
    auto bits = q.getColumn(6);
    auto p = static_cast<const std::uint8_t *>(bits.getBlob());
    r.verified.assign(p, p + bits.getBytes());
    r.verified_blocks = static_cast<std::uint64_t>(q.getColumn(7).getInt64());
    r.pinned = q.getColumn(8).getInt() != 0;
    r.last_used_ms = q.getColumn(9).getInt64();
    r.bytes_on_disk = static_cast<std::uint64_t>(q.getColumn(10).getInt64());
    if (!q.getColumn(11).isNull()) r.shared_mtime_ns = q.getColumn(11).getInt64();
    // Verified bytes: every verified block is full except possibly the last.
    std::uint64_t blocks = block_size ? (r.size + block_size - 1) / block_size : 0;
    r.verified_bytes = r.verified_blocks * block_size;
    if (blocks && r.verified.size() * 8 >= blocks && r.block_verified(blocks - 1))
        r.verified_bytes -= blocks * block_size - r.size;
    return r;
}

static const char *row_columns =
    "SELECT id, name, size, block_size, origin, state, verified, verified_blocks, pinned, last_used, bytes_on_disk, "
    "shared_mtime_ns FROM contents ";

std::shared_ptr<const content_record> block_store::find_locked(const hash &id) {
    if (auto it = records_.find(id); it != records_.end()) return it->second;
    return guarded("reading the cache index", [&]() -> std::shared_ptr<const content_record> {
        SQLite::Statement q(*db_, std::string(row_columns) + "WHERE id = ?");
        q.bind(1, id.data(), 32);
        if (!q.executeStep()) return nullptr;
        if (records_.size() >= max_cached_records) records_.clear();
        return records_[id] = std::make_shared<const content_record>(read_row(q));
    });
}

std::optional<content_record> block_store::get_locked(const hash &id) {
    auto rec = find_locked(id);
    if (!rec) return std::nullopt;
    return *rec;
}

std::optional<content_record> block_store::get(const hash &id) {
    std::lock_guard lk(mu_);
    return get_locked(id);
}

std::shared_ptr<const content_record> block_store::find(const hash &id) {
    std::lock_guard lk(mu_);
    return find_locked(id);
}

std::vector<content_record> block_store::list() {
    std::lock_guard lk(mu_);
    return guarded("listing the cache", [&] {
        std::vector<content_record> out;
        SQLite::Statement q(*db_, std::string(row_columns) + "ORDER BY last_used DESC");
        while (q.executeStep()) out.push_back(read_row(q));
        return out;
    });
}

std::uint64_t block_store::used_bytes_locked() {
    return static_cast<std::uint64_t>(db_->execAndGet("SELECT COALESCE(SUM(bytes_on_disk), 0) FROM contents").getInt64());
}

std::uint64_t block_store::used_bytes() {
    std::lock_guard lk(mu_);
    return guarded("reading cache usage", [&] { return used_bytes_locked(); });
}

std::uint64_t block_store::quota_bytes_locked() {
    std::uint64_t cap = quota_.bytes;
    if (quota_.percent) {
        std::uint64_t pct = platform::filesystem_space(dir_).total_bytes / 100 * quota_.percent;
        cap = cap ? std::min(cap, pct) : pct;
    }
    return cap;
}

std::uint64_t block_store::quota_bytes() {
    std::lock_guard lk(mu_);
    return quota_bytes_locked();
}

void block_store::set_quota(quota q) {
    std::lock_guard lk(mu_);
    quota_ = q;
}

void block_store::drop_data_locked(const hash &id) {
    // Renamed away, then removed: on Windows a file that another handle holds open (a peer
    // being served from it) keeps its name until that handle closes, and the name must be
    // free at once, for a fresh data file that shares nothing with a host's file.
    std::error_code ec;
    auto path = platform::fs_path(data_path(id));
    auto gone = platform::fs_path(platform::unpredictable_sibling(data_path(id), "dropped"));
    fs::rename(path, gone, ec);
    fs::remove(ec ? path : gone, ec);
    SQLite::Statement u(*db_,
                        "UPDATE contents SET state = 0, verified = zeroblob(length(verified)), verified_blocks = 0, "
                        "bytes_on_disk = 0, shared_mtime_ns = NULL WHERE id = ?");
    u.bind(1, id.data(), 32);
    u.exec();
    records_.erase(id);
}

std::vector<std::pair<hash, std::uint64_t>> block_store::reserve(const hash &id, std::uint64_t size,
                                                                 const std::set<hash> &busy) {
    std::lock_guard lk(mu_);
    return guarded("reserving cache space", [&] {
        std::vector<std::pair<hash, std::uint64_t>> evicted;
        auto self = get_locked(id);
        std::uint64_t already = self ? self->bytes_on_disk : 0;
        std::uint64_t cap = quota_bytes_locked();
        if (cap) {
            std::uint64_t used = used_bytes_locked() - already;
            if (used + size > cap) {
                SQLite::Statement q(*db_,
                                    "SELECT id, bytes_on_disk FROM contents WHERE state = 2 AND pinned = 0 AND id <> ? "
                                    "ORDER BY last_used ASC");
                q.bind(1, id.data(), 32);
                std::vector<std::pair<hash, std::uint64_t>> candidates;
                while (q.executeStep()) {
                    hash h{};
                    std::memcpy(h.data(), q.getColumn(0).getBlob(), 32);
                    if (!busy.count(h)) candidates.emplace_back(h, static_cast<std::uint64_t>(q.getColumn(1).getInt64()));
                }
                std::uint64_t freeable = 0;
                for (auto &c : candidates) freeable += c.second;
                if (used + size > cap + freeable)
                    fail(PD_E_QUOTA, PD_CATEGORY_STORE,
                         "cache quota exceeded: content needs " + std::to_string(size) + " bytes, quota is " +
                             std::to_string(cap) + ", " + std::to_string(used) + " in use of which " +
                             std::to_string(freeable) + " can be evicted");
                for (auto &c : candidates) {
                    if (used + size <= cap) break;
                    drop_data_locked(c.first);
                    used -= c.second;
                    evicted.push_back(c);
                }
            }
        }
        SQLite::Statement u(*db_, "UPDATE contents SET bytes_on_disk = ?, last_used = ? WHERE id = ?");
        u.bind(1, static_cast<std::int64_t>(size));
        u.bind(2, now_ms());
        u.bind(3, id.data(), 32);
        u.exec();
        records_.erase(id);
        return evicted;
    });
}

platform::file block_store::open_data(const hash &id, std::uint64_t size) {
    // Never write into a file a delivered one shares unless it is as it was delivered.
    shared_file_intact(id);
    platform::file f(data_path(id), platform::file::mode::read_write_create);
    if (f.size() < size) f.preallocate(size);
    return f;
}

std::uint64_t block_store::mark_verified(const hash &id, const std::vector<std::uint64_t> &blocks) {
    std::lock_guard lk(mu_);
    return guarded("recording verified blocks", [&] {
        SQLite::Transaction tx(*db_);
        auto rec = get_locked(id);
        if (!rec) fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content vanished from the cache index");
        std::uint64_t count = rec->verified_blocks;
        for (auto b : blocks) {
            if (b / 8 >= rec->verified.size()) fail(PD_E_GENERIC, PD_CATEGORY_STORE, "block index out of range");
            auto &byte = rec->verified[b / 8];
            std::uint8_t bit = static_cast<std::uint8_t>(1u << (b % 8));
            if (!(byte & bit)) {
                byte |= bit;
                ++count;
            }
        }
        SQLite::Statement u(*db_,
                            "UPDATE contents SET verified = ?, verified_blocks = ?, state = MAX(state, 1), last_used = ? "
                            "WHERE id = ?");
        bind_bitmap(u, 1, rec->verified);
        u.bind(2, static_cast<std::int64_t>(count));
        u.bind(3, now_ms());
        u.bind(4, id.data(), 32);
        u.exec();
        records_.erase(id);
        tx.commit();
        rec->verified_blocks = count;
        auto updated = get_locked(id);
        return updated->verified_bytes;
    });
}

void block_store::mark_complete(const hash &id) {
    std::lock_guard lk(mu_);
    guarded("marking content complete", [&] {
        SQLite::Statement u(*db_, "UPDATE contents SET state = 2, last_used = ? WHERE id = ?");
        u.bind(1, now_ms());
        u.bind(2, id.data(), 32);
        u.exec();
        records_.erase(id);
    });
}

void block_store::unmark_verified(const hash &id, const std::vector<std::uint64_t> &blocks) {
    std::lock_guard lk(mu_);
    guarded("clearing verified blocks", [&] {
        SQLite::Transaction tx(*db_);
        auto rec = get_locked(id);
        if (!rec) return;
        std::uint64_t count = rec->verified_blocks;
        for (auto b : blocks) {
            if (b / 8 >= rec->verified.size()) continue;
            std::uint8_t bit = static_cast<std::uint8_t>(1u << (b % 8));
            if (rec->verified[b / 8] & bit) {
                rec->verified[b / 8] &= static_cast<std::uint8_t>(~bit);
                --count;
            }
        }
        SQLite::Statement u(*db_, "UPDATE contents SET verified = ?, verified_blocks = ?, state = MIN(state, 1) WHERE id = ?");
        bind_bitmap(u, 1, rec->verified);
        u.bind(2, static_cast<std::int64_t>(count));
        u.bind(3, id.data(), 32);
        u.exec();
        records_.erase(id);
        tx.commit();
    });
}

void block_store::remove(const hash &id) {
    std::lock_guard lk(mu_);
    guarded("removing content", [&] {
        if (!get_locked(id)) fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content " + to_hex(id.data(), 32) + " is not in the cache");
        std::error_code ec;
        fs::remove(platform::fs_path(data_path(id)), ec);
        SQLite::Statement d(*db_, "DELETE FROM contents WHERE id = ?");
        d.bind(1, id.data(), 32);
        d.exec();
        records_.erase(id);
        if (auto it = manifest_index_.find(id); it != manifest_index_.end()) {
            cached_blocks_ -= (*it->second)->block_count();
            manifests_.erase(it->second);
            manifest_index_.erase(it);
        }
    });
}

void block_store::set_pinned(const hash &id, bool pinned) {
    std::lock_guard lk(mu_);
    guarded("pinning content", [&] {
        SQLite::Statement u(*db_, "UPDATE contents SET pinned = ? WHERE id = ?");
        u.bind(1, pinned ? 1 : 0);
        u.bind(2, id.data(), 32);
        if (u.exec() == 0) fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content " + to_hex(id.data(), 32) + " is not in the cache");
        records_.erase(id);
    });
}

void block_store::set_branchcache_info(const hash &id, const std::vector<std::uint8_t> &info) {
    std::lock_guard lk(mu_);
    guarded("recording Content Information", [&] {
        SQLite::Statement u(*db_, "UPDATE contents SET branchcache_info = ? WHERE id = ?");
        u.bind(1, info.data(), static_cast<int>(info.size()));
        u.bind(2, id.data(), 32);
        if (u.exec() == 0) fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content " + to_hex(id.data(), 32) + " is not in the cache");
    });
}

std::vector<std::uint8_t> block_store::branchcache_info(const hash &id) {
    std::lock_guard lk(mu_);
    return guarded("reading Content Information", [&] {
        SQLite::Statement q(*db_, "SELECT branchcache_info FROM contents WHERE id = ? AND branchcache_info IS NOT NULL");
        q.bind(1, id.data(), 32);
        if (!q.executeStep()) return std::vector<std::uint8_t>{};
        auto c = q.getColumn(0);
        auto *p = static_cast<const std::uint8_t *>(c.getBlob());
        return std::vector<std::uint8_t>(p, p + c.getBytes());
    });
}

void block_store::touch(const hash &id) {
    std::lock_guard lk(mu_);
    guarded("updating last use", [&] {
        SQLite::Statement u(*db_, "UPDATE contents SET last_used = ? WHERE id = ?");
        u.bind(1, now_ms());
        u.bind(2, id.data(), 32);
        u.exec();
        records_.erase(id);
    });
}

void block_store::mark_shared(const hash &id) {
    auto mtime = platform::modified_ns(data_path(id));
    std::lock_guard lk(mu_);
    guarded("recording a shared delivery", [&] {
        SQLite::Statement u(*db_, "UPDATE contents SET shared_mtime_ns = ? WHERE id = ?");
        u.bind(1, mtime);
        u.bind(2, id.data(), 32);
        u.exec();
        records_.erase(id);
    });
}

bool block_store::shared_file_intact(const hash &id) {
    std::lock_guard lk(mu_);
    return guarded("checking a shared delivery", [&] {
        auto rec = get_locked(id);
        if (!rec || !rec->shared_mtime_ns) return true;
        std::optional<std::int64_t> now;
        try {
            now = platform::modified_ns(data_path(id));
        } catch (const error &) {
            // Gone or unreadable: nothing to serve from it either.
        }
        if (now == rec->shared_mtime_ns) return true;
        // Written since it was delivered: the file is the host's now. The cache lets go of its
        // link (so it never writes into the host's file) and forgets the content's blocks.
        drop_data_locked(id);
        return false;
    });
}

}  // namespace pd::store
