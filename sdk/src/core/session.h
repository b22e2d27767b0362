// The session core: one network thread that owns session and job state (no locks
// there), a worker pool for disk, hashing, SQLite and plugin reads, which answers
// with messages posted back to the network thread (libtorrent's model).
#pragma once

#include "core/branchcache_index.h"
#include "core/event_queue.h"
#include "peer/peer_server.h"
#include "peer/wire.h"
#include "core/settings.h"
#include "job/job_request.h"
#include "plugin_host/plugin_host.h"
#include "store/block_store.h"

#include <peerdist/content.h>
#include <peerdist/session.h>

#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <atomic>
#include <optional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <thread>

namespace pd::core {

class job;

class session {
public:
    explicit session(const pd_session_options &opts);
    ~session();
    session(const session &) = delete;
    session &operator=(const session &) = delete;

    // Runs `f` on the network thread and returns its result (exceptions propagate).
    // Called from the network thread itself it runs inline.
    template <class F>
    auto call(F &&f) -> decltype(f()) {
        using R = decltype(f());
        if (net_.get_executor().running_in_this_thread()) return f();
        std::packaged_task<R()> task(std::forward<F>(f));
        auto fut = task.get_future();
        boost::asio::post(net_, [&task] { task(); });
        return fut.get();
    }

    event_queue &events() { return events_; }
    core::settings &config() { return settings_; }
    store::block_store &store() { return *store_; }
    // The cached contents' BranchCache segment IDs and secrets (docs/protocol.md §5–6).
    branchcache_index &branchcache() { return *branchcache_; }
    // The record of a content to serve peers from; null when the cache does not hold it, or
    // held it in a file delivered to the host that has been written to since
    // (store::shared_file_intact: then the cache lets go of it, with a warning). Any thread.
    std::shared_ptr<const store::content_record> servable(const store::hash &id);
    // `length` bytes of a held content's data from `offset` (PD_E_IO if the file is short).
    std::vector<std::uint8_t> read_held(const store::hash &id, std::uint64_t offset, std::size_t length);
    // A segment as the plugin ABI lends it, with the blocks held verified now; false when the
    // content is no longer servable.
    bool describe_segment(const branchcache_segment &seg, pd_branchcache_segment &out);
    plugin_host::plugin_host &plugins() { return *plugins_; }
    boost::asio::io_context &net() { return net_; }
    boost::asio::thread_pool &workers() { return workers_; }
    // Threads for calls that block on the network inside plugins (source open and read,
    // peer discovery): kept apart from the workers, so a slow origin never starves the
    // hashing, flushing and peer serving that the workers do.
    boost::asio::thread_pool &source_io() { return source_io_; }
    const std::string &cache_dir() const { return cache_dir_; }
    unsigned worker_count() const { return worker_count_; }
    // The fleet key, when the session has one (peers need it).
    const std::optional<std::array<std::uint8_t, 32>> &fleet_key() const { return fleet_key_; }
    // HMAC(fleet key, tag ‖ content id): what discovery puts on the wire instead of the id.
    std::array<std::uint8_t, 32> discovery_label(const std::uint8_t id[32]) const;
    // The peer listen addresses as bound ("ip:port", ports resolved), in option order.
    std::vector<std::string> listen_addresses() const;

    // Makes a content known (its manifest and origin in the store) once the trust policy
    // admits it: a publication record about this very manifest from a publisher in
    // trust.publisher_keys, or — only with trust.allow_unsigned — no record. A record given
    // is always checked. Throws PD_E_AUTH saying which rule refused it (docs/security.md).
    void import_content(const content::manifest &m, const std::string &origin, const std::uint8_t *record,
                        std::size_t record_len);

    // Learns a content from the backends' catalogues (pd_backend_vtable.describe_content):
    // the first that describes it wins, and what it says is checked like any import — the
    // manifest must prove the id (PD_E_INTEGRITY), the record must pass the trust policy
    // (PD_E_AUTH). PD_E_NOT_FOUND when no catalogue has it. Blocking: never the network thread.
    void resolve_content(const store::hash &id);
    // Learns a content from its origin alone (pd_backend_vtable.describe_origin): the first
    // backend whose origin answers with Content Information V1 gives the manifest (named
    // `name`, else after the locator's last path segment), imported as an unsigned content
    // (the trust policy decides, PD_E_AUTH) with `locator` as its origin, and the Content
    // Information recorded. Returns the content id. PD_E_NOT_FOUND when no origin answers
    // PeerDist. Blocking: never the network thread.
    store::hash import_from_origin(const std::string &locator, const std::string &name);
    // A backend's authority asks for the content (pd_host_api.request_content): resolved when
    // unknown, then fetched by a job unless one runs or it is complete; `foreground` raises
    // the job's transfers from other offices to the foreground class. Returns at once.
    void request_content(const store::hash &id, bool foreground);
    // A backend's authority retired the content: its jobs are cancelled and it leaves the
    // cache (a PD_EVENT_CACHE_EVICTED). Returns at once.
    void retire_content(const store::hash &id);
    // The content left the cache: the backends hear it (pd_backend_vtable.content_removed).
    void content_removed(const store::hash &id, std::uint64_t size, const std::string &name);
    // Removes a content and its data from the cache, as the host asks (pd_cache_remove):
    // PD_E_BUSY while a job uses it. On the network thread, so no job can start on it meanwhile.
    void remove_content(const store::hash &id);

    void emit(const pd_event &e) { events_.push(e); }
    void log(int level, const std::string &message);
    void apply_setting(const std::string &key, const std::string &value);

