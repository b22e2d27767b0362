// pd-coordinator: the hierarchy mode's server (docs/coordinator.md). `pd-coordinator --help`
// and `pd-coordinator COMMAND --help` list the commands and options; the command line
// follows pd's conventions (host-sample/cli.h, docs/cli.md).
#include "coordinator_client/protocol.h"
#include "coordinator/console/console.h"
#include "coordinator/server.h"
#include "coordinator/store.h"
#include "platform/file.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/key_file.h"

#include "cli.h"  // host-sample/: the command-line conventions the three programs share

#include <peerdist/admin.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unistd.h>
#include <iostream>
#include <map>
#include <sstream>
#include <sys/stat.h>

namespace {

using pd::coord::json;

// Every command's options; each command reads its own.
struct options {
    std::string db, listen, key_out, admin_out, name, role = "admin", out, connect, credential;
    std::string agent_versions, retire_absent;
    std::string console, console_cert, console_key, password_file;
    bool console_http = false, console_metrics_public = false;
    std::int64_t console_poll_ms = 2000;
    bool regenerate_key = false, trust_address_claims = false, allow_unidentified_devices = false, json = false;
    std::int64_t heartbeat_ms = 5000;
    std::uint64_t bucket_bytes = 1ull << 30;
    unsigned wave_width = 0;
};

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

// One JSON line per event on stderr, as pd-agent logs (journald keeps them under systemd);
// audit lines (administrators' operations, refused authentication) carry "audit": true.
void log_line(const char *level, const std::string &msg) {
    json line = {{"level", level}, {"msg", msg}};
    if (msg.rfind("audit: ", 0) == 0) line["audit"] = true;
    // Text from clients (names, operations) may not be UTF-8: replaced, never a failure.
    std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
}

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The console's certificate and key from the database; made (self-signed, for this host's
// name) when the database has none: `init`, or the first `serve` of an older database.
pd::coord::console::tls_identity console_identity(pd::coord::coordinator_store &store) {
    auto cert = store.meta("console_certificate"), key = store.meta("console_key");
    if (cert && key) return {*cert, *key};
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    auto made = pd::coord::console::make_self_signed(host);
    store.set_meta("console_key", made.private_key_pem);
    store.set_meta("console_certificate", made.certificate_pem);
    return made;
}

// Reads a whole small file (a PEM, a password); refuses what is not one.
std::string read_small_file(const std::string &path, const std::string &what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw pd_cli::failure(pd_cli::exit_not_found, "cannot read " + what + " '" + path + "'");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > 64 * 1024) throw pd_cli::usage_error(what + " '" + path + "' is larger than 64 KiB");
    return text;
}

// Adds an administrator with a new key pair and writes its credential (owner-only) to `out`;
// returns what to report.
json add_admin(pd::coord::coordinator_store &store, const std::string &name, const std::string &role, const std::string &out) {
    if (name.empty() || name.size() > 64 || name.find_first_of(" \t\r\n'\"") != std::string::npos)
        throw pd_cli::usage_error("an administrator's name is 1-64 characters without spaces or quotes");
    if (!pd::coord::parse_role(role)) throw pd_cli::usage_error("a role is 'admin' or 'viewer'");
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
        store.add_admin({name, pd::to_hex(public_key.data(), 32), role, now_ms(), 0, ""});
    } catch (...) {
        std::remove(out.c_str());
        throw;
    }
    return {{"name", name}, {"role", role}, {"public_key", pd::to_hex(public_key.data(), 32)}, {"credential", out}};
}

std::string admin_line(const json &a) {
    return "administrator '" + a["name"].get<std::string>() + "' (" + a["role"].get<std::string>() +
           "): credential written to " + a["credential"].get<std::string>();
}

