// Loads backend plugins with Boost.DLL and negotiates their ABI (docs/plugin-abi.md).
// Only C symbols and C structs cross the boundary. A library stays loaded while its
// backend lives: the backend holds a shared_ptr to it.
#pragma once

#include <peerdist/sys/plugin.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace pd::plugin_host {

// What a session lends its plugins; the plugin host turns it into pd_host_api tables.
struct host_services {
    std::function<void(const std::string &plugin, int level, const std::string &message)> log;
    std::function<std::optional<std::string>(const std::string &key)> get_setting;
    std::function<void(const std::string &plugin, std::uint64_t job_id, int code, const std::string &message)> emit;
    std::function<std::int64_t()> now_ms;
    std::function<bool(std::uint64_t job_id)> job_should_stop;
    std::function<void(const std::string &plugin, std::uint64_t job_id, const std::string &reason)> fallback;
    std::function<bool(const std::uint8_t id[32], std::uint8_t label[32])> content_label;
    std::function<bool(const std::uint8_t label[32], std::uint64_t &verified, std::uint64_t &total)> lookup_label;
    std::function<std::string()> listen_addresses;
    std::function<void(pd_device_facts &facts, std::string &device_id)> device_facts;
    std::function<void(std::uint64_t bytes_per_second)> set_wan_budget;
    // Signs crypto::device_signed_message(message) with the device key.
    std::function<void(const std::uint8_t *message, std::size_t len, std::uint8_t signature[64], std::uint8_t public_key[32])>
        device_sign;
    // False without a fleet key.
    std::function<bool(std::uint8_t key[32])> discovery_key;
    std::function<void(const std::array<std::uint8_t, 32> &public_key)> refuse_device;
    std::function<void(const std::array<std::uint8_t, 32> &content_id, bool foreground)> request_content;
    std::function<void(const std::array<std::uint8_t, 32> &content_id)> retire_content;
    std::function<void(bool allowed)> set_discovery_broadcast;
    std::function<bool()> discovery_broadcast_allowed;
    // BranchCache on the wire (docs/protocol.md §5–6): false when not found.
    std::function<bool(const std::uint8_t *id, std::size_t id_len, pd_branchcache_segment &out)> branchcache_segment;
    // The block when held verified.
    std::function<std::optional<std::vector<std::uint8_t>>(const std::array<std::uint8_t, 32> &content, std::uint64_t block)>
        read_block;
    // Segment `index` of a content with recorded Content Information: false when there is none.
    std::function<bool(const std::array<std::uint8_t, 32> &content, std::uint32_t index, pd_branchcache_segment &out)>
        branchcache_segment_of;
    // Records Content Information an origin gave (throws pd::error as pd_content_set_branchcache_info).
    std::function<void(const std::array<std::uint8_t, 32> &content, const std::uint8_t *info, std::size_t len)>
        set_branchcache_info;
};

// A content as a backend's catalogue describes it (pd_content_description, owned). Unchecked:
// the session checks the manifest against the id and the record against its publishers.
struct content_description {
    std::vector<std::uint8_t> manifest;
    std::vector<std::uint8_t> publication;  // empty: none
    std::string origins;                    // newline-separated, in order
};

class backend;

// The content a backend is asked about (pd_content_ref, owned).
struct content_ref {
    std::array<std::uint8_t, 32> id{};
    std::uint64_t size = 0;
    std::string name;
    std::string origin;  // the recorded origin locator, or ""
    std::uint64_t job_id = 0;
};

// An open stream of one backend's bytes for a content; closed when the last owner lets go.
// Reads may run on several source I/O threads at once (the plugin ABI allows it).
class stream {
public:
    ~stream();
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;
    const backend &source() const { return *backend_; }
    // Reads exactly `length` bytes at `offset`, or throws pd::error: the plugin's code
    // (PD_E_CANCELLED when the job stopped, PD_E_CHANGED when the origin's bytes changed)
    // with its reason, or PD_E_IO for a short read. One call, no retry: the backend owns
    // retries (docs/architecture.md, "Reads and retries"). Blocking: source I/O threads.
    void read(std::uint64_t offset, void *buffer, std::size_t length) const;

private:
    friend class backend;
    stream(std::shared_ptr<const backend> b, void *handle) : backend_(std::move(b)), handle_(handle) {}
    std::shared_ptr<const backend> backend_;
    void *handle_;
};

