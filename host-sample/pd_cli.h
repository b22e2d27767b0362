// What pd's two halves share: the commands that use the library in this process
// (pd_cli.cpp) and those that talk to a running pd-agent (pd_agent_commands.cpp).
#pragma once

#include "cli.h"

#include <peerdist.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pd_tool {

// "12.3 MiB".
std::string human(double bytes);
// A content id as 64 lowercase hex digits.
std::string hex_id(const pd_content_id *id);
// Whether `prefix` could abbreviate a content id: 4 to 64 hex digits (as git takes them).
bool is_id_prefix(const std::string &prefix);
// The one id among `ids` that starts with `prefix`, or a failure naming what matched:
// none (exit_not_found) or several (exit_usage).
std::string resolve_prefix(const std::string &prefix, const std::vector<std::string> &ids);

// `pd --agent ADDRESS ...`: the options of the commands that go to a running pd-agent.
struct agent_options {
    std::string address;
    bool json = false;
    bool once = false;
    std::string manifest, origin, dest, publication, content;
    std::uint64_t job = 0;
    std::string request;  // `call`: one request of docs/agent.md
};

// Runs `command` (status, get, cancel, pause, resume, cache, cache-rm, facts, call) against
// the agent; returns the exit status (cli.h), throws pd_cli::failure.
int agent_command(const std::string &command, const agent_options &o);

}  // namespace pd_tool
