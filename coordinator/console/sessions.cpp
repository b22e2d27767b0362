#include "coordinator/console/sessions.h"

#include "util/error.h"
#include "util/hex.h"

#include <sodium.h>

#include <algorithm>

namespace pd::coord::console {

std::string hash_password(const std::string &password) {
    if (password.size() < 12 || password.size() > 1024)
        fail(PD_E_INVALID, PD_CATEGORY_API, "a console password is 12 to 1024 characters");
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        fail(PD_E_NOMEM, PD_CATEGORY_API, "out of memory hashing the password");
    return out;
}

bool password_matches(const std::string &stored_hash, const std::string &password) {
    if (stored_hash.empty() || stored_hash.size() >= crypto_pwhash_STRBYTES || password.size() > 1024) return false;
    char hash[crypto_pwhash_STRBYTES] = {};
    std::copy(stored_hash.begin(), stored_hash.end(), hash);
    return crypto_pwhash_str_verify(hash, password.data(), password.size()) == 0;
}

sessions::sessions(session_limits limits) : limits_(limits) {}

bool sessions::blocked(const std::unordered_map<std::string, failures> &table, const std::string &key, std::int64_t now_ms,
                       const session_limits &limits, std::int64_t &wait_ms) {
    auto it = table.find(key);
    if (it == table.end() || it->second.count < limits.max_failures) return false;
    auto ends = it->second.first_ms + limits.failure_window_ms;
    if (now_ms >= ends) return false;
    wait_ms = std::max(wait_ms, ends - now_ms);
    return true;
}

std::int64_t sessions::retry_after_ms(const std::string &ip, const std::string &name, std::int64_t now_ms) const {
    std::int64_t wait = 0;
    blocked(by_address_, ip, now_ms, limits_, wait);
    blocked(by_name_, name, now_ms, limits_, wait);
    return wait;
}

void sessions::count(std::unordered_map<std::string, failures> &table, const std::string &key, std::int64_t now_ms) {
    if (table.size() >= limits_.max_tracked && !table.count(key)) {
        // Forget the windows that ended; if none did, the oldest: memory stays bounded.
        for (auto it = table.begin(); it != table.end();)
            it = now_ms - it->second.first_ms >= limits_.failure_window_ms ? table.erase(it) : std::next(it);
        if (table.size() >= limits_.max_tracked)
            table.erase(std::min_element(table.begin(), table.end(), [](auto &a, auto &b) { return a.second.first_ms < b.second.first_ms; }));
    }
    auto &f = table[key];
    if (f.count == 0 || now_ms - f.first_ms >= limits_.failure_window_ms) f = {now_ms, 0};
    ++f.count;
}

void sessions::failed(const std::string &ip, const std::string &name, std::int64_t now_ms) {
    count(by_address_, ip, now_ms);
    count(by_name_, name, now_ms);
}

std::string sessions::key_of(const std::string &token) {
    unsigned char digest[32];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char *>(token.data()), token.size(), nullptr, 0);
    return to_hex(digest, sizeof digest);
}

std::string sessions::open(const std::string &admin_name, const std::string &ip, std::int64_t now_ms) {
    if (by_token_.size() >= limits_.max_sessions)
        by_token_.erase(std::min_element(by_token_.begin(), by_token_.end(),
                                         [](auto &a, auto &b) { return a.second.used_ms < b.second.used_ms; }));
    unsigned char raw[32], csrf[32];
    randombytes_buf(raw, sizeof raw);
    randombytes_buf(csrf, sizeof csrf);
    auto token = to_hex(raw, sizeof raw);
    by_token_[key_of(token)] = {admin_name, to_hex(csrf, sizeof csrf), now_ms, now_ms};
    by_address_.erase(ip);
    return token;
}

const session *sessions::find(const std::string &token, std::int64_t now_ms) {
    if (token.size() != 64) return nullptr;
    auto it = by_token_.find(key_of(token));
    if (it == by_token_.end()) return nullptr;
    auto &s = it->second;
    if (now_ms - s.used_ms > limits_.idle_ms || now_ms - s.created_ms > limits_.lifetime_ms) {
        by_token_.erase(it);
        return nullptr;
    }
    s.used_ms = now_ms;
    return &s;
}

void sessions::close(const std::string &token) { by_token_.erase(key_of(token)); }

void sessions::close_all_of(const std::string &admin_name) {
    for (auto it = by_token_.begin(); it != by_token_.end();) it = it->second.admin_name == admin_name ? by_token_.erase(it) : std::next(it);
}

}  // namespace pd::coord::console
