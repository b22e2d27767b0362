// The branchcache backend's BranchCache wire mode, server side: this device answers
// Windows' own BranchCache peers — [MS-PCCRD] Probes on UDP 3702 with a ProbeMatch for the
// segments it holds, and [MS-PCCRR] requests over HTTP with the blocks, encrypted under each
// segment's secret (docs/protocol.md §5–6, docs/security.md "BranchCache wire mode").
//
// Off unless plugin.branchcache.windows_peers=1; independent of the fleet key, which Windows
// peers do not have. Only contents whose Content Information is recorded
// (pd_content_set_branchcache_info) have segments a peer can name. Settings
// (plugin.branchcache.*): pccrd_port (3702), pccrr_port (54321; 0 picks one),
// max_probe_answers_per_second (50), max_probe_answers_per_source (5),
// max_pccrr_connections (64), max_pccrr_connections_per_source (8), pccrr_timeout_ms (10000).
#pragma once

#include <peerdist/sys/plugin.h>

#include <cstdint>
#include <memory>
#include <string>

namespace pd_branchcache {

class windows_peers {
public:
    // Binds both sockets and starts answering on a thread of its own. Returns nothing and
    // logs why when a socket cannot be bound.
    static std::unique_ptr<windows_peers> start(const pd_host_api *host);
    ~windows_peers();  // stops answering and joins the thread

    // The bound ports (the HTTP one is what ProbeMatches advertise).
    std::uint16_t pccrd_port() const;
    std::uint16_t pccrr_port() const;

    struct impl;

private:
    explicit windows_peers(std::unique_ptr<impl> i);
    std::unique_ptr<impl> impl_;
};

}  // namespace pd_branchcache
