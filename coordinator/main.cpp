// pd-coordinator: the hierarchy mode's server (docs/coordinator.md).
//   pd-coordinator init  --db PATH [--regenerate-key] [--key-out FILE] [--admin-out FILE]
//   pd-coordinator serve --db PATH --listen HOST:PORT [--heartbeat-ms N] [--bucket-bytes N] [--allow-unidentified-devices]
//                        [--agent-versions MIN[-MAX]] [--retire-absent DURATION] [--wave-width N] [--trust-address-claims]
//   pd-coordinator admin-key add|revoke|list --db PATH [--name NAME] [--role admin|viewer] [--out FILE]
//   pd-coordinator admin --connect HOST:PORT --credential FILE [--json] OP [ARGS]
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
#include <cctype>
#include <chrono>
#include <cstdio>
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
    static const char *flags[] = {"--regenerate-key", "--trust-address-claims", "--allow-unidentified-devices"};
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

// The coordinator's Ed25519 key pair, from the seed in its database; created when missing
// (a database from 0.4.x, before administrators had keys).
struct signing_key {
    std::array<std::uint8_t, 32> public_key{};
    std::array<std::uint8_t, 64> secret_key{};
};

signing_key coordinator_signing_key(pd::coord::coordinator_store &store) {
    auto seed_hex = store.meta("signing_key");
    std::array<std::uint8_t, 32> seed{};
    if (seed_hex) {
        auto seed_key = pd::parse_fleet_key(*seed_hex);
        if (!seed_key) throw std::runtime_error("the database's signing key is damaged");
        seed = *seed_key;
    } else {
        randombytes_buf(seed.data(), seed.size());
        store.set_meta("signing_key", pd::to_hex(seed.data(), seed.size()));
    }
    signing_key k;
    crypto_sign_seed_keypair(k.public_key.data(), k.secret_key.data(), seed.data());
    sodium_memzero(seed.data(), seed.size());
    return k;
}

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Adds an administrator with a new key pair and writes its credential (owner-only) to `out`.
void add_admin(pd::coord::coordinator_store &store, const std::string &name, const std::string &role, const std::string &out) {
    if (name.empty() || name.size() > 64 || name.find_first_of(" \t\r\n'\"") != std::string::npos)
        throw std::runtime_error("an administrator's name is 1-64 characters without spaces or quotes");
    if (!pd::coord::parse_role(role)) throw std::runtime_error("a role is 'admin' or 'viewer'");
    pd::admin_credential c;
    randombytes_buf(c.admin_seed.data(), c.admin_seed.size());
    c.coordinator_key = coordinator_signing_key(store).public_key;
    std::array<std::uint8_t, 32> public_key{};
    std::array<std::uint8_t, 64> secret_key{};
    crypto_sign_seed_keypair(public_key.data(), secret_key.data(), c.admin_seed.data());
    sodium_memzero(secret_key.data(), secret_key.size());
    auto server_id = store.meta("server_id").value_or("?");
    auto text = pd::format_admin_credential(c, "peerdist administrator '" + name + "' (" + role + ") of coordinator " + server_id);
    // The key is stored only once the credential is safely written: no administrator without one.
    pd::platform::write_file_atomic(out, text.data(), text.size(), pd::platform::access::owner_only);
    try {
        store.add_admin({name, pd::to_hex(public_key.data(), 32), role, now_ms(), 0});
    } catch (...) {
        std::remove(out.c_str());
        throw;
    }
    std::cout << "administrator '" << name << "' (" << role << "): credential written to " << out << "\n";
}

// pd-coordinator admin-key add|revoke|list --db PATH: run on the coordinator's host (the
// database is the root of trust); takes effect at once, also for a running `serve`.
int admin_key(const args &a) {
    auto db = a.get("--db");
    if (a.positional.empty() || db.empty())
        throw std::runtime_error("usage: pd-coordinator admin-key add|revoke|list --db PATH [--name NAME] [--role admin|viewer] [--out FILE]");
    pd::platform::require_private_file(db, "coordinator database");
    auto store = pd::coord::open_sqlite_store(db);
    const auto &what = a.positional[0];
    if (what == "add") {
        if (!a.has("--name") || !a.has("--out")) throw std::runtime_error("admin-key add needs --name NAME --out FILE [--role admin|viewer]");
        add_admin(*store, a.get("--name"), a.get("--role", "admin"), a.get("--out"));
        return 0;
    }
    if (what == "revoke") {
        if (!store->revoke_admin(a.get("--name"), now_ms()))
            throw std::runtime_error("no valid administrator named '" + a.get("--name") + "'");
        std::cout << "administrator '" << a.get("--name") << "' revoked\n";
        return 0;
    }
    if (what == "list") {
        std::cout << "name,role,public_key,added_ms,revoked_ms\n";
        for (auto &r : store->admins())
            std::cout << r.name << "," << r.role << "," << r.public_key << "," << r.added_ms << "," << r.revoked_ms << "\n";
        return 0;
    }
    throw std::runtime_error("admin-key: unknown command '" + what + "' (add, revoke, list)");
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
    auto signing = coordinator_signing_key(*store);
    std::cout << "coordinator key: " << pd::to_hex(signing.public_key.data(), 32) << "\n";
    sodium_memzero(signing.secret_key.data(), signing.secret_key.size());
    if (a.has("--admin-out")) {
        add_admin(*store, "admin", "admin", a.get("--admin-out"));
    } else if (!existing) {
        std::cout << "no administrator yet: pd-coordinator admin-key add --db " << db << " --name NAME --out FILE\n";
    }
    return 0;
}

