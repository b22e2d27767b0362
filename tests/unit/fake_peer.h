// A fake fleet member for the attacker tests: it listens on loopback, runs the secure
// channel's server side on each connection it takes (a thread each) and hands every message
// to the test's script, which answers, lies or goes silent. The sockets, threads and teardown
// are written once here; what the peer does is the test's.
#pragma once

#include "fake_peer_sockets.h"
#include "peer_identity.h"

#include "net/secure_channel.h"
#include "peer/wire.h"

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace pdtest {

class fake_peer {
public:
    // After a message: keep reading, hold the connection open without reading another byte
    // until the fake is destroyed (a peer gone silent, not gone), or hang up.
    enum class then { read, hold, hang_up };
    // One connection's behaviour: called with each message it receives, and with nullptr
    // each time a receive waited `idle_ms` for nothing.
    using script = std::function<then(pd::net::blocking_channel &ch, const pd::peer::wire::message *m)>;

    // Listens at once; every connection runs a fresh script from `make`.
    fake_peer(const std::uint8_t *fleet_key, int idle_ms, std::function<script()> make)
        : fleet_key_(fleet_key), idle_ms_(idle_ms), make_(std::move(make)) {
        listener_ = listen_on_loopback(address_);
        acceptor_ = std::thread([this] {
            while (!stop_) {
                auto fd = accept_within(listener_);
                if (fd == pd::platform::invalid_socket) continue;
                ++connections_;
                connections_served_.emplace_back([this, fd] { serve(fd); });
            }
        });
    }
    fake_peer(const fake_peer &) = delete;
    fake_peer &operator=(const fake_peer &) = delete;
    // Stops taking connections, ends every one and joins.
    ~fake_peer() {
        stop_ = true;
        acceptor_.join();
        for (auto &t : connections_served_) t.join();
        pd::platform::close_socket(listener_);
    }

    // "127.0.0.1:PORT".
    const std::string &address() const { return address_; }
    // Connections taken so far.
    int connections() const { return connections_; }

private:
    void serve(native_socket fd) {
        set_receive_timeout(fd, idle_ms_);
        auto run = make_();
        then next = then::read;
        try {
            pd::net::blocking_channel ch(fd, pd::net::role::server, fleet_key_);
            while (!stop_ && next == then::read) {
                pd::net::bytes in;
                try {
                    in = ch.receive();
                } catch (const pd::error &e) {
                    if (e.code() != PD_E_TIMEOUT) break;
                    next = run(ch, nullptr);
                    continue;
                }
                auto m = pd::peer::wire::decode(in.data(), in.size());
                next = run(ch, &m);
            }
        } catch (const std::exception &) {
            // The client hung up, or sent what the fake cannot parse: the connection ends.
        }
        while (next == then::hold && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        pd::platform::close_socket(fd);
    }

    const std::uint8_t *fleet_key_;
    int idle_ms_;
    std::function<script()> make_;
    native_socket listener_ = pd::platform::invalid_socket;
    std::string address_;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::thread acceptor_;
    std::vector<std::thread> connections_served_;  // touched by the acceptor only, until it is joined
};

// The HAVE of a peer that claims all `block_count` blocks of `content`.
inline pd::peer::wire::have holds_everything(const pd::content::hash &content, std::uint64_t block_count) {
    pd::peer::wire::have all{content, block_count, 0, std::vector<std::uint8_t>((block_count + 7) / 8)};
    for (std::uint64_t b = 0; b < block_count; ++b) all.bitmap[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
    return all;
}

}  // namespace pdtest
