#include "platform/file.h"
#include "platform/file_parts.h"

#include "util/error.h"

#include <cerrno>
#include <dlfcn.h>
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
#include <vector>
#if defined(__linux__)
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#endif

namespace pd::platform {

std::string this_library_path() {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void *>(&this_library_path), &info) == 0 || !info.dli_fname)
        fail(PD_E_GENERIC, PD_CATEGORY_OS, "the system cannot say which file this library was loaded from");
    std::error_code ec;
    auto abs = std::filesystem::absolute(info.dli_fname, ec);
    return ec ? std::string(info.dli_fname) : abs.string();
}

// The descriptor file and dir_lock keep in their platform-neutral handle.
static int fd(std::intptr_t handle) { return static_cast<int>(handle); }

static mode_t permissions(access who) { return who == access::owner_only ? 0600 : 0644; }

file::file(const std::string &path, mode m, access who) : path_(path) {
    int flags = m == mode::read ? O_RDONLY : (O_RDWR | O_CREAT | O_NOFOLLOW);
    if (m == mode::create_new) flags |= O_EXCL;
    handle_ = ::open(path.c_str(), flags | O_CLOEXEC, permissions(who));
    if (handle_ < 0 && errno == ELOOP) fail(PD_E_INVALID, PD_CATEGORY_OS, "'" + path + "' is a symbolic link: refused");
    if (handle_ < 0) fail_errno(errno, "opening '" + path + "'");
}

void file::close() {
    if (handle_ >= 0) ::close(fd(handle_));
    handle_ = -1;
}

std::uint64_t file::size() const {
    struct stat st {};
    if (::fstat(fd(handle_), &st) != 0) fail_errno(errno, "stat '" + path_ + "'");
    return static_cast<std::uint64_t>(st.st_size);
}

bool file::regular() const {
    struct stat st {};
    return ::fstat(fd(handle_), &st) == 0 && S_ISREG(st.st_mode);
}

std::size_t file::pread(std::uint64_t offset, void *buf, std::size_t len) const {
    std::size_t done = 0;
    auto p = static_cast<char *>(buf);
    while (done < len) {
        ssize_t n = ::pread(fd(handle_), p + done, len - done, static_cast<off_t>(offset + done));
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
        ssize_t n = ::pwrite(fd(handle_), p + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(errno, "writing '" + path_ + "'");
        }
        done += static_cast<std::size_t>(n);
    }
}

void file::preallocate(std::uint64_t size) const {
    if (size == 0) return;
    int rc = ::posix_fallocate(fd(handle_), 0, static_cast<off_t>(size));
    // Filesystems without fallocate support fall back to sparse files; ENOSPC is real.
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        truncate(size);
        return;
    }
    if (rc != 0) fail_errno(rc, "preallocating " + std::to_string(size) + " bytes for '" + path_ + "'");
}

void file::truncate(std::uint64_t size) const {
    if (::ftruncate(fd(handle_), static_cast<off_t>(size)) != 0) fail_errno(errno, "resizing '" + path_ + "'");
}

void file::datasync() const {
#if defined(__APPLE__)
    int rc = ::fsync(fd(handle_));
#else
    int rc = ::fdatasync(fd(handle_));
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
    handle_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (handle_ < 0) fail_errno(errno, "opening lock file '" + lock_path + "'");
    if (::flock(fd(handle_), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(fd(handle_));
        handle_ = -1;
        if (err == EWOULDBLOCK)
            fail(PD_E_BUSY, PD_CATEGORY_STORE,
                 "cache directory is in use by another process (lock '" + lock_path + "' is held)");
        fail_errno(err, "locking '" + lock_path + "'");
    }
    // Record the holder for operators; failure to write it is harmless.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd(handle_), 0) == 0) (void)!::pwrite(fd(handle_), pid.data(), pid.size(), 0);
}

dir_lock::~dir_lock() {
    if (handle_ >= 0) ::close(fd(handle_));  // closing releases the flock
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

file open_private_file(const std::string &path, const std::string &what) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
    file f = file::adopt(fd, path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail_errno(errno, "reading the " + what + " '" + path + "'");
    if (!S_ISREG(st.st_mode)) fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' is not a regular file");
    require_private_mode(st, path, what);
    return f;
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

bool kernel_copy(const file &src, const file &dst, std::uint64_t size) {
#if defined(__linux__)
    loff_t in_off = 0, out_off = 0;
    while (static_cast<std::uint64_t>(in_off) < size) {
        ssize_t n = ::copy_file_range(fd(src.native()), &in_off, fd(dst.native()), &out_off,
                                      static_cast<std::size_t>(std::min<std::uint64_t>(size - in_off, 1ull << 30)), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) return false;
        if (n < 0) fail_errno(errno, "copying '" + src.path() + "' to '" + dst.path() + "'");
        if (n == 0) fail(PD_E_IO, PD_CATEGORY_OS, "'" + src.path() + "' is shorter than expected");
    }
    return true;
#else
    (void)src, (void)dst, (void)size;
    return false;
#endif
}

bool clone_file(const file &src, const file &dst) {
#if defined(__linux__) && defined(FICLONE)
    return ::ioctl(fd(dst.native()), FICLONE, fd(src.native())) == 0;
#else
    (void)src, (void)dst;
    return false;
#endif
}

bool hard_link(const std::string &existing, const std::string &link) { return ::link(existing.c_str(), link.c_str()) == 0; }

void give_delivered_access(const std::string &path) {
    if (::chmod(path.c_str(), permissions(access::everyone_reads)) != 0) fail_errno(errno, "chmod '" + path + "'");
}

bool same_file(const std::string &a, const std::string &b) {
    struct stat sa {}, sb {};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void remove_file(const std::string &path) noexcept { ::unlink(path.c_str()); }

std::int64_t modified_ns(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail_errno(errno, "stat '" + path + "'");
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
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
