// pd: the peerdist command line, written only against the public C ABI (peerdist.h).
//
//   pd publisher-key --out FILE
//   pd publish FILE [--name N] [--origin LOC] [--manifest OUT] [--sign KEYFILE] [--cache DIR] [--add-to-cache]
//   pd get MANIFEST [--origin LOC]... [--dest PATH [--copy]] [--publication FILE] [--publisher-key HEX]... [--allow-unsigned]
//          [--cache DIR] [--plugins DIR]   (origins in order of preference)
//   pd get --content ID --coordinator HOST:PORT --fleet-key FILE [--dest PATH] [--publisher-key HEX]... [...]
//          (the manifest, record and origins from the coordinator's catalogue)
//   pd cache ls|rm ID|pin ID|unpin ID [--cache DIR]
//   pd content-info FILE --version 1|2 --server-passphrase HEX
//   pd version
//   pd --agent SOCKET status [--once] | get MANIFEST [--origin LOC]... [--dest PATH] | cancel|pause|resume JOB
//                     | cache [ls|rm ID] | facts | call JSON   (talks to a running pd-agent)
#include "agent_link.h"

#include <peerdist.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
    bool has(const std::string &k) const { return options.count(k) != 0; }
    std::string get(const std::string &k, const std::string &def = "") const {
        auto it = options.find(k);
        return it == options.end() ? def : it->second;
    }
};

const char *flag_options[] = {"--add-to-cache", "--quiet", "--once", "--allow-unsigned", "--copy"};

