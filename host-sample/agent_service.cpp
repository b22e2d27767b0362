#include "agent_service.h"

#include "cli.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace pd_agent {

namespace {

int log_level = PD_LOG_INFO;
std::FILE *log_out = nullptr;  // null: standard error

std::string hex(const pd_content_id *id) {
    char h[65];
    pd_content_id_to_hex(h, id);
    return h;
}

json by_source(const pd_job_status &st) {
    json out = json::object();
    for (uint32_t c = 0; c < PD_SOURCE_CLASS_COUNT; ++c) out[pd_source_class_name(c)] = st.bytes_by_source[c];
    return out;
}

json error_reply(const std::string &what) {
    const pd_error *e = pd_error_last();
    return {{"ok", false}, {"code", e->code}, {"error", what + ": " + e->message}};
}

// A content's BranchCache Content Information from a file: as `pd content-info` prints it
// (hexadecimal) or the raw bytes. Bounded: 64 MiB of bytes describe a 128 GiB content.
bool read_content_info(const std::string &path, std::vector<std::uint8_t> &out, std::string &why) {
    constexpr std::size_t max_bytes = 64u << 20;
    std::ifstream in(std::filesystem::u8path(path), std::ios::binary);
    if (!in) return why = "cannot read '" + path + "': " + std::strerror(errno), false;
    std::string text(2 * max_bytes + 2, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    if (auto hex = pd_cli::bytes_from_hex(text); hex && !text.empty()) {
        out = std::move(*hex);
        return true;
    }
    if (text.size() > max_bytes) return why = "'" + path + "' is larger than 64 MiB", false;
    out.assign(text.begin(), text.end());
    return true;
}

}  // namespace

void set_log_level(int level) { log_level = level; }

bool set_log_file(const std::string &path) {
#ifdef _WIN32
    std::FILE *f = _wfopen(std::filesystem::u8path(path).c_str(), L"a");
#else
    std::FILE *f = std::fopen(path.c_str(), "a");
#endif
    if (!f) return false;
    log_out = f;
    return true;
}

void log(int level, const std::string &msg, const json &extra) {
    if (level > log_level) return;
    json line = extra;
    line["level"] = level_names[level];
    line["msg"] = msg;
    std::FILE *out = log_out ? log_out : stderr;
    std::fprintf(out, "%s\n", line.dump().c_str());
    std::fflush(out);
}

agent_config load_config(const std::string &path) {
    std::ifstream in(std::filesystem::u8path(path), std::ios::binary);
    if (!in) throw input_error("cannot read config '" + path + "': " + std::strerror(errno));
    std::string text(max_config_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_config_bytes)
        throw input_error("config '" + path + "' is larger than " + std::to_string(max_config_bytes >> 10) + " KiB");
    agent_config c{parse_config(text, path), {}};
    if (!c.file.fleet_key_file.empty()) {
        c.fleet_key.resize(32);
        if (pd_fleet_key_read_file(c.fleet_key.data(), c.file.fleet_key_file.c_str()) != PD_OK)
            throw input_error(pd_error_last()->message);
    }
    return c;
}

bool load_config_or_log(const std::string &path, agent_config &out) {
    try {
        out = load_config(path);
    } catch (const input_error &e) {
        log(PD_LOG_ERROR, e.what());
        return false;
    }
    set_log_level(out.file.log_level);
    return true;
}

service::service(agent_config c) : cfg_(std::move(c.file)), fleet_key_(std::move(c.fleet_key)) {}

service::~service() { pd_session_free(session_); }

int service::start() {
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = cfg_.cache_dir.c_str();
    o.cache_quota_bytes = cfg_.quota_bytes;
    o.cache_quota_percent = cfg_.quota_percent;
    o.fleet_key = fleet_key_.empty() ? nullptr : fleet_key_.data();
    o.fleet_key_len = fleet_key_.size();
    o.listen_addresses = cfg_.listen.empty() ? nullptr : cfg_.listen.c_str();
    if (pd_session_new(&session_, &o) != PD_OK) return fatal("cannot open the cache");
    for (auto &[k, v] : cfg_.settings)
        if (pd_session_set_setting(session_, k.c_str(), v.c_str()) != PD_OK) return fatal(("setting '" + k + "'").c_str());
    if (cfg_.device.any()) {
        pd_device_facts f{};
        f.struct_size = sizeof f;
        f.free_bytes = cfg_.device.free_bytes.value_or(UINT64_MAX);
        f.usable_free_bytes = UINT64_MAX;
        f.uptime_seconds = cfg_.device.uptime_seconds.value_or(UINT64_MAX);
        f.chassis = cfg_.device.chassis.value_or(-1);
        f.os_type = cfg_.device.os_type.value_or(-1);
        if (pd_session_set_device_facts(session_, &f) != PD_OK) return fatal("device facts");
    }
    // No plugin_dir: the installed SDK's own plugins (pd_plugin_dir_default).
    const char *plugins = cfg_.plugin_dir.empty() ? nullptr : cfg_.plugin_dir.c_str();
    if (pd_session_load_plugin(session_, plugins) != PD_OK)
        return fatal(("loading plugins from '" + std::string(plugins ? plugins : pd_plugin_dir_default()) + "'").c_str());
    return 0;
}

int service::fatal(const char *what) {
    const pd_error *e = pd_error_last();
    log(PD_LOG_ERROR, std::string(what) + ": " + e->message, {{"code", e->code}});
    return 1;
}

void service::drain_events() {
    pd_event ev[64];
    size_t n = 0;
    while (pd_session_poll_events(session_, ev, sizeof(pd_event), 64, &n) == PD_OK && n) {
        for (size_t i = 0; i < n; ++i) {
            const pd_event &e = ev[i];
            int level = e.type == PD_EVENT_JOB_FAILED ? PD_LOG_ERROR
                        : e.type == PD_EVENT_JOB_PROGRESS ? PD_LOG_DEBUG
                        : e.type == PD_EVENT_LOG ? static_cast<int>(e.count)
                                                 : PD_LOG_INFO;
            log(level, e.message, {{"event", pd_event_type_name(e.type)}, {"job", e.job_id}, {"code", e.error_code}});
        }
    }
}

// The publisher's record goes with the manifest: the one named, else MANIFEST.sig when it
// exists; without one, the session's trust rules decide (trust.allow_unsigned).
int service::import_content(const pd_manifest *m, const std::string &manifest_path, const std::string &record_path, const std::string &origin) {
    return pd_content_import_with_record_file(session_, m, origin.empty() ? nullptr : origin.c_str(), manifest_path.c_str(),
                                              record_path.empty() ? nullptr : record_path.c_str());
}

json service::job_json(uint64_t id) {
    pd_job_status st{};
    st.struct_size = sizeof st;
    if (pd_job_status_get(&st, session_, id) != PD_OK) return nullptr;
    return {{"job", id},
            {"state", pd_job_state_name(st.state)},
            {"content", hex(&st.content)},
            {"bytes_total", st.bytes_total},
            {"bytes_verified", st.bytes_verified},
            {"bytes_by_source", by_source(st)},
            {"source_fallbacks", st.source_fallbacks},
            {"blocks_rejected", st.blocks_rejected},
            {"error_code", st.error_code},
            {"started_ms", st.started_ms},
            {"finished_ms", st.finished_ms},
            {"message", st.message}};
}

std::string service::handle(const std::string &line) {
    json id;
    json reply;
    try {
        auto req = parse_request(line, &id);
        reply = dispatch(req.cmd, req.args);
    } catch (const input_error &e) {
        reply = {{"ok", false}, {"error", e.what()}};
    } catch (const std::exception &e) {  // a bug, not the client's: answered, never fatal
        log(PD_LOG_ERROR, std::string("control request failed: ") + e.what());
        reply = {{"ok", false}, {"error", std::string("internal error: ") + e.what()}};
    }
    if (!id.is_null()) reply["id"] = id;
    return reply.dump();
}

// A download's `content_info`, its BranchCache identity (the origin's Content Information):
// the branchcache backend's wire mode then fetches it from Windows peers and answers for it.
// The error reply, or nothing when recorded or not asked for.
std::optional<json> service::record_content_info(const pd_content_id &id, const json &req) {
    if (!req.contains("content_info")) return std::nullopt;
    std::vector<std::uint8_t> info;
    std::string why;
    if (!read_content_info(req.at("content_info").get<std::string>(), info, why))
        return json{{"ok", false}, {"code", PD_E_INVALID}, {"error", "content_info: " + why}};
    if (pd_content_set_branchcache_info(session_, &id, info.data(), info.size()) != PD_OK) return error_reply("content_info");
    return std::nullopt;
}

// Starts the job of a download the session knows now; the reply names it.
json service::start_download(const pd_content_id &cid, const json &req) {
    std::string dest = req.value("dest", "");
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = dest.empty() ? nullptr : dest.c_str();
    jo.pin = req.value("pin", false);
    uint64_t job = 0;
    int rc = pd_job_start(&job, session_, &cid, &jo);
    if (rc == PD_E_EXISTS) return {{"ok", true}, {"job", job}, {"content", hex(&cid)}, {"existing", true}};
    if (rc != PD_OK) return error_reply("download");
    return {{"ok", true}, {"job", job}, {"content", hex(&cid)}};
}

// `req` holds only the command's arguments, each of its type (parse_request).
json service::dispatch(const std::string &cmd, const json &req) {
    if (cmd == "version") return {{"ok", true}, {"version", pd_version_string()}};
    if (cmd == "download" && req.contains("url")) {
        // From a URL alone: its origin's Content Information describes it (PeerDist).
        pd_content_id cid;
        if (pd_content_import_from_origin(&cid, session_, req.at("url").get<std::string>().c_str(), nullptr) != PD_OK)
            return error_reply("url");
        return start_download(cid, req);
    }
    if (cmd == "download" && req.contains("content")) {
        // From the content id alone: the coordinator's catalogue describes it (blocking, up to
        // the hierarchy plugin's timeout_ms).
        pd_content_id cid;
        if (pd_content_id_from_hex(&cid, req.at("content").get<std::string>().c_str()) != PD_OK) return error_reply("content");
        if (pd_content_resolve(session_, &cid) != PD_OK) return error_reply("download");
        if (auto refused = record_content_info(cid, req)) return *refused;
        return start_download(cid, req);
    }
    if (cmd == "download") {
        std::string manifest_path = req.at("manifest").get<std::string>();
        pd_manifest *m = nullptr;
        if (pd_manifest_read_file(&m, manifest_path.c_str()) != PD_OK) return error_reply("manifest");
        std::string id = hex(pd_manifest_id(m));  // before the calls whose error the reply reports
        std::string origin = req.value("origin", "");
        std::string dest = req.value("dest", "");
        int rc = import_content(m, manifest_path, req.value("publication", ""), origin);
        if (rc == PD_OK) {
            if (auto refused = record_content_info(*pd_manifest_id(m), req)) {
                pd_manifest_free(m);
                return *refused;
            }
        }
        uint64_t job = 0;
        if (rc == PD_OK) {
            pd_job_options jo = PD_JOB_OPTIONS_INIT;
            jo.destination = dest.empty() ? nullptr : dest.c_str();
            jo.pin = req.value("pin", false);
            rc = pd_job_start(&job, session_, pd_manifest_id(m), &jo);
        }
        pd_manifest_free(m);
        if (rc == PD_E_EXISTS) return {{"ok", true}, {"job", job}, {"content", id}, {"existing", true}};
        if (rc != PD_OK) return error_reply("download");
        return {{"ok", true}, {"job", job}, {"content", id}};
    }
    if (cmd == "jobs") {
        size_t n = 0;
        pd_job_list(session_, nullptr, &n);
        std::vector<uint64_t> ids(n);
        pd_job_list(session_, ids.data(), &n);
        json list = json::array();
        for (size_t i = 0; i < n; ++i) list.push_back(job_json(ids[i]));
        return {{"ok", true}, {"jobs", list}};
    }
    if (cmd == "job") {
        json j = job_json(req.at("job").get<uint64_t>());
        if (j.is_null()) return error_reply("job");
        return {{"ok", true}, {"status", j}};
    }
    if (cmd == "cancel" || cmd == "pause" || cmd == "resume") {
        uint64_t job = req.at("job").get<uint64_t>();
        int rc = cmd == "cancel" ? pd_job_cancel(session_, job)
                 : cmd == "pause" ? pd_job_pause(session_, job)
                                  : pd_job_resume(session_, job);
        if (rc != PD_OK) return error_reply(cmd);
        return {{"ok", true}};
    }
    if (cmd == "cache") {
        size_t n = 0;
        pd_cache_list(session_, nullptr, sizeof(pd_cache_entry), &n);
        std::vector<pd_cache_entry> es(n + 4);
        for (auto &e : es) e.struct_size = sizeof e;
        n = es.size();
        if (pd_cache_list(session_, es.data(), sizeof(pd_cache_entry), &n) != PD_OK) return error_reply("cache");
        json list = json::array();
        for (size_t i = 0; i < n; ++i)
            list.push_back({{"content", hex(&es[i].id)},
                            {"name", es[i].name},
                            {"state", pd_cache_state_name(es[i].state)},
                            {"size", es[i].size},
                            {"bytes_verified", es[i].bytes_verified},
                            {"pinned", es[i].pinned != 0}});
        return {{"ok", true}, {"cache", list}};
    }
    if (cmd == "evict") {
        pd_content_id id;
        if (pd_content_id_from_hex(&id, req.at("content").get<std::string>().c_str()) != PD_OK) return error_reply("evict");
        if (pd_cache_remove(session_, &id) != PD_OK) return error_reply("evict");
        return {{"ok", true}};
    }
    if (cmd == "facts") {
        pd_device_facts f{};
        f.struct_size = sizeof f;
        if (pd_session_device_facts(&f, session_) != PD_OK) return error_reply("facts");
        static const char *chassis[] = {"unknown", "desktop", "laptop", "server"};
        static const char *os[] = {"unknown", "workstation", "server"};
        pd_buf listen = PD_BUF_INIT;
        pd_session_listen_addresses(&listen, session_);
        std::string bound = listen.ptr ? std::string(reinterpret_cast<char *>(listen.ptr), listen.size) : "";
        pd_buf_dispose(&listen);
        pd_session_stats st{};
        st.struct_size = sizeof st;
        if (pd_session_get_stats(&st, session_) != PD_OK) return error_reply("stats");
        return {{"ok", true},
                {"listen", bound},
                {"serving",
                 {{"bytes_uploaded", st.bytes_uploaded},
                  {"blocks_uploaded", st.blocks_uploaded},
                  {"peer_connections", st.peer_connections},
                  {"peers_refused", st.peers_refused},
                  {"connections_open", st.connections_open},
                  {"wan_budget_bytes", st.wan_budget_bytes}}},
                {"facts",
                 {{"free_bytes", f.free_bytes},
                  {"usable_free_bytes", f.usable_free_bytes},
                  {"chassis", chassis[f.chassis & 3]},
                  {"os_type", os[f.os_type % 3]},
                  {"uptime_seconds", f.uptime_seconds}}}};
    }
    if (cmd == "setting") {
        std::string key = req.at("key").get<std::string>();
        if (req.contains("value")) {
            if (pd_session_set_setting(session_, key.c_str(), setting_text(req["value"], key).c_str()) != PD_OK)
                return error_reply("setting");
        }
        pd_buf b = PD_BUF_INIT;
        if (pd_session_get_setting(&b, session_, key.c_str()) != PD_OK) return error_reply("setting");
        json r = {{"ok", true}, {"key", key}, {"value", std::string(reinterpret_cast<char *>(b.ptr), b.size)}};
        pd_buf_dispose(&b);
        return r;
    }
    return {{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

}  // namespace pd_agent
