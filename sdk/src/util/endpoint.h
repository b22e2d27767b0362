// "host:port" as every part of peerdist writes it: peer addresses, listen addresses, the
// coordinator's address. One parser, one rule:
//   1.2.3.4:7400   [2001:db8::1]:7400   coordinator.example:7400   localhost:7400
// The host is an IPv4 address, a bracketed IPv6 address or a DNS name (letters, digits,
// '-', '.', at most 253 characters); the port is decimal, 1-65535, or 0 where a listener
// may take any free port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pd {

struct endpoint {
    std::string host;    // without brackets
    std::uint16_t port = 0;
    bool is_name = false;  // a DNS name, to be resolved; otherwise an IP literal
};

enum class port_rule { connect, listen };  // listen: 0 (any free port) allowed

// nullopt when `text` does not follow the rule above.
std::optional<endpoint> parse_endpoint(const std::string &text, port_rule rule = port_rule::connect);

// The same, throwing pd::error PD_E_INVALID (category NET) that names `what` and the rule:
// "coordinator address 'x' is not host:port (port 1-65535)".
endpoint require_endpoint(const std::string &text, const std::string &what, port_rule rule = port_rule::connect);

}  // namespace pd