args parse(int argc, char **argv, int first) {
    args a;
    for (int i = first; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0) {
            bool flag = false;
            for (auto f : flag_options) flag |= s == f;
            if (flag) a.options[s] = "1";
            else if (i + 1 < argc && s == "--origin" && a.has(s)) a.options[s] += std::string("\n") + argv[++i];
            else if (i + 1 < argc && s == "--publisher-key" && a.has(s)) a.options[s] += std::string(",") + argv[++i];
            else if (i + 1 < argc) a.options[s] = argv[++i];
            else {
                std::fprintf(stderr, "pd: option %s needs a value\n", s.c_str());
                std::exit(2);
            }
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

int die(const char *what) {
    const pd_error *e = pd_error_last();
    std::fprintf(stderr, "pd: %s: %s (%s)\n", what, e->message, pd_strerror(e->code));
    return 1;
}

std::string default_cache() {
    if (const char *c = std::getenv("PEERDIST_CACHE")) return c;
    if (const char *h = std::getenv("HOME")) return std::string(h) + "/.cache/peerdist";
    return ".peerdist-cache";
}

std::string plugin_dir(const args &a) {
    if (a.has("--plugins")) return a.get("--plugins");
    if (const char *p = std::getenv("PEERDIST_PLUGIN_DIR")) return p;
    return pd_plugin_dir_default();
}

struct session_guard {
    pd_session *s = nullptr;
    ~session_guard() { pd_session_free(s); }
};

int open_session(session_guard &g, const args &a) {
    std::string cache = a.get("--cache", default_cache());
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = cache.c_str();
    return pd_session_new(&g.s, &o);
}

std::string human(double bytes) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
    return buf;
}

std::string hex_id(const pd_content_id *id) {
    char h[65];
    pd_content_id_to_hex(h, id);
    return h;
}

// pd publisher-key --out FILE: a new publisher key pair; the secret part to FILE (0600),
// the public key printed (agents trust it: trust.publisher_keys).
int cmd_publisher_key(const args &a) {
    if (!a.has("--out")) {
        std::fprintf(stderr, "usage: pd publisher-key --out FILE\n");
        return 2;
    }
    uint8_t pub[32];
    if (pd_publisher_key_create_file(pub, a.get("--out").c_str()) != PD_OK) return die("creating the publisher key");
    pd_content_id as_hex;
    std::memcpy(as_hex.bytes, pub, 32);
    std::printf("%s\n", hex_id(&as_hex).c_str());
    std::fprintf(stderr, "publisher key written to %s (keep it offline); give agents the public key above as trust.publisher_keys\n",
                 a.get("--out").c_str());
    return 0;
}

// Writes the publication record for `m` beside the manifest (OUT.sig), signed with `sec`
// (wiped after).
int sign_publication(const pd_manifest *m, const std::string &manifest_path, uint8_t sec[64], const std::string &origin) {
    pd_buf record = PD_BUF_INIT;
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    int rc = pd_publication_sign(&record, m, origin.c_str(), static_cast<int64_t>(now_ms), sec);
    std::memset(sec, 0, 64);
    if (rc != PD_OK) return die("signing");
    std::string path = manifest_path + ".sig";
    std::FILE *f = std::fopen(path.c_str(), "wb");
    bool ok = f && std::fwrite(record.ptr, 1, record.size, f) == record.size;
    if (f && std::fclose(f) != 0) ok = false;
    pd_buf_dispose(&record);
    if (!ok) {
        std::fprintf(stderr, "pd: writing %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    std::fprintf(stderr, "publication record %s\n", path.c_str());
    return 0;
}

int cmd_publish(const args &a) {
    if (a.positional.size() != 1) {
        std::fprintf(stderr, "usage: pd publish FILE [--name N] [--origin LOC] [--manifest OUT] [--sign KEYFILE] [--cache DIR] [--add-to-cache]\n");
        return 2;
    }
    const std::string &file = a.positional[0];
    // The key is checked before any work: a refused key leaves no unsigned manifest behind.
    uint8_t pub[32], sec[64];
    if (a.has("--sign") && pd_publisher_key_read_file(pub, sec, a.get("--sign").c_str()) != PD_OK)
        return die("reading the publisher key");
    session_guard g;
    if (open_session(g, a) != PD_OK) return die("opening the cache");
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    std::string name = a.get("--name"), origin = a.get("--origin");
    po.name = name.empty() ? nullptr : name.c_str();
    po.origin = origin.empty() ? nullptr : origin.c_str();
    po.add_to_cache = a.has("--add-to-cache");
    pd_manifest *m = nullptr;
    auto t0 = std::chrono::steady_clock::now();
    if (pd_content_publish(&m, g.s, file.c_str(), &po) != PD_OK) return die("publishing");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string out = a.get("--manifest", file + ".pdm");
    if (pd_manifest_write_file(m, out.c_str()) != PD_OK) {
        pd_manifest_free(m);
        return die("writing the manifest");
    }
    std::printf("%s\n", hex_id(pd_manifest_id(m)).c_str());
    std::fprintf(stderr, "published '%s': %s in %llu blocks, hashed in %.2f s; manifest %s\n", pd_manifest_name(m),
                 human(static_cast<double>(pd_manifest_size(m))).c_str(), (unsigned long long)pd_manifest_block_count(m),
                 secs, out.c_str());
    int rc = a.has("--sign") ? sign_publication(m, out, sec, origin) : 0;
    pd_manifest_free(m);
    return rc;
}

void draw_bar(const pd_event &e, double rate, bool tty) {
    double frac = e.bytes_total ? static_cast<double>(e.bytes_done) / static_cast<double>(e.bytes_total) : 1.0;
    const int width = 30;
    int fill = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.append(static_cast<std::size_t>(width - fill), '.');
    std::fprintf(stderr, "%s[%s] %5.1f%% %s / %s  %s/s%s", tty ? "\r" : "", bar.c_str(), frac * 100,
                 human(static_cast<double>(e.bytes_done)).c_str(), human(static_cast<double>(e.bytes_total)).c_str(),
                 human(rate).c_str(), tty ? "   " : "\n");
}

int cmd_get(const args &a) {
    bool by_id = a.has("--content");
    if (by_id ? !a.positional.empty() || !a.has("--coordinator") || !a.has("--fleet-key") : a.positional.size() != 1) {
        std::fprintf(stderr, "usage: pd get MANIFEST [--origin LOC] [--dest PATH [--copy]] [--publication FILE] [--publisher-key HEX]...\n"
                     "              [--allow-unsigned] [--cache DIR] [--plugins DIR]\n"
                     "       pd get --content ID --coordinator HOST:PORT --fleet-key FILE [--dest PATH] [--publisher-key HEX]...\n"
                     "  --dest shares the cache's file (a hard link, no second write); --copy writes an independent copy\n"
                     "  without --dest the content stays in the cache and its path is printed; the publication\n"
                     "  record is FILE, else MANIFEST.sig; it must be signed by a --publisher-key. With --content the\n"
                     "  manifest, record and origins come from the coordinator's catalogue\n");
        return 2;
    }
    pd_content_id id{};
    if (by_id && pd_content_id_from_hex(&id, a.get("--content").c_str()) != PD_OK) return die("--content");
    std::array<uint8_t, 32> fleet_key{};
    if (by_id && pd_fleet_key_read_file(fleet_key.data(), a.get("--fleet-key").c_str()) != PD_OK) return die("--fleet-key");
    session_guard g;
    {
        std::string cache = a.get("--cache", default_cache());
        pd_session_options o = PD_SESSION_OPTIONS_INIT;
        o.cache_dir = cache.c_str();
        o.fleet_key = by_id ? fleet_key.data() : nullptr;  // the office's peers need it too
        o.fleet_key_len = by_id ? fleet_key.size() : 0;
        if (pd_session_new(&g.s, &o) != PD_OK) return die("opening the cache");
    }
    if (by_id) {
        // The hierarchy plugin reads its configuration when it loads.
        nlohmann::json config = {{"coordinator", a.get("--coordinator")}, {"fleet_key_file", a.get("--fleet-key")}};
        if (pd_session_set_setting(g.s, "plugin.hierarchy.config", config.dump().c_str()) != PD_OK) return die("--coordinator");
    }
    std::string plugins = plugin_dir(a);
    if (pd_session_load_plugin(g.s, plugins.c_str()) != PD_OK) return die(("loading plugins from " + plugins).c_str());
    std::string origin = a.get("--origin");
    // Trust: only a content its publisher signed is installed, unless the user says otherwise.
    if (a.has("--publisher-key") && pd_session_set_setting(g.s, "trust.publisher_keys", a.get("--publisher-key").c_str()) != PD_OK)
        return die("--publisher-key");
    if (a.has("--allow-unsigned")) pd_session_set_setting(g.s, "trust.allow_unsigned", "1");
    if (by_id) {
        if (pd_content_resolve(g.s, &id) != PD_OK) return die("finding the content in the catalogue");
    } else {
        pd_manifest *m = nullptr;
        if (pd_manifest_read_file(&m, a.positional[0].c_str()) != PD_OK) return die("reading the manifest");
        std::unique_ptr<pd_manifest, void (*)(pd_manifest *)> owned(m, pd_manifest_free);
        id = *pd_manifest_id(m);
        std::string record_path = a.get("--publication");
        int rc = pd_content_import_with_record_file(g.s, m, origin.empty() ? nullptr : origin.c_str(), a.positional[0].c_str(),
                                                    record_path.empty() ? nullptr : record_path.c_str());
        if (rc != PD_OK) return die("importing");
    }
    // Without --dest the content stays in the cache (its path is printed): a download never
    // writes into the current directory under a name the publisher chose.
    std::string dest = a.get("--dest");
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = dest.empty() ? nullptr : dest.c_str();
    if (a.has("--copy")) jo.delivery = PD_DELIVER_COPY;  // an independent file, at a second write
    if (by_id && !origin.empty()) jo.origin = origin.c_str();  // instead of the catalogue's
    uint64_t job = 0;
    if (pd_job_start(&job, g.s, &id, &jo) != PD_OK) return die("starting the download");
    bool tty = pd_agent::is_terminal(2) && !a.has("--quiet");
    auto t0 = std::chrono::steady_clock::now();
    int last_decile = -1;
    for (bool done = false; !done;) {
        pd_event ev[32];
        size_t n = 0;
        if (pd_session_wait_events(g.s, ev, sizeof(pd_event), 32, &n, 1000) != PD_OK) continue;
        for (size_t i = 0; i < n; ++i) {
            const pd_event &e = ev[i];
            if (e.job_id != job) continue;
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            double rate = secs > 0 ? static_cast<double>(e.bytes_done) / secs : 0;
            switch (e.type) {
            case PD_EVENT_JOB_PROGRESS: {
                int decile = e.bytes_total ? static_cast<int>(e.bytes_done * 10 / e.bytes_total) : 10;
                if (tty || decile != last_decile) draw_bar(e, rate, tty);
                last_decile = decile;
                break;
            }
            case PD_EVENT_SOURCE_FALLBACK:
                std::fprintf(stderr, "%sfallback: %s\n", tty ? "\n" : "", e.message);
                break;
            case PD_EVENT_BLOCK_REJECTED:
                std::fprintf(stderr, "%srejected: %s\n", tty ? "\n" : "", e.message);
                break;
            case PD_EVENT_JOB_COMPLETED:
            case PD_EVENT_JOB_FAILED:
            case PD_EVENT_JOB_CANCELLED:
                done = true;
                break;
            default:
                break;
            }
        }
    }
    if (tty) std::fputc('\n', stderr);
    pd_job_status st{};
    st.struct_size = sizeof st;
    pd_job_status_get(&st, g.s, job);
    double secs = static_cast<double>(st.finished_ms - st.started_ms) / 1000.0;
    if (st.state != PD_JOB_COMPLETED) {
        std::fprintf(stderr, "pd: download failed: %s (%s)\n", st.message, pd_strerror(st.error_code));
        return 1;
    }
    std::printf("%s %s\n", dest.empty() ? "in the cache at" : "delivered", st.message);
    std::printf("summary: %s in %.2f s (%s/s); from cache %s, LAN %s, WAN %s, origin %s; rejected blocks %llu\n",
                human(static_cast<double>(st.bytes_total)).c_str(), secs,
                human(secs > 0 ? static_cast<double>(st.bytes_total) / secs : 0).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_LOCAL])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_LAN])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_WAN])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_ORIGIN])).c_str(),
                (unsigned long long)st.blocks_rejected);
    return 0;
}

