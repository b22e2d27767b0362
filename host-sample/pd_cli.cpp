// pd: the peerdist command line, written only against the public C ABI (peerdist.h).
// `pd --help` and `pd COMMAND --help` list everything; docs/cli.md has the exit statuses,
// the --json output and the content-id prefixes. The commands here use the library in
// this process; `pd --agent ADDRESS ...` goes to a running pd-agent (pd_agent_commands.cpp).
#include "agent_link.h"
#include "pd_cli.h"
#include "pd_serve.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace pd_tool {

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

// Hex digits only (either case); true for "".
static bool all_hex(const std::string &text) { return text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos; }

bool is_id_prefix(const std::string &p) { return p.size() >= 4 && p.size() <= 64 && all_hex(p); }

std::string resolve_prefix(const std::string &prefix, const std::vector<std::string> &ids) {
    if (!is_id_prefix(prefix))
        throw pd_cli::usage_error("'" + prefix + "' is not a content id (4 to 64 hex digits of one)");
    std::string lower = prefix;
    for (auto &c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::vector<std::string> hits;
    for (const auto &id : ids)
        if (id.compare(0, lower.size(), lower) == 0) hits.push_back(id);
    if (hits.empty()) throw pd_cli::failure(pd_cli::exit_not_found, "no content " + prefix + " in the cache");
    if (hits.size() > 1) {
        std::string list;
        for (const auto &h : hits) list += "\n  " + h;
        throw pd_cli::usage_error("content id " + prefix + " is ambiguous; it matches:" + list);
    }
    return hits[0];
}

namespace {

using json = nlohmann::json;
using pd_cli::failure;

using pd_cli::check;

struct options {
    std::string cache, plugins;
    bool json = false, quiet = false;
    // publish / publisher-key
    std::string file, name, origin, manifest_out, sign_key, out;
    bool add_to_cache = false;
    // get
    std::string manifest, content, coordinator, fleet_key_file, dest, publication;
    std::vector<std::string> origins, publisher_keys;
    bool copy = false, allow_unsigned = false;
    // cache
    std::string id;
    // content-info
    unsigned ci_version = 1;
    std::string passphrase;
    // admin
    std::string credential;
    // serve
    serve_options serve;
};

std::string cache_dir(const options &o) {
    if (!o.cache.empty()) return o.cache;
    if (const char *c = std::getenv("PEERDIST_CACHE")) return c;
    if (const char *h = std::getenv("HOME")) return std::string(h) + "/.cache/peerdist";
    return ".peerdist-cache";
}

struct session_handle {
    pd_session *s = nullptr;
    session_handle() = default;
    session_handle(const session_handle &) = delete;
    session_handle &operator=(const session_handle &) = delete;
    ~session_handle() { pd_session_free(s); }
};

void open_session(session_handle &h, const options &o, const std::uint8_t *fleet_key = nullptr) {
    std::string cache = cache_dir(o);
    pd_session_options so = PD_SESSION_OPTIONS_INIT;
    so.cache_dir = cache.c_str();
    so.fleet_key = fleet_key;  // the office's peers need it too
    so.fleet_key_len = fleet_key ? 32 : 0;
    check(pd_session_new(&h.s, &so), "opening the cache " + cache);
}

void print_json(const json &j) { std::printf("%s\n", j.dump(2).c_str()); }

int cmd_publisher_key(const options &o) {
    std::uint8_t pub[32];
    check(pd_publisher_key_create_file(pub, o.out.c_str()), "creating the publisher key");
    pd_content_id as_hex;
    std::memcpy(as_hex.bytes, pub, 32);
    if (o.json) {
        print_json({{"public_key", hex_id(&as_hex)}, {"secret_key_file", o.out}});
    } else {
        std::printf("%s\n", hex_id(&as_hex).c_str());
        std::fprintf(stderr, "publisher key written to %s (keep it offline); give agents the public key above as "
                             "trust.publisher_keys\n", o.out.c_str());
    }
    return pd_cli::exit_ok;
}

// Writes the publication record for `m` beside the manifest (OUT.sig), signed with `sec`
// (wiped after); returns its path.
std::string sign_publication(const pd_manifest *m, const std::string &manifest_path, std::uint8_t sec[64],
                             const std::string &origin) {
    pd_buf record = PD_BUF_INIT;
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    int rc = pd_publication_sign(&record, m, origin.c_str(), static_cast<std::int64_t>(now_ms), sec);
    std::memset(sec, 0, 64);
    check(rc, "signing");
    std::string path = manifest_path + ".sig";
    std::FILE *f = std::fopen(path.c_str(), "wb");
    bool ok = f && std::fwrite(record.ptr, 1, record.size, f) == record.size;
    if (f && std::fclose(f) != 0) ok = false;
    pd_buf_dispose(&record);
    if (!ok) throw failure(pd_cli::exit_failed, "writing " + path + ": " + std::strerror(errno));
    return path;
}

int cmd_publish(const options &o) {
    // The key is checked before any work: a refused key leaves no unsigned manifest behind.
    std::uint8_t pub[32], sec[64];
    if (!o.sign_key.empty()) check(pd_publisher_key_read_file(pub, sec, o.sign_key.c_str()), "reading the publisher key");
    session_handle h;
    open_session(h, o);
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.name = o.name.empty() ? nullptr : o.name.c_str();
    po.origin = o.origin.empty() ? nullptr : o.origin.c_str();
    po.add_to_cache = o.add_to_cache;
    pd_manifest *raw = nullptr;
    auto t0 = std::chrono::steady_clock::now();
    check(pd_content_publish(&raw, h.s, o.file.c_str(), &po), "publishing");
    std::unique_ptr<pd_manifest, void (*)(pd_manifest *)> m(raw, pd_manifest_free);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string out = o.manifest_out.empty() ? o.file + ".pdm" : o.manifest_out;
    check(pd_manifest_write_file(m.get(), out.c_str()), "writing the manifest");
    std::string record = o.sign_key.empty() ? "" : sign_publication(m.get(), out, sec, o.origin);
    std::string id = hex_id(pd_manifest_id(m.get()));
    if (o.json) {
        print_json({{"content", id}, {"name", pd_manifest_name(m.get())}, {"size", pd_manifest_size(m.get())},
                    {"blocks", pd_manifest_block_count(m.get())}, {"manifest", out},
                    {"publication", record.empty() ? json(nullptr) : json(record)}, {"seconds", secs}});
        return pd_cli::exit_ok;
    }
    std::printf("%s\n", id.c_str());
    std::fprintf(stderr, "published '%s': %s in %llu blocks, hashed in %.2f s; manifest %s\n", pd_manifest_name(m.get()),
                 human(static_cast<double>(pd_manifest_size(m.get()))).c_str(),
                 static_cast<unsigned long long>(pd_manifest_block_count(m.get())), secs, out.c_str());
    if (!record.empty()) std::fprintf(stderr, "publication record %s\n", record.c_str());
    return pd_cli::exit_ok;
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

// Follows `job` to its end: a progress bar on stderr (redrawn on a terminal, a line per
// tenth otherwise, none with --quiet or --json), fallbacks and rejected blocks as lines.
void watch_job(const session_handle &h, std::uint64_t job, const options &o) {
    bool tty = pd_agent::is_terminal(2);
    bool bars = !o.quiet && !o.json;
    auto t0 = std::chrono::steady_clock::now();
    int last_decile = -1;
    for (bool done = false; !done;) {
        pd_event ev[32];
        std::size_t n = 0;
        if (pd_session_wait_events(h.s, ev, sizeof(pd_event), 32, &n, 1000) != PD_OK) continue;
        for (std::size_t i = 0; i < n; ++i) {
            const pd_event &e = ev[i];
            if (e.job_id != job) continue;
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            double rate = secs > 0 ? static_cast<double>(e.bytes_done) / secs : 0;
            switch (e.type) {
            case PD_EVENT_JOB_PROGRESS: {
                int decile = e.bytes_total ? static_cast<int>(e.bytes_done * 10 / e.bytes_total) : 10;
                if (bars && (tty || decile != last_decile)) draw_bar(e, rate, tty);
                last_decile = decile;
                break;
            }
            case PD_EVENT_SOURCE_FALLBACK:
            case PD_EVENT_BLOCK_REJECTED:
                if (!o.quiet)
                    std::fprintf(stderr, "%s%s: %s\n", bars && tty ? "\n" : "",
                                 e.type == PD_EVENT_SOURCE_FALLBACK ? "fallback" : "rejected", e.message);
                break;
            case PD_EVENT_JOB_COMPLETED:
            case PD_EVENT_JOB_FAILED:
            case PD_EVENT_JOB_CANCELLED: done = true; break;
            default: break;
            }
        }
    }
    if (bars && tty) std::fputc('\n', stderr);
}

int cmd_get(const options &o) {
    bool by_id = !o.content.empty();
    if (by_id == !o.manifest.empty()) throw pd_cli::usage_error("get needs a MANIFEST, a URL or --content ID (one of them)");
    // A URL alone: its origin's Content Information describes it (PeerDist, docs/protocol.md §7).
    bool by_url = o.manifest.rfind("http://", 0) == 0 || o.manifest.rfind("https://", 0) == 0;
    if (by_url && !o.origins.empty()) throw pd_cli::usage_error("get URL takes no --origin: the URL is the origin");
    if (by_id && (o.coordinator.empty() || o.fleet_key_file.empty()))
        throw pd_cli::usage_error("get --content needs --coordinator and --fleet-key");
    if (o.origins.size() > 1) throw pd_cli::usage_error("get takes one --origin (the manifest's publication lists the others)");
    pd_content_id id{};
    if (by_id && (o.content.size() != 64 || pd_content_id_from_hex(&id, o.content.c_str()) != PD_OK))
        throw pd_cli::usage_error("--content needs the whole content id (64 hex digits): the catalogue is not searched by prefix");
    std::array<std::uint8_t, 32> fleet_key{};
    if (by_id) check(pd_fleet_key_read_file(fleet_key.data(), o.fleet_key_file.c_str()), "--fleet-key");
    // The manifest before the cache: a mistyped path creates no cache.
    std::unique_ptr<pd_manifest, void (*)(pd_manifest *)> m(nullptr, pd_manifest_free);
    if (!by_id && !by_url) {
        pd_manifest *raw = nullptr;
        check(pd_manifest_read_file(&raw, o.manifest.c_str()), "reading the manifest");
        m.reset(raw);
    }
    session_handle h;
    open_session(h, o, by_id ? fleet_key.data() : nullptr);
    if (by_id) {
        // The hierarchy plugin reads its configuration when it loads.
        json config = {{"coordinator", o.coordinator}, {"fleet_key_file", o.fleet_key_file}};
        check(pd_session_set_setting(h.s, "plugin.hierarchy.config", config.dump().c_str()), "--coordinator");
    }
    // --plugins, else the library's own rule ($PEERDIST_PLUGIN_DIR, else beside the library).
    std::string plugins = o.plugins.empty() ? pd_plugin_dir_default() : o.plugins;
    check(pd_session_load_plugin(h.s, plugins.c_str()), "loading plugins from " + plugins);
    std::string origin = o.origins.empty() ? "" : o.origins[0];
    // Trust: only a content its publisher signed is installed, unless the user says otherwise.
    if (!o.publisher_keys.empty()) {
        std::string keys;
        for (const auto &k : o.publisher_keys) keys += (keys.empty() ? "" : ",") + k;
        check(pd_session_set_setting(h.s, "trust.publisher_keys", keys.c_str()), "--publisher-key");
    }
    if (o.allow_unsigned) check(pd_session_set_setting(h.s, "trust.allow_unsigned", "1"), "--allow-unsigned");
    if (by_id) {
        check(pd_content_resolve(h.s, &id), "finding the content in the catalogue");
    } else if (by_url) {
        check(pd_content_import_from_origin(&id, h.s, o.manifest.c_str(), nullptr), "asking " + o.manifest + " for its Content Information");
    } else {
        id = *pd_manifest_id(m.get());
        check(pd_content_import_with_record_file(h.s, m.get(), origin.empty() ? nullptr : origin.c_str(), o.manifest.c_str(),
                                                 o.publication.empty() ? nullptr : o.publication.c_str()),
              "importing");
    }
    // Without --dest the content stays in the cache (its path is printed): a download never
    // writes into the current directory under a name the publisher chose.
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = o.dest.empty() ? nullptr : o.dest.c_str();
    if (o.copy) jo.delivery = PD_DELIVER_COPY;  // an independent file, at a second write
    if (by_id && !origin.empty()) jo.origin = origin.c_str();  // instead of the catalogue's
    std::uint64_t job = 0;
    check(pd_job_start(&job, h.s, &id, &jo), "starting the download");
    watch_job(h, job, o);
    pd_job_status st{};
    st.struct_size = sizeof st;
    check(pd_job_status_get(&st, h.s, job), "reading the job's status");
    double secs = static_cast<double>(st.finished_ms - st.started_ms) / 1000.0;
    bool ok = st.state == PD_JOB_COMPLETED;
    if (o.json) {
        print_json({{"content", hex_id(&st.content)}, {"state", pd_job_state_name(st.state)},
                    {"path", ok ? json(st.message) : json(nullptr)}, {"error", ok ? json(nullptr) : json(st.message)},
                    {"error_code", st.error_code}, {"bytes_total", st.bytes_total}, {"seconds", secs},
                    {"bytes_by_source", {{"local", st.bytes_by_source[PD_SOURCE_LOCAL]}, {"lan", st.bytes_by_source[PD_SOURCE_LAN]},
                                         {"wan", st.bytes_by_source[PD_SOURCE_WAN]}, {"origin", st.bytes_by_source[PD_SOURCE_ORIGIN]}}},
                    {"blocks_rejected", st.blocks_rejected}});
    }
    if (!ok)
        throw failure(pd_cli::exit_for(st.error_code ? st.error_code : PD_E_GENERIC),
                      std::string("download failed: ") + st.message + " (" + pd_strerror(st.error_code) + ")");
    if (o.json) return pd_cli::exit_ok;
    std::printf("%s %s\n", o.dest.empty() ? "in the cache at" : "delivered", st.message);
    std::printf("summary: %s in %.2f s (%s/s); from cache %s, LAN %s, WAN %s, origin %s; rejected blocks %llu\n",
                human(static_cast<double>(st.bytes_total)).c_str(), secs,
                human(secs > 0 ? static_cast<double>(st.bytes_total) / secs : 0).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_LOCAL])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_LAN])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_WAN])).c_str(),
                human(static_cast<double>(st.bytes_by_source[PD_SOURCE_ORIGIN])).c_str(),
                static_cast<unsigned long long>(st.blocks_rejected));
    return pd_cli::exit_ok;
}

