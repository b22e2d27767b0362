// What the C ABI's admin calls (admin.cpp) and the admin operation table
// (admin_operations.cpp) share: the handle, the checked request, and the requests more than
// one operation builds.
#pragma once

#include "capi/translate.h"
#include "content/manifest.h"
#include "coordinator_client/protocol.h"

#include <peerdist/admin.h>

#include <memory>
#include <string>

struct pd_admin {
    std::unique_ptr<pd::coord::coordinator_client> client;
};

namespace pd::capi::admin {

using coord::coordinator_client;
using coord::json;

coordinator_client &checked(pd_admin *a);
// One request; a refusal becomes PD_E_INVALID with the coordinator's reason (and, for a
// topology, every problem on its own line).
json call(pd_admin *a, const json &request);
// One publication as the coordinator's publish operations take it, with the manifest itself
// (devices then start from the content id alone); `origins` newline-separated, NULL to leave
// them out (the coordinator keeps the ones it has).
json publication(const content::manifest &m, const char *origins);
json group_request(const std::string &name, const json &devices, const json &contents);
json optimisation_request(bool enabled, unsigned prefix_v4, unsigned prefix_v6);
json prestage_request(const std::string &content, const json &offices, std::int64_t deadline_ms);
// The "admin.stats" reply as CSV: office,origin_bytes,wan_bytes,lan_bytes.
std::string office_stats_csv(const json &reply);

}  // namespace pd::capi::admin