int cmd_cache(const args &a) {
    if (a.positional.empty()) {
        std::fprintf(stderr, "usage: pd cache ls | rm ID | pin ID | unpin ID [--cache DIR]\n");
        return 2;
    }
    session_guard g;
    if (open_session(g, a) != PD_OK) return die("opening the cache");
    const std::string &sub = a.positional[0];
    if (sub == "ls") {
        size_t n = 0;
        if (pd_cache_list(g.s, nullptr, sizeof(pd_cache_entry), &n) != PD_OK) return die("listing");
        std::vector<pd_cache_entry> es(n);
        for (auto &e : es) e.struct_size = sizeof e;
        if (pd_cache_list(g.s, es.data(), sizeof(pd_cache_entry), &n) != PD_OK) return die("listing");
        std::printf("%-64s  %-8s  %10s  %6s  %s\n", "content id", "state", "size", "done", "name");
        for (size_t i = 0; i < n; ++i) {
            auto &e = es[i];
            double pct = e.size ? 100.0 * static_cast<double>(e.bytes_verified) / static_cast<double>(e.size) : 100.0;
            std::printf("%s  %-8s  %10s  %5.1f%%  %s%s\n", hex_id(&e.id).c_str(), pd_cache_state_name(e.state),
                        human(static_cast<double>(e.size)).c_str(), pct, e.name, e.pinned ? " (pinned)" : "");
        }
        return 0;
    }
    if ((sub == "rm" || sub == "pin" || sub == "unpin") && a.positional.size() == 2) {
        pd_content_id id;
        if (pd_content_id_from_hex(&id, a.positional[1].c_str()) != PD_OK) return die("parsing the content id");
        int rc = sub == "rm" ? pd_cache_remove(g.s, &id) : pd_cache_pin(g.s, &id, sub == "pin");
        if (rc != PD_OK) return die(sub.c_str());
        return 0;
    }
    std::fprintf(stderr, "pd cache: unknown subcommand '%s'\n", sub.c_str());
    return 2;
}

