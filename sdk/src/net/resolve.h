// A host:port's address to bind to: an IP literal as is, a DNS name resolved once (listen
// addresses take names too: "localhost:7400", "coordinator.example:7400").
#pragma once

#include "util/endpoint.h"

#include <boost/asio/ip/address.hpp>

#include <string>

namespace pd::net {

// The first address `where` resolves to (IPv4 before IPv6). Throws pd::error PD_E_INVALID
// (category NET) naming `what` when a name does not resolve.
boost::asio::ip::address bind_address(const endpoint &where, const std::string &what);

}  // namespace pd::net
