// pd-agent on Windows: the same service (agent_service.h) behind a named pipe whose ACL
// admits SYSTEM and Administrators only, run by the Service Control Manager or in a
// console for debugging. One thread waits on the stop event, the session's event object,
// the listening pipe instance and each client's pending read (WaitForMultipleObjects).
//
//   pd-agent [--config FILE]                 in a console; Ctrl+C stops it
//                                            (FILE defaults to %ProgramData%\peerdist\agent.json)
//   pd-agent service install --config FILE   registers the "peerdist-agent" service (automatic start, LocalSystem)
//   pd-agent service uninstall               stops and removes it
//   pd-agent --service --config FILE         what the Service Control Manager runs
//
// The config's "control_socket" names the pipe (\\.\pipe\NAME). As a service the log goes
// to agent.log beside the config (a service has no console; JSON lines like the Linux
// journal's, readable without the Event Log's message resources).
#include "agent_service.h"
#include "cli.h"

#include <windows.h>
#include <sddl.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

using pd_agent::json;
using pd_agent::log;

namespace {

constexpr wchar_t service_name[] = L"peerdist-agent";
// WaitForMultipleObjects takes 64 handles: the stop event, the session's, the listening
// pipe's, and one per client.
constexpr std::size_t max_clients = MAXIMUM_WAIT_OBJECTS - 3;
// A reply the client does not take within this is its last.
constexpr DWORD write_timeout_ms = 5000;
constexpr DWORD pipe_buffer = 64 * 1024;

HANDLE stop_event = nullptr;

std::wstring wide(const std::string &utf8) { return std::filesystem::u8path(utf8).wstring(); }

std::string win_error(DWORD err) {
    wchar_t *buf = nullptr;
    DWORD n = ::FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                               err, 0, reinterpret_cast<wchar_t *>(&buf), 0, nullptr);
    std::string text = n ? std::filesystem::path(std::wstring(buf, n)).u8string() : "error " + std::to_string(err);
    if (buf) ::LocalFree(buf);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == '.')) text.pop_back();
    return text;
}

// One connected client: its pipe instance and the read pending on it.
struct client {
    HANDLE pipe = INVALID_HANDLE_VALUE;
    OVERLAPPED read{};
    char buf[pipe_buffer];
    std::string in;
    ~client() {
        if (pipe != INVALID_HANDLE_VALUE) {
            ::CancelIoEx(pipe, nullptr);
            ::CloseHandle(pipe);
        }
        if (read.hEvent) ::CloseHandle(read.hEvent);
    }
};

class control_loop {
public:
    explicit control_loop(pd_agent::service &s) : service_(s), name_(s.settings().control_socket) {}
    ~control_loop() {
        if (listening_ != INVALID_HANDLE_VALUE) {
            ::CancelIoEx(listening_, nullptr);
            ::CloseHandle(listening_);
        }
        if (connect_.hEvent) ::CloseHandle(connect_.hEvent);
        if (security_) ::LocalFree(security_);
    }

