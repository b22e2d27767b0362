// coordinator_store on SQLite through SQLiteCpp: WAL, synchronous=NORMAL (a crash of the
// process loses nothing committed), one mutex around the connection.
#include "coordinator/store.h"

#include "util/error.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <sqlite3.h>

#include <cstdlib>
#include <mutex>
#include <sstream>

namespace pd::coord {

namespace {

// 2: administrators and device keys (0.5.0); 3: the catalogue's manifests, retired contents
// and pre-staging (0.7.0); 4: administrators' console passwords (0.8.0). An older database
// gains what it lacks when opened.
constexpr int schema_version = 4;
// application_id marks a coordinator database: opening a device cache by mistake fails.
constexpr int application_id = 0x70644344;  // "pdCD"

const char *schema = R"(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE devices(id TEXT PRIMARY KEY, name TEXT, address TEXT, listen TEXT, version TEXT,
  free_bytes INTEGER, usable_free_bytes INTEGER, uptime_seconds INTEGER, chassis INTEGER, os_type INTEGER,
  preferred INTEGER, registered_ms INTEGER, last_seen_ms INTEGER);
CREATE TABLE contents(id TEXT PRIMARY KEY, name TEXT, size INTEGER, block_count INTEGER, origins TEXT,
  published_ms INTEGER);
CREATE TABLE holdings(device_id TEXT, content_id TEXT, verified_blocks INTEGER, complete INTEGER,
  PRIMARY KEY(device_id, content_id));
CREATE TABLE groups(name TEXT PRIMARY KEY, devices TEXT, contents TEXT);
CREATE TABLE office_stats(office TEXT PRIMARY KEY, origin_bytes INTEGER, wan_bytes INTEGER, lan_bytes INTEGER);
)";

// Schema 2: who may administer, the devices' own keys, publication records.
const char *trust_schema = R"(
CREATE TABLE admins(name TEXT PRIMARY KEY, public_key TEXT UNIQUE NOT NULL, role TEXT NOT NULL,
  added_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE device_keys(device_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, enrolled_ms INTEGER NOT NULL,
  revoked_ms INTEGER NOT NULL DEFAULT 0);
ALTER TABLE contents ADD COLUMN publication TEXT NOT NULL DEFAULT '';
)";

// Schema 3: the catalogue drives distribution.
const char *catalogue_schema = R"(
ALTER TABLE contents ADD COLUMN manifest BLOB;
CREATE TABLE retired_contents(content TEXT PRIMARY KEY, seq INTEGER UNIQUE NOT NULL, retired_ms INTEGER NOT NULL);
CREATE TABLE prestage(content TEXT NOT NULL, office TEXT NOT NULL, deadline_ms INTEGER NOT NULL,
  requested_ms INTEGER NOT NULL, PRIMARY KEY(content, office));
ALTER TABLE devices ADD COLUMN online_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN served_bytes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE content_stats(content TEXT NOT NULL, office TEXT NOT NULL, origin_bytes INTEGER, wan_bytes INTEGER,
  lan_bytes INTEGER, PRIMARY KEY(content, office));
)";
// Schema 4: an administrator may also log in to the web console with a password (its
// Argon2id hash, libsodium's crypto_pwhash_str; "" for none); bytes from devices' own caches.
const char *console_schema = R"(
ALTER TABLE admins ADD COLUMN console_password TEXT NOT NULL DEFAULT '';
ALTER TABLE content_stats ADD COLUMN local_bytes INTEGER NOT NULL DEFAULT 0;
)";

// Both tables count the same job reports, on purpose: office_stats is the office's total over
// the coordinator's life (the savings report; schema 1 databases carry it from before
// content_stats existed), content_stats the rollout of the contents in the catalogue, whose
// rows leave with a retired content. Summing content_stats would lose both.

std::string join(const std::vector<std::string> &v) {
    std::string out;
    for (auto &s : v) out += (out.empty() ? "" : "\n") + s;
    return out;
}

std::vector<std::string> lines(const std::string &text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l))
        if (!l.empty()) out.push_back(l);
    return out;
}

