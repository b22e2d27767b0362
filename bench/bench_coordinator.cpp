// Coordinator scale benchmark (issue 6): a real `pd-coordinator serve` process, a topology of
// OFFICES offices, then DEVICES simulated devices registered over the secure channel by
// CLIENTS concurrent connections, one heartbeat each, and one source lookup each. Reports
// registrations and heartbeats per second, lookup latency p50/p99 as the client sees it
// (request to reply, loopback), and the server's resident memory (VmRSS, VmHWM).
// With CONTENTS, the catalogue holds that many 64 MiB contents (their manifests: 32 KiB
// each), every one pre-staged into every office, while the devices heartbeat (each office's
// RVP is then told what to fetch) and ask for contents by id.
// With PD_BENCH_CONSOLE_POLL_MS=N the server also serves its console, and the heartbeat and
// lookup phases run again while a client polls the console as a browser does — every N ms
// the data of one page, going through the four pages in turn, plus /metrics every 15 s as a
// Prometheus scraper would — then alone once more; the polled figures are reported as ratios
// to that last run (the first heartbeats after the registrations run slower: SQLite's
// checkpoints).
// usage: pd_bench_coordinator PD_COORDINATOR [DEVICES] [OFFICES] [CLIENTS] [CONTENTS]
#include "content/manifest.h"
#include "coordinator_client/protocol.h"
#include "util/hex.h"
#include "util/error.h"
#include "util/key_file.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using pd::coord::json;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_text(const std::string &path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::uint64_t status_kib(pid_t pid, const char *field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::strlen(field)));
    return 0;
}

// One HTTP/1.1 exchange on loopback (Connection: close): the whole response.
std::string http(int port, const std::string &request) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        char buf[65536];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

// The console's pages polling, in a thread: logs in, then asks for each page's data every
// `poll_ms` until stopped; keeps how long each answer took.
class console_poller {
public:
    console_poller(int port, int poll_ms, const std::string &password) : port_(port), poll_ms_(poll_ms) {
        std::string body = json{{"name", "admin"}, {"password", password}}.dump();
        auto reply = http(port_, "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\nOrigin: http://127.0.0.1:" + std::to_string(port_) +
                                     "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\n\r\n" + body);
        auto at = reply.find("pd_console=");
        if (at == std::string::npos) throw std::runtime_error("console login failed: " + reply.substr(0, 200));
        cookie_ = reply.substr(at, reply.find(';', at) - at);
        thread_ = std::thread([this] { run(); });
    }
    ~console_poller() { stop(); }
    void stop() {
        stopping_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::vector<double> latencies_ms;  // after stop()
    std::map<std::string, std::vector<double>> by_path_ms;
    std::uint64_t bytes = 0, polls = 0;

private:
    void run() {
        // What each page asks for on every refresh (console.js).
        const std::vector<std::vector<const char *>> pages = {
            {"/api/v1/health", "/api/v1/groups/list", "/api/v1/contents"}, {"/api/v1/offices"}, {"/api/v1/rollouts"},
            {"/api/v1/prestage/status"}};
        auto next_scrape = clock_type::now();
        for (std::size_t page = 0; !stopping_; page = (page + 1) % pages.size()) {
            auto next = clock_type::now() + std::chrono::milliseconds(poll_ms_);
            auto paths = pages[page];
            if (clock_type::now() >= next_scrape) {
                paths.push_back("/metrics");
                next_scrape = clock_type::now() + std::chrono::seconds(15);
            }
            for (auto path : paths) {
                auto t = clock_type::now();
                auto reply = http(port_, std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\nCookie: " + cookie_ +
                                             "\r\nConnection: close\r\n\r\n");
                latencies_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t).count());
                by_path_ms[path].push_back(latencies_ms.back());
                if (reply.rfind("HTTP/1.1 200", 0) != 0) std::fprintf(stderr, "console %s: %s\n", path, reply.substr(0, 120).c_str());
                bytes += reply.size();
            }
            ++polls;
            std::this_thread::sleep_until(next);
        }
    }
    int port_, poll_ms_;
    std::string cookie_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

