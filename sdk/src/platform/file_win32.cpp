// platform/file.h on Windows. Files are opened with every share mode so a reader never
// blocks the writer (as on POSIX); positional I/O goes through OVERLAPPED offsets on
// synchronous handles. "Owner only" is an explicit, protected DACL — the owner, SYSTEM and
// Administrators, nobody else — set when a file or directory is created, never after.
#include "platform/file.h"
#include "platform/file_parts.h"
#include "platform/win32.h"

#include "util/error.h"

#include <aclapi.h>
#include <sddl.h>
#include <versionhelpers.h>

#include <algorithm>
#include <memory>

namespace pd::platform {

std::string this_library_path() {
    HMODULE self = nullptr;
    if (!::GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                              reinterpret_cast<LPCWSTR>(&this_library_path), &self))
        win32::fail_error(::GetLastError(), "finding this library's module");
    std::wstring path(MAX_PATH, L'\0');
    for (;;) {
        DWORD n = ::GetModuleFileNameW(self, path.data(), static_cast<DWORD>(path.size()));
        if (n == 0) win32::fail_error(::GetLastError(), "reading this library's file name");
        if (n < path.size()) {
            path.resize(n);
            return win32::utf8(path);
        }
        path.resize(path.size() * 2);  // a long path: try again with room for it
    }
}

using win32::fail_error;
using win32::wide;

namespace {

HANDLE h(std::intptr_t handle) { return reinterpret_cast<HANDLE>(handle); }
std::intptr_t stored(HANDLE handle) { return reinterpret_cast<std::intptr_t>(handle); }

// Positional I/O on a synchronous handle: the offset travels in the OVERLAPPED.
OVERLAPPED at_offset(std::uint64_t offset) {
    OVERLAPPED at{};
    at.Offset = static_cast<DWORD>(offset);
    at.OffsetHigh = static_cast<DWORD>(offset >> 32);
    return at;
}

// One ReadFile/WriteFile moves at most 1 GiB (a DWORD count, kept well below its limit).
DWORD chunk(std::size_t remaining) { return static_cast<DWORD>(std::min<std::size_t>(remaining, 1u << 30)); }

// The owner-only security descriptor, as 0600 files and 0700 directories are on POSIX
// (OICI: what is created inside a directory inherits it).
struct owner_only_security {
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    SECURITY_ATTRIBUTES attributes{};
    explicit owner_only_security(bool directory) {
        const wchar_t *sddl = directory ? L"D:P(A;OICI;FA;;;OW)(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
                                        : L"D:P(A;;FA;;;OW)(A;;FA;;;SY)(A;;FA;;;BA)";
        if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &descriptor, nullptr))
            fail_error(::GetLastError(), "building an owner-only security descriptor");
        attributes.nLength = sizeof attributes;
        attributes.lpSecurityDescriptor = descriptor;
        attributes.bInheritHandle = FALSE;
    }
    ~owner_only_security() { ::LocalFree(descriptor); }
    owner_only_security(const owner_only_security &) = delete;
    owner_only_security &operator=(const owner_only_security &) = delete;
};

bool is_reparse_point(HANDLE file) {
    FILE_ATTRIBUTE_TAG_INFO info{};
    return ::GetFileInformationByHandleEx(file, FileAttributeTagInfo, &info, sizeof info) &&
           (info.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT);
}