std::vector<pd_cache_entry> list_cache(const session_handle &h) {
    std::size_t n = 0;
    check(pd_cache_list(h.s, nullptr, sizeof(pd_cache_entry), &n), "listing the cache");
    std::vector<pd_cache_entry> es(n + 4);  // room for entries added meanwhile
    for (auto &e : es) e.struct_size = sizeof e;
    n = es.size();
    check(pd_cache_list(h.s, es.data(), sizeof(pd_cache_entry), &n), "listing the cache");
    es.resize(n);
    return es;
}

// `pd cache ls|rm|pin|unpin`. Listing a cache that does not exist shows it empty and
// creates nothing; the others need it to exist.
int cmd_cache(const std::string &sub, const options &o) {
    if (sub != "ls" && !is_id_prefix(o.id))
        throw pd_cli::usage_error("'" + o.id + "' is not a content id (4 to 64 hex digits of one)");
    std::error_code ec;
    if (!std::filesystem::is_directory(std::filesystem::u8path(cache_dir(o)), ec)) {
        if (sub != "ls") throw failure(pd_cli::exit_not_found, "there is no cache at " + cache_dir(o));
        if (o.json) print_json(json::array());
        else std::printf("the cache at %s is empty (it does not exist yet)\n", cache_dir(o).c_str());
        return pd_cli::exit_ok;
    }
    session_handle h;
    open_session(h, o);
    auto entries = list_cache(h);
    if (sub == "ls") {
        json list = json::array();
        if (!o.json) std::printf("%-64s  %-8s  %10s  %6s  %s\n", "content id", "state", "size", "done", "name");
        for (const auto &e : entries) {
            if (o.json) {
                list.push_back({{"content", hex_id(&e.id)}, {"name", e.name}, {"state", pd_cache_state_name(e.state)},
                                {"size", e.size}, {"bytes_verified", e.bytes_verified}, {"pinned", e.pinned != 0}});
                continue;
            }
            double pct = e.size ? 100.0 * static_cast<double>(e.bytes_verified) / static_cast<double>(e.size) : 100.0;
            std::printf("%s  %-8s  %10s  %5.1f%%  %s%s\n", hex_id(&e.id).c_str(), pd_cache_state_name(e.state),
                        human(static_cast<double>(e.size)).c_str(), pct, e.name, e.pinned ? " (pinned)" : "");
        }
        if (o.json) print_json(list);
        return pd_cli::exit_ok;
    }
    std::vector<std::string> ids;
    for (const auto &e : entries) ids.push_back(hex_id(&e.id));
    std::string full = resolve_prefix(o.id, ids);
    pd_content_id id;
    check(pd_content_id_from_hex(&id, full.c_str()), "the content id");
    check(sub == "rm" ? pd_cache_remove(h.s, &id) : pd_cache_pin(h.s, &id, sub == "pin"), sub + " " + full);
    return pd_cli::exit_ok;
}

