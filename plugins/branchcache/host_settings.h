// The branchcache plugin's settings (plugin.branchcache.*), read through the host: shared by
// its own discovery (branchcache_plugin.cpp) and its BranchCache wire mode (windows_peers.cpp,
// windows_fetch.cpp).
// Read where they are used, so a setting changed at run time applies to the next use.
#pragma once

#include <peerdist/sys/plugin.h>

#include <cstdlib>
#include <string>

namespace pd_branchcache {

// The setting's text, or `def` when unset or longer than the plugin reads.
inline std::string setting(const pd_host_api *h, const char *name, const char *def) {
    char buf[256];
    int64_t n = h->get_setting(h->host, name, buf, sizeof buf);
    return n > 0 && n < static_cast<int64_t>(sizeof buf) ? std::string(buf, static_cast<std::size_t>(n)) : def;
}

// The setting as an unsigned number (strtoul's reading), or `def` when unset.
inline unsigned setting_uint(const pd_host_api *h, const char *name, unsigned def) {
    auto v = setting(h, name, "");
    return v.empty() ? def : static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
}

}  // namespace pd_branchcache
