// A client connection to one peer (blocking; used by one worker at a time): the secure
// channel, then HAVE exchanges and block requests. Timeouts come from the socket.
#pragma once

#include "net/secure_channel.h"
#include "net/wire.h"

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace pd::core {

class peer_client {
public:
    // Connects to "ip:port" and runs the handshake. Throws PD_E_IO, PD_E_TIMEOUT,
    // PD_E_AUTH ("shared key mismatch").
    peer_client(const std::string &address, const std::array<std::uint8_t, 32> &fleet_key, int timeout_ms,
                std::uint64_t own_node_id = 0);
    ~peer_client();
    peer_client(const peer_client &) = delete;
    peer_client &operator=(const peer_client &) = delete;

    const std::string &address() const { return address_; }
    std::uint64_t node_id() const { return node_id_; }
    // The peer's verified-block bitmap for a content; `fetching` says it is downloading it too.
    std::vector<std::uint8_t> have(const content::hash &id, std::uint64_t block_count, bool *fetching = nullptr);

    struct block {
        std::uint64_t index;
        std::vector<std::uint8_t> bytes;
    };
    // Requests [first, first + count); returns the blocks received in order. A REJECT ends
    // the answer early and its reason lands in `rejected`.
    std::vector<block> fetch(const content::hash &id, std::uint64_t first, std::uint32_t count, std::string &rejected);

private:
    net::wire::message next();

    std::string address_;
    int fd_ = -1;
    std::unique_ptr<net::blocking_channel> channel_;
    std::uint32_t next_request_ = 1;
    std::uint64_t node_id_ = 0;
};

}  // namespace pd::core
