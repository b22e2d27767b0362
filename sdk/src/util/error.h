// Internal error type: every failure inside the core carries a C error code, a category
// and a message, so the C boundary (capi/translate.h) maps it without guessing.
#pragma once

#include <peerdist/common.h>

#include <stdexcept>
#include <string>

namespace pd {

class error : public std::runtime_error {
public:
    error(int code, int category, const std::string &message)
        : std::runtime_error(message), code_(code), category_(category) {}
    int code() const noexcept { return code_; }
    int category() const noexcept { return category_; }

private:
    int code_;
    int category_;
};

[[noreturn]] inline void fail(int code, int category, const std::string &message) {
    throw error(code, category, message);
}

// Throws an OS-category error for errno value `err`, mapping ENOSPC/EROFS/ENOENT/...
// to the matching pd_error_code. `what` says what was being done ("writing 'x'").
[[noreturn]] void fail_errno(int err, const std::string &what);

}  // namespace pd