std::uint64_t u64(const SQLite::Column &c) { return static_cast<std::uint64_t>(c.getInt64()); }

class sqlite_store final : public coordinator_store {
public:
    explicit sqlite_store(const std::string &path) {
        try {
            db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
            db_->exec("PRAGMA busy_timeout=2000");
            db_->exec("PRAGMA journal_mode=WAL");
            db_->exec("PRAGMA synchronous=NORMAL");
            int app = db_->execAndGet("PRAGMA application_id").getInt();
            int version = db_->execAndGet("PRAGMA user_version").getInt();
            if (app == 0 && version == 0) {
                if (db_->execAndGet("SELECT count(*) FROM sqlite_master").getInt() != 0)
                    fail(PD_E_INVALID, PD_CATEGORY_STORE, "'" + path + "' is a database of something else");
                SQLite::Transaction t(*db_);
                db_->exec(schema);
                db_->exec(trust_schema);
                db_->exec(catalogue_schema);
                db_->exec(console_schema);
                db_->exec("PRAGMA application_id=" + std::to_string(application_id));
                db_->exec("PRAGMA user_version=" + std::to_string(schema_version));
                t.commit();
            } else if (app != application_id) {
                fail(PD_E_INVALID, PD_CATEGORY_STORE, "'" + path + "' is not a peerdist coordinator database");
            } else if (version >= 1 && version < schema_version) {
                SQLite::Transaction t(*db_);
                if (version < 2) db_->exec(trust_schema);
                if (version < 3) db_->exec(catalogue_schema);
                db_->exec(console_schema);
                db_->exec("PRAGMA user_version=" + std::to_string(schema_version));
                t.commit();
            } else if (version != schema_version) {
                fail(PD_E_VERSION, PD_CATEGORY_STORE,
                     "coordinator database schema " + std::to_string(version) + " is not supported (this build: " +
                         std::to_string(schema_version) + ")");
            }
        } catch (const SQLite::Exception &e) {
            int code = e.getErrorCode() == SQLITE_BUSY ? PD_E_BUSY : PD_E_IO;
            fail(code, PD_CATEGORY_STORE, "coordinator database '" + path + "': " + e.what());
        }
    }

    std::optional<std::string> meta(const std::string &key) override {
        std::lock_guard lk(mu_);
        return meta_locked(key);
    }

    void set_meta(const std::string &key, const std::string &value) override {
        run([&] { set_meta_locked(key, value); });
    }

    void put_device(const device_record &d) override {
        run([&] { insert_device(d); });
    }

    void put_devices(const std::vector<device_record> &devices) override {
        run([&] {
            SQLite::Transaction t(*db_);
            for (auto &d : devices) insert_device(d);
            t.commit();
        });
    }

    void insert_device(const device_record &d) {
        {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO devices VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
            int i = 1;
            q.bind(i++, d.id);
            q.bind(i++, d.name);
            q.bind(i++, d.address);
            q.bind(i++, d.listen);
            q.bind(i++, d.version);
            q.bind(i++, static_cast<std::int64_t>(d.free_bytes));
            q.bind(i++, static_cast<std::int64_t>(d.usable_free_bytes));
            q.bind(i++, static_cast<std::int64_t>(d.uptime_seconds));
            q.bind(i++, d.chassis);
            q.bind(i++, d.os_type);
            q.bind(i++, d.preferred ? 1 : 0);
            q.bind(i++, d.registered_ms);
            q.bind(i++, d.last_seen_ms);
            q.bind(i++, d.online_ms);
            q.bind(i++, static_cast<std::int64_t>(d.served_bytes));
            q.exec();
        }
    }

