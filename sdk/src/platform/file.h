// The few OS-specific calls the core needs, behind one small interface: positional
// I/O, preallocation, durability, free space, directory locks, device facts.
// POSIX in file_posix.cpp, Windows in file_win32.cpp. Paths are UTF-8 everywhere (wide at
// the Win32 boundary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace pd::platform {

// The file of the shared library (or DLL) this code is linked into: where an installed SDK
// finds its plugins. Throws pd::error when the system cannot say.
std::string this_library_path();

// A UTF-8 path (what the C ABI and the core carry) as std::filesystem sees it, and back:
// on Windows, std::filesystem::path(std::string) would read the bytes in the ANSI code page.
inline std::filesystem::path fs_path(const std::string &utf8) { return std::filesystem::u8path(utf8); }
inline std::string utf8_path(const std::filesystem::path &p) { return p.u8string(); }

// Who may read a file this process creates. The cache, its database and keys are the
// owner's alone (0600); what the user asked for (a delivered package, a written manifest)
// is readable by everyone, like any file a tool writes (0644).
enum class access { owner_only, everyone_reads };

class file {
public:
    // read_write_create never follows a symbolic link at `path`; create_new also refuses a
    // path that exists (temporary files: nobody can have placed a file or link there first).
    // `who` applies when the file is created.
    enum class mode { read, read_write_create, create_new };
    file() = default;
    file(const std::string &path, mode m, access who = access::owner_only);
    // Takes ownership of an open descriptor or HANDLE (platform code).
    static file adopt(std::intptr_t handle, std::string path) {
        file f;
        f.handle_ = handle;
        f.path_ = std::move(path);
        return f;
    }
    ~file();
    file(file &&other) noexcept;
    file &operator=(file &&other) noexcept;
    file(const file &) = delete;
    file &operator=(const file &) = delete;

    bool is_open() const { return handle_ != -1; }
    // A descriptor (POSIX) or a HANDLE (Windows, whose INVALID_HANDLE_VALUE is also -1).
    std::intptr_t native() const { return handle_; }
    const std::string &path() const { return path_; }
    std::uint64_t size() const;
    // A regular file (not a directory, FIFO, device or socket).
    bool regular() const;
    // Reads up to len bytes at offset; returns the count (short only at end of file).
    std::size_t pread(std::uint64_t offset, void *buf, std::size_t len) const;
    void pwrite(std::uint64_t offset, const void *buf, std::size_t len) const;
    // Reserves `size` bytes on disk so a full disk shows up now, not mid-download.
    void preallocate(std::uint64_t size) const;
    void truncate(std::uint64_t size) const;
    // Makes written data durable (fdatasync).
    void datasync() const;
    void close();

private:
    std::intptr_t handle_ = -1;
    std::string path_;
};

struct fs_space {
    std::uint64_t total_bytes;
    std::uint64_t free_bytes;  // available to unprivileged users
};
fs_space filesystem_space(const std::string &path);

// Exclusive advisory lock on a file, held for the object's lifetime. Throws
// PD_E_BUSY when another process holds it.
class dir_lock {
public:
    explicit dir_lock(const std::string &lock_path);
    ~dir_lock();
    dir_lock(const dir_lock &) = delete;
    dir_lock &operator=(const dir_lock &) = delete;

private:
    std::intptr_t handle_ = -1;
};

// Creates a directory and its parents, each new one 0700 (created that way, not changed
// after); throws PD_E_READONLY when it cannot be written.
void ensure_writable_dir(const std::string &path);
// Throws PD_E_INVALID naming `what`, the path and its mode when a file holding a secret (a
// key, the coordinator's database) can be read or written by its group or other users.
void require_private_file(const std::string &path, const std::string &what);
// A secret file's bytes (at most `max_bytes`): the checks above made on the file opened, so
// the file read is the file checked; a path that is not a regular file (a FIFO, a device)
// is refused without blocking. Errors name `what` and the path.
std::string read_private_file(const std::string &path, std::size_t max_bytes, const std::string &what);
// A name beside `path` that nobody can predict: temporary files are created there with
// create_new, so a file or link planted in advance cannot redirect the write.
std::string unpredictable_sibling(const std::string &path, const char *tag);
// rename() that replaces the target atomically and makes the rename durable.
void atomic_replace(const std::string &from, const std::string &to);
// Copies a file's bytes with the kernel's fast path where available.
void copy_file_data(const file &src, const file &dst, std::uint64_t size);
// The last modification time of the file at `path`, in ns on the platform's own epoch: two
// readings compare, nothing more. Read from the file itself (under every hard link the same).
std::int64_t modified_ns(const std::string &path);
enum class delivery { copy, hardlink };
// Delivers a cached file to `dest` atomically (temporary + rename): copy uses a
// copy-on-write clone where the filesystem has one, else a kernel-side copy; hardlink
// links the cache file (same filesystem only; falls back to copy). Returns what it did.
delivery deliver_file(const file &src, const std::string &src_path, const std::string &dest, std::uint64_t size,
                      delivery mode);
// Writes a whole file atomically (temporary + fsync + rename), created with `who`'s access.
void write_file_atomic(const std::string &path, const void *data, std::size_t len, access who = access::everyone_reads);
std::string read_small_file(const std::string &path, std::size_t max_bytes);

struct device_facts {
    int chassis = 0;   // 0 unknown, 1 desktop, 2 laptop, 3 server
    int os_type = 0;   // 0 unknown, 1 workstation, 2 server
    std::uint64_t uptime_seconds = 0;
};
device_facts read_device_facts();

}  // namespace pd::platform
