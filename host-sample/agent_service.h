// pd-agent's service, whatever carries its commands: the session (opened from the config,
// plugins loaded), the control commands of docs/agent.md answered one request line at a
// time, and the session's events written to the log. The control transport and the process
// around it are per platform: pd_agent_posix.cpp (a Unix socket, signals) and
// pd_agent_win32.cpp (a named pipe, a console or a Windows service).
#pragma once

#include "agent_protocol.h"

#include <peerdist.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pd_agent {

// Structured log lines (one JSON object per line) to standard error, or to the file
// set_log_file() opened; lines above the level are dropped.
void set_log_level(int level);
// Appends the log to `path` from now on (Windows services have no standard error).
// Returns false when it cannot be opened.
bool set_log_file(const std::string &path);
void log(int level, const std::string &msg, const json &extra = json::object());

// The config file at `path`, parsed and checked; its fleet key file read. Throws input_error.
struct agent_config {
    config file;
    std::vector<uint8_t> fleet_key;
};
agent_config load_config(const std::string &path);
// load_config() for a program's start: false after logging why it cannot (the caller exits
// with status 2); on success the log level is the config's.
bool load_config_or_log(const std::string &path, agent_config &out);

class service {
public:
    explicit service(agent_config c);
    ~service();
    service(const service &) = delete;
    service &operator=(const service &) = delete;

    // Opens the session, applies the settings and device facts, loads the plugins. 0, or 1
    // after logging why.
    int start();
    pd_session *session() const { return session_; }
    const config &settings() const { return cfg_; }
    // One request line in, its reply (a JSON object, without the newline) out. Never throws:
    // a bad request is answered with "ok": false.
    std::string handle(const std::string &line);
    // Writes the session's queued events to the log (call when its wake-up handle fires).
    void drain_events();

private:
    int fatal(const char *what);
    int import_content(const pd_manifest *m, const std::string &manifest_path, const std::string &record_path,
                       const std::string &origin);
    std::optional<json> record_content_info(const pd_content_id &id, const json &req);
    json start_download(const pd_content_id &cid, const json &req);
    json job_json(uint64_t id);
    json dispatch(const std::string &cmd, const json &req);

    config cfg_;
    std::vector<uint8_t> fleet_key_;
    pd_session *session_ = nullptr;
};

}  // namespace pd_agent
