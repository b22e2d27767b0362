// A pd-coordinator server on loopback for tests (test_coordinator.cpp, test_catalogue.cpp):
// a real SQLite store in a temporary directory, real sockets, its own network thread.
#pragma once

#include "helpers.h"

#include "coordinator/registry.h"
#include "coordinator/server.h"
#include "coordinator/store.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <peerdist.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pdtest {

using namespace pd::coord;

inline std::string public_key_of(const pd::admin_credential &c) {
    std::array<std::uint8_t, 32> pk{};
    std::array<std::uint8_t, 64> sk{};
    crypto_sign_seed_keypair(pk.data(), sk.data(), c.admin_seed.data());
    return pd::to_hex(pk.data(), 32);
}

inline pd::admin_credential add_admin_to(coordinator_store &store, const std::array<std::uint8_t, 32> &coordinator_key,
                                  const std::string &name, const std::string &role) {
    pd::admin_credential c;
    randombytes_buf(c.admin_seed.data(), 32);
    c.coordinator_key = coordinator_key;
    store.add_admin({name, public_key_of(c), role, 1, 0, ""});
    return c;
}


// The server's audit lines, captured from its thread for a test to count (server_options.audit).
class audit_log {
public:
    std::function<void(const std::string &)> sink() {
        return [this](const std::string &line) {
            std::lock_guard lk(mu_);
            lines_.push_back(line);
        };
    }
    // Lines containing `needle`.
    std::size_t count(const std::string &needle) {
        std::lock_guard lk(mu_);
        return static_cast<std::size_t>(
            std::count_if(lines_.begin(), lines_.end(), [&](auto &l) { return l.find(needle) != std::string::npos; }));
    }
    bool has(const std::string &needle) { return count(needle) > 0; }

private:
    std::mutex mu_;
    std::vector<std::string> lines_;
};

struct running_server {
    pdtest::temp_dir dir;
    std::unique_ptr<coordinator_store> store = open_sqlite_store(dir / "c.db");
    registry reg{*store, election_policy{}, 15000};
    boost::asio::io_context io;
    std::unique_ptr<server> srv;
    std::thread thread;
    std::array<std::uint8_t, 32> key = random_key();  // the fleet key (key files refuse a guessable one)
    std::array<std::uint8_t, 32> coordinator_key{};  // its public key

    // Most tests speak for several devices over one connection, as 0.4 agents did; the
    // coordinator_trust tests turn device identities back on.
    static server_options legacy() {
        server_options o;
        o.require_device_identity = false;
        return o;
    }
    explicit running_server(server_options o = legacy()) {
        o.server_id = "s1";
        o.fleet_key = key;
        if (!o.audit) o.audit = [](const std::string &) {};  // the trust tests capture it
        std::array<std::uint8_t, 32> seed{5, 5, 5};
        crypto_sign_seed_keypair(coordinator_key.data(), o.signing_key.data(), seed.data());
        srv = std::make_unique<server>(io, reg, *store, o);
        srv->listen("127.0.0.1:0");
        thread = std::thread([this] { io.run(); });
    }
    ~running_server() {
        boost::asio::post(io, [this] { srv->stop(); });
        io.stop();
        thread.join();
    }
    // A new administrator with `role` in the store, and its credential.
    pd::admin_credential add_admin(const std::string &name, const std::string &role = "admin") {
        return add_admin_to(*store, coordinator_key, name, role);
    }
    coordinator_client admin(const std::string &role = "admin") {
        return coordinator_client(srv->bound_address(), add_admin(role + std::to_string(++admins), role), 5000);
    }
    static pd_admin_credential capi(const pd::admin_credential &c) {
        pd_admin_credential out;
        std::memcpy(out.admin_key, c.admin_seed.data(), 32);
        std::memcpy(out.coordinator_key, c.coordinator_key.data(), 32);
        return out;
    }
    int admins = 0;

    static std::array<std::uint8_t, 32> random_key() {
        std::array<std::uint8_t, 32> k;
        randombytes_buf(k.data(), k.size());
        return k;
    }
};

// The C ABI's view of a content id, as the coordinator writes it.
inline std::string hex_of(const pd_content_id *id) {
    char out[65];
    pd_content_id_to_hex(out, id);
    return out;
}

struct published {
    std::string path;
    pd_manifest *m = nullptr;
    ~published() { pd_manifest_free(m); }
    const pd_content_id *id() const { return pd_manifest_id(m); }
};

inline void publish(pd_admin *a, published &p, const std::string &dir, const std::string &name, std::size_t size, unsigned seed) {
    p.path = dir + "/" + name;
    pdtest::write_file(p.path, pdtest::random_bytes(size, seed));
    ASSERT_EQ(pd_manifest_hash_file(&p.m, p.path.c_str(), nullptr), PD_OK);
    ASSERT_EQ(pd_admin_publish(a, p.m, pdtest::file_url(p.path).c_str()), PD_OK) << pdtest::last_error();
}

inline pd_admin *connect(running_server &s) {
    pd_admin *a = nullptr;
    auto cred = running_server::capi(s.add_admin("ops" + std::to_string(++s.admins)));
    EXPECT_EQ(pd_admin_connect(&a, s.srv->bound_address().c_str(), &cred, 3000), PD_OK) << pdtest::last_error();
    return a;
}

}  // namespace pdtest