// "30d", "12h", "90m", "45s" or "0" (never), in milliseconds.
std::int64_t duration_ms(const std::string &text, const std::string &option) {
    std::size_t digits = 0;
    while (digits < text.size() && digits < 9 && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    static const std::map<std::string, std::int64_t> units = {{"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    auto unit = units.find(text.substr(digits));
    if (text == "0") return 0;
    if (digits == 0 || unit == units.end())
        throw std::runtime_error(option + " '" + text + "' must be a number with a unit: 45s, 90m, 12h or 30d (0: never)");
    return std::stoll(text.substr(0, digits)) * unit->second;
}

int serve(const args &a) {
    auto db = a.get("--db"), listen = a.get("--listen");
    if (db.empty() || listen.empty()) throw std::runtime_error("serve needs --db PATH --listen HOST:PORT");
    // The database holds the fleet key.
    pd::platform::require_private_file(db, "coordinator database");
    auto store = pd::coord::open_sqlite_store(db);
    auto server_id = store->meta("server_id");
    auto key = store->meta("fleet_key");
    if (!server_id || !key) throw std::runtime_error("'" + db + "' is not initialised: run pd-coordinator init first");
    pd::coord::server_options o;
    o.server_id = *server_id;
    o.fleet_key = parse_key(*key);
    o.signing_key = coordinator_signing_key(*store).secret_key;
    o.heartbeat_ms = std::stoll(a.get("--heartbeat-ms", "5000"));
    if (a.has("--trust-address-claims")) {
        // For a load generator posing as many devices from this host: any fleet member could
        // otherwise place itself in any office and point peers anywhere.
        if (listen.rfind("127.", 0) != 0 && listen.rfind("[::1]:", 0) != 0)
            throw std::runtime_error("--trust-address-claims is for load tests on this host: --listen must be a loopback address");
        o.trust_claimed_addresses = true;
    }
    if (a.has("--agent-versions")) o.agent_versions = pd::coord::version_range::parse(a.get("--agent-versions"));
    if (a.has("--wave-width")) o.wave_width = std::stoul(a.get("--wave-width"));
    if (a.has("--retire-absent")) o.retire_absent_ms = duration_ms(a.get("--retire-absent"), "--retire-absent");
    // Only while a 0.4 fleet upgrades: its agents cannot prove a device key yet.
    o.require_device_identity = !a.has("--allow-unidentified-devices");
    pd::coord::election_policy policy;
    policy.bucket_bytes = std::stoull(a.get("--bucket-bytes", std::to_string(1ull << 30)));
    pd::coord::registry reg(*store, policy, 3 * o.heartbeat_ms);
    reg.load(now_ms());
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

// pd-coordinator admin --connect HOST:PORT --credential FILE [--json] OP [ARGS]: the same
// operation table as `pd admin`, through the C ABI (pd_admin_run).
int admin(int argc, char **argv) {
    std::string address, credential;
    std::uint32_t flags = 0;
    int i = 2;
    for (; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "--json") {
            flags |= PD_ADMIN_JSON;
        } else if (s == "--connect" || s == "--credential") {
            if (i + 1 >= argc) throw std::runtime_error(s + " needs a value");
            (s == "--connect" ? address : credential) = argv[++i];
        } else if (s == "--key-file") {
            throw std::runtime_error("the fleet key does not authorise admin operations: use --credential FILE "
                                     "(pd-coordinator init --admin-out, or admin-key add)");
        } else {
            break;
        }
    }
    if (i >= argc || address.empty() || credential.empty()) {
        std::cerr << "usage: pd-coordinator admin --connect HOST:PORT --credential FILE [--json] OP [ARGS]\n";
        for (std::size_t n = 0; auto *op = pd_admin_operation_at(n); ++n)
            std::cerr << "  " << op->name << " " << op->arguments << "\n      " << op->summary << "\n";
        return 2;
    }
    pd_admin *handle = nullptr;
    auto check = [](int rc) {
        if (rc != PD_OK) throw std::runtime_error(pd_error_last()->message);
    };
    pd_admin_credential cred;
    check(pd_admin_credential_read_file(&cred, credential.c_str()));
    check(pd_admin_connect(&handle, address.c_str(), &cred, 10000));
    sodium_memzero(&cred, sizeof cred);
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
        std::cerr << "usage: pd-coordinator init|serve|admin-key|admin ... (see docs/coordinator.md)\n";
        return 2;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "admin") return admin(argc, argv);
        auto a = parse(argc, argv, 2);
        if (cmd == "init") return init(a);
        if (cmd == "serve") return serve(a);
        if (cmd == "admin-key") return admin_key(a);
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
