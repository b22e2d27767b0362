// A rogue peer for the fleet lab: against a real agent's peer port it sends garbage, an
// oversized record, a truncated record and a malformed message, each on its own
// connection, and checks that the agent answers every one with a disconnect.
// usage: pd_test_rogue IP:PORT FLEET_KEY_FILE  (exit 0 when every case was disconnected)
#include "coordinator_client/protocol.h"
#include "net/secure_channel.h"
#include "platform/socket.h"
#include "util/error.h"
#include "util/key_file.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

// True when the server closes the connection (EOF or reset) within the socket timeout.
bool closed_by_server(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: pd_test_rogue IP:PORT FLEET_KEY_FILE\n");
        return 2;
    }
    std::string address = argv[1];
    pd::fleet_key fleet_key;
    try {
        fleet_key = pd::read_fleet_key(argv[2]);
    } catch (const pd::error &e) {
        std::fprintf(stderr, "pd_test_rogue: %s\n", e.what());
        return 2;
    }
    const std::uint8_t *key = fleet_key.data();
    struct rogue_case {
        const char *name;
        std::function<void(int fd)> act;
    };
    std::vector<rogue_case> cases = {
        {"garbage instead of a HELLO", [](int fd) {
             std::vector<std::uint8_t> junk(4096, 0xA5);
             ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
         }},
        {"a 2 GiB record length", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             std::uint8_t huge[4] = {0, 0, 0, 0x80};
             ::send(fd, huge, 4, MSG_NOSIGNAL);
         }},
        {"a truncated record, then hang-up", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             std::uint8_t prefix[4] = {0, 0x10, 0, 0};  // 4096 bytes announced, 100 sent
             ::send(fd, prefix, 4, MSG_NOSIGNAL);
             std::vector<std::uint8_t> part(100, 1);
             ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
             ::shutdown(fd, SHUT_WR);
         }},
        {"a malformed message in a valid record", [&](int fd) {
             pd::net::blocking_channel ch(fd, pd::net::role::client, key);
             ch.send(std::vector<std::uint8_t>{4, 1, 2, 3});  // a REQUEST cut short
         }},
    };
    int failures = 0;
    for (auto &c : cases) {
        try {
            int fd = pd::platform::connect_tcp(address, 5000);
            c.act(fd);
            bool closed = closed_by_server(fd);
            ::close(fd);
            std::printf("%s: %s\n", c.name, closed ? "disconnected" : "NOT disconnected");
            failures += !closed;
        } catch (const pd::error &e) {
            std::printf("%s: error %s\n", c.name, e.what());
            ++failures;
        }
    }
    return failures ? 1 : 0;
}
