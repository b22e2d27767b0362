#include "platform/file.h"

#include "util/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cstdio>
#include <random>
#include <vector>
#if defined(__linux__)
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#endif

namespace pd::platform {

static mode_t permissions(access who) { return who == access::owner_only ? 0600 : 0644; }

file::file(const std::string &path, mode m, access who) : path_(path) {
    int flags = m == mode::read ? O_RDONLY : (O_RDWR | O_CREAT | O_NOFOLLOW);
    if (m == mode::create_new) flags |= O_EXCL;
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, permissions(who));
    if (fd_ < 0 && errno == ELOOP) fail(PD_E_INVALID, PD_CATEGORY_OS, "'" + path + "' is a symbolic link: refused");
    if (fd_ < 0) fail_errno(errno, "opening '" + path + "'");
}

// A name beside `path` that nobody can predict: temporary files are created there with
// create_new, so a link planted in advance cannot redirect the write.
static std::string unpredictable_sibling(const std::string &path, const char *tag) {
    std::random_device rd;
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, ".%s.%08x%08x", tag, rd(), rd());
    return path + suffix;
}

file::~file() { close(); }

file::file(file &&other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

file &file::operator=(file &&other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.fd_;
        path_ = std::move(other.path_);
        other.fd_ = -1;
    }
    return *this;
}

void file::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::uint64_t file::size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail_errno(errno, "stat '" + path_ + "'");
    return static_cast<std::uint64_t>(st.st_size);
}

std::size_t file::pread(std::uint64_t offset, void *buf, std::size_t len) const {
    std::size_t done = 0;
    auto p = static_cast<char *>(buf);
    while (done < len) {
        ssize_t n = ::pread(fd_, p + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, "reading '" + path_ + "'");
        }
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return done;
}

void file::pwrite(std::uint64_t offset, const void *buf, std::size_t len) const {
    std::size_t done = 0;
    auto p = static_cast<const char *>(buf);
    while (done < len) {
        ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, "writing '" + path_ + "'");
        }
        done += static_cast<std::size_t>(n);
    }
}

void file::preallocate(std::uint64_t size) const {
    if (size == 0) return;
    int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
    // Filesystems without fallocate support fall back to sparse files; ENOSPC is real.
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        truncate(size);
        return;
    }
    if (rc != 0) fail_errno(rc, "preallocating " + std::to_string(size) + " bytes for '" + path_ + "'");
}

void file::truncate(std::uint64_t size) const {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail_errno(errno, "resizing '" + path_ + "'");
}

void file::datasync() const {
#if defined(__APPLE__)
    int rc = ::fsync(fd_);
#else
    int rc = ::fdatasync(fd_);
#endif
    if (rc != 0) fail_errno(errno, "syncing '" + path_ + "'");
}

fs_space filesystem_space(const std::string &path) {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) fail_errno(errno, "statvfs '" + path + "'");
    return {static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize,
            static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize};
}

dir_lock::dir_lock(const std::string &lock_path) {
    fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) fail_errno(errno, "opening lock file '" + lock_path + "'");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK)
            fail(PD_E_BUSY, PD_CATEGORY_STORE,
                 "cache directory is in use by another process (lock '" + lock_path + "' is held)");
        fail_errno(err, "locking '" + lock_path + "'");
    }
    // Record the holder for operators; failure to write it is harmless.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

dir_lock::~dir_lock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

void ensure_writable_dir(const std::string &path) {
    // Parent first, each missing one created 0700 (create_directories would use 0777 & ~umask).
    std::filesystem::path built;
    for (auto &part : std::filesystem::path(path)) {
        built /= part;
        if (::mkdir(built.c_str(), 0700) != 0 && errno != EEXIST) fail_errno(errno, "creating directory '" + built.string() + "'");
    }
    if (!std::filesystem::is_directory(path)) fail(PD_E_INVALID, PD_CATEGORY_STORE, "'" + path + "' is not a directory");
    if (::access(path.c_str(), W_OK) != 0)
        fail(PD_E_READONLY, PD_CATEGORY_STORE,
             "cache directory '" + path + "' is not writable: " + std::strerror(errno));
}

static void require_private_mode(const struct stat &st, const std::string &path, const std::string &what) {
    if (st.st_mode & 077) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        fail(PD_E_INVALID, PD_CATEGORY_OS,
             what + " '" + path + "' can be read or changed by other users (mode " + mode + "): chmod 600 it and keep the secret");
    }
}

void require_private_file(const std::string &path, const std::string &what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
    require_private_mode(st, path, what);
}

