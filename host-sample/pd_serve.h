// `pd serve`: a directory as an HTTP origin that answers BranchCache's PeerDist requests
// ([MS-PCCRTP]): a GET with `Accept-Encoding: peerdist` and `X-P2P-PeerDist` gets the file's
// Content Information (`Content-Encoding: peerdist`), any other GET or HEAD the file itself,
// with single byte ranges. What a Windows client or peerdist's origin backend needs to start
// a download from a URL alone and take its blocks from the office's peers (docs/cli.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pd_tool {

struct serve_options {
    std::string root;                      // the directory served (nothing outside it)
    std::string listen = "127.0.0.1:8080";  // "ip:port"; port 0 picks one (printed)
    std::vector<std::uint8_t> passphrase;  // the server secret's passphrase ([MS-PCCRC] 2.1)
    std::uint64_t peerdist_min_size = 65536;  // smaller files are always sent as they are
    unsigned max_connections = 64;
    unsigned timeout_ms = 30000;  // per read or write
};

// Serves until SIGINT or SIGTERM (Ctrl-C on Windows). Prints "listening on ip:port" first.
// Returns a pd_cli exit status.
int serve(const serve_options &o);

}  // namespace pd_tool