// pd-coordinator admin-key add|revoke|list --db PATH: run on the coordinator's host (the
// database is the root of trust); takes effect at once, also for a running `serve`.
int admin_key(const std::string &what, const options &o) {
    pd::platform::require_private_file(o.db, "coordinator database");
    auto store = pd::coord::open_sqlite_store(o.db);
    if (what == "add") {
        auto added = add_admin(*store, o.name, o.role, o.out);
        std::cout << (o.json ? added.dump(2) : admin_line(added)) << "\n";
        return pd_cli::exit_ok;
    }
    if (what == "password") {
        // From a file or standard input, one line: never on the command line, where other
        // users' `ps` would see it.
        std::string password;
        if (o.password_file.empty()) std::getline(std::cin, password);
        else password = read_small_file(o.password_file, "password file");
        while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
        std::string hash;
        try {
            hash = pd::coord::console::hash_password(password);
        } catch (const pd::error &e) {
            throw pd_cli::usage_error(e.what());
        }
        sodium_memzero(password.data(), password.size());
        if (!store->set_console_password(o.name, hash))
            throw pd_cli::failure(pd_cli::exit_not_found, "no valid administrator named '" + o.name + "'");
        std::cout << (o.json ? json{{"name", o.name}, {"console_password", true}}.dump(2)
                             : "administrator '" + o.name + "' can log in to the console (their sessions were ended)")
                  << "\n";
        return pd_cli::exit_ok;
    }
    if (what == "revoke") {
        if (!store->revoke_admin(o.name, now_ms()))
            throw pd_cli::failure(pd_cli::exit_not_found, "no valid administrator named '" + o.name + "'");
        std::cout << (o.json ? json{{"name", o.name}, {"revoked", true}}.dump(2) : "administrator '" + o.name + "' revoked")
                  << "\n";
        return pd_cli::exit_ok;
    }
    json list = json::array();
    if (!o.json) std::cout << "name,role,public_key,added_ms,revoked_ms\n";
    for (auto &r : store->admins()) {
        if (o.json)
            list.push_back({{"name", r.name}, {"role", r.role}, {"public_key", r.public_key}, {"added_ms", r.added_ms},
                            {"revoked_ms", r.revoked_ms}});
        else
            std::cout << r.name << "," << r.role << "," << r.public_key << "," << r.added_ms << "," << r.revoked_ms << "\n";
    }
    if (o.json) std::cout << list.dump(2) << "\n";
    return pd_cli::exit_ok;
}