int cmd_content_info(const args &a) {
    std::string pass_hex = a.get("--server-passphrase");
    std::string version = a.get("--version", "1");
    if (a.positional.size() != 1 || pass_hex.empty() || pass_hex.size() % 2) {
        std::fprintf(stderr, "usage: pd content-info FILE --version 1|2 --server-passphrase HEX\n");
        return 2;
    }
    std::vector<uint8_t> pass(pass_hex.size() / 2);
    for (size_t i = 0; i < pass.size(); ++i) {
        char byte[3] = {pass_hex[2 * i], pass_hex[2 * i + 1], 0};
        char *end = nullptr;
        pass[i] = static_cast<uint8_t>(std::strtoul(byte, &end, 16));
        if (*end) {
            std::fprintf(stderr, "pd: --server-passphrase must be hex\n");
            return 2;
        }
    }
    pd_buf out = PD_BUF_INIT;
    if (pd_content_info_generate(&out, a.positional[0].c_str(), static_cast<uint32_t>(std::atoi(version.c_str())), pass.data(),
                                 pass.size()) != PD_OK)
        return die("generating Content Information");
    for (size_t i = 0; i < out.size; ++i) std::printf("%02x", out.ptr[i]);
    std::printf("\n");
    pd_buf_dispose(&out);
    return 0;
}