    std::vector<device_record> devices() override {
        std::lock_guard lk(mu_);
        std::vector<device_record> out;
        SQLite::Statement q(*db_, "SELECT * FROM devices ORDER BY id");
        while (q.executeStep()) {
            device_record d;
            int i = 0;
            d.id = q.getColumn(i++).getString();
            d.name = q.getColumn(i++).getString();
            d.address = q.getColumn(i++).getString();
            d.listen = q.getColumn(i++).getString();
            d.version = q.getColumn(i++).getString();
            d.free_bytes = u64(q.getColumn(i++));
            d.usable_free_bytes = u64(q.getColumn(i++));
            d.uptime_seconds = u64(q.getColumn(i++));
            d.chassis = q.getColumn(i++).getInt();
            d.os_type = q.getColumn(i++).getInt();
            d.preferred = q.getColumn(i++).getInt() != 0;
            d.registered_ms = q.getColumn(i++).getInt64();
            d.last_seen_ms = q.getColumn(i++).getInt64();
            d.online_ms = q.getColumn(i++).getInt64();
            d.served_bytes = u64(q.getColumn(i++));
            out.push_back(std::move(d));
        }
        return out;
    }

    void put_contents(const std::vector<publication_entry> &contents) override {
        run([&] {
            SQLite::Transaction t(*db_);
            for (auto &e : contents) insert_content(e);
            t.commit();
        });
    }

    void insert_content(const publication_entry &e) {
        const auto &c = e.record;
        SQLite::Statement q(*db_,
                            "INSERT INTO contents(id, name, size, block_count, origins, published_ms, publication, manifest) "
                            "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, size=excluded.size, "
                            "block_count=excluded.block_count, origins=excluded.origins, published_ms=excluded.published_ms, "
                            "publication=excluded.publication, manifest=coalesce(excluded.manifest, manifest)");
        q.bind(1, c.id);
        q.bind(2, c.name);
        q.bind(3, static_cast<std::int64_t>(c.size));
        q.bind(4, static_cast<std::int64_t>(c.block_count));
        q.bind(5, c.origins);
        q.bind(6, c.published_ms);
        q.bind(7, c.publication);
        if (e.manifest.empty()) q.bind(8);
        else q.bind(8, e.manifest.data(), static_cast<int>(e.manifest.size()));
        q.exec();
        SQLite::Statement unretire(*db_, "DELETE FROM retired_contents WHERE content=?");
        unretire.bind(1, c.id);
        unretire.exec();
    }

    std::vector<content_record> contents() override {
        std::lock_guard lk(mu_);
        std::vector<content_record> out;
        SQLite::Statement q(*db_,
                            "SELECT id, name, size, block_count, origins, published_ms, publication, "
                            "coalesce(length(manifest), 0) FROM contents ORDER BY published_ms, id");
        while (q.executeStep()) {
            content_record c;
            c.id = q.getColumn(0).getString();
            c.name = q.getColumn(1).getString();
            c.size = u64(q.getColumn(2));
            c.block_count = u64(q.getColumn(3));
            c.origins = q.getColumn(4).getString();
            c.published_ms = q.getColumn(5).getInt64();
            c.publication = q.getColumn(6).getString();
            c.manifest_bytes = u64(q.getColumn(7));
            out.push_back(std::move(c));
        }
        return out;
    }

    std::optional<std::string> manifest(const std::string &content_id) override {
        std::lock_guard lk(mu_);
        SQLite::Statement q(*db_, "SELECT manifest FROM contents WHERE id=? AND manifest IS NOT NULL");
        q.bind(1, content_id);
        if (!q.executeStep()) return std::nullopt;
        auto col = q.getColumn(0);
        return std::string(static_cast<const char *>(col.getBlob()), static_cast<std::size_t>(col.getBytes()));
    }

    std::uint64_t retire_content(const std::string &content_id, std::int64_t now_ms) override {
        std::uint64_t seq = 0;
        run([&] {
            SQLite::Transaction t(*db_);
            for (const char *sql : {"DELETE FROM contents WHERE id=?", "DELETE FROM holdings WHERE content_id=?",
                                    "DELETE FROM prestage WHERE content=?", "DELETE FROM retired_contents WHERE content=?",
                                    "DELETE FROM content_stats WHERE content=?"}) {
                SQLite::Statement q(*db_, sql);
                q.bind(1, content_id);
                q.exec();
            }
            // Kept in meta, not derived from the rows: republishing deletes a row, and a
            // sequence number must never be handed out twice.
            auto last = meta_locked("retired_seq");
            seq = (last ? std::strtoull(last->c_str(), nullptr, 10) : 0) + 1;
            SQLite::Statement q(*db_, "INSERT INTO retired_contents VALUES(?,?,?)");
            q.bind(1, content_id);
            q.bind(2, static_cast<std::int64_t>(seq));
            q.bind(3, now_ms);
            q.exec();
            set_meta_locked("retired_seq", std::to_string(seq));
            t.commit();
        });
        return seq;
    }

