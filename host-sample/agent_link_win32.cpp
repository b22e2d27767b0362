#include "agent_link.h"

#include <windows.h>
#include <io.h>

#include <filesystem>
#include <stdexcept>

namespace pd_agent {

namespace {
HANDLE h(std::intptr_t handle) { return reinterpret_cast<HANDLE>(handle); }
}  // namespace

agent_link::agent_link(const std::string &address) {
    auto name = std::filesystem::u8path(address).wstring();
    // Every instance busy: wait a little for one, as a client of a pipe server does.
    for (int attempt = 0;; ++attempt) {
        HANDLE pipe = ::CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, 0, nullptr);
        if (pipe != INVALID_HANDLE_VALUE) {
            handle_ = reinterpret_cast<std::intptr_t>(pipe);
            return;
        }
        DWORD err = ::GetLastError();
        if (err != ERROR_PIPE_BUSY || attempt == 3 || !::WaitNamedPipeW(name.c_str(), 2000))
            throw std::runtime_error("cannot reach pd-agent at '" + address + "': Windows error " + std::to_string(err) +
                                     (err == ERROR_ACCESS_DENIED ? " (only SYSTEM and Administrators may control it)" : ""));
    }
}

agent_link::~agent_link() {
    if (handle_ != -1) ::CloseHandle(h(handle_));
}

void agent_link::write_all(const std::string &data) {
    for (std::size_t off = 0; off < data.size();) {
        DWORD wrote = 0;
        if (!::WriteFile(h(handle_), data.data() + off, static_cast<DWORD>(data.size() - off), &wrote, nullptr) || wrote == 0)
            throw std::runtime_error("pd-agent closed the connection");
        off += wrote;
    }
}

std::size_t agent_link::read_some(char *buffer, std::size_t size) {
    DWORD got = 0;
    if (!::ReadFile(h(handle_), buffer, static_cast<DWORD>(size), &got, nullptr)) return 0;
    return got;
}

bool is_terminal(int fd) { return ::_isatty(fd) != 0; }

}  // namespace pd_agent