// ---- talking to a running pd-agent over its control socket (docs/agent.md) ----

using json = nlohmann::json;

class agent_client {
public:
    explicit agent_client(const std::string &address) : link_(address) {}

    json call(const json &req) {
        link_.write_all(req.dump() + "\n");
        std::size_t nl;
        while ((nl = buf_.find('\n')) == std::string::npos) {
            char chunk[65536];
            std::size_t n = link_.read_some(chunk, sizeof chunk);
            if (n == 0) throw std::runtime_error("pd-agent closed the connection");
            buf_.append(chunk, n);
        }
        json reply = json::parse(buf_.substr(0, nl));
        buf_.erase(0, nl + 1);
        return reply;
    }

private:
    pd_agent::agent_link link_;
    std::string buf_;
};

bool final_state(const std::string &s) { return s == "completed" || s == "failed" || s == "cancelled"; }

std::string bar_line(const json &j) {
    double total = j["bytes_total"].get<double>(), done = j["bytes_verified"].get<double>();
    double frac = total > 0 ? done / total : 1.0;
    int fill = static_cast<int>(frac * 30);
    char buf[512];
    std::snprintf(buf, sizeof buf, "job %-4llu [%s%s] %5.1f%% %10s / %-10s %-10s %s",
                  static_cast<unsigned long long>(j["job"].get<uint64_t>()), std::string(static_cast<std::size_t>(fill), '#').c_str(),
                  std::string(static_cast<std::size_t>(30 - fill), '.').c_str(), frac * 100, human(done).c_str(),
                  human(total).c_str(), j["state"].get<std::string>().c_str(),
                  j["state"] == "failed" ? j["message"].get<std::string>().c_str() : "");
    return buf;
}

// Live progress bars for the given jobs (all when empty) until they are all final.
int follow(agent_client &agent, const std::vector<uint64_t> &only, bool once) {
    bool tty = pd_agent::is_terminal(1);
    std::size_t drawn = 0;
    for (;;) {
        json r = agent.call({{"cmd", "jobs"}});
        if (!r["ok"].get<bool>()) throw std::runtime_error(r.value("error", "jobs failed"));
        std::vector<json> shown;
        for (auto &j : r["jobs"]) {
            uint64_t id = j["job"].get<uint64_t>();
            if (only.empty() || std::find(only.begin(), only.end(), id) != only.end()) shown.push_back(j);
        }
        if (tty && drawn) std::printf("\x1b[%zuA", drawn);
        for (auto &j : shown) std::printf("%s\x1b[K\n", bar_line(j).c_str());
        if (shown.empty()) std::printf("no jobs\n");
        std::fflush(stdout);
        drawn = shown.empty() ? 1 : shown.size();
        bool all_final = true;
        int failed = 0;
        for (auto &j : shown) {
            all_final &= final_state(j["state"].get<std::string>());
            failed += j["state"] != "completed";
        }
        if (once || all_final) return only.empty() ? 0 : (failed ? 1 : 0);
        if (!tty) drawn = 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 1000));
    }
}

