// A blocking TCP connect with a timeout, for the blocking clients (the coordinator client
// in plugins and tools, tests): the socket comes back with SO_RCVTIMEO/SO_SNDTIMEO set.
#pragma once

#include <string>

namespace pd::net {

// Connects to "ip:port" ("[v6]:port" too). Throws PD_E_INVALID (not ip:port), PD_E_TIMEOUT,
// PD_E_IO. The caller owns the descriptor.
int connect_tcp(const std::string &address, int timeout_ms);

}  // namespace pd::net
