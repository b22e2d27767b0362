// pd-agent on POSIX: the sample host agent a vendor copies from (docs/agent.md). A daemon
// that embeds the SDK through the C ABI only (agent_service.h) and takes commands over a
// local control socket: a Unix domain socket, owner-only, speaking newline-delimited JSON.
// One thread: a poll() loop over the control socket, its clients, the session's event fd
// and a signal pipe.
//
//   pd-agent --config /etc/peerdist/agent.json
#include "agent_link.h"
#include "agent_service.h"
#include "cli.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

using pd_agent::json;
using pd_agent::log;

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

struct client {
    int fd;
    std::string in, out;
    bool closing = false;
};

class control_loop {
public:
    explicit control_loop(pd_agent::service &s) : service_(s), path_(s.settings().control_socket) {}
    ~control_loop() {
        for (auto &cl : clients_) ::close(cl.fd);
        if (listen_fd_ >= 0) {
            ::close(listen_fd_);
            ::unlink(path_.c_str());
        }
    }

    int open() {
        sockaddr_un addr{};
        if (path_.size() >= sizeof addr.sun_path) {
            log(PD_LOG_ERROR, "control socket path is too long");
            return 1;
        }
        // A live agent answers on the socket (what `pd --agent` connects with); a stale file
        // from a crash is replaced.
        try {
            pd_agent::agent_link probe(path_);
            log(PD_LOG_ERROR, "another agent is listening on '" + path_ + "'");
            return 1;
        } catch (const std::runtime_error &) {
        }
        ::unlink(path_.c_str());
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path_.c_str());
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        // The socket controls the device: created owner-only (no window between bind and a
        // chmod in which another user could connect).
        mode_t old = ::umask(0177);
        int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
        ::umask(old);
        if (rc != 0 || ::listen(listen_fd_, 16) != 0) {
            log(PD_LOG_ERROR, "cannot listen on '" + path_ + "': " + std::strerror(errno));
            return 1;
        }
        return 0;
    }

    int run() {
        log(PD_LOG_INFO, "pd-agent ready", {{"version", pd_version_string()}, {"control_socket", path_}});
        int event_fd = -1;
        pd_session_event_fd(&event_fd, service_.session());
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
            service_.drain_events();
            for (std::size_t i = 3; i < fds.size(); ++i) serve(clients_[i - 3], fds[i].revents);
            clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                          [](const client &c) {
                                              if (c.closing && c.out.empty()) ::close(c.fd);
                                              return c.closing && c.out.empty();
                                          }),
                           clients_.end());
        }
    }

private:
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

    void serve(client &c, short revents) {
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
                c.out += service_.handle(line) + "\n";
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

    pd_agent::service &service_;
    std::string path_;
    int listen_fd_ = -1;
    std::vector<client> clients_;
};

}  // namespace

int main(int argc, char **argv) {
    if (pd_version() >> 16 != PD_VERSION_MAJOR || pd_version() < static_cast<uint32_t>(PD_VERSION_NUM)) {
        std::fprintf(stderr, "pd-agent: libpeerdist %s is older than the headers %s\n", pd_version_string(), PD_VERSION_STRING);
        return pd_cli::exit_failed;
    }
    std::string config_path = "/etc/peerdist/agent.json";
    CLI::App app{"pd-agent: the peerdist device agent. It downloads, caches and shares content for this device, and "
                 "answers pd and scripts on its control socket (docs/agent.md).", "pd-agent"};
    app.set_version_flag("--version", std::string("pd-agent ") + pd_version_string());
    app.add_option("--config,-c", config_path, "The agent's configuration (JSON)")->capture_default_str();
    app.footer("Exit status: 0 stopped cleanly, 1 failed, 2 usage or configuration (docs/cli.md).");
    return pd_cli::run(app, argc, argv, [&]() -> int {
        pd_agent::agent_config cfg;
        if (!pd_agent::load_config_or_log(config_path, cfg)) return pd_cli::exit_usage;
        if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return pd_cli::exit_failed;
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        ::sigaction(SIGTERM, &sa, nullptr);
        ::sigaction(SIGINT, &sa, nullptr);
        ::signal(SIGPIPE, SIG_IGN);
        pd_agent::service service(std::move(cfg));
        if (int rc = service.start(); rc != 0) return rc;
        control_loop loop(service);
        if (int rc = loop.open(); rc != 0) return rc;
        return loop.run();
    });
}
