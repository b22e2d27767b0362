#include "coordinator/election.h"

#include <tuple>

namespace pd::coord {

// Desktops (and server chassis) before unknown before laptops: a laptop leaves the office.
static int chassis_rank(int chassis) { return chassis == 1 || chassis == 3 ? 2 : chassis == 2 ? 0 : 1; }
static int os_rank(int os) { return os == 2 ? 2 : os == 1 ? 1 : 0; }

bool ranks_before(const candidate &a, const candidate &b, const election_policy &policy) {
    std::uint64_t bucket = policy.bucket_bytes ? policy.bucket_bytes : 1;
    // Larger is better for every key but the id, so compare b's tuple with a's.
    auto key = [&](const candidate &c) {
        return std::make_tuple(c.free_bytes / bucket, c.preferred, chassis_rank(c.chassis), os_rank(c.os_type),
                               c.uptime_seconds, c.usable_free_bytes / bucket);
    };
    auto ka = key(a), kb = key(b);
    if (ka != kb) return kb < ka;
    return a.device_id < b.device_id;
}

int elect(const std::vector<candidate> &candidates, const election_policy &policy) {
    int best = -1;
    for (std::size_t i = 0; i < candidates.size(); ++i)
        if (best < 0 || ranks_before(candidates[i], candidates[static_cast<std::size_t>(best)], policy))
            best = static_cast<int>(i);
    return best;
}

}  // namespace pd::coord
