// Who is logged in to the console: administrators' passwords (Argon2id hashes in the
// coordinator's database, pd-coordinator admin-key password) checked at login, sessions held
// in memory (a restart logs everyone out), and limits on guessing. No I/O and no threads: the
// console calls it from the network thread and hashes passwords on its worker.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

namespace pd::coord::console {

// Argon2id, libsodium's interactive limits (~64 MiB, ~0.1 s): a stolen database costs a
// guesser that much per try. Throws pd::error for a password outside 12-1024 bytes.
std::string hash_password(const std::string &password);
// Whether `password` matches the stored hash (false for "": no console login).
bool password_matches(const std::string &stored_hash, const std::string &password);

struct session_limits {
    std::int64_t idle_ms = 30 * 60 * 1000;       // a session unused this long ends
    std::int64_t lifetime_ms = 12 * 3600 * 1000;  // and any session this old
    std::size_t max_sessions = 1024;             // the oldest ends first
    // Failed logins: at most this many per address and per name within the window, then
    // further tries wait for the window to pass.
    unsigned max_failures = 5;
    std::int64_t failure_window_ms = 5 * 60 * 1000;
    std::size_t max_tracked = 10000;  // addresses and names remembered (bounded memory)
};

struct session {
    std::string admin_name;
    std::string csrf_token;  // sent back by the page with every change
    std::int64_t created_ms = 0, used_ms = 0;
};

class sessions {
public:
    explicit sessions(session_limits limits = {});

    // 0 when a login for `name` from `ip` may be tried now, else the milliseconds to wait.
    std::int64_t retry_after_ms(const std::string &ip, const std::string &name, std::int64_t now_ms) const;
    // Counts a failed login against the address and the name.
    void failed(const std::string &ip, const std::string &name, std::int64_t now_ms);
    // A new session for an administrator whose password matched; returns its token (the
    // cookie's value: 256 random bits, hex). Clears the address's failures.
    std::string open(const std::string &admin_name, const std::string &ip, std::int64_t now_ms);
    // The token's session, touched, or null when it is unknown or expired (then forgotten).
    const session *find(const std::string &token, std::int64_t now_ms);
    void close(const std::string &token);
    // Ends every session of the administrator (revoked, password changed).
    void close_all_of(const std::string &admin_name);
    std::size_t size() const { return by_token_.size(); }

private:
    struct failures {
        std::int64_t first_ms = 0;
        unsigned count = 0;
    };
    static bool blocked(const std::unordered_map<std::string, failures> &table, const std::string &key, std::int64_t now_ms,
                        const session_limits &limits, std::int64_t &wait_ms);
    void count(std::unordered_map<std::string, failures> &table, const std::string &key, std::int64_t now_ms);
    // Sessions are found by a hash of the token, so a lookup's timing says nothing of the tokens.
    static std::string key_of(const std::string &token);

    session_limits limits_;
    std::unordered_map<std::string, session> by_token_;  // key_of(token) -> session
    std::unordered_map<std::string, failures> by_address_, by_name_;
};

}  // namespace pd::coord::console
