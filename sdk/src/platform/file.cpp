// The portable part of platform/file.h, written over the per-platform calls
// (platform/file_parts.h).
#include "platform/file.h"
#include "platform/file_parts.h"

#include "util/error.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

namespace pd::platform {

file::~file() { close(); }

file::file(file &&other) noexcept : handle_(other.handle_), path_(std::move(other.path_)) { other.handle_ = -1; }

file &file::operator=(file &&other) noexcept {
    if (this != &other) {
        close();
        handle_ = other.handle_;
        path_ = std::move(other.path_);
        other.handle_ = -1;
    }
    return *this;
}

std::string unpredictable_sibling(const std::string &path, const char *tag) {
    std::random_device rd;
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, ".%s.%08x%08x", tag, rd(), rd());
    return path + suffix;
}

void copy_file_data(const file &src, const file &dst, std::uint64_t size) {
    if (kernel_copy(src, dst, size)) return;
    std::vector<char> buf(1 << 20);
    std::uint64_t off = 0;
    while (off < size) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
        std::size_t got = src.pread(off, buf.data(), want);
        if (got != want) fail(PD_E_IO, PD_CATEGORY_OS, "'" + src.path() + "' is shorter than expected");
        dst.pwrite(off, buf.data(), got);
        off += got;
    }
}

delivery deliver_file(const file &src, const std::string &src_path, const std::string &dest, std::uint64_t size,
                      delivery mode) {
    std::string tmp = unpredictable_sibling(dest, "pdpart");
    // The same content delivered to the same place again: nothing to do. (A new link renamed
    // onto another link of the same file would be a no-op that leaves the new link behind.)
    if (mode == delivery::hardlink && same_file(src_path, dest)) return delivery::hardlink;
    if (mode == delivery::hardlink && hard_link(src_path, tmp)) {
        try {
            give_delivered_access(tmp);
            atomic_replace(tmp, dest);
        } catch (...) {
            remove_file(tmp);
            throw;
        }
        return delivery::hardlink;
    }
    try {
        file out(tmp, file::mode::create_new, access::everyone_reads);
        if (!clone_file(src, out)) copy_file_data(src, out, size);
        out.datasync();
        out.close();
        atomic_replace(tmp, dest);
    } catch (...) {
        remove_file(tmp);  // a failed delivery leaves nothing behind
        throw;
    }
    return delivery::copy;
}

void write_file_atomic(const std::string &path, const void *data, std::size_t len, access who) {
    std::string tmp = unpredictable_sibling(path, "tmp");
    try {
        file f(tmp, file::mode::create_new, who);
        f.pwrite(0, data, len);
        f.datasync();
        f.close();
        atomic_replace(tmp, path);
    } catch (...) {
        remove_file(tmp);
        throw;
    }
}

// All `size` bytes of an open file (fewer if it shrank meanwhile).
static std::string read_whole(const file &f, std::uint64_t size) {
    std::string out(static_cast<std::size_t>(size), '\0');
    out.resize(f.pread(0, out.data(), out.size()));
    return out;
}

std::string read_small_file(const std::string &path, std::size_t max_bytes) {
    file f(path, file::mode::read);
    std::uint64_t size = f.size();
    if (size > max_bytes)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
             "'" + path + "' is " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_bytes));
    return read_whole(f, size);
}

std::string read_private_file(const std::string &path, std::size_t max_bytes, const std::string &what) {
    file f = open_private_file(path, what);
    std::uint64_t size = f.size();
    if (size > max_bytes) fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' is too large (" + std::to_string(size) + " bytes)");
    return read_whole(f, size);
}

}  // namespace pd::platform
