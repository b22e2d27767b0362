// [MS-PCCRD], the discovery half of Windows' BranchCache: WS-Discovery Probe and ProbeMatch
// messages (SOAP over UDP, multicast to 239.255.255.250 or [ff02::c], port 3702) that ask
// and answer which peers hold which segments. Version 1.0 only. Built and parsed without
// I/O, on the strict reader of xml.h; docs/protocol.md §6 has the choices where the
// specification is ambiguous.
//
// A Probe (2.2.2.1) names segments by their IDs (HoHoDk, [MS-PCCRC]) in <wsd:Scopes>, as
// hexadecimal separated by spaces, matched by the strcmp0 rule; a ProbeMatch (2.2.2.2,
// example in 4.3) answers with the IDs it holds, its retrieval address(es) in <wsd:XAddrs>
// ("ip:port", the [MS-PCCRR] server) and, in <PeerDist:BlockCount>, a block count per ID.
// Parsers return an error instead of a message for anything malformed (3.2.4.1: such a
// message is dropped silently), and never more than max_segments IDs or max_addresses
// addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pd_branchcache::pccrd {

constexpr std::uint16_t port = 3702;
constexpr const char *ipv4_group = "239.255.255.250";
constexpr const char *ipv6_group = "ff02::c";
constexpr std::size_t max_segments = 64;   // IDs one message may carry
constexpr std::size_t max_addresses = 8;   // XAddrs one ProbeMatch may carry
constexpr std::size_t max_message_id = 256;  // a Probe's MessageID, which the answer repeats

using segment_id = std::vector<std::uint8_t>;  // 32, 48 or 64 bytes

struct probe {
    std::string message_id;  // "urn:uuid:…": a ProbeMatch's RelatesTo names it
    std::vector<segment_id> segments;
};

struct probe_match {
    std::string message_id;
    std::string relates_to;            // the Probe's message_id
    std::string endpoint;              // wsa:Address, the responder's stable "urn:uuid:…"
    std::uint64_t instance_id = 0;     // wsd:AppSequence: changes when the responder restarts
    std::uint64_t message_number = 0;  // and counts its messages
    std::vector<segment_id> segments;  // the probed segments it holds
    std::vector<std::uint32_t> block_counts;  // one per segment: how many of its blocks
    std::vector<std::string> addresses;       // "ip:port" of its [MS-PCCRR] server
};

template <typename T>
struct parsed {
    std::optional<T> msg;
    std::string error;
};

std::string build(const probe &p);
std::string build(const probe_match &m);

parsed<probe> parse_probe(std::string_view datagram);
parsed<probe_match> parse_probe_match(std::string_view datagram);

// A fresh "urn:uuid:…" (version 4, random) for a MessageID or an endpoint.
std::string new_urn_uuid();

}  // namespace pd_branchcache::pccrd