    std::vector<retired_content> retired_contents() override {
        std::lock_guard lk(mu_);
        std::vector<retired_content> out;
        SQLite::Statement q(*db_, "SELECT content, seq, retired_ms FROM retired_contents ORDER BY seq");
        while (q.executeStep()) out.push_back({q.getColumn(0).getString(), u64(q.getColumn(1)), q.getColumn(2).getInt64()});
        return out;
    }

    void add_content_stats(const content_office_stats &d) override {
        run([&] {
            SQLite::Statement q(*db_,
                                "INSERT INTO content_stats VALUES(?,?,?,?,?,?) ON CONFLICT(content, office) DO UPDATE SET "
                                "origin_bytes=origin_bytes+excluded.origin_bytes, wan_bytes=wan_bytes+excluded.wan_bytes, "
                                "lan_bytes=lan_bytes+excluded.lan_bytes, local_bytes=local_bytes+excluded.local_bytes");
            q.bind(1, d.content_id);
            q.bind(2, d.office);
            q.bind(3, static_cast<std::int64_t>(d.origin_bytes));
            q.bind(4, static_cast<std::int64_t>(d.wan_bytes));
            q.bind(5, static_cast<std::int64_t>(d.lan_bytes));
            q.bind(6, static_cast<std::int64_t>(d.local_bytes));
            q.exec();
        });
    }

