// One place the origin backend can read a content's bytes from: a file, or an
// HTTP(S) URL. Sources are shared by the source I/O threads reading a stream.
#pragma once

#include <peerdist/sys/plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pd_origin {

// Result of a source call: a plugin return code and, on failure, a reason.
struct status {
    int32_t code = PD_PLUGIN_OK;
    std::string message;
    bool ok() const { return code == PD_PLUGIN_OK; }
    static status fail(int32_t c, std::string m) { return {c, std::move(m)}; }
};

// Settings read live from the host ("plugin.origin.<key>") when a stream opens.
struct settings {
    std::uint64_t connect_timeout_ms = 10000;
    std::uint64_t idle_timeout_ms = 30000;
    std::uint64_t max_redirects = 5;
    std::uint64_t retries = 4;
    std::uint64_t retry_backoff_ms = 250;
    std::uint64_t max_connections = 8;
    bool verify_tls = true;
    std::string ca_file, client_cert, client_key, proxy;

    static settings read(const pd_host_api *host);
};

class source {
public:
    virtual ~source() = default;
    // Checks the source is reachable and holds `size` bytes (PD_PLUGIN_E_CHANGED if not).
    virtual status open(std::uint64_t size) = 0;
    // Reads exactly `length` bytes at `offset` (retrying transient failures itself).
    virtual status read(std::uint64_t offset, void *buffer, std::size_t length) = 0;
    virtual std::string describe() const = 0;
    // The content's BranchCache Content Information V1, when the origin answers PeerDist
    // requests ([MS-PCCRTP]): at most `max_bytes`. NOT_FOUND (no message) when it does not.
    virtual status content_info(std::vector<std::uint8_t> &, std::size_t) { return status::fail(PD_PLUGIN_E_NOT_FOUND, ""); }
};

// Something a source needs from the job reading it.
struct read_context {
    const pd_host_api *host;
    std::uint64_t job_id;
    bool should_stop() const { return host->job_should_stop(host->host, job_id) != 0; }
};

std::unique_ptr<source> make_file_source(const std::string &path);
std::unique_ptr<source> make_http_source(const std::string &url, const settings &s, read_context ctx);

}  // namespace pd_origin