    // Network thread only.
    // `m` is the content's manifest as the caller read it from the store (null: unknown).
    std::uint64_t start_job(const job_request &request, std::shared_ptr<const content::manifest> m,
                            std::uint64_t *existing);
    std::shared_ptr<job> find_job(std::uint64_t id) const;
    std::vector<std::uint64_t> job_ids() const;
    std::set<store::hash> busy_contents() const;
    // Makes room in the cache for a content (block_store::reserve) and emits a
    // PD_EVENT_CACHE_EVICTED for each content evicted to do so (`job_id`: the job that needed
    // the room, 0 for a publication). Worker threads.
    void reserve_space(const store::hash &id, std::uint64_t size, const std::set<store::hash> &busy, std::uint64_t job_id);
    // A job made blocks verified and durable: the peer server tells the clients following it.
    void blocks_verified(const store::hash &content, const std::vector<std::uint64_t> &blocks) {
        if (peer_server_) peer_server_->blocks_verified(content, blocks);
    }
    // The office WAN budget: wan.budget_bytes per second (0: none), or the coordinator's
    // budget for the office when smaller (set by a backend), for everything this
    // device requests from peers in other offices, all jobs together. 0 when `bytes` may be
    // requested now (they are taken), otherwise how many ms until the budget has room.
    std::int64_t take_wan_budget(std::uint64_t bytes);
    // A peer let a request expire (network thread). Remembered by the session, not the job:
    // after max_peer_expiries within peer_penalty_ms every job leaves the address alone until
    // the penalty ends (a peer that advertises and stalls once cost every new job 5 s).
    void note_peer_expired(const std::string &address);
    bool peer_penalized(const std::string &address) const;
    static constexpr int max_peer_expiries = 2;
    static constexpr std::int64_t peer_penalty_ms = 10 * 60 * 1000;
    // A backend's authority (a coordinator) revoked the device with this key (hex): the peer
    // server closes its connections and refuses its HELLOs, no job dials it or keeps a link
    // to it. For the session's life; at most max_refused_devices are kept. Network thread.
    void refuse_device(const std::string &device_key);
    bool device_refused(const std::string &device_key) const { return refused_devices_.count(device_key) != 0; }
    static constexpr std::size_t max_refused_devices = 65536;
    // The budget in force, bytes/s (0: none). Any thread.
    std::uint64_t wan_budget() const;
    // The peer server's counters (zero without listen addresses).
    peer::peer_server::counters serving_counters() const {
        return peer_server_ ? peer_server_->stats() : peer::peer_server::counters{};
    }

    // Any thread.
    std::uint64_t node_id() const { return node_id_; }
    // This device's key as peers see it: the HELLO proof (peer/wire.h).
    const peer::wire::device_identity &device_identity() const { return device_identity_; }
    void set_fetching(const store::hash &id, bool fetching);
    bool is_fetching(const store::hash &id) const;
    void set_device_overrides(const pd_device_facts *facts);
    pd_device_facts device_overrides() const;
    // Measured facts with the overrides applied.
    pd_device_facts device_facts() const;
    // Stable per cache directory (32 hex digits).
    const std::string &device_id() const { return device_id_; }
    bool job_should_stop(std::uint64_t id) const;
    void set_job_stop_flag(std::uint64_t id, bool stop);
    // Hashes (on a worker), records, optionally copies into the cache as complete.
    content::manifest publish(const std::string &path, const std::string &name, const std::string &origin,
                              bool add_to_cache);

private:
    std::string cache_dir_;
    std::string device_id_;
    // The device's Ed25519 key (libsodium's 64-byte form), from the cache directory.
    std::array<std::uint8_t, 64> device_key_{};
    std::array<std::uint8_t, 32> device_public_key_{};
    peer::wire::device_identity device_identity_;
    unsigned worker_count_;
    std::optional<std::array<std::uint8_t, 32>> fleet_key_;
    event_queue events_;
    core::settings settings_;
    std::unique_ptr<store::block_store> store_;
    std::unique_ptr<branchcache_index> branchcache_;
    std::unique_ptr<plugin_host::plugin_host> plugins_;
    boost::asio::io_context net_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> net_guard_;
    boost::asio::thread_pool workers_;
    boost::asio::thread_pool source_io_;
    std::thread net_thread_;

    void bind_listeners(const std::string &spec);
    void remove_when_idle(const store::hash &id, int attempt);

    std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> listeners_;
    std::unique_ptr<peer::peer_server> peer_server_;
    std::map<std::uint64_t, std::shared_ptr<job>> jobs_;  // network thread
    std::uint64_t next_job_id_ = 1;
    std::map<std::string, std::pair<int, std::int64_t>> peer_expiries_;  // address -> (count, until ms)
    std::set<std::string> refused_devices_;  // network thread: device keys (hex) revoked
    std::atomic<std::uint64_t> backend_wan_budget_{0};  // a backend's (coordinator's) office budget
    std::atomic<bool> broadcast_allowed_{true};         // an authority's rule for the office (WiFi: no)
    std::mutex requests_mu_;
    std::map<store::hash, std::int64_t> request_failed_until_;  // request_content: retry after
    double wan_allowance_ = 0;  // network thread: bytes the WAN budget still grants
    std::int64_t wan_refill_ms_ = 0;
    std::uint64_t node_id_ = 0;
    mutable std::mutex fetching_mu_;
    std::multiset<store::hash> fetching_;
    mutable std::mutex facts_mu_;
    pd_device_facts overrides_{};
    mutable std::mutex stop_mu_;
    std::set<std::uint64_t> stopped_jobs_;
};

}  // namespace pd::core