// What pd_host_api's `host` pointer points at: the backend it was lent to.
struct host_context {
    backend *owner;
    host_services *services;
};

class backend : public std::enable_shared_from_this<backend> {
public:
    ~backend();
    backend(const backend &) = delete;
    backend &operator=(const backend &) = delete;

    const std::string &name() const { return name_; }
    const std::string &version() const { return version_; }
    const std::string &path() const { return path_; }
    std::uint32_t abi_version() const { return abi_; }
    std::uint32_t source_class() const { return vtable_.source_class; }
    const pd_backend_vtable &vtable() const { return vtable_; }
    void *self() const { return self_; }
    bool can_stream() const { return vtable_.open != nullptr; }
    bool can_find_peers() const { return vtable_.find_peers != nullptr; }
    bool has_origin_policy() const { return vtable_.origin_allowed != nullptr; }

    // The hooks, typed. The blocking ones run on source I/O threads (plugin ABI); each
    // throws pd::error with the plugin's code and reason, never returns a code.
    //
    // Opens a stream of the content: PD_E_NOT_FOUND when this backend cannot serve it (the
    // caller tries the next source), PD_E_CHANGED when the origin no longer matches. Null,
    // without an error, when the plugin says the content is none of its business
    // (PD_PLUGIN_E_NOT_FOUND with no message: a mode that is off): no fallback to report.
    std::shared_ptr<stream> open(const content_ref &content) const;
    // Peers that may hold blocks of the content, one "ip:port" or "ip:port wan" each;
    // empty when the backend finds none or cannot look.
    std::vector<std::string> find_peers(const content_ref &content) const;
    // May this device fetch the content from the origin now? nullopt: no opinion.
    std::optional<bool> origin_allowed(const content_ref &content) const;
    // Network thread: the device holds a complete, verified content / a job ended.
    void content_available(const content_ref &content) const;
    void job_finished(const content_ref &content, int state, const std::uint64_t *bytes_by_source, std::size_t classes) const;
    // The content from the backend's catalogue: nullopt when it has none (or no catalogue),
    // with the plugin's reason in `not_found` when it gave one; throws pd::error with the
    // plugin's reason when asking failed. Blocking: never on the network thread.
    std::optional<content_description> describe(const std::array<std::uint8_t, 32> &id, std::string &not_found) const;
    // The device no longer holds the content (any thread).
    void content_removed(const content_ref &content) const;
    // The Content Information the origin at `locator` serves (describe_origin): nullopt when
    // this backend has no such origin, with its reason in `not_found` when it gave one; throws
    // pd::error with the plugin's reason when asking failed. Blocking: never the network thread.
    std::optional<std::vector<std::uint8_t>> describe_origin(const std::string &locator, std::size_t max_bytes,
                                                             std::string &not_found) const;

private:
    friend class plugin_host;
    backend() = default;

    std::string name_, version_, path_;
    std::uint32_t abi_ = 0;
    pd_backend_vtable vtable_{};
    pd_host_api host_api_{};
    host_context context_{};
    void *self_ = nullptr;
    std::shared_ptr<boost::dll::shared_library> library_;  // destroyed after self_
};

class plugin_host {
public:
    // The ABI range this host implements (tests build hosts with other ranges).
    plugin_host(host_services services, std::uint32_t abi_min = 1, std::uint32_t abi_max = PD_PLUGIN_ABI_VERSION);
    ~plugin_host();

    // Loads one file, or every plugin file of a directory in name order. Throws pd::error;
    // for a directory, after trying every file, the first failure.
    void load(const std::string &path);
    // Registers a backend compiled into the host, through the same descriptor path.
    void add_builtin(const pd_plugin_descriptor *descriptor);
    std::vector<std::shared_ptr<backend>> backends() const;
    // Destroys every backend (before the session's own services go away).
    void clear();

private:
    void load_file(const std::string &path);
    void adopt(const pd_plugin_descriptor *descriptor, std::shared_ptr<boost::dll::shared_library> lib,
               const std::string &path);

    host_services services_;
    std::uint32_t abi_min_, abi_max_;
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<backend>> backends_;
};

}  // namespace pd::plugin_host
