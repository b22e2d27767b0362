// What the three command lines (pd, pd-agent, pd-coordinator) share: one exit-code table, one
// way to report a command-line mistake (one line, a suggestion, exit 2), and the run wrapper
// that keeps any exception from aborting the process. Built on CLI11 (header-only).
// docs/cli.md documents the table; keep the two in step.
#pragma once

#include <CLI/CLI.hpp>

#include <peerdist.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pd_cli {

// The exit statuses every program documents (docs/cli.md).
enum exit_code : int {
    exit_ok = 0,
    exit_failed = 1,       // the operation failed; the message says why
    exit_usage = 2,        // the command line is wrong: unknown option, bad value, missing argument
    exit_not_found = 3,    // the content, job, file or cache entry named does not exist
    exit_refused = 4,      // trust or integrity: unsigned, untrusted publisher, data that failed its hash
    exit_unreachable = 5,  // the agent, coordinator or peer could not be reached, or did not answer in time
    exit_busy = 6,         // another process holds the cache (try again later)
};

// The exit status for a library error code (PD_E_*).
inline int exit_for(int pd_code) {
    switch (pd_code) {
    case PD_OK: return exit_ok;
    case PD_E_MISUSE: return exit_usage;
    case PD_E_NOT_FOUND: return exit_not_found;
    case PD_E_AUTH:
    case PD_E_INTEGRITY:
    case PD_E_CHANGED: return exit_refused;
    case PD_E_TIMEOUT: return exit_unreachable;
    case PD_E_BUSY: return exit_busy;
    default: return exit_failed;
    }
}

// A failure that already carries its exit status (thrown by commands, caught by run()).
struct failure : std::runtime_error {
    int code;
    failure(int exit_status, const std::string &what) : std::runtime_error(what), code(exit_status) {}
};

// A mistake on the command line that CLI11 cannot see (a combination, a bad id).
inline failure usage_error(const std::string &what) { return failure(exit_usage, what); }

// The library's last error as a failure: "WHAT: message (name)", with its exit status.
inline failure library_failure(const std::string &what) {
    const pd_error *e = pd_error_last();
    return failure(exit_for(e->code), what + ": " + e->message + " (" + pd_strerror(e->code) + ")");
}

// Hexadecimal digits, an even number of them, as the bytes they spell; nothing otherwise.
inline std::optional<std::vector<std::uint8_t>> bytes_from_hex(const std::string &text) {
    if (text.size() % 2 || text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return std::nullopt;
    std::vector<std::uint8_t> out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(std::stoul(text.substr(2 * i, 2), nullptr, 16));
    return out;
}

// Throws library_failure(what) unless `rc` is PD_OK.
inline void check(int rc, const std::string &what) {
    if (rc != PD_OK) throw library_failure(what);
}

// The admin operations of the library's table (pd_admin_operation_at), for --help.
inline std::string admin_operations() {
    std::string s = "Operations:\n";
    for (std::size_t i = 0; const pd_admin_operation *op = pd_admin_operation_at(i); ++i)
        s += std::string("  ") + op->name + " " + op->arguments + "\n      " + op->summary + "\n";
    return s;
}

// `pd admin` and `pd-coordinator admin`: connects to `coordinator` with the credential file,
// runs operation args[0] with the rest as its arguments (pd_admin_run parses them) and prints
// the result on stdout.
inline int run_admin(const std::string &coordinator, const std::string &credential_file,
                     const std::vector<std::string> &args, bool json, const std::string &help) {
    if (args.empty()) throw usage_error("admin needs an operation (" + help + " lists them)");
    pd_admin_credential credential;
    check(pd_admin_credential_read_file(&credential, credential_file.c_str()), "reading the credential");
    pd_admin *admin = nullptr;
    int rc = pd_admin_connect(&admin, coordinator.c_str(), &credential, 10000);
    volatile unsigned char *wipe = reinterpret_cast<volatile unsigned char *>(&credential);
    for (std::size_t i = 0; i < sizeof credential; ++i) wipe[i] = 0;  // a store the compiler keeps
    check(rc, "connecting to the coordinator " + coordinator);
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> guard(admin, pd_admin_free);
    std::vector<const char *> rest;
    for (std::size_t i = 1; i < args.size(); ++i) rest.push_back(args[i].c_str());
    pd_buf out = PD_BUF_INIT;
    check(pd_admin_run(&out, admin, args[0].c_str(), rest.data(), rest.size(), json ? PD_ADMIN_JSON : 0), args[0]);
    std::fwrite(out.ptr, 1, out.size, stdout);
    pd_buf_dispose(&out);
    return exit_ok;
}

// A whole number as typed, digits only (CLI11 2.1 alone takes "-1" and out-of-range
// numbers for unsigned options and wraps them).
inline const CLI::Validator whole_number([](std::string &text) {
    if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
        return std::string("'" + text + "' is not a whole number (digits only, at most 18)");
    return std::string();
}, "NUMBER");

// Edit distance, for "did you mean".
inline std::size_t distance(const std::string &a, const std::string &b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// The closest option or subcommand of `app` (and of the subcommands parsed under it) to
// `word`, when it is close enough to be what the user meant.
inline std::string suggestion(const CLI::App &app, const std::string &word) {
    std::string best;
    std::size_t best_d = word.size() / 3 + 1;
    std::function<void(const CLI::App &)> visit = [&](const CLI::App &a) {
        auto consider = [&](const std::string &name) {
            std::size_t d = distance(word, name);
            if (d < best_d) best_d = d, best = name;
        };
        for (const CLI::Option *o : a.get_options())
            for (const auto &n : o->get_lnames()) consider("--" + n);
        for (const CLI::App *s : a.get_subcommands({})) {
            consider(s->get_name());
            if (s->parsed()) visit(*s);
        }
    };
    visit(app);
    return best;
}

// Parses and runs a program's command line: help and version on stdout with status 0, a
// wrong command line as one line on stderr with status 2, and any failure of the command as
// one line with its status from the table. Nothing escapes as an exception.
inline int run(CLI::App &app, int argc, const char *const *argv, const std::function<int()> &command) {
    const std::string name = app.get_name();
    try {
        try {
            app.parse(argc, argv);
        } catch (const CLI::CallForHelp &e) {
            return app.exit(e);
        } catch (const CLI::CallForAllHelp &e) {
            return app.exit(e);
        } catch (const CLI::CallForVersion &e) {
            return app.exit(e);
        } catch (const CLI::ParseError &e) {
            std::string line = e.what();
            auto left = app.remaining();
            // "A subcommand is required" when the word given is none: name the word instead.
            if (!left.empty() && left[0].rfind("-", 0) != 0 && dynamic_cast<const CLI::RequiredError *>(&e))
                line = "unknown command '" + left[0] + "'";
            for (const auto &word : left)
                if (auto s = suggestion(app, word); !s.empty()) {
                    line += " (did you mean " + s + "?)";
                    break;
                }
            std::string path = name;  // "pd cache rm": where the help for this mistake is
            for (const CLI::App *a = &app; !a->get_subcommands().empty();) {
                a = a->get_subcommands().front();
                path += " " + a->get_name();
            }
            std::fprintf(stderr, "%s: %s\n%s: see '%s --help'\n", name.c_str(), line.c_str(), name.c_str(), path.c_str());
            return exit_usage;
        }
        return command();
    } catch (const failure &f) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), f.what());
        return f.code;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "%s: out of memory\n", name.c_str());
        return exit_failed;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
        return exit_failed;
    } catch (...) {
        std::fprintf(stderr, "%s: unexpected failure\n", name.c_str());
        return exit_failed;
    }
}

}  // namespace pd_cli