std::string read_private_file(const std::string &path, std::size_t max_bytes, const std::string &what) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
    std::string out;
    try {
        struct stat st {};
        if (::fstat(fd, &st) != 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
        if (!S_ISREG(st.st_mode)) fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' is not a regular file");
        require_private_mode(st, path, what);
        if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
            fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' is too large (" + std::to_string(st.st_size) + " bytes)");
        out.resize(static_cast<std::size_t>(st.st_size));
        std::size_t got = 0;
        while (got < out.size()) {
            ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        out.resize(got);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return out;
}

static void sync_parent_dir(const std::string &path) {
    auto parent = std::filesystem::path(path).parent_path();
    if (parent.empty()) parent = ".";
    int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

void atomic_replace(const std::string &from, const std::string &to) {
    if (::rename(from.c_str(), to.c_str()) != 0) fail_errno(errno, "renaming '" + from + "' to '" + to + "'");
    sync_parent_dir(to);
}

void copy_file_data(const file &src, const file &dst, std::uint64_t size) {
#if defined(__linux__)
    // Kernel-side copy first: no round trip through user space.
    {
        loff_t in_off = 0, out_off = 0;
        bool ok = true;
        while (static_cast<std::uint64_t>(in_off) < size) {
            ssize_t n = ::copy_file_range(src.native(), &in_off, dst.native(), &out_off,
                                          static_cast<std::size_t>(std::min<std::uint64_t>(size - in_off, 1ull << 30)), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
                ok = false;
                break;
            }
            if (n < 0) fail_errno(errno, "copying '" + src.path() + "' to '" + dst.path() + "'");
            if (n == 0) fail(PD_E_IO, PD_CATEGORY_OS, "'" + src.path() + "' is shorter than expected");
        }
        if (ok) return;
    }
#endif
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

void deliver_file(const file &src, const std::string &src_path, const std::string &dest, std::uint64_t size,
                  delivery mode) {
    std::string tmp = unpredictable_sibling(dest, "pdpart");
    if (mode == delivery::hardlink && ::link(src_path.c_str(), tmp.c_str()) == 0) {
        atomic_replace(tmp, dest);
        return;
    }
    file out(tmp, file::mode::create_new, access::everyone_reads);
    try {
        bool cloned = false;
#if defined(__linux__) && defined(FICLONE)
        cloned = ::ioctl(out.native(), FICLONE, src.native()) == 0;
#endif
        if (!cloned) copy_file_data(src, out, size);
        out.datasync();
        out.close();
        atomic_replace(tmp, dest);
    } catch (...) {
        ::unlink(tmp.c_str());  // a failed delivery leaves nothing behind
        throw;
    }
}

void write_file_atomic(const std::string &path, const void *data, std::size_t len, access who) {
    std::string tmp = unpredictable_sibling(path, "tmp");
    {
        file f(tmp, file::mode::create_new, who);
        f.truncate(0);
        f.pwrite(0, data, len);
        f.datasync();
    }
    atomic_replace(tmp, path);
}

std::string read_small_file(const std::string &path, std::size_t max_bytes) {
    file f(path, file::mode::read);
    std::uint64_t size = f.size();
    if (size > max_bytes)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
             "'" + path + "' is " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_bytes));
    std::string out(static_cast<std::size_t>(size), '\0');
    out.resize(f.pread(0, out.data(), out.size()));
    return out;
}

static std::string first_line(const std::string &path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

device_facts read_device_facts() {
    device_facts facts;
#if defined(__linux__)
    struct sysinfo si {};
    if (::sysinfo(&si) == 0) facts.uptime_seconds = static_cast<std::uint64_t>(si.uptime);
    // SMBIOS chassis types (DMTF DSP0134 7.4.1).
    std::string chassis = first_line("/sys/class/dmi/id/chassis_type");
    if (!chassis.empty()) {
        int t = std::atoi(chassis.c_str());
        switch (t) {
        case 3: case 4: case 5: case 6: case 7: case 13: case 15: case 16: case 24: case 35: case 36:
            facts.chassis = 1;
            break;
        case 8: case 9: case 10: case 11: case 12: case 14: case 30: case 31: case 32:
            facts.chassis = 2;
            break;
        case 17: case 23: case 25: case 28: case 29:
            facts.chassis = 3;
            break;
        default:
            break;
        }
    }
    // A machine with no graphical target and no battery is treated as a server OS;
    // hosts that know better override through the C ABI.
    std::error_code ec;
    std::string def = std::filesystem::read_symlink("/etc/systemd/system/default.target", ec).filename().string();
    if (def.find("graphical") != std::string::npos) facts.os_type = 1;
    else if (def.find("multi-user") != std::string::npos) facts.os_type = 2;
#endif
    return facts;
}

}  // namespace pd::platform
