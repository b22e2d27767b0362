// pd-agent: the sample host agent a vendor copies from. A daemon that embeds the SDK
// through the C ABI only: reads a JSON config, opens a session on its cache, loads the
// backend plugins it is told to, and takes commands over a local control socket (a Unix
// domain socket speaking newline-delimited JSON, docs/agent.md). One thread: a poll()
// loop over the control socket, its clients, the session's event fd and a signal pipe.
//
//   pd-agent --config /etc/peerdist/agent.json
#include "agent_protocol.h"

#include <peerdist.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

using pd_agent::json;

namespace {

using pd_agent::max_request_bytes;
constexpr std::size_t max_clients = 64;
// Replies queued for a client that does not read: no more requests are read from it past this.
constexpr std::size_t max_reply_bytes = 4 << 20;

int signal_pipe[2] = {-1, -1};
void on_signal(int sig) {
    unsigned char c = static_cast<unsigned char>(sig);
    (void)!::write(signal_pipe[1], &c, 1);
}

int log_level = PD_LOG_INFO;

void log(int level, const std::string &msg, const json &extra = json::object()) {
    if (level > log_level) return;
    json line = extra;
    line["level"] = pd_agent::level_names[level];
    line["msg"] = msg;
    std::fprintf(stderr, "%s\n", line.dump().c_str());
    std::fflush(stderr);
}

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

// The config file at `path`, parsed and checked; its fleet key file read.
struct agent_config {
    pd_agent::config file;
    std::vector<uint8_t> fleet_key;
};

agent_config load_config(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw pd_agent::input_error("cannot read config '" + path + "': " + std::strerror(errno));
    std::string text(pd_agent::max_config_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > pd_agent::max_config_bytes)
        throw pd_agent::input_error("config '" + path + "' is larger than " + std::to_string(pd_agent::max_config_bytes >> 10) + " KiB");
    agent_config c{pd_agent::parse_config(text, path), {}};
    if (!c.file.fleet_key_file.empty()) {
        c.fleet_key.resize(32);
        if (pd_fleet_key_read_file(c.fleet_key.data(), c.file.fleet_key_file.c_str()) != PD_OK)
            throw pd_agent::input_error(pd_error_last()->message);
    }
    return c;
}

struct client {
    int fd;
    std::string in, out;
    bool closing = false;
};

class agent {
public:
    explicit agent(agent_config c) : cfg_(std::move(c.file)), fleet_key_(std::move(c.fleet_key)) {}
    ~agent() {
        for (auto &cl : clients_) ::close(cl.fd);
        if (listen_fd_ >= 0) {
            ::close(listen_fd_);
            ::unlink(cfg_.control_socket.c_str());
        }
        pd_session_free(session_);
    }

    int start() {
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
        if (!cfg_.plugin_dir.empty() && pd_session_load_plugin(session_, cfg_.plugin_dir.c_str()) != PD_OK)
            return fatal(("loading plugins from '" + cfg_.plugin_dir + "'").c_str());
        return open_control_socket();
    }

    int run() {
        log(PD_LOG_INFO, "pd-agent ready", {{"version", pd_version_string()}, {"control_socket", cfg_.control_socket}});
        int event_fd = -1;
        pd_session_event_fd(&event_fd, session_);
        for (;;) {
            std::vector<pollfd> fds = {{signal_pipe[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}, {event_fd, POLLIN, 0}};
            for (auto &c : clients_)
                fds.push_back({c.fd, static_cast<short>((c.out.size() < max_reply_bytes ? POLLIN : 0) | (c.out.empty() ? 0 : POLLOUT)), 0});
            if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return 1;
            if (fds[0].revents & POLLIN) {
                unsigned char sig = 0;
                (void)!::read(signal_pipe[0], &sig, 1);
                log(PD_LOG_INFO, "stopping on signal; verified blocks are kept", {{"signal", sig}});
                return 0;
            }
            if (fds[1].revents & POLLIN) accept_client();
            drain_events();
            for (std::size_t i = 3; i < fds.size(); ++i) service(clients_[i - 3], fds[i].revents);
            clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                          [](const client &c) {
                                              if (c.closing && c.out.empty()) ::close(c.fd);
                                              return c.closing && c.out.empty();
                                          }),
                           clients_.end());
        }
    }

private:
    int fatal(const char *what) {
        const pd_error *e = pd_error_last();
        log(PD_LOG_ERROR, std::string(what) + ": " + e->message, {{"code", e->code}});
        return 1;
    }

