// The BranchCache wire mode's client side: a content's blocks fetched from Windows'
// BranchCache peers (and from peerdist agents in the same mode) — [MS-PCCRD] Probes for the
// segments this device still needs, then [MS-PCCRR] MSG_GETBLKS to the peers that answered,
// each block decrypted under its segment's secret (docs/protocol.md §5–6).
//
// It is a LAN-class stream of the branchcache backend, so the core tries it before the
// origin and verifies every block it returns against the content's hashes (the Content
// Information's, checked equal to the manifest's when it was recorded): a peer's bytes are
// never trusted. The stream opens only when every segment the device still needs was offered
// by some peer. Each peer is asked once whether it speaks 1.0 (MSG_NEGO_REQ) and once a
// segment which blocks it holds (MSG_GETBLKLIST); a block is then asked (MSG_GETBLKS) of the
// peers that listed it, in turn. A block no peer serves fails the read, and the core goes on
// from the next source (the origin).
//
// What a ProbeMatch may steer is bounded: only the probed segment IDs are taken, at most
// max_offers peers per segment, and only retrieval addresses on the host the answer came
// from (a forged answer cannot point this device at a third host).
//
// Settings (plugin.branchcache.*): pccrd_probe_to (239.255.255.250:<pccrd_port>),
// probe_timeout_ms (500), pccrr_cipher (aes128; aes192, aes256, none), pccrr_timeout_ms
// (10000).
#pragma once

#include "pccrr.h"

#include <peerdist/sys/plugin.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pd_branchcache {

constexpr std::size_t max_offers = 8;  // peers kept per segment

// A peer's answer for one segment: its [MS-PCCRR] server and how many blocks it holds.
struct offer {
    std::string address;  // "ip:port"
    std::uint32_t blocks = 0;
};

// Sends one Probe for `ids` to `to` ("ip:port", multicast or unicast) and gathers the
// ProbeMatches that arrive within `timeout_ms`, by segment ID. Blocking.
std::map<pccrr::bytes, std::vector<offer>> probe(const std::vector<pccrr::bytes> &ids, const std::string &to,
                                                 unsigned timeout_ms);

class windows_stream {
public:
    // The stream of a content whose segments are known to the host, or nothing with the
    // reason in `why` (empty: the content has no recorded Content Information).
    static std::unique_ptr<windows_stream> open(const pd_host_api *host, const pd_content_ref &content, std::string &why);
    ~windows_stream();

    // Fills [offset, offset + length) from peers. Blocking; several threads at once.
    // Returns PD_PLUGIN_OK, or a code with the reason in `why`.
    int32_t read(std::uint64_t offset, std::uint8_t *buffer, std::size_t length, std::string &why);

    struct impl;

private:
    explicit windows_stream(std::unique_ptr<impl> i);
    std::unique_ptr<impl> impl_;
};

}  // namespace pd_branchcache