int init(const options &o) {
    auto store = pd::coord::open_sqlite_store(o.db);
    auto existing = store->meta("server_id");
    if (existing && !o.regenerate_key)
        throw pd_cli::failure(pd_cli::exit_failed, "'" + o.db + "' is already initialised (server id " + *existing +
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
    if (!o.key_out.empty()) {
        std::string line = key_hex + "\n";  // created 0600 (temporary + rename): never readable by others
        pd::platform::write_file_atomic(o.key_out, line.data(), line.size(), pd::platform::access::owner_only);
    }
    auto signing = coordinator_signing_key(*store);
    std::string coordinator_key = pd::to_hex(signing.public_key.data(), 32);
    auto console_pin = pd::coord::console::public_key_pin(console_identity(*store).certificate_pem);
    sodium_memzero(signing.secret_key.data(), signing.secret_key.size());
    json admin = o.admin_out.empty() ? json(nullptr) : add_admin(*store, "admin", "admin", o.admin_out);
    if (o.json) {
        std::cout << json{{"server_id", server_id}, {"fleet_key", key_hex}, {"regenerated", existing.has_value()},
                          {"coordinator_key", coordinator_key}, {"console_certificate_pin", console_pin},
                          {"administrator", admin}}.dump(2)
                  << "\n";
        return pd_cli::exit_ok;
    }
    std::cout << "server id: " << server_id << "\n";
    std::cout << (existing ? "new " : "") << "fleet key (shown once; give it to every agent as fleet_key_file):\n"
              << key_hex << "\n";
    if (existing) std::cout << "agents holding the old key now get \"shared key mismatch\"\n";
    std::cout << "coordinator key: " << coordinator_key << "\n";
    std::cout << "console certificate (self-signed) public key sha256: " << console_pin << "\n";
    if (!admin.is_null()) std::cout << admin_line(admin) << "\n";
    else if (!existing) std::cout << "no administrator yet: pd-coordinator admin-key add --db " << o.db << " --name NAME --out FILE\n";
    return pd_cli::exit_ok;
}

// "30d", "12h", "90m", "45s" or "0" (never), in milliseconds.
std::int64_t duration_ms(const std::string &text, const std::string &option) {
    std::size_t digits = 0;
    while (digits < text.size() && digits < 9 && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    static const std::map<std::string, std::int64_t> units = {{"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    auto unit = units.find(text.substr(digits));
    if (text == "0") return 0;
    if (digits == 0 || unit == units.end())
        throw pd_cli::usage_error(option + " '" + text + "' must be a number with a unit: 45s, 90m, 12h or 30d (0: never)");
    return std::stoll(text.substr(0, digits)) * unit->second;
}

int serve(const options &a) {
    // The database holds the fleet key.
    pd::platform::require_private_file(a.db, "coordinator database");
    auto store = pd::coord::open_sqlite_store(a.db);
    auto server_id = store->meta("server_id");
    auto key = store->meta("fleet_key");
    if (!server_id || !key)
        throw pd_cli::failure(pd_cli::exit_failed, "'" + a.db + "' is not initialised: run pd-coordinator init first");
    pd::coord::server_options o;
    o.server_id = *server_id;
    o.fleet_key = parse_key(*key);
    o.signing_key = coordinator_signing_key(*store).secret_key;
    o.heartbeat_ms = a.heartbeat_ms;
    if (a.trust_address_claims) {
        // For a load generator posing as many devices from this host: any fleet member could
        // otherwise place itself in any office and point peers anywhere.
        if (a.listen.rfind("127.", 0) != 0 && a.listen.rfind("[::1]:", 0) != 0)
            throw pd_cli::usage_error("--trust-address-claims is for load tests on this host: --listen must be a loopback address");
        o.trust_claimed_addresses = true;
    }
    if (!a.agent_versions.empty()) {
        try {
            o.agent_versions = pd::coord::version_range::parse(a.agent_versions);
        } catch (const std::exception &e) {
            throw pd_cli::usage_error(std::string("--agent-versions: ") + e.what());
        }
    }
    if (a.wave_width) o.wave_width = a.wave_width;
    if (!a.retire_absent.empty()) o.retire_absent_ms = duration_ms(a.retire_absent, "--retire-absent");
    // Only while a 0.4 fleet upgrades: its agents cannot prove a device key yet.
    o.require_device_identity = !a.allow_unidentified_devices;
    o.audit = [](const std::string &line) { log_line("info", line); };
    pd::coord::election_policy policy;
    policy.bucket_bytes = a.bucket_bytes;
    pd::coord::registry reg(*store, policy, 3 * o.heartbeat_ms);
    reg.load(now_ms());
    boost::asio::io_context io;
    pd::coord::server srv(io, reg, *store, o);
    srv.listen(a.listen);
    std::unique_ptr<pd::coord::console::web_console> console;
    if (!a.console.empty()) {
        pd::coord::console::console_options c;
        c.listen = a.console;
        if (!a.console_http) {
            c.tls = a.console_cert.empty() ? console_identity(*store)
                                           : pd::coord::console::tls_identity{read_small_file(a.console_cert, "--console-cert"),
                                                                              read_small_file(a.console_key, "--console-key")};
        }
        c.metrics_public = a.console_metrics_public;
        c.poll_ms = a.console_poll_ms;
        c.audit = [](const std::string &line) { log_line("info", line); };
        try {
            console = std::make_unique<pd::coord::console::web_console>(io, srv, *store, c);
            console->listen();
        } catch (const pd::error &e) {
            throw pd_cli::failure(e.code() == PD_E_INVALID ? pd_cli::exit_usage : pd_cli::exit_failed, e.what());
        }
        log_line("info", "console at " + console->url() +
                             (c.tls ? " (certificate public key sha256 " + pd::coord::console::public_key_pin(c.tls->certificate_pem) + ")" : ""));
    }
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code &, int signal) {
        log_line("info", "stopping (signal " + std::to_string(signal) + ")");
        if (console) console->stop();
        srv.stop();
        io.stop();
    });
    log_line("info", "pd-coordinator " + std::string(PD_VERSION_STRING) + " server " + *server_id + " listening on " +
                         srv.bound_address() + " (" + std::to_string(reg.device_count()) + " devices, " +
                         std::to_string(reg.office_count()) + " offices)");
    io.run();
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (sodium_init() < 0) return pd_cli::exit_failed;
    // Everything the coordinator creates (its database and its journal, key files) holds or
    // guards the fleet key: the owner's alone from the moment it exists.
    ::umask(077);
    options o;
    CLI::App app{"pd-coordinator: the hierarchy mode's server: offices, elected branch caches, the catalogue "
                 "(docs/coordinator.md).", "pd-coordinator"};
    app.set_version_flag("--version", std::string("pd-coordinator ") + PD_VERSION_STRING);
    // A TOML (or INI) file of options, a section per command: [serve] db = "...", listen = "...".
    app.set_config("--config", "", "Read options from this file, a [section] per command (packaging/coordinator.toml)");
    app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error, not ignored
    app.require_subcommand(1);
    app.fallthrough();
    app.footer("Exit status: 0 ok, 1 failed, 2 usage, 3 not found, 4 refused, 5 unreachable (docs/cli.md).");
    auto db_option = [&](CLI::App *c) { c->add_option("--db", o.db, "The coordinator's SQLite database")->required(); };

    auto *init_cmd = app.add_subcommand("init", "Create the database: server id, fleet key (shown once), coordinator key");
    db_option(init_cmd);
    init_cmd->add_flag("--regenerate-key", o.regenerate_key, "Replace the fleet key of an initialised database");
    init_cmd->add_option("--key-out", o.key_out, "Also write the fleet key to this file (0600)");
    init_cmd->add_option("--admin-out", o.admin_out, "Create the administrator 'admin' and write its credential here");
    init_cmd->add_flag("--json", o.json, "Print the keys and ids as JSON");

    auto *serve_cmd = app.add_subcommand("serve", "Serve agents and administrators");
    db_option(serve_cmd);
    serve_cmd->add_option("--listen", o.listen, "HOST:PORT to listen on")->required();
    serve_cmd->add_option("--heartbeat-ms", o.heartbeat_ms, "How often agents report (ms)")
        ->check(pd_cli::whole_number)
        ->check(CLI::Range(std::int64_t{100}, std::int64_t{3600000}))->capture_default_str();
    serve_cmd->add_option("--bucket-bytes", o.bucket_bytes, "Election bucket: free space counts in steps of this many bytes")
        ->check(pd_cli::whole_number)
        ->check(CLI::Range(std::uint64_t{1} << 20, std::uint64_t{1} << 50))->capture_default_str();
    serve_cmd->add_option("--agent-versions", o.agent_versions, "Agent versions allowed, MIN[-MAX] (e.g. 0.4-0.9)");
    serve_cmd->add_option("--retire-absent", o.retire_absent, "Forget devices silent this long: 45s, 90m, 12h, 30d (0: never)")
        ->check([](const std::string &text) {
            try {
                duration_ms(text, "--retire-absent");
                return std::string();
            } catch (const std::exception &e) {
                return std::string(e.what());
            }
        });
    serve_cmd->add_option("--wave-width", o.wave_width, "Devices per deadline wave")
        ->check(pd_cli::whole_number)
        ->check(CLI::Range(1u, 1000000u));
    serve_cmd->add_flag("--allow-unidentified-devices", o.allow_unidentified_devices,
                        "Accept agents without a device key (only while a 0.4 fleet upgrades)");
    serve_cmd->add_option("--console", o.console, "HOST:PORT for the web console (HTTPS; docs/console.md)");
    serve_cmd->add_flag("--console-http", o.console_http, "Serve the console as plain HTTP (loopback addresses only)");
    auto *cert_opt = serve_cmd->add_option("--console-cert", o.console_cert, "PEM certificate (chain) for the console, instead of the self-signed one");
    auto *key_opt = serve_cmd->add_option("--console-key", o.console_key, "PEM private key of --console-cert");
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    serve_cmd->add_flag("--console-metrics-public", o.console_metrics_public, "Serve /metrics to any address without a login");
    serve_cmd->add_option("--console-poll-ms", o.console_poll_ms, "How often the console's pages refresh (ms)")
        ->check(pd_cli::whole_number)
        ->check(CLI::Range(std::int64_t{500}, std::int64_t{60000}))->capture_default_str();
    serve_cmd->add_flag("--trust-address-claims", o.trust_address_claims, "Load tests on loopback only: trust claimed addresses");

    auto *keys_cmd = app.add_subcommand("admin-key", "Add, revoke or list administrators (on the coordinator's host)");
    keys_cmd->require_subcommand(1);
    db_option(keys_cmd);
    auto *add_cmd = keys_cmd->add_subcommand("add", "A new administrator; its credential to --out");
    add_cmd->add_option("--name", o.name, "Its name")->required();
    add_cmd->add_option("--role", o.role, "admin (changes) or viewer (sees)")->check(CLI::IsMember({"admin", "viewer"}))
        ->capture_default_str();
    add_cmd->add_option("--out", o.out, "File for the credential (0600)")->required();
    add_cmd->add_flag("--json", o.json, "As JSON");
    auto *revoke_cmd = keys_cmd->add_subcommand("revoke", "Revoke an administrator at once");
    revoke_cmd->add_option("--name", o.name, "Its name")->required();
    revoke_cmd->add_flag("--json", o.json, "As JSON");
    auto *password_cmd = keys_cmd->add_subcommand("password", "Set an administrator's console password (standard input, one line)");
    password_cmd->add_option("--name", o.name, "Its name")->required();
    password_cmd->add_option("--password-file", o.password_file, "Read it from this file instead");
    password_cmd->add_flag("--json", o.json, "As JSON");
    auto *list_cmd = keys_cmd->add_subcommand("list", "Administrators, as CSV (or --json)");
    list_cmd->add_flag("--json", o.json, "As JSON");

    auto *admin_cmd = app.add_subcommand("admin", "Run an admin operation against a coordinator");
    admin_cmd->add_option("--connect", o.connect, "HOST:PORT of the coordinator")->required();
    admin_cmd->add_option("--credential", o.credential, "Administrator credential file")->required();
    admin_cmd->add_flag("--json", o.json, "Print the result as JSON");
    // The fleet key used to be accepted here; say what replaced it (hidden from --help).
    admin_cmd->add_option_function<std::string>("--key-file", [](const std::string &) {
           throw pd_cli::usage_error("the fleet key does not authorise admin operations: use --credential FILE "
                                     "(pd-coordinator init --admin-out, or pd-coordinator admin-key add)");
       })->group("");
    // Everything from OP on is the operation's own (its options too): pd_admin_run parses it.
    admin_cmd->prefix_command()->fallthrough(false);
    admin_cmd->footer("pd-coordinator admin --connect HOST:PORT --credential FILE [--json] OP [ARGS...]\n" +
                      pd_cli::admin_operations());

    return pd_cli::run(app, argc, argv, [&]() -> int {
        try {
            if (init_cmd->parsed()) return init(o);
            if (serve_cmd->parsed()) return serve(o);
            // The same operation table as `pd admin`, through the C ABI (pd_admin_run).
            if (admin_cmd->parsed())
                return pd_cli::run_admin(o.connect, o.credential, admin_cmd->remaining(), o.json,
                                         "pd-coordinator admin --help");
            return admin_key(keys_cmd->get_subcommands().front()->get_name(), o);
        } catch (const pd::error &e) {
            throw pd_cli::failure(pd_cli::exit_for(e.code()), e.what());
        }
    });
}
