#include "core/session.h"

#include "net/resolve.h"

#include "content/publication.h"
#include "crypto/hash.h"
#include "job/job.h"
#include "platform/file.h"
#include "platform/socket.h"
#include "util/endpoint.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/key_file.h"
#include "util/text.h"

#include <chrono>
#include <sodium.h>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <thread>

namespace pd::core {

// Blocking plugin calls in flight at once, all jobs together: above the default
// job.max_pieces_in_flight (8) plus a discovery round and a source open.
constexpr std::size_t source_io_threads = 16;

// A random id, created once per cache directory (atomically: write, fsync, rename), so a
// device keeps its identity at the coordinator across restarts of the agent.
static std::string load_device_id(const std::string &cache_dir) {
    auto path = platform::fs_path(cache_dir) / "device-id";
    if (std::ifstream in(path); in) {
        std::string id;
        in >> id;
        if (id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos) return id;
    }
    std::uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    std::string id = to_hex(raw, sizeof raw);
    auto tmp = path;
    tmp += ".tmp";
    {
        platform::file f(platform::utf8_path(tmp), platform::file::mode::read_write_create);
        f.pwrite(0, id.data(), id.size());
        f.datasync();
    }
    std::filesystem::rename(tmp, path);
    return id;
}

// The device's own key: a random Ed25519 seed created once per cache directory, owner-only
// (created that way: temporary, then rename). It proves this device's identity to a
// coordinator (pd_host_api.device_sign); losing it makes a new identity, to enroll again.
static std::array<std::uint8_t, 32> load_device_key(const std::string &cache_dir) {
    auto path = platform::utf8_path(platform::fs_path(cache_dir) / "device-key");
    if (std::filesystem::exists(platform::fs_path(path))) return read_secret_key(path, "device key file");
    std::array<std::uint8_t, 32> seed{};
    randombytes_buf(seed.data(), seed.size());
    auto text = to_hex(seed.data(), seed.size()) + "\n";
    platform::write_file_atomic(path, text.data(), text.size(), platform::access::owner_only);
    sodium_memzero(text.data(), text.size());
    return seed;
}

pd_device_facts session::device_facts() const {
    auto facts = platform::read_device_facts();
    auto space = platform::filesystem_space(cache_dir_);
    pd_device_facts f{};
    f.struct_size = sizeof f;
    f.free_bytes = space.free_bytes;
    std::uint64_t quota = store_->quota_bytes();
    std::uint64_t used = store_->used_bytes();
    std::uint64_t under_quota = quota ? (quota > used ? quota - used : 0) : space.free_bytes;
    f.usable_free_bytes = std::min(under_quota, space.free_bytes);
    f.chassis = facts.chassis;
    f.os_type = facts.os_type;
    f.uptime_seconds = facts.uptime_seconds;
    f.bytes_served = peer_server_ ? peer_server_->bytes_served() : 0;
    auto o = device_overrides();
    if (o.free_bytes != UINT64_MAX) f.free_bytes = o.free_bytes;
    if (o.usable_free_bytes != UINT64_MAX) f.usable_free_bytes = o.usable_free_bytes;
    if (o.uptime_seconds != UINT64_MAX) f.uptime_seconds = o.uptime_seconds;
    if (o.chassis != -1) f.chassis = o.chassis;
    if (o.os_type != -1) f.os_type = o.os_type;
    return f;
}

// Workers block on disk (fdatasync) as well as hash, so keep at least four.
static unsigned default_workers(const pd_session_options &o) {
    if (o.worker_threads) return o.worker_threads;
    return std::max(4u, std::thread::hardware_concurrency());
}

session::session(const pd_session_options &o)
    : cache_dir_(o.cache_dir),
      worker_count_(default_workers(o)),
      events_(o.event_queue_capacity, o.notify, o.notify_user_data),
      net_guard_(net_.get_executor()),
      workers_(worker_count_),
      source_io_(source_io_threads) {
    crypto::ensure_initialised();
    randombytes_buf(&node_id_, sizeof node_id_);
    if (o.fleet_key) {
        fleet_key_.emplace();
        std::memcpy(fleet_key_->data(), o.fleet_key, 32);
    }
    if (o.cache_quota_bytes) settings_.set("store.quota_bytes", std::to_string(o.cache_quota_bytes));
    if (o.cache_quota_percent) settings_.set("store.quota_percent", std::to_string(o.cache_quota_percent));
    store_ = std::make_unique<store::block_store>(
        cache_dir_, store::quota{o.cache_quota_bytes, o.cache_quota_percent});
    branchcache_ = std::make_unique<branchcache_index>(*store_);
    device_id_ = load_device_id(cache_dir_);
    {
        auto seed = load_device_key(cache_dir_);
        crypto_sign_seed_keypair(device_public_key_.data(), device_key_.data(), seed.data());
        sodium_memzero(seed.data(), seed.size());
    }
    device_identity_.public_key = device_public_key_;
    device_identity_.sign = [this](const std::vector<std::uint8_t> &statement) {
        auto m = crypto::device_signed_message(statement.data(), statement.size());
        return crypto::ed25519_sign(m.data(), m.size(), device_key_.data());
    };
    plugin_host::host_services services;
    services.log = [this](const std::string &plugin, int level, const std::string &msg) {
        log(level, plugin.empty() ? msg : plugin + ": " + msg);
    };
    services.get_setting = [this](const std::string &key) { return settings_.get(key); };
    services.emit = [this](const std::string &plugin, std::uint64_t job, int code, const std::string &msg) {
        auto e = make_event(PD_EVENT_PLUGIN, job, (plugin + ": " + msg).c_str());
        e.count = static_cast<std::uint64_t>(static_cast<std::int64_t>(code));
        events_.push(e);
    };
    services.now_ms = [] {
        using namespace std::chrono;
        return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
    };
    services.job_should_stop = [this](std::uint64_t id) { return job_should_stop(id); };
    services.fallback = [this](const std::string &plugin, std::uint64_t id, const std::string &reason) {
        boost::asio::post(net_, [this, id, msg = plugin + ": " + reason] {
            auto it = jobs_.find(id);
            if (it != jobs_.end()) it->second->note_fallback(msg);
        });
    };
    services.content_label = [this](const std::uint8_t id[32], std::uint8_t label[32]) {
        if (!fleet_key_) return false;
        auto l = discovery_label(id);
        std::memcpy(label, l.data(), 32);
        return true;
    };
    services.lookup_label = [this](const std::uint8_t label[32], std::uint64_t &verified, std::uint64_t &total) {
        if (!fleet_key_) return false;
        for (auto &rec : store_->list()) {
            if (std::memcmp(discovery_label(rec.id.data()).data(), label, 32) != 0) continue;
            // Devices fetching it answer too, so devices starting together find each other.
            if (!rec.verified_blocks && !is_fetching(rec.id)) return false;
            verified = rec.verified_blocks;
            total = rec.verified.size() * 8;
            return true;
        }
        return false;
    };
    services.set_wan_budget = [this](std::uint64_t rate) { backend_wan_budget_ = rate; };
    services.device_sign = [this](const std::uint8_t *message, std::size_t len, std::uint8_t signature[64],
                                  std::uint8_t public_key[32]) {
        auto sig = device_identity_.sign(std::vector<std::uint8_t>(message, message + len));
        std::memcpy(signature, sig.data(), sig.size());
        std::memcpy(public_key, device_public_key_.data(), 32);
    };
    services.discovery_key = [this](std::uint8_t key[32]) {
        if (!fleet_key_) return false;
        static const char tag[] = "peerdist discovery key v2";
        auto k = crypto::hmac_sha256(fleet_key_->data(), 32, tag, sizeof tag - 1);
        std::memcpy(key, k.data(), 32);
        return true;
    };
    services.refuse_device = [this](const std::array<std::uint8_t, 32> &key) {
        boost::asio::post(net_, [this, device = to_hex(key.data(), key.size())] { refuse_device(device); });
    };
    services.set_discovery_broadcast = [this](bool allowed) {
        if (broadcast_allowed_.exchange(allowed) != allowed)
            log(PD_LOG_INFO, allowed ? "multicast and broadcast discovery allowed again"
                                     : "this device's office sends no multicast or broadcast discovery (a WiFi office)");
    };
    services.discovery_broadcast_allowed = [this] { return broadcast_allowed_.load(); };
    services.branchcache_segment = [this](const std::uint8_t *id, std::size_t len, pd_branchcache_segment &out) {
        auto seg = branchcache_->find(id, len);
        return seg && describe_segment(*seg, out);
    };
    services.read_block = [this](const std::array<std::uint8_t, 32> &content, std::uint64_t block) -> std::optional<std::vector<std::uint8_t>> {
        auto rec = servable(content);
        auto m = rec ? store_->manifest(content) : nullptr;
        if (!m || block >= m->block_count() || !rec->block_verified(block)) return std::nullopt;
        return read_held(content, m->block_offset(block), m->block_length(block));
    };
    services.branchcache_segment_of = [this](const std::array<std::uint8_t, 32> &content, std::uint32_t index,
                                             pd_branchcache_segment &out) {
        auto segments = branchcache_->segments_of(content);
        return index < segments.size() && describe_segment(segments[index], out);
    };
    services.set_branchcache_info = [this](const std::array<std::uint8_t, 32> &content, const std::uint8_t *info,
                                           std::size_t len) { branchcache_->set_info(content, info, len); };
    services.request_content = [this](const std::array<std::uint8_t, 32> &id, bool foreground) { request_content(id, foreground); };
    services.retire_content = [this](const std::array<std::uint8_t, 32> &id) { retire_content(id); };
    services.device_facts = [this](pd_device_facts &facts, std::string &id) {
        facts = device_facts();
        id = device_id_;
    };
    services.listen_addresses = [this] {
        std::string joined;
        for (auto &a : listen_addresses()) joined += (joined.empty() ? "" : ",") + a;
        return joined;
    };
    plugins_ = std::make_unique<plugin_host::plugin_host>(std::move(services));
    set_device_overrides(nullptr);
    if (o.listen_addresses && *o.listen_addresses) {
        if (!fleet_key_) fail(PD_E_MISUSE, PD_CATEGORY_NET, "a session that listens for peers needs the fleet key");
        peer_server_ = std::make_unique<peer::peer_server>(*this, *fleet_key_);
        bind_listeners(o.listen_addresses);
    }
    net_thread_ = std::thread([this] { net_.run(); });
}

session::~session() {
    // 1. Stop every job from starting new work.
    call([this] {
        for (auto &[id, j] : jobs_) j->stop_for_shutdown();
    });
    // 2. Wait until workers have answered everything in flight (bounded by the slowest
    //    plugin read; reads check job_should_stop()).
    for (;;) {
        bool busy = call([this] {
            for (auto &[id, j] : jobs_)
                if (j->busy()) return true;
            return false;
        });
        if (!busy) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // 3. Make every verified block durable before the store closes.
    call([this] {
        for (auto &[id, j] : jobs_) j->flush_now();
    });
    call([this] {
        for (auto &l : listeners_) l->close();
        if (peer_server_) peer_server_->stop();
    });
    net_guard_.reset();
    net_.stop();
    if (net_thread_.joinable()) net_thread_.join();
    workers_.join();
    source_io_.join();
    jobs_.clear();
    plugins_->clear();
}

// Binds every "ip:port" of the comma-separated list now, so a port in use or a bad
// address is an error of pd_session_new, not a surprise later.
void session::bind_listeners(const std::string &spec) {
    namespace ip = boost::asio::ip;
    for (auto &item : split_list(spec, ',')) {
        auto where = require_endpoint(item, "listen address", port_rule::listen);
        boost::system::error_code ec;
        auto acceptor = std::make_unique<ip::tcp::acceptor>(net_);
        ip::tcp::endpoint ep(net::bind_address(where, "listen address"), where.port);
        acceptor->open(ep.protocol(), ec);
        if (!ec) platform::prepare_listener(acceptor->native_handle());
        if (!ec) acceptor->bind(ep, ec);
        if (!ec) acceptor->listen(ip::tcp::socket::max_listen_connections, ec);
        if (ec && platform::address_taken(ec.value()))
            fail(PD_E_BUSY, PD_CATEGORY_NET, "listen address " + item + " is already in use");
        if (ec) fail(PD_E_IO, PD_CATEGORY_NET, "cannot listen on " + item + ": " + ec.message());
        peer_server_->serve(*acceptor);
        listeners_.push_back(std::move(acceptor));
    }
}

void session::import_content(const content::manifest &m, const std::string &origin, const std::uint8_t *record,
                             std::size_t record_len) {
    auto id = to_hex(m.id.data(), m.id.size()).substr(0, 16);
    if (record) {
        auto trusted = parse_publisher_keys(settings_.get("trust.publisher_keys").value_or(""));
        if (trusted.empty())
            fail(PD_E_AUTH, PD_CATEGORY_CONTENT,
                 "content " + id + "…: no publisher key is trusted to check its publication record (set trust.publisher_keys)");
        content::publication p;
        try {
            p = content::publication::verify(record, record_len, trusted);
            p.require_matches(m);
        } catch (const error &e) {
            fail(e.code(), PD_CATEGORY_CONTENT, "content " + id + "… refused: " + e.what());
        }
        // The publisher's own origin, when the caller names none.
        if (origin.empty() && !p.origin.empty()) return store_->put_manifest(m, p.origin);
    } else if (settings_.get_int("trust.allow_unsigned") == 0) {
        fail(PD_E_AUTH, PD_CATEGORY_CONTENT,
             "content " + id + "… has no publication record: only contents signed by a trusted publisher are "
             "installed (trust.publisher_keys); trust.allow_unsigned=1 accepts unsigned ones, for labs");
    }
    store_->put_manifest(m, origin);
}

std::array<std::uint8_t, 32> session::discovery_label(const std::uint8_t id[32]) const {
    static const char tag[] = "peerdist discovery label v1";
    std::vector<std::uint8_t> msg(tag, tag + sizeof tag - 1);
    msg.insert(msg.end(), id, id + 32);
    return crypto::hmac_sha256(fleet_key_->data(), 32, msg.data(), msg.size());
}

std::vector<std::string> session::listen_addresses() const {
    std::vector<std::string> out;
    for (auto &l : listeners_) {
        boost::system::error_code ec;
        auto ep = l->local_endpoint(ec);
        if (ec) continue;
        std::string host = ep.address().to_string();
        if (ep.address().is_v6()) host = "[" + host + "]";
        out.push_back(host + ":" + std::to_string(ep.port()));
    }
    return out;
}

void session::log(int level, const std::string &message) {
    if (level > settings_.get_int("log.level")) return;
    auto e = make_event(PD_EVENT_LOG, 0, message.c_str());
    e.count = static_cast<std::uint64_t>(level);
    events_.push(e);
}

void session::reserve_space(const store::hash &id, std::uint64_t size, const std::set<store::hash> &busy,
                            std::uint64_t job_id) {
    for (auto &[evicted, bytes] : store_->reserve(id, size, busy)) {
        auto e = make_event(PD_EVENT_CACHE_EVICTED, job_id, ("evicted " + to_hex(evicted.data(), 32) + " to make room").c_str());
        std::memcpy(e.content.bytes, evicted.data(), 32);
        e.bytes_total = bytes;
        events_.push(e);
        content_removed(evicted, bytes, {});
    }
}

void session::note_peer_expired(const std::string &address) {
    std::int64_t now = store::now_ms();
    auto &[count, until] = peer_expiries_[address];
    if (now >= until) count = 0;  // an old penalty or record has run out
    ++count;
    until = now + peer_penalty_ms;
}

void session::refuse_device(const std::string &device_key) {
    if (refused_devices_.count(device_key)) return;
    if (refused_devices_.size() >= max_refused_devices) {
        log(PD_LOG_ERROR, "device " + device_key.substr(0, 16) + "… was revoked, but this device already refuses " +
                              std::to_string(max_refused_devices) + " revoked devices: re-key the fleet");
        return;
    }
    refused_devices_.insert(device_key);
    log(PD_LOG_INFO, "device " + device_key.substr(0, 16) + "… was revoked: refused as a peer from now on");
    if (peer_server_) peer_server_->drop_device(device_key);
    for (auto &[id, j] : jobs_) j->drop_device(device_key);
}

bool session::peer_penalized(const std::string &address) const {
    auto it = peer_expiries_.find(address);
    return it != peer_expiries_.end() && it->second.first >= max_peer_expiries && store::now_ms() < it->second.second;
}

void session::apply_setting(const std::string &key, const std::string &value) {
    settings_.set(key, value);
    // Jobs run by a snapshot of their settings (job/job_settings.h): they read it again.
    boost::asio::post(net_, [this] {
        for (auto &[id, j] : jobs_) j->reload_settings();
    });
    if (key == "store.quota_bytes" || key == "store.quota_percent")
        store_->set_quota({static_cast<std::uint64_t>(settings_.get_int("store.quota_bytes")),
                           static_cast<std::uint32_t>(settings_.get_int("store.quota_percent"))});
}

std::uint64_t session::start_job(const job_request &request, std::shared_ptr<const content::manifest> m,
                                 std::uint64_t *existing) {
    for (auto &[id, j] : jobs_)
        if (j->active() && j->content() == request.content) {
            if (existing) *existing = id;
            fail(PD_E_EXISTS, PD_CATEGORY_JOB, "job " + std::to_string(id) + " is already fetching this content");
        }
    if (!m)
        fail(PD_E_NOT_FOUND, PD_CATEGORY_JOB,
             "content " + to_hex(request.content.data(), 32) + " is unknown: import its manifest first");
    if (!request.destination.empty()) {
        auto parent = platform::fs_path(request.destination).parent_path();
        if (!parent.empty() && !std::filesystem::is_directory(parent))
            fail(PD_E_NOT_FOUND, PD_CATEGORY_JOB, "destination directory '" + platform::utf8_path(parent) + "' does not exist");
    }
    std::uint64_t id = next_job_id_++;
    auto j = std::make_shared<job>(*this, id, std::move(m), request);
    jobs_[id] = j;
    set_job_stop_flag(id, false);
    j->start();
    return id;
}

std::shared_ptr<job> session::find_job(std::uint64_t id) const {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) fail(PD_E_NOT_FOUND, PD_CATEGORY_JOB, "no job with id " + std::to_string(id));
    return it->second;
}

std::vector<std::uint64_t> session::job_ids() const {
    std::vector<std::uint64_t> ids;
    for (auto &[id, j] : jobs_) ids.push_back(id);
    return ids;
}

std::set<store::hash> session::busy_contents() const {
    std::set<store::hash> busy;
    for (auto &[id, j] : jobs_)
        if (j->active() || j->busy()) busy.insert(j->content());
    return busy;
}

void session::set_fetching(const store::hash &id, bool fetching) {
    std::lock_guard lk(fetching_mu_);
    if (fetching) fetching_.insert(id);
    else if (auto it = fetching_.find(id); it != fetching_.end()) fetching_.erase(it);
}

bool session::is_fetching(const store::hash &id) const {
    std::lock_guard lk(fetching_mu_);
    return fetching_.count(id) != 0;
}

void session::set_device_overrides(const pd_device_facts *facts) {
    pd_device_facts keep{};
    keep.struct_size = sizeof keep;
    keep.free_bytes = keep.usable_free_bytes = keep.uptime_seconds = UINT64_MAX;
    keep.chassis = keep.os_type = -1;
    if (facts) {
        std::size_t n = std::min<std::size_t>(facts->struct_size, sizeof keep);
        if (n > sizeof(std::uint32_t))
            std::memcpy(reinterpret_cast<char *>(&keep) + sizeof(std::uint32_t),
                        reinterpret_cast<const char *>(facts) + sizeof(std::uint32_t), n - sizeof(std::uint32_t));
    }
    std::lock_guard lk(facts_mu_);
    overrides_ = keep;
}

pd_device_facts session::device_overrides() const {
    std::lock_guard lk(facts_mu_);
    return overrides_;
}

bool session::job_should_stop(std::uint64_t id) const {
    std::lock_guard lk(stop_mu_);
    return stopped_jobs_.count(id) != 0;
}

void session::set_job_stop_flag(std::uint64_t id, bool stop) {
    std::lock_guard lk(stop_mu_);
    if (stop) stopped_jobs_.insert(id);
    else stopped_jobs_.erase(id);
}

content::manifest session::publish(const std::string &path, const std::string &name, const std::string &origin,
                                   bool add_to_cache) {
    // Hash on a worker so the network thread stays responsive; the caller waits.
    std::packaged_task<content::manifest()> task([&] { return content::hash_file(path, name); });
    auto fut = task.get_future();
    boost::asio::post(workers_, [&task] { task(); });
    content::manifest m = fut.get();
    std::string recorded = origin.empty() ? platform::utf8_path(std::filesystem::absolute(platform::fs_path(path))) : origin;
    store_->put_manifest(m, recorded);
    if (add_to_cache) {
        auto busy = call([this] { return busy_contents(); });
        if (busy.count(m.id)) fail(PD_E_BUSY, PD_CATEGORY_STORE, "a job is fetching this content");
        reserve_space(m.id, m.size, busy, 0);
        platform::file src(path, platform::file::mode::read);
        auto dst = store_->open_data(m.id, m.size);
        platform::copy_file_data(src, dst, m.size);
        // The copy is checked against the manifest: the source may have changed since hashing.
        auto check = content::hash_file(dst.path(), m.name);
        if (check.id != m.id)
            fail(PD_E_CHANGED, PD_CATEGORY_CONTENT, "'" + path + "' changed while it was being published");
        dst.datasync();
        std::vector<std::uint64_t> all(m.block_count());
        for (std::uint64_t i = 0; i < all.size(); ++i) all[i] = i;
        store_->mark_verified(m.id, all);
        store_->mark_complete(m.id);
    }
    return m;
}

std::uint64_t session::wan_budget() const {
    auto own = static_cast<std::uint64_t>(std::max<std::int64_t>(0, settings_.get_int("wan.budget_bytes")));
    std::uint64_t office = backend_wan_budget_.load();
    if (own == 0 || (office != 0 && office < own)) return office;
    return own;
}

// A token bucket holding at most a fifth of a second of the budget; a request larger than
// what is left (a foreground piece) overdraws it and the next one waits the debt out, so the
// average is the budget whatever the request size.
std::int64_t session::take_wan_budget(std::uint64_t bytes) {
    auto rate = static_cast<std::int64_t>(std::min<std::uint64_t>(wan_budget(), INT64_MAX));
    if (rate <= 0) return 0;
    std::int64_t now = store::now_ms();
    double r = static_cast<double>(rate);
    wan_allowance_ = std::min(std::max(r / 5, 65536.0), wan_allowance_ + r * static_cast<double>(now - wan_refill_ms_) / 1000.0);
    wan_refill_ms_ = now;
    if (wan_allowance_ < 0) return std::max<std::int64_t>(1, static_cast<std::int64_t>(-wan_allowance_ * 1000.0 / r) + 1);
    wan_allowance_ -= static_cast<double>(bytes);
    return 0;
}

std::shared_ptr<const store::content_record> session::servable(const store::hash &id) {
    auto rec = store_->find(id);
    if (rec && rec->shared_mtime_ns && !store_->shared_file_intact(id)) {
        log(PD_LOG_WARN, "content " + to_hex(id.data(), id.size()) +
                             ": the file delivered from the cache was changed since; the cache let go of it");
        return nullptr;
    }
    return rec;
}

std::vector<std::uint8_t> session::read_held(const store::hash &id, std::uint64_t offset, std::size_t length) {
    std::vector<std::uint8_t> bytes(length);
    platform::file f(store_->data_path(id), platform::file::mode::read);
    if (f.pread(offset, bytes.data(), bytes.size()) != bytes.size()) fail(PD_E_IO, PD_CATEGORY_STORE, "cached data file is short");
    return bytes;
}

bool session::describe_segment(const branchcache_segment &seg, pd_branchcache_segment &out) {
    auto rec = servable(seg.content);
    if (!rec) return false;
    out = pd_branchcache_segment{};
    out.struct_size = sizeof out;
    out.index = seg.index;
    std::memcpy(out.content, seg.content.data(), 32);
    std::memcpy(out.id, seg.id.data(), 32);
    std::memcpy(out.secret, seg.secret.data(), 32);
    out.first_block = seg.first_block;
    out.block_count = seg.block_count;
    for (std::uint32_t i = 0; i < seg.block_count; ++i) {
        if (!rec->block_verified(seg.first_block + i)) continue;
        out.verified[i / 8] = static_cast<std::uint8_t>(out.verified[i / 8] | 1u << (i % 8));
        ++out.verified_count;
    }
    return true;
}

}  // namespace pd::core
