// Rendezvous point (RVP) election inside an office (design §6). Devices are ranked, in this
// order: largest actual free space, preferred (RVP) devices, desktops over laptops, servers
// over workstations, longer uptime, largest usable free space, then the device id so every
// coordinator elects the same device. Free space is compared in buckets
// (`bucket_bytes`): devices within one bucket tie on it and the next rule decides; a bucket
// of 1 byte gives the strict order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pd::coord {

struct candidate {
    std::string device_id;
    std::uint64_t free_bytes = 0;
    std::uint64_t usable_free_bytes = 0;
    bool preferred = false;
    int chassis = 0;  // pd_device_facts: 0 unknown, 1 desktop, 2 laptop, 3 server
    int os_type = 0;  // 0 unknown, 1 workstation, 2 server
    std::uint64_t uptime_seconds = 0;
};

struct election_policy {
    std::uint64_t bucket_bytes = 1ull << 30;  // 1 GiB
};

// True when `a` makes a better RVP than `b`.
bool ranks_before(const candidate &a, const candidate &b, const election_policy &policy);
// The winner's index in `candidates`, or -1 when there is none.
int elect(const std::vector<candidate> &candidates, const election_policy &policy);

}  // namespace pd::coord