    int open() {
        if (name_.rfind("\\\\.\\pipe\\", 0) != 0) {
            log(PD_LOG_ERROR, "control_socket must name a pipe on Windows (\\\\.\\pipe\\NAME), not '" + name_ + "'");
            return 1;
        }
        // The pipe controls the device: SYSTEM and Administrators only, remote clients refused.
        if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P(A;;GA;;;SY)(A;;GA;;;BA)", SDDL_REVISION_1, &security_,
                                                                     nullptr)) {
            log(PD_LOG_ERROR, "building the control pipe's access list: " + win_error(::GetLastError()));
            return 1;
        }
        // A live agent answers on the pipe (its instance may also be busy): refused, as
        // FILE_FLAG_FIRST_PIPE_INSTANCE refuses it atomically where it is implemented.
        HANDLE probe = ::CreateFileW(wide(name_).c_str(), GENERIC_READ, 0, nullptr, OPEN_EXISTING, 0, nullptr);
        if (probe != INVALID_HANDLE_VALUE || ::GetLastError() == ERROR_PIPE_BUSY) {
            if (probe != INVALID_HANDLE_VALUE) ::CloseHandle(probe);
            log(PD_LOG_ERROR, "another agent is listening on '" + name_ + "'");
            return 1;
        }
        connect_.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        return listen(true) ? 0 : 1;
    }

    int run() {
        log(PD_LOG_INFO, "pd-agent ready", {{"version", pd_version_string()}, {"control_pipe", name_}});
        void *session_event = nullptr;
        pd_session_event_handle(&session_event, service_.session());
        for (;;) {
            std::vector<HANDLE> waits = {stop_event, static_cast<HANDLE>(session_event), connect_.hEvent};
            for (auto &c : clients_) waits.push_back(c->read.hEvent);
            DWORD r = ::WaitForMultipleObjects(static_cast<DWORD>(waits.size()), waits.data(), FALSE, 1000);
            if (r == WAIT_OBJECT_0) {
                log(PD_LOG_INFO, "stopping; verified blocks are kept");
                return 0;
            }
            if (r == WAIT_FAILED) {
                log(PD_LOG_ERROR, "waiting failed: " + win_error(::GetLastError()));
                return 1;
            }
            service_.drain_events();
            if (r == WAIT_OBJECT_0 + 2) accepted();
            if (r >= WAIT_OBJECT_0 + 3 && r < WAIT_OBJECT_0 + waits.size()) {
                std::size_t i = r - WAIT_OBJECT_0 - 3;
                if (!serve(*clients_[i])) clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
    }

private:
    // A new listening instance, its connect pending. The first one must be the pipe's first
    // instance: another agent holding the name is refused, not joined.
    bool listen(bool first) {
        SECURITY_ATTRIBUTES sa{sizeof sa, security_, FALSE};
        DWORD mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
        listening_ = ::CreateNamedPipeW(wide(name_).c_str(), mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                        PIPE_UNLIMITED_INSTANCES, pipe_buffer, pipe_buffer, 0, &sa);
        if (listening_ == INVALID_HANDLE_VALUE) {
            DWORD err = ::GetLastError();
            log(PD_LOG_ERROR, err == ERROR_ACCESS_DENIED && first ? "another agent is listening on '" + name_ + "'"
                                                                  : "cannot listen on '" + name_ + "': " + win_error(err));
            return false;
        }
        ::ResetEvent(connect_.hEvent);
        if (!::ConnectNamedPipe(listening_, &connect_)) {
            DWORD err = ::GetLastError();
            if (err == ERROR_PIPE_CONNECTED) ::SetEvent(connect_.hEvent);  // connected before the call
            else if (err != ERROR_IO_PENDING) {
                log(PD_LOG_ERROR, "cannot listen on '" + name_ + "': " + win_error(err));
                return false;
            }
        }
        return true;
    }

    void accepted() {
        auto c = std::make_unique<client>();
        c->pipe = std::exchange(listening_, INVALID_HANDLE_VALUE);
        if (!listen(false)) return;
        if (clients_.size() >= max_clients) {
            std::string busy = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
            write_reply(*c, busy);
            return;  // c closes
        }
        c->read.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        if (start_read(*c)) clients_.push_back(std::move(c));
    }

    bool start_read(client &c) {
        ::ResetEvent(c.read.hEvent);
        if (::ReadFile(c.pipe, c.buf, sizeof c.buf, nullptr, &c.read)) {
            ::SetEvent(c.read.hEvent);  // completed at once: the event says so
            return true;
        }
        return ::GetLastError() == ERROR_IO_PENDING;
    }

    // A client's read completed: its complete lines answered, the next read started. False
    // when the client is done (closed, broken, misbehaving).
    bool serve(client &c) {
        DWORD got = 0;
        if (!::GetOverlappedResult(c.pipe, &c.read, &got, FALSE) || got == 0) return false;
        c.in.append(c.buf, got);
        std::string out;
        std::size_t nl;
        while ((nl = c.in.find('\n')) != std::string::npos) {
            std::string line = c.in.substr(0, nl);
            c.in.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            out += service_.handle(line) + "\n";
        }
        bool keep = true;
        if (c.in.size() > pd_agent::max_request_bytes) {
            out += json{{"ok", false}, {"error", "request line longer than 1 MiB; closing"}}.dump() + "\n";
            keep = false;
        }
        if (!out.empty() && !write_reply(c, out)) return false;
        return keep && start_read(c);
    }

    // Writes a reply, waiting at most write_timeout_ms for a client that does not read.
    bool write_reply(client &c, const std::string &data) {
        OVERLAPPED w{};
        w.hEvent = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        std::unique_ptr<void, decltype(&::CloseHandle)> keep(w.hEvent, &::CloseHandle);
        for (std::size_t off = 0; off < data.size();) {
            DWORD wrote = 0;
            if (!::WriteFile(c.pipe, data.data() + off, static_cast<DWORD>(data.size() - off), nullptr, &w) &&
                ::GetLastError() != ERROR_IO_PENDING)
                return false;
            if (::WaitForSingleObject(w.hEvent, write_timeout_ms) != WAIT_OBJECT_0) {
                ::CancelIoEx(c.pipe, &w);
                ::GetOverlappedResult(c.pipe, &w, &wrote, TRUE);
                log(PD_LOG_WARN, "control client dropped: it did not read its reply");
                return false;
            }
            if (!::GetOverlappedResult(c.pipe, &w, &wrote, FALSE) || wrote == 0) return false;
            off += wrote;
        }
        return true;
    }

    pd_agent::service &service_;
    std::string name_;
    PSECURITY_DESCRIPTOR security_ = nullptr;
    HANDLE listening_ = INVALID_HANDLE_VALUE;
    OVERLAPPED connect_{};
    std::vector<std::unique_ptr<client>> clients_;
};

// The agent from its config to its stop: 0, 1 (could not start) or 2 (bad config).
int run_agent(const std::string &config_path, bool as_service) {
    pd_agent::agent_config cfg;
    if (!pd_agent::load_config_or_log(config_path, cfg)) return 2;
    if (as_service) {
        auto log_path = (std::filesystem::u8path(config_path).parent_path() / "agent.log").u8string();
        if (!pd_agent::set_log_file(log_path)) return 1;
    }
    pd_agent::service service(std::move(cfg));
    if (int rc = service.start(); rc != 0) return rc;
    control_loop loop(service);
    if (int rc = loop.open(); rc != 0) return rc;
    return loop.run();
}

BOOL WINAPI on_console_event(DWORD) {
    ::SetEvent(stop_event);
    return TRUE;
}

// ---- the Windows service ----

SERVICE_STATUS_HANDLE status_handle = nullptr;
std::string service_config;

void report(DWORD state, DWORD exit_code = NO_ERROR) {
    SERVICE_STATUS st{};
    st.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    st.dwCurrentState = state;
    st.dwControlsAccepted = state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
    st.dwWin32ExitCode = exit_code == NO_ERROR ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
    st.dwServiceSpecificExitCode = exit_code;
    st.dwWaitHint = state == SERVICE_RUNNING || state == SERVICE_STOPPED ? 0 : 30000;
    ::SetServiceStatus(status_handle, &st);
}

DWORD WINAPI on_service_control(DWORD control, DWORD, void *, void *) {
    if (control == SERVICE_CONTROL_STOP || control == SERVICE_CONTROL_SHUTDOWN) {
        report(SERVICE_STOP_PENDING);
        ::SetEvent(stop_event);
    }
    return NO_ERROR;
}

void WINAPI service_main(DWORD, wchar_t **) {
    status_handle = ::RegisterServiceCtrlHandlerExW(service_name, on_service_control, nullptr);
    if (!status_handle) return;
    report(SERVICE_START_PENDING);
    report(SERVICE_RUNNING);  // the session opens inside run_agent; a failure stops the service with its code
    int rc = run_agent(service_config, true);
    report(SERVICE_STOPPED, static_cast<DWORD>(rc));
}

std::wstring own_path() {
    std::wstring path(MAX_PATH, L'\0');
    for (;;) {
        DWORD n = ::GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
        if (n < path.size()) return path.substr(0, n);
        path.resize(path.size() * 2);
    }
}

int install_service(const std::string &config_path) {
    std::error_code ec;
    auto config = std::filesystem::absolute(std::filesystem::u8path(config_path), ec);
    if (ec || !std::filesystem::exists(config)) {
        std::fprintf(stderr, "pd-agent: config '%s' does not exist\n", config_path.c_str());
        return 2;
    }
    std::wstring command = L"\"" + own_path() + L"\" --service --config \"" + config.wstring() + L"\"";
    SC_HANDLE scm = ::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CREATE_SERVICE);
    if (!scm) {
        std::fprintf(stderr, "pd-agent: the Service Control Manager refused: %s\n", win_error(::GetLastError()).c_str());
        return 1;
    }
    SC_HANDLE svc = ::CreateServiceW(scm, service_name, L"peerdist agent", SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                                     SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, command.c_str(), nullptr, nullptr, nullptr, nullptr,
                                     nullptr);
    DWORD err = svc ? NO_ERROR : ::GetLastError();
    if (svc) ::CloseServiceHandle(svc);
    ::CloseServiceHandle(scm);
    if (err != NO_ERROR) {
        std::fprintf(stderr, "pd-agent: cannot install the service: %s\n", win_error(err).c_str());
        return 1;
    }
    std::printf("installed service 'peerdist-agent' (automatic start): %ls\n", command.c_str());
    return 0;
}