    std::vector<content_office_stats> content_stats() override {
        std::lock_guard lk(mu_);
        std::vector<content_office_stats> out;
        SQLite::Statement q(*db_, "SELECT * FROM content_stats ORDER BY content, office");
        while (q.executeStep())
            out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), u64(q.getColumn(2)), u64(q.getColumn(3)),
                           u64(q.getColumn(4)), u64(q.getColumn(5))});
        return out;
    }

    void put_prestage(const prestage_request &r) override {
        run([&] {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO prestage VALUES(?,?,?,?)");
            q.bind(1, r.content_id);
            q.bind(2, r.office);
            q.bind(3, r.deadline_ms);
            q.bind(4, r.requested_ms);
            q.exec();
        });
    }

    void remove_prestage(const std::string &content_id, const std::string &office) override {
        run([&] {
            SQLite::Statement q(*db_, office.empty() ? "DELETE FROM prestage WHERE content=?"
                                                     : "DELETE FROM prestage WHERE content=? AND office=?");
            q.bind(1, content_id);
            if (!office.empty()) q.bind(2, office);
            q.exec();
        });
    }

    std::vector<prestage_request> prestages() override {
        std::lock_guard lk(mu_);
        std::vector<prestage_request> out;
        SQLite::Statement q(*db_, "SELECT content, office, deadline_ms, requested_ms FROM prestage ORDER BY content, office");
        while (q.executeStep())
            out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getInt64(),
                           q.getColumn(3).getInt64()});
        return out;
    }

    void remove_device(const std::string &device_id) override {
        run([&] {
            SQLite::Transaction t(*db_);
            for (const char *sql : {"DELETE FROM devices WHERE id=?", "DELETE FROM holdings WHERE device_id=?"}) {
                SQLite::Statement q(*db_, sql);
                q.bind(1, device_id);
                q.exec();
            }
            t.commit();
        });
    }

    void put_holding(const holding &h) override {
        run([&] {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO holdings VALUES(?,?,?,?)");
            q.bind(1, h.device_id);
            q.bind(2, h.content_id);
            q.bind(3, static_cast<std::int64_t>(h.verified_blocks));
            q.bind(4, h.complete ? 1 : 0);
            q.exec();
        });
    }

    void remove_holding(const std::string &device_id, const std::string &content_id) override {
        changes_one_row("DELETE FROM holdings WHERE device_id=? AND content_id=?", device_id, content_id);
    }

    std::vector<holding> holdings() override {
        std::lock_guard lk(mu_);
        std::vector<holding> out;
        SQLite::Statement q(*db_, "SELECT * FROM holdings");
        while (q.executeStep())
            out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), u64(q.getColumn(2)),
                           q.getColumn(3).getInt() != 0});
        return out;
    }

    void put_group(const assignment_group &g) override {
        run([&] {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO groups VALUES(?,?,?)");
            q.bind(1, g.name);
            q.bind(2, join(g.devices));
            q.bind(3, join(g.contents));
            q.exec();
        });
    }

    void remove_group(const std::string &name) override {
        run([&] {
            SQLite::Statement q(*db_, "DELETE FROM groups WHERE name=?");
            q.bind(1, name);
            q.exec();
        });
    }

    std::vector<assignment_group> groups() override {
        std::lock_guard lk(mu_);
        std::vector<assignment_group> out;
        SQLite::Statement q(*db_, "SELECT * FROM groups ORDER BY name");
        while (q.executeStep())
            out.push_back({q.getColumn(0).getString(), lines(q.getColumn(1).getString()), lines(q.getColumn(2).getString())});
        return out;
    }

    void add_stats(const office_stats &d) override {
        run([&] {
            SQLite::Statement q(*db_,
                                "INSERT INTO office_stats VALUES(?,?,?,?) ON CONFLICT(office) DO UPDATE SET "
                                "origin_bytes=origin_bytes+excluded.origin_bytes, wan_bytes=wan_bytes+excluded.wan_bytes, "
                                "lan_bytes=lan_bytes+excluded.lan_bytes");
            q.bind(1, d.office);
            q.bind(2, static_cast<std::int64_t>(d.origin_bytes));
            q.bind(3, static_cast<std::int64_t>(d.wan_bytes));
            q.bind(4, static_cast<std::int64_t>(d.lan_bytes));
            q.exec();
        });
    }

    std::vector<office_stats> stats() override {
        std::lock_guard lk(mu_);
        std::vector<office_stats> out;
        SQLite::Statement q(*db_, "SELECT * FROM office_stats ORDER BY office");
        while (q.executeStep())
            out.push_back({q.getColumn(0).getString(), u64(q.getColumn(1)), u64(q.getColumn(2)), u64(q.getColumn(3))});
        return out;
    }

    void add_admin(const admin_record &a) override {
        run([&] {
            SQLite::Statement taken(*db_, "SELECT name FROM admins WHERE name=? OR public_key=?");
            taken.bind(1, a.name);
            taken.bind(2, a.public_key);
            if (taken.executeStep())
                fail(PD_E_EXISTS, PD_CATEGORY_STORE,
                     taken.getColumn(0).getString() == a.name ? "an administrator named '" + a.name + "' exists"
                                                              : "this key belongs to administrator '" + taken.getColumn(0).getString() + "'");
            SQLite::Statement q(*db_, "INSERT INTO admins(name, public_key, role, added_ms) VALUES(?,?,?,?)");
            q.bind(1, a.name);
            q.bind(2, a.public_key);
            q.bind(3, a.role);
            q.bind(4, a.added_ms);
            q.exec();
        });
    }

    bool revoke_admin(const std::string &name, std::int64_t now_ms) override {
        return changes_one_row("UPDATE admins SET revoked_ms=? WHERE name=? AND revoked_ms=0", now_ms, name);
    }

    bool set_console_password(const std::string &name, const std::string &hash) override {
        return changes_one_row("UPDATE admins SET console_password=? WHERE name=? AND revoked_ms=0", hash, name);
    }

    std::optional<admin_record> admin_by_name(const std::string &name) override {
        return one_admin("SELECT * FROM admins WHERE name=?", name);
    }

    std::vector<admin_record> admins() override {
        std::lock_guard lk(mu_);
        std::vector<admin_record> out;
        SQLite::Statement q(*db_, "SELECT * FROM admins ORDER BY added_ms, name");
        while (q.executeStep()) out.push_back(read_admin(q));
        return out;
    }

    std::optional<admin_record> admin_by_key(const std::string &public_key) override {
        return one_admin("SELECT * FROM admins WHERE public_key=?", public_key);
    }

    std::optional<device_identity> device_identity_of(const std::string &device_id) override {
        std::lock_guard lk(mu_);
        SQLite::Statement q(*db_, "SELECT * FROM device_keys WHERE device_id=?");
        q.bind(1, device_id);
        if (!q.executeStep()) return std::nullopt;
        return read_identity(q);
    }

    void enroll_device(const device_identity &d) override {
        run([&] {
            SQLite::Statement q(*db_, "INSERT INTO device_keys VALUES(?,?,?,0) ON CONFLICT(device_id) DO NOTHING");
            q.bind(1, d.device_id);
            q.bind(2, d.public_key);
            q.bind(3, d.enrolled_ms);
            if (q.exec() != 1) fail(PD_E_EXISTS, PD_CATEGORY_STORE, "device " + d.device_id + " is enrolled already");
        });
    }

    bool revoke_device(const std::string &device_id, std::int64_t now_ms) override {
        return changes_one_row("INSERT INTO device_keys VALUES(?,'',0,?) ON CONFLICT(device_id) DO UPDATE SET "
                               "revoked_ms=excluded.revoked_ms WHERE revoked_ms=0",
                               device_id, now_ms);
    }

    std::vector<device_identity> device_identities() override {
        std::lock_guard lk(mu_);
        std::vector<device_identity> out;
        SQLite::Statement q(*db_, "SELECT * FROM device_keys ORDER BY device_id");
        while (q.executeStep()) out.push_back(read_identity(q));
        return out;
    }

    std::string check() override {
        std::lock_guard lk(mu_);
        try {
            return db_->execAndGet("PRAGMA quick_check").getString();
        } catch (const SQLite::Exception &e) {
            return e.what();
        }
    }

