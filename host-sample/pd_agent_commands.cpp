// pd --agent ADDRESS COMMAND: talks to a running pd-agent over its control channel
// (newline-delimited JSON, docs/agent.md) instead of using the library in this process.
#include "agent_link.h"
#include "pd_cli.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

namespace pd_tool {
namespace {

using json = nlohmann::json;
using pd_cli::failure;

// The PD_E_* code of a refusing reply ("code"), or PD_E_GENERIC when it carries none.
int reply_code(const json &reply) {
    return reply.contains("code") && reply["code"].is_number_integer() ? reply["code"].get<int>() : PD_E_GENERIC;
}

class agent_client {
public:
    explicit agent_client(const std::string &address) : link_(connect(address)) {}

    json call(const json &req) {
        link_.write_all(req.dump() + "\n");
        std::size_t nl;
        while ((nl = buf_.find('\n')) == std::string::npos) {
            if (buf_.size() > max_reply) throw failure(pd_cli::exit_failed, "the agent's reply is too long");
            char chunk[65536];
            std::size_t n = link_.read_some(chunk, sizeof chunk);
            if (n == 0) throw failure(pd_cli::exit_unreachable, "pd-agent closed the connection");
            buf_.append(chunk, n);
        }
        json reply = json::parse(buf_.substr(0, nl), nullptr, false);
        buf_.erase(0, nl + 1);
        if (!reply.is_object()) throw failure(pd_cli::exit_failed, "the agent's reply is not a JSON object");
        return reply;
    }

    // The reply, or a failure with the exit status of the agent's error code.
    json checked(const json &req) {
        json r = call(req);
        if (r.value("ok", false)) return r;
        throw failure(pd_cli::exit_for(reply_code(r)), r.value("error", "request failed"));
    }

private:
    static constexpr std::size_t max_reply = 64u << 20;

    static pd_agent::agent_link connect(const std::string &address) {
        try {
            return pd_agent::agent_link(address);
        } catch (const std::exception &e) {
            throw failure(pd_cli::exit_unreachable, e.what());
        }
    }

    pd_agent::agent_link link_;
    std::string buf_;
};

bool final_state(const std::string &s) { return s == "completed" || s == "failed" || s == "cancelled"; }

std::string bar_line(const json &j) {
    double total = j.value("bytes_total", 0.0), done = j.value("bytes_verified", 0.0);
    double frac = total > 0 ? done / total : 1.0;
    int fill = std::clamp(static_cast<int>(frac * 30), 0, 30);
    std::string state = j.value("state", "?");
    char buf[512];
    std::snprintf(buf, sizeof buf, "job %-4llu [%s%s] %5.1f%% %10s / %-10s %-10s %s",
                  static_cast<unsigned long long>(j.value("job", std::uint64_t{0})),
                  std::string(static_cast<std::size_t>(fill), '#').c_str(),
                  std::string(static_cast<std::size_t>(30 - fill), '.').c_str(), frac * 100, human(done).c_str(),
                  human(total).c_str(), state.c_str(), state == "failed" ? j.value("message", "").c_str() : "");
    return buf;
}

// The jobs (all when `only` is 0) until every one is final, or once. On a terminal the
// lines redraw in place; otherwise one block of lines per second, no escape sequences.
// With --json, one JSON array of the jobs when they are final (or at once).
int follow(agent_client &agent, std::uint64_t only, const agent_options &o) {
    bool tty = !o.json && pd_agent::is_terminal(1);
    std::size_t drawn = 0;
    for (;;) {
        json r = agent.checked({{"cmd", "jobs"}});
        json shown = json::array();
        for (auto &j : r["jobs"])
            if (!only || j.value("job", std::uint64_t{0}) == only) shown.push_back(j);
        if (only && shown.empty()) throw failure(pd_cli::exit_not_found, "job " + std::to_string(only) + " is gone");
        bool all_final = std::all_of(shown.begin(), shown.end(), [](const json &j) { return final_state(j.value("state", "")); });
        bool last = o.once || all_final;
        if (!o.json) {
            if (tty && drawn) std::printf("\x1b[%zuA", drawn);
            for (auto &j : shown) std::printf(tty ? "%s\x1b[K\n" : "%s\n", bar_line(j).c_str());
            if (shown.empty()) std::printf("no jobs\n");
            std::fflush(stdout);
            drawn = tty ? std::max<std::size_t>(1, shown.size()) : 0;
        } else if (last) {
            std::printf("%s\n", shown.dump(2).c_str());
        }
        if (last) {
            if (!only) return pd_cli::exit_ok;
            const json &j = shown[0];
            return j.value("state", "") == "completed" ? pd_cli::exit_ok : pd_cli::exit_for(j.value("error_code", PD_E_GENERIC));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 1000));
    }
}

// The agent runs elsewhere (another working directory): it gets absolute paths.
std::string absolute(const std::string &p) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(std::filesystem::u8path(p), ec);
    return ec ? p : abs.u8string();
}

}  // namespace

int agent_command(const std::string &command, const agent_options &o) {
    agent_client agent(o.address);
    if (command == "status") return follow(agent, 0, o);
    if (command == "get") {
        json req = {{"cmd", "download"}};
        bool url = o.manifest.rfind("http://", 0) == 0 || o.manifest.rfind("https://", 0) == 0;
        if (!o.manifest.empty()) req[url ? "url" : "manifest"] = url ? o.manifest : absolute(o.manifest);
        if (!o.content.empty()) req["content"] = o.content;
        if (!o.origin.empty()) req["origin"] = o.origin;
        if (!o.publication.empty()) req["publication"] = absolute(o.publication);
        if (!o.dest.empty()) req["dest"] = absolute(o.dest);
        json r = agent.checked(req);
        return follow(agent, r.value("job", std::uint64_t{0}), o);
    }
    if (command == "cancel" || command == "pause" || command == "resume") {
        agent.checked({{"cmd", command}, {"job", o.job}});
        return pd_cli::exit_ok;
    }
    if (command == "cache" || command == "cache-rm") {
        json r = agent.checked({{"cmd", "cache"}});
        if (command == "cache-rm") {
            std::vector<std::string> ids;
            for (auto &e : r["cache"]) ids.push_back(e.value("content", ""));
            agent.checked({{"cmd", "evict"}, {"content", resolve_prefix(o.content, ids)}});
            return pd_cli::exit_ok;
        }
        if (o.json) {
            std::printf("%s\n", r["cache"].dump(2).c_str());
            return pd_cli::exit_ok;
        }
        for (auto &e : r["cache"])
            std::printf("%s  %-8s  %10s  %s%s\n", e.value("content", "").c_str(), e.value("state", "").c_str(),
                        human(e.value("size", 0.0)).c_str(), e.value("name", "").c_str(),
                        e.value("pinned", false) ? " (pinned)" : "");
        return pd_cli::exit_ok;
    }
    if (command == "facts") {
        std::printf("%s\n", agent.checked({{"cmd", "facts"}})["facts"].dump(2).c_str());
        return pd_cli::exit_ok;
    }
    if (command == "call") {
        // One request as JSON, its reply printed as JSON; the status says whether it was "ok".
        json req = json::parse(o.request, nullptr, false);
        if (!req.is_object()) throw pd_cli::usage_error("the request must be a JSON object, e.g. '{\"cmd\": \"jobs\"}'");
        json reply = agent.call(req);
        std::printf("%s\n", reply.dump().c_str());
        if (reply.value("ok", false)) return pd_cli::exit_ok;
        return pd_cli::exit_for(reply_code(reply));
    }
    throw pd_cli::usage_error("unknown agent command '" + command + "'");
}

}  // namespace pd_tool