int uninstall_service() {
    SC_HANDLE scm = ::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT);
    SC_HANDLE svc = scm ? ::OpenServiceW(scm, service_name, SERVICE_STOP | DELETE | SERVICE_QUERY_STATUS) : nullptr;
    DWORD err = svc ? NO_ERROR : ::GetLastError();
    if (svc) {
        SERVICE_STATUS st{};
        ::ControlService(svc, SERVICE_CONTROL_STOP, &st);
        if (!::DeleteService(svc)) err = ::GetLastError();
        ::CloseServiceHandle(svc);
    }
    if (scm) ::CloseServiceHandle(scm);
    if (err != NO_ERROR) {
        std::fprintf(stderr, "pd-agent: cannot remove the service: %s\n", win_error(err).c_str());
        return 1;
    }
    std::printf("removed service 'peerdist-agent'\n");
    return 0;
}

}  // namespace

int wmain(int argc, wchar_t **wargv) {
    if (pd_version() >> 16 != PD_VERSION_MAJOR || pd_version() < static_cast<uint32_t>(PD_VERSION_NUM)) {
        std::fprintf(stderr, "pd-agent: libpeerdist %s is older than the headers %s\n", pd_version_string(), PD_VERSION_STRING);
        return pd_cli::exit_failed;
    }
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) args.push_back(std::filesystem::path(wargv[i]).u8string());
    std::vector<const char *> argv;
    for (auto &a : args) argv.push_back(a.c_str());
    // Without --config: %ProgramData%\peerdist\agent.json, where an installer puts it.
    std::string config_path;
    wchar_t data[MAX_PATH];
    DWORD n = ::GetEnvironmentVariableW(L"ProgramData", data, MAX_PATH);
    if (n > 0 && n < MAX_PATH) config_path = (std::filesystem::path(std::wstring(data, n)) / L"peerdist" / L"agent.json").u8string();
    bool as_service = false;
    CLI::App app{"pd-agent: the peerdist device agent, in a console or as the Windows service 'peerdist-agent'.", "pd-agent"};
    app.set_version_flag("--version", std::string("pd-agent ") + pd_version_string());
    app.fallthrough();
    app.add_option("--config,-c", config_path, "The agent's configuration (JSON)")->capture_default_str();
    app.add_flag("--service", as_service, "Run under the Service Control Manager (what the installed service does)");
    app.footer("Exit status: 0 stopped cleanly, 1 failed, 2 usage or configuration (docs/cli.md).");
    auto *service = app.add_subcommand("service", "Install or remove the Windows service");
    service->require_subcommand(1);
    auto *install = service->add_subcommand("install", "Install the service (automatic start) with --config");
    auto *uninstall = service->add_subcommand("uninstall", "Stop and remove the service");
    return pd_cli::run(app, argc, argv.data(), [&]() -> int {
        if (install->parsed()) {
            if (config_path.empty()) throw pd_cli::usage_error("service install needs --config FILE");
            return install_service(config_path);
        }
        if (uninstall->parsed()) return uninstall_service();
        if (config_path.empty()) throw pd_cli::usage_error("no --config FILE and no %ProgramData%");
        stop_event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        if (as_service) {
            service_config = config_path;
            SERVICE_TABLE_ENTRYW table[] = {{const_cast<wchar_t *>(service_name), service_main}, {nullptr, nullptr}};
            if (!::StartServiceCtrlDispatcherW(table))
                throw pd_cli::failure(pd_cli::exit_failed,
                                      "--service is for the Service Control Manager: " + win_error(::GetLastError()));
            return pd_cli::exit_ok;
        }
        ::SetConsoleCtrlHandler(on_console_event, TRUE);
        return run_agent(config_path, false);
    });
}