// Refuses a secret file whose DACL lets anyone but its owner, SYSTEM or Administrators
// read or change it (a missing DACL grants everyone everything).
void require_private_acl(HANDLE file, const std::string &path, const std::string &what) {
    PACL dacl = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    DWORD rc = ::GetSecurityInfo(file, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, nullptr,
                                 nullptr, &dacl, nullptr, &sd);
    if (rc != ERROR_SUCCESS) fail_error(rc, "reading the security of the " + what + " '" + path + "'");
    std::unique_ptr<void, decltype(&::LocalFree)> keep(sd, &::LocalFree);
    if (!dacl) fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' has no access list (everyone may read it): keep the secret");
    BYTE system_sid[SECURITY_MAX_SID_SIZE], admins_sid[SECURITY_MAX_SID_SIZE], owner_rights_sid[SECURITY_MAX_SID_SIZE];
    DWORD n1 = sizeof system_sid, n2 = sizeof admins_sid, n3 = sizeof owner_rights_sid;
    ::CreateWellKnownSid(WinLocalSystemSid, nullptr, system_sid, &n1);
    ::CreateWellKnownSid(WinBuiltinAdministratorsSid, nullptr, admins_sid, &n2);
    ::CreateWellKnownSid(WinCreatorOwnerRightsSid, nullptr, owner_rights_sid, &n3);
    PSID owner = nullptr;
    SECURITY_DESCRIPTOR_CONTROL control;
    DWORD revision;
    BOOL defaulted;
    ::GetSecurityDescriptorControl(sd, &control, &revision);
    ::GetSecurityDescriptorOwner(sd, &owner, &defaulted);
    for (DWORD i = 0; i < dacl->AceCount; ++i) {
        void *ace = nullptr;
        if (!::GetAce(dacl, i, &ace)) continue;
        auto *header = static_cast<ACE_HEADER *>(ace);
        if (header->AceType != ACCESS_ALLOWED_ACE_TYPE) continue;
        auto *allowed = static_cast<ACCESS_ALLOWED_ACE *>(ace);
        PSID sid = &allowed->SidStart;
        if (::EqualSid(sid, system_sid) || ::EqualSid(sid, admins_sid) || ::EqualSid(sid, owner_rights_sid) ||
            (owner && ::EqualSid(sid, owner)))
            continue;
        wchar_t *text = nullptr;
        std::string who = ::ConvertSidToStringSidW(sid, &text) ? win32::utf8(text) : "another account";
        if (text) ::LocalFree(text);
        fail(PD_E_INVALID, PD_CATEGORY_OS,
             what + " '" + path + "' can be read or changed by other users (" + who +
                 " is allowed): give only its owner, SYSTEM and Administrators access, and keep the secret");
    }
}

}  // namespace

file::file(const std::string &path, mode m, access who) : path_(path) {
    DWORD desired = m == mode::read ? GENERIC_READ : GENERIC_READ | GENERIC_WRITE;
    DWORD disposition = m == mode::read ? OPEN_EXISTING : m == mode::create_new ? CREATE_NEW : OPEN_ALWAYS;
    std::unique_ptr<owner_only_security> security;
    if (m != mode::read && who == access::owner_only) security = std::make_unique<owner_only_security>(false);
    // Writable opens look at a link itself (FILE_FLAG_OPEN_REPARSE_POINT) and refuse it,
    // as O_NOFOLLOW does on POSIX.
    DWORD flags = FILE_ATTRIBUTE_NORMAL | (m == mode::read ? 0 : FILE_FLAG_OPEN_REPARSE_POINT);
    HANDLE f = ::CreateFileW(wide(path).c_str(), desired, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             security ? &security->attributes : nullptr, disposition, flags, nullptr);
    if (f == INVALID_HANDLE_VALUE) fail_error(::GetLastError(), "opening '" + path + "'");
    handle_ = stored(f);
    if (m != mode::read && is_reparse_point(f)) {
        close();
        fail(PD_E_INVALID, PD_CATEGORY_OS, "'" + path + "' is a symbolic link: refused");
    }
}

void file::close() {
    if (handle_ != -1) ::CloseHandle(h(handle_));
    handle_ = -1;
}

std::uint64_t file::size() const {
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(h(handle_), &size)) fail_error(::GetLastError(), "reading the size of '" + path_ + "'");
    return static_cast<std::uint64_t>(size.QuadPart);
}