    int open_control_socket() {
        sockaddr_un addr{};
        if (cfg_.control_socket.size() >= sizeof addr.sun_path) {
            log(PD_LOG_ERROR, "control socket path is too long");
            return 1;
        }
        // A live agent answers on the socket; a stale file from a crash is replaced.
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, cfg_.control_socket.c_str());
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::connect(probe, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0) {
            ::close(probe);
            log(PD_LOG_ERROR, "another agent is listening on '" + cfg_.control_socket + "'");
            return 1;
        }
        ::close(probe);
        ::unlink(cfg_.control_socket.c_str());
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        // The socket controls the device: created owner-only (no window between bind and a
        // chmod in which another user could connect).
        mode_t old = ::umask(0177);
        int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
        ::umask(old);
        if (rc != 0 || ::listen(listen_fd_, 16) != 0) {
            log(PD_LOG_ERROR, "cannot listen on '" + cfg_.control_socket + "': " + std::strerror(errno));
            return 1;
        }
        return 0;
    }

    void accept_client() {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        // Only this agent's own user (or root) may control it, whatever the socket's mode.
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != ::getuid() && cred.uid != 0)) {
            log(PD_LOG_WARN, "control connection refused: another user", {{"uid", static_cast<long long>(cred.uid)}});
            ::close(fd);
            return;
        }
        if (clients_.size() >= max_clients) {
            const char *busy = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
            (void)!::write(fd, busy, std::strlen(busy));
            ::close(fd);
            return;
        }
        clients_.push_back({fd, "", "", false});
    }

    void service(client &c, short revents) {
        if ((revents & (POLLIN | POLLHUP | POLLERR)) && c.out.size() < max_reply_bytes) {
            char buf[65536];
            ssize_t n = ::read(c.fd, buf, sizeof buf);
            if (n <= 0) {
                c.closing = true;
                c.out.clear();
                return;
            }
            c.in.append(buf, static_cast<std::size_t>(n));
            std::size_t nl;
            while (!c.closing && (nl = c.in.find('\n')) != std::string::npos) {
                std::string line = c.in.substr(0, nl);
                c.in.erase(0, nl + 1);
                c.out += handle(line).dump() + "\n";
            }
            if (c.in.size() > max_request_bytes) {
                c.out += json{{"ok", false}, {"error", "request line longer than 1 MiB; closing"}}.dump() + "\n";
                c.in.clear();
                c.closing = true;
            }
        }
        if (!c.out.empty()) {
            ssize_t n = ::write(c.fd, c.out.data(), c.out.size());
            if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
            else if (n < 0 && errno != EAGAIN) c.out.clear(), c.closing = true;
        }
    }

    void drain_events() {
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
    int import_content(const pd_manifest *m, const std::string &manifest_path, const std::string &record_path, const std::string &origin) {
        return pd_content_import_with_record_file(session_, m, origin.empty() ? nullptr : origin.c_str(), manifest_path.c_str(),
                                                  record_path.empty() ? nullptr : record_path.c_str());
    }

    static json error_reply(const std::string &what) {
        const pd_error *e = pd_error_last();
        return {{"ok", false}, {"code", e->code}, {"error", what + ": " + e->message}};
    }

    json job_json(uint64_t id) {
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

    json handle(const std::string &line) {
        json id;
        json reply;
        try {
            auto req = pd_agent::parse_request(line, &id);
            reply = dispatch(req.cmd, req.args);
        } catch (const pd_agent::input_error &e) {
            reply = {{"ok", false}, {"error", e.what()}};
        } catch (const std::exception &e) {  // a bug, not the client's: answered, never fatal
            log(PD_LOG_ERROR, std::string("control request failed: ") + e.what());
            reply = {{"ok", false}, {"error", std::string("internal error: ") + e.what()}};
        }
        if (!id.is_null()) reply["id"] = id;
        return reply;
    }

    // `req` holds only the command's arguments, each of its type (pd_agent::parse_request).
    json dispatch(const std::string &cmd, const json &req) {
        if (cmd == "version") return {{"ok", true}, {"version", pd_version_string()}};
        if (cmd == "download") {
            std::string manifest_path = req.at("manifest").get<std::string>();
            pd_manifest *m = nullptr;
            if (pd_manifest_read_file(&m, manifest_path.c_str()) != PD_OK) return error_reply("manifest");
            std::string id = hex(pd_manifest_id(m));  // before the calls whose error the reply reports
            std::string origin = req.value("origin", "");
            std::string dest = req.value("dest", "");
            int rc = import_content(m, manifest_path, req.value("publication", ""), origin);
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
                if (pd_session_set_setting(session_, key.c_str(), pd_agent::setting_text(req["value"], key).c_str()) != PD_OK)
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

    pd_agent::config cfg_;
    std::vector<uint8_t> fleet_key_;
    pd_session *session_ = nullptr;
    int listen_fd_ = -1;
    std::vector<client> clients_;
};

}  // namespace

int main(int argc, char **argv) {
    if (pd_version() >> 16 != PD_VERSION_MAJOR || pd_version() < static_cast<uint32_t>(PD_VERSION_NUM)) {
        std::fprintf(stderr, "pd-agent: libpeerdist %s is older than the headers %s\n", pd_version_string(), PD_VERSION_STRING);
        return 1;
    }
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--config" || a == "-c") && i + 1 < argc) config_path = argv[++i];
        else if (a == "--version") {
            std::printf("pd-agent %s\n", pd_version_string());
            return 0;
        } else {
            std::fprintf(stderr, "usage: pd-agent --config FILE\n");
            return 2;
        }
    }
    if (config_path.empty()) {
        std::fprintf(stderr, "usage: pd-agent --config FILE\n");
        return 2;
    }
    agent_config cfg;
    try {
        cfg = load_config(config_path);
    } catch (const pd_agent::input_error &e) {
        log(PD_LOG_ERROR, e.what());
        return 2;
    }
    log_level = cfg.file.log_level;
    if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    agent a(std::move(cfg));
    int rc = a.start();
    if (rc != 0) return rc;
    return a.run();
}