// --server-passphrase: hex digits, as the bytes they spell.
std::vector<std::uint8_t> server_passphrase(const options &o) {
    auto pass = pd_cli::bytes_from_hex(o.passphrase);
    if (!pass) throw pd_cli::usage_error("--server-passphrase must be hex digits, an even number of them");
    return *pass;
}

int cmd_content_info(const options &o) {
    auto pass = server_passphrase(o);
    pd_buf out = PD_BUF_INIT;
    check(pd_content_info_generate(&out, o.file.c_str(), o.ci_version, pass.data(), pass.size()),
          "generating Content Information");
    std::string hex;
    static const char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < out.size; ++i) hex += {digits[out.ptr[i] >> 4], digits[out.ptr[i] & 15]};
    pd_buf_dispose(&out);
    if (o.json) print_json({{"version", o.ci_version}, {"content_information", hex}});
    else std::printf("%s\n", hex.c_str());
    return pd_cli::exit_ok;
}

int pd_main(int argc, char **argv) {
    // A host built against other headers than the library it loads must not run.
    if (pd_version() >> 16 != PD_VERSION_MAJOR || pd_version() < static_cast<std::uint32_t>(PD_VERSION_NUM)) {
        std::fprintf(stderr, "pd: libpeerdist %s is older than the headers %s\n", pd_version_string(), PD_VERSION_STRING);
        return pd_cli::exit_failed;
    }
    options o;
    agent_options ao;
    CLI::App app{"peerdist: publish and download content, verified block by block, shared across an office.", "pd"};
    app.set_version_flag("--version", std::string("pd ") + pd_version_string() + " (headers " + PD_VERSION_STRING + ")");
    app.require_subcommand(1);
    app.fallthrough();  // subcommands inherit it: `pd get M --agent A` reads as `pd --agent A get M`
    app.add_option("--agent", ao.address,
                   "Send the command to the pd-agent listening at ADDRESS (a Unix socket or \\\\.\\pipe\\NAME)")
        ->option_text("ADDRESS");
    app.footer("Exit status: 0 ok, 1 failed, 2 usage, 3 not found, 4 refused (trust or integrity), 5 unreachable, "
               "6 busy (docs/cli.md).");
    auto cache_opt = [&](CLI::App *c) {
        c->add_option("--cache", o.cache, "Cache folder (default $PEERDIST_CACHE, else ~/.cache/peerdist)");
    };
    auto json_flag = [&](CLI::App *c) { c->add_flag("--json", o.json, "Print the result as JSON on stdout"); };

    auto *key = app.add_subcommand("publisher-key", "Create a publisher key pair; print the public key");
    key->add_option("--out", o.out, "File for the secret key (created 0600)")->required();
    json_flag(key);

    auto *publish = app.add_subcommand("publish", "Hash a file, write its manifest (and a signed record); print the content id");
    publish->add_option("file", o.file, "The file to publish")->required()->check(CLI::ExistingFile);
    publish->add_option("--name", o.name, "The content's name (default: the file's)");
    publish->add_option("--origin", o.origin, "Where devices fetch it from (URL or path), recorded in the manifest");
    publish->add_option("--manifest", o.manifest_out, "Manifest file to write (default FILE.pdm)");
    publish->add_option("--sign", o.sign_key, "Sign a publication record (MANIFEST.sig) with this publisher key file")
        ->check(CLI::ExistingFile);
    publish->add_flag("--add-to-cache", o.add_to_cache, "Also put the content in the cache");
    cache_opt(publish);
    json_flag(publish);

    auto *get = app.add_subcommand("get", "Download a content, verified, with a progress bar");
    get->add_option("manifest", o.manifest,
                    "The content's manifest (.pdm), or the http(s):// URL of an origin answering PeerDist requests (pd serve)");
    get->add_option("--content", o.content, "The content id (64 hex digits), from the coordinator's catalogue");
    get->add_option("--coordinator", o.coordinator, "HOST:PORT of the coordinator (with --content)");
    get->add_option("--fleet-key", o.fleet_key_file, "The fleet key file (with --content)");
    get->add_option("--origin", o.origins, "Where to fetch it from, instead of what the manifest records");
    get->add_option("--dest", o.dest, "Deliver here (a hard link to the cache's file; see --copy); default: stay in the cache");
    get->add_flag("--copy", o.copy, "Deliver an independent copy (a second write)");
    get->add_option("--publication", o.publication, "The publication record (default MANIFEST.sig)");
    get->add_option("--publisher-key", o.publisher_keys, "A trusted publisher's public key (hex); repeatable");
    get->add_flag("--allow-unsigned", o.allow_unsigned, "Install content no trusted publisher signed");
    get->add_option("--plugins", o.plugins, "Plugin folder (default $PEERDIST_PLUGIN_DIR, else the installed one)");
    get->add_flag("--quiet,-q", o.quiet, "No progress bar");
    cache_opt(get);
    json_flag(get);

    auto *cache = app.add_subcommand("cache", "Inspect or change the local cache (without a verb: ls)");
    cache->require_subcommand(0, 1);
    cache_opt(cache);
    json_flag(cache);
    auto *ls = cache->add_subcommand("ls", "List the cached contents (creates nothing)");
    for (const char *verb : {"rm", "pin", "unpin"}) {
        auto *c = cache->add_subcommand(verb, std::string(verb == std::string("rm") ? "Remove" : verb == std::string("pin")
                                                                                                 ? "Pin (never evicted)"
                                                                                                 : "Unpin") +
                                                  " a cached content");
        c->add_option("id", o.id, "Its content id, or a unique prefix of 4 hex digits or more")->required();
    }
    (void)ls;

    auto *info = app.add_subcommand("content-info", "BranchCache Content Information of a file, as hex");
    info->add_option("file", o.file, "The file")->required()->check(CLI::ExistingFile);
    info->add_option("--version", o.ci_version, "Content Information version")->check(CLI::IsMember({1u, 2u}));
    info->add_option("--server-passphrase", o.passphrase, "The server passphrase, hex")->required();
    json_flag(info);

    auto *serve_cmd = app.add_subcommand("serve", "Serve a directory over HTTP as an origin that answers BranchCache "
                                                  "(PeerDist) requests with Content Information");
    serve_cmd->add_option("dir", o.serve.root, "The directory (nothing outside it is served)")->required();
    serve_cmd->add_option("--listen", o.serve.listen, "ip:port to listen on; port 0 picks one (default 127.0.0.1:8080)");
    serve_cmd->add_option("--server-passphrase", o.passphrase, "The server passphrase, hex (Content Information derives from it)")
        ->required();
    serve_cmd->add_option("--peerdist-min-size", o.serve.peerdist_min_size, "Smaller files are always sent as they are (default 65536)");
    serve_cmd->add_option("--max-connections", o.serve.max_connections, "Connections served at once (default 64)")
        ->check(CLI::Range(1u, 4096u));

    auto *version = app.add_subcommand("version", "Library and header versions");
    json_flag(version);

    auto *admin = app.add_subcommand("admin", "Administer a pd-coordinator");
    admin->add_option("--coordinator", o.coordinator, "HOST:PORT of the coordinator")->required();
    admin->add_option("--credential", o.credential, "Administrator credential file")->required();
    json_flag(admin);
    // The fleet key used to be accepted here; say what replaced it (hidden from --help).
    admin->add_option_function<std::string>("--key-file", [](const std::string &) {
           throw pd_cli::usage_error("the fleet key does not authorise admin operations: use --credential FILE "
                                     "(pd-coordinator init --admin-out, or pd-coordinator admin-key add)");
       })->group("");
    // Everything from OP on is the operation's own (its options too): pd_admin_run parses it.
    admin->prefix_command()->fallthrough(false);
    admin->footer("pd admin --coordinator HOST:PORT --credential FILE [--json] OP [ARGS...]\n" + pd_cli::admin_operations());

    // Commands only a running agent answers.
    auto *status = app.add_subcommand("status", "Jobs of the agent (--agent), redrawn until all are final");
    status->add_flag("--once", ao.once, "Print once and return");
    json_flag(status);
    std::vector<CLI::App *> job_commands;
    for (const char *verb : {"cancel", "pause", "resume"}) {
        auto *c = app.add_subcommand(verb, std::string("Ask the agent (--agent) to ") + verb + " a job");
        c->add_option("job", ao.job, "The job number")->required()->check(pd_cli::whole_number);
        job_commands.push_back(c);
    }
    auto *facts = app.add_subcommand("facts", "The agent's device facts (--agent), JSON");
    auto *call = app.add_subcommand("call", "Send one request of docs/agent.md to the agent (--agent); print the reply");
    call->add_option("request", ao.request, "The request, JSON")->required();

    return pd_cli::run(app, argc, argv, [&]() -> int {
        CLI::App *sub = app.get_subcommands().front();
        std::string name = sub->get_name();
        std::string verb = sub->get_subcommands().empty() ? "ls" : sub->get_subcommands().front()->get_name();
        bool agent_only = sub == status || sub == facts || sub == call ||
                          std::find(job_commands.begin(), job_commands.end(), sub) != job_commands.end();
        if (!ao.address.empty()) {
            ao.json = o.json;
            if (name == "get") {
                if (o.copy || !o.publisher_keys.empty() || o.allow_unsigned || !o.cache.empty() || !o.plugins.empty() ||
                    !o.coordinator.empty() || !o.fleet_key_file.empty() || o.origins.size() > 1)
                    throw pd_cli::usage_error("with --agent, get takes MANIFEST, a URL or --content, --origin, --dest, --publication: "
                                              "the agent's own configuration says the rest");
                ao.manifest = o.manifest, ao.content = o.content, ao.dest = o.dest, ao.publication = o.publication;
                ao.origin = o.origins.empty() ? "" : o.origins[0];
                return agent_command("get", ao);
            }
            if (name == "cache") {
                if (verb == "ls") return agent_command("cache", ao);
                if (verb == "rm") {
                    ao.content = o.id;
                    return agent_command("cache-rm", ao);
                }
                throw pd_cli::usage_error("the agent's cache takes ls and rm; pin with the agent's download request");
            }
            if (agent_only) return agent_command(name, ao);
            throw pd_cli::usage_error(name + " runs here, not in an agent: drop --agent");
        }
        if (agent_only) throw pd_cli::usage_error(name + " talks to a running agent: pd --agent ADDRESS " + name);
        if (name == "publisher-key") return cmd_publisher_key(o);
        if (name == "publish") return cmd_publish(o);
        if (name == "get") return cmd_get(o);
        if (name == "cache") return cmd_cache(verb, o);
        if (name == "content-info") return cmd_content_info(o);
        if (name == "serve") {
            o.serve.passphrase = server_passphrase(o);
            return serve(o.serve);
        }
        if (name == "admin") {
            // pd admin OP [ARGS]: a front end to the library's admin operation table.
            return pd_cli::run_admin(o.coordinator, o.credential, sub->remaining(), o.json, "pd admin --help");
        }
        if (o.json) print_json({{"pd", pd_version_string()}, {"headers", PD_VERSION_STRING}});
        else std::printf("pd %s (headers %s)\n", pd_version_string(), PD_VERSION_STRING);
        return pd_cli::exit_ok;
    });
}

}  // namespace
}  // namespace pd_tool

#ifdef _WIN32
// Windows hands arguments over in UTF-16 (wmain); the C ABI takes UTF-8, so paths outside
// the ANSI code page survive.
int wmain(int argc, wchar_t **wargv) {
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) args.push_back(std::filesystem::path(wargv[i]).u8string());
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return pd_tool::pd_main(argc, argv.data());
}
#else
int main(int argc, char **argv) { return pd_tool::pd_main(argc, argv); }
#endif
