// pd-coordinator: the hierarchy mode's server (docs/coordinator.md).
//   pd-coordinator init  --db PATH [--regenerate-key] [--key-out FILE]
//   pd-coordinator serve --db PATH --listen IP:PORT [--heartbeat-ms N] [--bucket-bytes N]
//   pd-coordinator admin --connect HOST:PORT --key-file FILE [--json] OP [ARGS]
#include "coordinator_client/protocol.h"
#include "coordinator/server.h"
#include "coordinator/store.h"
#include "platform/file.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <peerdist/admin.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <sys/stat.h>

namespace {

using pd::coord::json;

struct args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
    bool has(const std::string &k) const { return options.count(k) != 0; }
    std::string get(const std::string &k, const std::string &fallback = {}) const {
        auto it = options.find(k);
        return it == options.end() ? fallback : it->second;
    }
};

args parse(int argc, char **argv, int first) {
    static const char *flags[] = {"--regenerate-key"};
    args a;
    for (int i = first; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0) {
            bool flag = std::any_of(std::begin(flags), std::end(flags), [&](const char *f) { return s == f; });
            if (flag) {
                a.options[s] = "1";
            } else {
                if (i + 1 >= argc) throw std::runtime_error(s + " needs a value");
                a.options[s] = argv[++i];
            }
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

std::array<std::uint8_t, 32> parse_key(const std::string &text) {
    auto key = pd::parse_fleet_key(text);
    if (!key) throw std::runtime_error("a fleet key is 64 hex digits");
    return *key;
}

int init(const args &a) {
    auto db = a.get("--db");
    if (db.empty()) throw std::runtime_error("init needs --db PATH");
    auto store = pd::coord::open_sqlite_store(db);
    auto existing = store->meta("server_id");
    if (existing && !a.has("--regenerate-key"))
        throw std::runtime_error("'" + db + "' is already initialised (server id " + *existing +
                                 "); --regenerate-key replaces the fleet key");
    std::string server_id = existing.value_or("");
    if (server_id.empty()) {
        std::uint8_t raw[16];
        randombytes_buf(raw, sizeof raw);
        server_id = pd::to_hex(raw, sizeof raw);
        store->set_meta("server_id", server_id);
    }
    std::uint8_t key[32];
    randombytes_buf(key, sizeof key);
    std::string key_hex = pd::to_hex(key, sizeof key);
    store->set_meta("fleet_key", key_hex);
    if (a.has("--key-out")) {
        std::string line = key_hex + "\n";  // created 0600 (temporary + rename): never readable by others
        pd::platform::write_file_atomic(a.get("--key-out"), line.data(), line.size(), pd::platform::access::owner_only);
    }
    std::cout << "server id: " << server_id << "\n";
    std::cout << (existing ? "new " : "") << "fleet key (shown once; give it to every agent as fleet_key_file):\n"
              << key_hex << "\n";
    if (existing) std::cout << "agents holding the old key now get \"shared key mismatch\"\n";
    return 0;
}

int serve(const args &a) {
    auto db = a.get("--db"), listen = a.get("--listen");
    if (db.empty() || listen.empty()) throw std::runtime_error("serve needs --db PATH --listen IP:PORT");
    // The database holds the fleet key.
    pd::platform::require_private_file(db, "coordinator database");
    auto store = pd::coord::open_sqlite_store(db);
    auto server_id = store->meta("server_id");
    auto key = store->meta("fleet_key");
    if (!server_id || !key) throw std::runtime_error("'" + db + "' is not initialised: run pd-coordinator init first");
    pd::coord::server_options o;
    o.server_id = *server_id;
    o.fleet_key = parse_key(*key);
    o.heartbeat_ms = std::stoll(a.get("--heartbeat-ms", "5000"));
    pd::coord::election_policy policy;
    policy.bucket_bytes = std::stoull(a.get("--bucket-bytes", std::to_string(1ull << 30)));
    pd::coord::registry reg(*store, policy, 3 * o.heartbeat_ms);
    reg.load(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    boost::asio::io_context io;
    pd::coord::server srv(io, reg, *store, o);
    srv.listen(listen);
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code &, int) {
        srv.stop();
        io.stop();
    });
    std::cout << "pd-coordinator " << PD_VERSION_STRING << " server " << *server_id << " listening on "
              << srv.bound_address() << " (" << reg.device_count() << " devices, " << reg.office_count() << " offices)"
              << std::endl;
    io.run();
    return 0;
}

// pd-coordinator admin --connect HOST:PORT --key-file FILE [--json] OP [ARGS]: the same
// operation table as `pd admin`, through the C ABI (pd_admin_run).
int admin(int argc, char **argv) {
    std::string address, key_file;
    std::uint32_t flags = 0;
    int i = 2;
    for (; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "--json") {
            flags |= PD_ADMIN_JSON;
        } else if (s == "--connect" || s == "--key-file") {
            if (i + 1 >= argc) throw std::runtime_error(s + " needs a value");
            (s == "--connect" ? address : key_file) = argv[++i];
        } else {
            break;
        }
    }
    if (i >= argc || address.empty() || key_file.empty()) {
        std::cerr << "usage: pd-coordinator admin --connect HOST:PORT --key-file FILE [--json] OP [ARGS]\n";
        for (std::size_t n = 0; auto *op = pd_admin_operation_at(n); ++n)
            std::cerr << "  " << op->name << " " << op->arguments << "\n      " << op->summary << "\n";
        return 2;
    }
    auto key = pd::read_fleet_key(key_file);
    pd_admin *handle = nullptr;
    auto check = [](int rc) {
        if (rc != PD_OK) throw std::runtime_error(pd_error_last()->message);
    };
    check(pd_admin_connect(&handle, address.c_str(), key.data(), key.size(), 10000));
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> connection(handle, pd_admin_free);
    pd_buf out = PD_BUF_INIT;
    check(pd_admin_run(&out, handle, argv[i], argv + i + 1, static_cast<std::size_t>(argc - i - 1), flags));
    std::cout.write(reinterpret_cast<const char *>(out.ptr), static_cast<std::streamsize>(out.size));
    pd_buf_dispose(&out);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (sodium_init() < 0) return 1;
    // Everything the coordinator creates (its database and its journal, key files) holds or
    // guards the fleet key: the owner's alone from the moment it exists.
    ::umask(077);
    if (argc < 2) {
        std::cerr << "usage: pd-coordinator init|serve|admin ... (see docs/coordinator.md)\n";
        return 2;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "admin") return admin(argc, argv);
        auto a = parse(argc, argv, 2);
        if (cmd == "init") return init(a);
        if (cmd == "serve") return serve(a);
        std::cerr << "pd-coordinator: unknown command '" << cmd << "'\n";
        return 2;
    } catch (const pd::error &e) {
        std::cerr << "pd-coordinator: " << e.what() << "\n";
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "pd-coordinator: " << e.what() << "\n";
        return 1;
    }
}
