#include "agent_link.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace pd_agent {

agent_link::agent_link(const std::string &address) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (address.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long");
    std::strcpy(addr.sun_path, address.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot reach pd-agent at '" + address + "': " + std::strerror(err));
    }
    handle_ = fd;
}

agent_link::~agent_link() {
    if (handle_ >= 0) ::close(static_cast<int>(handle_));
}

void agent_link::write_all(const std::string &data) {
    for (std::size_t off = 0; off < data.size();) {
        ssize_t n = ::send(static_cast<int>(handle_), data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error("pd-agent closed the connection");
        off += static_cast<std::size_t>(n);
    }
}

std::size_t agent_link::read_some(char *buffer, std::size_t size) {
    for (;;) {
        ssize_t n = ::read(static_cast<int>(handle_), buffer, size);
        if (n < 0 && errno == EINTR) continue;
        return n < 0 ? 0 : static_cast<std::size_t>(n);
    }
}

bool is_terminal(int fd) { return ::isatty(fd) != 0; }

}  // namespace pd_agent
