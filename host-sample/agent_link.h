// The client end of pd-agent's control channel, for `pd --agent`: a Unix domain socket
// (agent_link_posix.cpp) or a named pipe such as \\.\pipe\peerdist-agent
// (agent_link_win32.cpp). Newline-delimited JSON goes over it (docs/agent.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pd_agent {

class agent_link {
public:
    // Connects to the agent at `address`; throws std::runtime_error saying why it cannot.
    explicit agent_link(const std::string &address);
    ~agent_link();
    agent_link(const agent_link &) = delete;
    agent_link &operator=(const agent_link &) = delete;

    // Sends all of `data`; throws std::runtime_error when the agent closed the channel.
    void write_all(const std::string &data);
    // Receives up to `size` bytes (at least one); 0 when the agent closed the channel.
    std::size_t read_some(char *buffer, std::size_t size);

private:
    std::intptr_t handle_ = -1;  // a descriptor, or a pipe HANDLE
};

// Whether standard output (fd 1) or error (fd 2) is a terminal (progress bars redraw).
bool is_terminal(int fd);

}  // namespace pd_agent