int agent_main(const std::string &socket, const std::string &cmd, const args &a) {
    try {
        agent_client agent(socket);
        auto check = [](const json &r) {
            if (!r.value("ok", false)) throw std::runtime_error(r.value("error", "request failed"));
            return r;
        };
        if (cmd == "status") return follow(agent, {}, a.has("--once"));
        if (cmd == "get") {
            if (a.positional.size() != 1) throw std::runtime_error("usage: pd --agent SOCKET get MANIFEST [--origin LOC] [--dest PATH] [--publication FILE]");
            // The agent runs elsewhere (another working directory): absolute paths.
            auto absolute = [](const std::string &p) {
                std::error_code ec;
                auto abs = std::filesystem::absolute(std::filesystem::u8path(p), ec);
                return ec ? p : abs.u8string();
            };
            std::string manifest = absolute(a.positional[0]);
            json req = {{"cmd", "download"}, {"manifest", manifest}};
            if (a.has("--origin")) req["origin"] = a.get("--origin");
            if (a.has("--publication"))
                req["publication"] = absolute(a.get("--publication"));
            if (a.has("--dest")) req["dest"] = a.get("--dest");
            json r = check(agent.call(req));
            return follow(agent, {r["job"].get<uint64_t>()}, false);
        }
        if (cmd == "cancel" || cmd == "pause" || cmd == "resume") {
            if (a.positional.size() != 1) throw std::runtime_error("usage: pd --agent SOCKET " + cmd + " JOB");
            check(agent.call({{"cmd", cmd}, {"job", std::stoull(a.positional[0])}}));
            return 0;
        }
        if (cmd == "cache") {
            if (!a.positional.empty() && a.positional[0] == "rm" && a.positional.size() == 2) {
                check(agent.call({{"cmd", "evict"}, {"content", a.positional[1]}}));
                return 0;
            }
            json r = check(agent.call({{"cmd", "cache"}}));
            for (auto &e : r["cache"])
                std::printf("%s  %-8s  %10s  %s\n", e["content"].get<std::string>().c_str(),
                            e["state"].get<std::string>().c_str(), human(e["size"].get<double>()).c_str(),
                            e["name"].get<std::string>().c_str());
            return 0;
        }
        if (cmd == "facts") {
            std::printf("%s\n", check(agent.call({{"cmd", "facts"}}))["facts"].dump(2).c_str());
            return 0;
        }
        if (cmd == "call") {
            // One request of docs/agent.md as JSON, its reply printed as JSON (scripts); the
            // exit status says whether the reply was "ok".
            if (a.positional.size() != 1) throw std::runtime_error("usage: pd --agent SOCKET call '{\"cmd\": ...}'");
            json reply = agent.call(json::parse(a.positional[0]));
            std::printf("%s\n", reply.dump().c_str());
            return reply.value("ok", false) ? 0 : 1;
        }
        throw std::runtime_error("unknown agent command '" + cmd + "'");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "pd: %s\n", e.what());
        return 1;
    }
}

// pd admin --coordinator HOST:PORT --credential FILE [--json] OP [ARGS]: a front end to the
// library's admin operation table (pd_admin_run); pd-coordinator admin is another.
void admin_usage() {
    std::fprintf(stderr, "usage: pd admin --coordinator HOST:PORT --credential FILE [--json] OP [ARGS]\n");
    for (size_t i = 0; const pd_admin_operation *op = pd_admin_operation_at(i); ++i)
        std::fprintf(stderr, "  %s %s\n      %s\n", op->name, op->arguments, op->summary);
}