private:
    std::optional<std::string> meta_locked(const std::string &key) {
        SQLite::Statement q(*db_, "SELECT value FROM meta WHERE key=?");
        q.bind(1, key);
        if (!q.executeStep()) return std::nullopt;
        return q.getColumn(0).getString();
    }

    void set_meta_locked(const std::string &key, const std::string &value) {
        SQLite::Statement q(*db_, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
        q.bind(1, key);
        q.bind(2, value);
        q.exec();
    }

    // Runs a statement binding `values` in order; true when it changed exactly one row.
    template <class... Values>
    bool changes_one_row(const char *sql, const Values &...values) {
        bool one = false;
        run([&] {
            SQLite::Statement q(*db_, sql);
            int i = 1;
            (q.bind(i++, values), ...);
            one = q.exec() == 1;
        });
        return one;
    }

    static device_identity read_identity(SQLite::Statement &q) {
        return {q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getInt64(), q.getColumn(3).getInt64()};
    }

    // The administrator a one-parameter query finds, if any.
    std::optional<admin_record> one_admin(const char *sql, const std::string &value) {
        std::lock_guard lk(mu_);
        SQLite::Statement q(*db_, sql);
        q.bind(1, value);
        if (!q.executeStep()) return std::nullopt;
        return read_admin(q);
    }

    static admin_record read_admin(SQLite::Statement &q) {
        return {q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(),
                q.getColumn(3).getInt64(), q.getColumn(4).getInt64(), q.getColumn(5).getString()};
    }

    template <class Fn>
    void run(Fn fn) {
        std::lock_guard lk(mu_);
        try {
            fn();
        } catch (const SQLite::Exception &e) {
            int code = e.getErrorCode() == SQLITE_FULL ? PD_E_NOSPACE : e.getErrorCode() == SQLITE_BUSY ? PD_E_BUSY : PD_E_IO;
            fail(code, PD_CATEGORY_STORE, std::string("coordinator database: ") + e.what());
        }
    }

    std::mutex mu_;
    std::unique_ptr<SQLite::Database> db_;
};

}  // namespace

std::unique_ptr<coordinator_store> open_sqlite_store(const std::string &path) { return std::make_unique<sqlite_store>(path); }

}  // namespace pd::coord