bool file::regular() const {
    BY_HANDLE_FILE_INFORMATION info{};
    return ::GetFileType(h(handle_)) == FILE_TYPE_DISK && ::GetFileInformationByHandle(h(handle_), &info) &&
           !(info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
}

std::size_t file::pread(std::uint64_t offset, void *buf, std::size_t len) const {
    auto p = static_cast<char *>(buf);
    std::size_t done = 0;
    while (done < len) {
        OVERLAPPED at = at_offset(offset + done);
        DWORD got = 0;
        if (!::ReadFile(h(handle_), p + done, chunk(len - done), &got, &at)) {
            DWORD err = ::GetLastError();
            if (err == ERROR_HANDLE_EOF) break;
            fail_error(err, "reading '" + path_ + "'");
        }
        if (got == 0) break;
        done += got;
    }
    return done;
}

void file::pwrite(std::uint64_t offset, const void *buf, std::size_t len) const {
    auto p = static_cast<const char *>(buf);
    std::size_t done = 0;
    while (done < len) {
        OVERLAPPED at = at_offset(offset + done);
        DWORD wrote = 0;
        if (!::WriteFile(h(handle_), p + done, chunk(len - done), &wrote, &at)) fail_error(::GetLastError(), "writing '" + path_ + "'");
        done += wrote;
    }
}

void file::preallocate(std::uint64_t size) const {
    // Like posix_fallocate: the file is at least `size` long, its clusters allocated now, so
    // a full disk shows up here (ERROR_DISK_FULL).
    if (size == 0 || this->size() >= size) return;
    FILE_ALLOCATION_INFO allocation{};
    allocation.AllocationSize.QuadPart = static_cast<LONGLONG>(size);
    if (!::SetFileInformationByHandle(h(handle_), FileAllocationInfo, &allocation, sizeof allocation)) {
        // Filesystems (and Wine) without allocation support: a sparse extension, as POSIX
        // falls back without fallocate; a full disk is still real.
        DWORD err = ::GetLastError();
        if (err != ERROR_CALL_NOT_IMPLEMENTED && err != ERROR_INVALID_PARAMETER && err != ERROR_NOT_SUPPORTED &&
            err != ERROR_INVALID_FUNCTION)
            fail_error(err, "preallocating " + std::to_string(size) + " bytes for '" + path_ + "'");
    }
    truncate(size);
}

void file::truncate(std::uint64_t size) const {
    FILE_END_OF_FILE_INFO end{};
    end.EndOfFile.QuadPart = static_cast<LONGLONG>(size);
    if (!::SetFileInformationByHandle(h(handle_), FileEndOfFileInfo, &end, sizeof end))
        fail_error(::GetLastError(), "resizing '" + path_ + "'");
}

void file::datasync() const {
    if (!::FlushFileBuffers(h(handle_))) fail_error(::GetLastError(), "syncing '" + path_ + "'");
}

fs_space filesystem_space(const std::string &path) {
    ULARGE_INTEGER available{}, total{}, free_total{};
    if (!::GetDiskFreeSpaceExW(wide(path).c_str(), &available, &total, &free_total))
        fail_error(::GetLastError(), "reading the free space of '" + path + "'");
    return {total.QuadPart, available.QuadPart};
}

dir_lock::dir_lock(const std::string &lock_path) {
    owner_only_security security(false);
    // Shared for reading only: a second session opening it for writing fails at once.
    HANDLE f = ::CreateFileW(wide(lock_path).c_str(), GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, &security.attributes,
                             OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
    if (f == INVALID_HANDLE_VALUE) {
        DWORD err = ::GetLastError();
        if (err == ERROR_SHARING_VIOLATION)
            fail(PD_E_BUSY, PD_CATEGORY_STORE, "cache directory is in use by another process (lock '" + lock_path + "' is held)");
        fail_error(err, "opening lock file '" + lock_path + "'");
    }
    if (is_reparse_point(f)) {
        ::CloseHandle(f);
        fail(PD_E_INVALID, PD_CATEGORY_OS, "'" + lock_path + "' is a symbolic link: refused");
    }
    OVERLAPPED whole{};
    if (!::LockFileEx(f, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD, MAXDWORD, &whole)) {
        DWORD err = ::GetLastError();
        ::CloseHandle(f);
        if (err == ERROR_LOCK_VIOLATION)
            fail(PD_E_BUSY, PD_CATEGORY_STORE, "cache directory is in use by another process (lock '" + lock_path + "' is held)");
        fail_error(err, "locking '" + lock_path + "'");
    }
    handle_ = stored(f);
    // Record the holder for operators; failure to write it is harmless.
    std::string pid = std::to_string(::GetCurrentProcessId()) + "\r\n";
    DWORD wrote = 0;
    OVERLAPPED at{};
    ::WriteFile(f, pid.data(), static_cast<DWORD>(pid.size()), &wrote, &at);
}

dir_lock::~dir_lock() {
    if (handle_ != -1) ::CloseHandle(h(handle_));  // closing releases the lock
}

void ensure_writable_dir(const std::string &path) {
    // Parent first, each missing one created owner-only. A prefix that cannot be created
    // ("C:", a UNC server or share, a folder this user may not create in but that exists) is
    // passed over: creating the directory itself says what is really wrong.
    owner_only_security security(true);
    std::wstring whole = wide(path);
    while (whole.size() > 3 && (whole.back() == L'\\' || whole.back() == L'/')) whole.pop_back();
    for (std::size_t i = 1; i < whole.size(); ++i)
        if (whole[i] == L'\\' || whole[i] == L'/') ::CreateDirectoryW(whole.substr(0, i).c_str(), &security.attributes);
    if (!::CreateDirectoryW(whole.c_str(), &security.attributes)) {
        DWORD err = ::GetLastError();
        if (err != ERROR_ALREADY_EXISTS) fail_error(err, "creating directory '" + path + "'");
    }
    DWORD attributes = ::GetFileAttributesW(whole.c_str());
    if (attributes == INVALID_FILE_ATTRIBUTES || !(attributes & FILE_ATTRIBUTE_DIRECTORY))
        fail(PD_E_INVALID, PD_CATEGORY_STORE, "'" + path + "' is not a directory");
    // Writable: a probe file that deletes itself.
    std::wstring probe = whole + L"\\.pd-write-probe";
    HANDLE f = ::CreateFileW(probe.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS, FILE_FLAG_DELETE_ON_CLOSE, nullptr);
    if (f == INVALID_HANDLE_VALUE)
        fail(PD_E_READONLY, PD_CATEGORY_STORE, "cache directory '" + path + "' is not writable: " + win32::message(::GetLastError()));
    ::CloseHandle(f);
}

void require_private_file(const std::string &path, const std::string &what) {
    HANDLE f = ::CreateFileW(wide(path).c_str(), READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                             OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (f == INVALID_HANDLE_VALUE) fail_error(::GetLastError(), "reading the " + what + " '" + path + "'");
    file keep = file::adopt(stored(f), path);
    require_private_acl(f, path, what);
}

file open_private_file(const std::string &path, const std::string &what) {
    HANDLE f = ::CreateFileW(wide(path).c_str(), GENERIC_READ | READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (f == INVALID_HANDLE_VALUE) fail_error(::GetLastError(), "reading the " + what + " '" + path + "'");
    file opened = file::adopt(stored(f), path);
    if (!opened.regular()) fail(PD_E_INVALID, PD_CATEGORY_OS, what + " '" + path + "' is not a regular file");
    require_private_acl(f, path, what);
    return opened;
}

void atomic_replace(const std::string &from, const std::string &to) {
    // WRITE_THROUGH: the rename is durable when this returns (POSIX syncs the directory).
    if (!::MoveFileExW(wide(from).c_str(), wide(to).c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
        fail_error(::GetLastError(), "renaming '" + from + "' to '" + to + "'");
}

bool kernel_copy(const file &, const file &, std::uint64_t) { return false; }

bool clone_file(const file &, const file &) { return false; }  // ReFS block cloning: not yet

bool hard_link(const std::string &existing, const std::string &link) {
    return ::CreateHardLinkW(wide(link).c_str(), wide(existing).c_str(), nullptr) != 0;
}

void give_delivered_access(const std::string &) {}

// The file's own record (through an open handle; NTFS may leave a directory entry's copy
// stale under a hard link other than the one written through). 0, or the error.
static DWORD file_record(const std::string &path, BY_HANDLE_FILE_INFORMATION &info) {
    HANDLE f = ::CreateFileW(wide(path).c_str(), FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
    if (f == INVALID_HANDLE_VALUE) return ::GetLastError();
    DWORD err = ::GetFileInformationByHandle(f, &info) ? 0 : ::GetLastError();
    ::CloseHandle(f);
    return err;
}

std::int64_t modified_ns(const std::string &path) {
    BY_HANDLE_FILE_INFORMATION info{};
    if (DWORD err = file_record(path, info)) fail_error(err, "reading the times of '" + path + "'");
    auto t = (static_cast<std::uint64_t>(info.ftLastWriteTime.dwHighDateTime) << 32) | info.ftLastWriteTime.dwLowDateTime;
    return static_cast<std::int64_t>(t) * 100;
}

bool same_file(const std::string &a, const std::string &b) {
    BY_HANDLE_FILE_INFORMATION ia{}, ib{};
    return file_record(a, ia) == 0 && file_record(b, ib) == 0 && ia.dwVolumeSerialNumber == ib.dwVolumeSerialNumber &&
           ia.nFileIndexHigh == ib.nFileIndexHigh && ia.nFileIndexLow == ib.nFileIndexLow;
}

void remove_file(const std::string &path) noexcept {
    try {
        ::DeleteFileW(wide(path).c_str());
    } catch (...) {
    }
}

device_facts read_device_facts() {
    device_facts facts;
    facts.uptime_seconds = ::GetTickCount64() / 1000;
    // No system battery: a desktop (or a server); a battery: a laptop. SMBIOS would say more,
    // but needs WMI; hosts that know better override through the C ABI.
    SYSTEM_POWER_STATUS power{};
    if (::GetSystemPowerStatus(&power)) facts.chassis = (power.BatteryFlag & 128) || power.BatteryFlag == 255 ? 1 : 2;
    facts.os_type = ::IsWindowsServer() ? 2 : 1;
    return facts;
}

}  // namespace pd::platform