std::string office_net(int i) { return "10." + std::to_string(i / 256) + "." + std::to_string(i % 256); }

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: pd_bench_coordinator PD_COORDINATOR [DEVICES] [OFFICES] [CLIENTS] [CONTENTS]\n");
        return 2;
    }
    if (sodium_init() < 0) return 1;
    std::string bin = argv[1];
    int devices = argc > 2 ? std::atoi(argv[2]) : 100000;
    int offices = argc > 3 ? std::atoi(argv[3]) : 1000;
    int clients = argc > 4 ? std::atoi(argv[4]) : 8;
    int contents = argc > 5 ? std::atoi(argv[5]) : 0;
    char dir_template[] = "/var/tmp/pd-coord-bench.XXXXXX";
    std::string dir = ::mkdtemp(dir_template);
    std::string db = dir + "/c.db", keyfile = dir + "/key", credential = dir + "/admin.cred", log = dir + "/log";
    if (std::system((bin + " init --db " + db + " --key-out " + keyfile + " --admin-out " + credential + " >/dev/null").c_str()) != 0)
        return 1;
    std::string port = std::to_string(20000 + (::getpid() % 20000));
    std::string address = "127.0.0.1:" + port;
    const char *poll_env = std::getenv("PD_BENCH_CONSOLE_POLL_MS");
    int poll_ms = poll_env ? std::atoi(poll_env) : 0;
    int console_port = std::stoi(port) + 1;
    std::string password = "bench console password";
    if (poll_ms > 0 &&
        std::system(("echo '" + password + "' | " + bin + " admin-key password --db " + db + " --name admin >/dev/null").c_str()) != 0)
        return 1;
    pid_t server = ::fork();
    if (server == 0) {
        std::freopen(log.c_str(), "w", stdout);
        std::freopen(log.c_str(), "a", stderr);
        // The simulated devices claim addresses in their offices from one loopback host, many
        // over one connection (so without device keys: 100,000 handshakes would measure those).
        std::vector<std::string> args = {bin, "serve", "--db", db, "--listen", address, "--heartbeat-ms", "60000",
                                         "--trust-address-claims", "--allow-unidentified-devices"};
        if (poll_ms > 0)
            args.insert(args.end(), {"--console", "127.0.0.1:" + std::to_string(console_port), "--console-http"});
        std::vector<char *> argv_exec;
        for (auto &a : args) argv_exec.push_back(a.data());
        argv_exec.push_back(nullptr);
        ::execv(bin.c_str(), argv_exec.data());
        _exit(127);
    }
    while (read_text(log).find("listening") == std::string::npos) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::uint64_t rss_idle = status_kib(server, "VmRSS:");
    auto fleet_key = pd::read_fleet_key(keyfile);
    const std::uint8_t *key = fleet_key.data();

    std::string csv = "name,parent,type,ranges\nCentral Office,,Default," + office_net(0) + ".0/24\n";
    for (int i = 1; i < offices; ++i)
        csv += "Office " + std::to_string(i) + ",Central Office,Default," + office_net(i) + ".0/24\n";
    {
        pd::coord::coordinator_client admin(address, pd::read_admin_credential(credential), 30000);
        auto r = admin.call({{"op", "admin.topology.import"}, {"csv", csv}});
        if (!r.value("ok", false)) {
            std::fprintf(stderr, "topology import failed: %s\n", r.dump().c_str());
            return 1;
        }
    }
    auto device_json = [&](int d) {
        int office = d % offices, host = d / offices;
        std::string ip = office_net(office) + "." + std::to_string(10 + host % 240);
        char id[33];
        std::snprintf(id, sizeof id, "%032x", d);
        return json{{"op", "register"}, {"device_id", id}, {"name", "host-" + std::to_string(d)},
                    {"address", ip}, {"listen", ip + ":34760"}, {"version", "0.1.0"},
                    {"facts", {{"free_bytes", 1000000000ull + static_cast<std::uint64_t>(d) * 7919 % 100000000000ull},
                               {"usable_free_bytes", 500000000ull}, {"chassis", 1 + d % 2}, {"os_type", 1},
                               {"uptime_seconds", d % 86400}}}};
    };
    // Runs `make(d)` for every device over `clients` connections; returns seconds and the
    // latency of each request in microseconds.
    auto phase = [&](auto make) {
        std::vector<std::vector<double>> lat(static_cast<std::size_t>(clients));
        std::atomic<int> next{0};
        auto t0 = clock_type::now();
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c)
            threads.emplace_back([&, c] {
                pd::coord::coordinator_client client(address, key, 30000);
                for (int d; (d = next++) < devices;) {
                    auto t = clock_type::now();
                    auto reply = client.call(make(d));
                    lat[static_cast<std::size_t>(c)].push_back(
                        std::chrono::duration<double, std::micro>(clock_type::now() - t).count());
                    if (!reply.value("ok", false)) std::fprintf(stderr, "refused: %s\n", reply.dump().c_str());
                }
            });
        for (auto &t : threads) t.join();
        double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        std::vector<double> all;
        for (auto &l : lat) all.insert(all.end(), l.begin(), l.end());
        std::sort(all.begin(), all.end());
        return std::make_pair(secs, all);
    };
    auto pct = [](const std::vector<double> &v, double p) {
        return v.empty() ? 0.0 : v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
    };
    auto mib = [](std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; };

    auto reg = phase(device_json);
    std::uint64_t rss_registered = status_kib(server, "VmRSS:");

    // The catalogue and pre-staging state: `contents` manifests published 100 at a time, each
    // content pre-staged into every office.
    std::vector<std::string> ids;
    double publish_s = 0;
    if (contents > 0) {
        auto t0 = clock_type::now();
        pd::coord::coordinator_client admin(address, pd::read_admin_credential(credential), 60000);
        std::uint64_t size = 64ull << 20;
        for (int first = 0; first < contents; first += 100) {
            json batch = json::array();
            for (int i = first; i < std::min(contents, first + 100); ++i) {
                std::vector<pd::content::hash> blocks(size / pd::content::default_block_size);
                for (auto &h : blocks) randombytes_buf(h.data(), h.size());
                auto m = pd::content::manifest::from_block_hashes(size, std::move(blocks), "pkg-" + std::to_string(i) + ".msi");
                auto bytes = m.serialize();
                ids.push_back(pd::to_hex(m.id.data(), m.id.size()));
                batch.push_back({{"content", ids.back()}, {"name", m.name}, {"size", m.size}, {"block_count", m.block_count()},
                                 {"origins", {"https://cdn.example/" + m.name}}, {"manifest", pd::to_base64(bytes.data(), bytes.size())}});
            }
            auto r = admin.call({{"op", "admin.republish"}, {"contents", batch}});
            if (!r.value("ok", false)) return std::fprintf(stderr, "publish failed: %s\n", r.dump().substr(0, 300).c_str()), 1;
        }
        std::int64_t deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count() + 24 * 3600 * 1000ll;
        for (auto &id : ids) {
            auto r = admin.call({{"op", "admin.prestage"}, {"content", id}, {"offices", json::array()}, {"deadline_ms", deadline}});
            if (!r.value("ok", false)) return std::fprintf(stderr, "prestage failed: %s\n", r.dump().substr(0, 300).c_str()), 1;
        }
        publish_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    }
    std::uint64_t rss_catalogue = status_kib(server, "VmRSS:");
    auto heartbeat = [&](int d) {
        char id[33];
        std::snprintf(id, sizeof id, "%032x", d);
        return json{{"op", "heartbeat"}, {"device_id", id}, {"facts", {{"free_bytes", 1000000000ull}, {"uptime_seconds", 100}}}};
    };
    auto hb = phase(heartbeat);
    std::string content(64, 'c');
    auto lookup = [&](int d) {
        char id[33];
        std::snprintf(id, sizeof id, "%032x", (d * 7919) % devices);
        return json{{"op", "sources"}, {"device_id", id}, {"content", content}};
    };
    auto look = phase(lookup);
    // The same phases again while the console is polled, right after the baseline.
    std::pair<double, std::vector<double>> hb_polled, look_polled, hb_after, look_after;
    std::unique_ptr<console_poller> poller;
    if (poll_ms > 0) {
        poller = std::make_unique<console_poller>(console_port, poll_ms, password);
        hb_polled = phase(heartbeat);
        look_polled = phase(lookup);
        poller->stop();
        hb_after = phase(heartbeat);
        look_after = phase(lookup);
    }
    std::pair<double, std::vector<double>> by_id;
    if (!ids.empty()) by_id = phase([&](int d) {
        char id[33];
        std::snprintf(id, sizeof id, "%032x", d);
        return json{{"op", "content"}, {"device_id", id}, {"content", ids[static_cast<std::size_t>(d) % ids.size()]}};
    });
    std::uint64_t rss = status_kib(server, "VmRSS:"), hwm = status_kib(server, "VmHWM:");
    ::kill(server, SIGTERM);
    ::waitpid(server, nullptr, 0);
    std::printf("coordinator scale: %d devices in %d offices, %d client connections, loopback\n", devices, offices, clients);
    std::printf("  registrations  %8.0f /s  (p50 %.0f us, p99 %.0f us)\n", devices / reg.first, pct(reg.second, .5), pct(reg.second, .99));
    std::printf("  heartbeats     %8.0f /s  (p50 %.0f us, p99 %.0f us)\n", devices / hb.first, pct(hb.second, .5), pct(hb.second, .99));
    std::printf("  source lookups %8.0f /s  p50 %.0f us, p99 %.0f us (target p99 < 1000 us)\n", devices / look.first,
                pct(look.second, .5), pct(look.second, .99));
    if (!ids.empty()) {
        std::printf("  catalogue      %d contents (64 MiB each) published and pre-staged into every office in %.1f s\n", contents, publish_s);
        std::printf("  by content id  %8.0f /s  p50 %.0f us, p99 %.0f us (a 32 KiB manifest each)\n", devices / by_id.first,
                    pct(by_id.second, .5), pct(by_id.second, .99));
    }
    if (poller) {
        auto &l = poller->latencies_ms;
        std::sort(l.begin(), l.end());
        std::printf("  console polled every %d ms (one page each time, in turn; /metrics every 15 s): %llu polls, %.1f KiB per poll, "
                    "answer p50 %.2f ms, p99 %.2f ms\n",
                    poll_ms, static_cast<unsigned long long>(poller->polls),
                    poller->polls ? static_cast<double>(poller->bytes) / 1024.0 / static_cast<double>(poller->polls) : 0.0,
                    l.empty() ? 0.0 : l[l.size() / 2], l.empty() ? 0.0 : l[static_cast<std::size_t>(0.99 * static_cast<double>(l.size() - 1))]);
        for (auto &[path, v] : poller->by_path_ms) {
            std::sort(v.begin(), v.end());
            std::printf("    %-18s p50 %.2f ms\n", path.c_str(), v.empty() ? 0.0 : v[v.size() / 2]);
        }
        std::printf("  not polled     heartbeats %8.0f /s, p99 %.0f us; lookups %8.0f /s, p99 %.0f us (the baseline)\n",
                    devices / hb_after.first, pct(hb_after.second, .99), devices / look_after.first, pct(look_after.second, .99));
        std::printf("  while polled   heartbeats %8.0f /s (ratio %.2f), p99 %.0f us (ratio %.2f); lookups %8.0f /s (ratio %.2f), "
                    "p99 %.0f us (ratio %.2f)\n",
                    devices / hb_polled.first, hb_after.first / hb_polled.first, pct(hb_polled.second, .99),
                    pct(hb_polled.second, .99) / pct(hb_after.second, .99), devices / look_polled.first,
                    look_after.first / look_polled.first, pct(look_polled.second, .99),
                    pct(look_polled.second, .99) / pct(look_after.second, .99));
    }
    std::printf("  server memory  idle %.1f MiB, after registrations %.1f MiB, with the catalogue %.1f MiB, end %.1f MiB, "
                "peak %.1f MiB (target < 1024 MiB)\n",
                mib(rss_idle), mib(rss_registered), mib(rss_catalogue), mib(rss), mib(hwm));
    std::system(("rm -rf " + dir).c_str());
    return 0;
}