int cmd_admin(int argc, char **argv, int first) {
    std::string coordinator, credential_file;
    uint32_t flags = 0;
    int i = first;
    for (; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "--json") flags |= PD_ADMIN_JSON;
        else if ((s == "--coordinator" || s == "--credential") && i + 1 < argc)
            (s == "--coordinator" ? coordinator : credential_file) = argv[++i];
        else if (s == "--key-file") {
            std::fprintf(stderr, "pd: the fleet key does not authorise admin operations: use --credential FILE "
                                 "(pd-coordinator init --admin-out, or pd-coordinator admin-key add)\n");
            return 2;
        } else break;
    }
    if (i >= argc || coordinator.empty() || credential_file.empty()) {
        admin_usage();
        return 2;
    }
    pd_admin_credential credential;
    if (pd_admin_credential_read_file(&credential, credential_file.c_str()) != PD_OK) return die("reading the credential");
    pd_admin *admin = nullptr;
    int rc = pd_admin_connect(&admin, coordinator.c_str(), &credential, 10000);
    std::memset(&credential, 0, sizeof credential);
    if (rc != PD_OK) return die("connecting to the coordinator");
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> guard(admin, pd_admin_free);
    pd_buf out = PD_BUF_INIT;
    const char *op = argv[i];
    if (pd_admin_run(&out, admin, op, argv + i + 1, static_cast<size_t>(argc - i - 1), flags) != PD_OK) return die(op);
    std::fwrite(out.ptr, 1, out.size, stdout);
    pd_buf_dispose(&out);
    return 0;
}

void usage() {
    std::fprintf(stderr,
                 "usage: pd <command> [options]\n"
                 "  publisher-key --out FILE   a new publisher key pair; prints the public key\n"
                 "  publish FILE         hash a file, write FILE.pdm (and FILE.pdm.sig with --sign KEYFILE), print the content id\n"
                 "  get MANIFEST         download a content with a live progress bar\n"
                 "  cache ls|rm|pin|unpin   inspect or change the local cache\n"
                 "  content-info FILE    BranchCache Content Information as hex\n"
                 "  version              library and header versions\n"
                 "  admin --coordinator HOST:PORT --credential FILE [--json] OP   administer a pd-coordinator\n"
                 "  --agent SOCKET status|get|cancel|pause|resume|cache|facts|call JSON   talk to a running pd-agent\n");
}

}  // namespace

static int pd_main(int argc, char **argv) {
    // A host built against other headers than the library it loads must not run.
    if (pd_version() >> 16 != PD_VERSION_MAJOR || pd_version() < static_cast<uint32_t>(PD_VERSION_NUM)) {
        std::fprintf(stderr, "pd: libpeerdist %s is older than the headers %s\n", pd_version_string(), PD_VERSION_STRING);
        return 1;
    }
    if (argc < 2) {
        usage();
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "--agent") {
        if (argc < 4) {
            usage();
            return 2;
        }
        return agent_main(argv[2], argv[3], parse(argc, argv, 4));
    }
    if (cmd == "admin") return cmd_admin(argc, argv, 2);
    args a = parse(argc, argv, 2);
    if (cmd == "publish") return cmd_publish(a);
    if (cmd == "publisher-key") return cmd_publisher_key(a);
    if (cmd == "get") return cmd_get(a);
    if (cmd == "cache") return cmd_cache(a);
    if (cmd == "content-info") return cmd_content_info(a);
    if (cmd == "version") {
        std::printf("pd %s (headers %s)\n", pd_version_string(), PD_VERSION_STRING);
        return 0;
    }
    usage();
    return 2;
}

#ifdef _WIN32
// Windows hands arguments over in UTF-16 (wmain); the C ABI takes UTF-8, so paths outside
// the ANSI code page survive.
int wmain(int argc, wchar_t **wargv) {
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) args.push_back(std::filesystem::path(wargv[i]).u8string());
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return pd_main(argc, argv.data());
}
#else
int main(int argc, char **argv) { return pd_main(argc, argv); }
#endif
