// What file.cpp's portable parts (copying, delivering, atomic writes, bounded reads) need
// from each platform: file_posix.cpp and file_win32.cpp each define these. Internal to
// platform/.
#pragma once

#include "platform/file.h"

#include <cstdint>
#include <string>

namespace pd::platform {

// Copies `size` bytes without a round trip through user space; false where the platform or
// the filesystems cannot (the caller copies through a buffer). Throws on a real I/O error.
bool kernel_copy(const file &src, const file &dst, std::uint64_t size);
// Makes `dst` share `src`'s blocks (copy-on-write); false where the filesystem cannot.
bool clone_file(const file &src, const file &dst);
// A second name for a file; false when it cannot be made (another filesystem, no support).
bool hard_link(const std::string &existing, const std::string &link);
// Both paths name one file (hard links to it); false when either does not exist.
bool same_file(const std::string &a, const std::string &b);
// A cache file just hard-linked to a destination gets the access a delivered copy has: 0644
// on POSIX (the cache directory stays 0700, so nobody else reaches it through the cache). On
// Windows nothing changes: the link keeps the cache file's owner-only DACL (pd_delivery).
void give_delivered_access(const std::string &path);
// Removes a file, ignoring errors (clean-up paths).
void remove_file(const std::string &path) noexcept;
// Opens a file holding a secret for reading after checking it is a regular file only its
// owner can read or change (require_private_file's rule, on the file opened).
file open_private_file(const std::string &path, const std::string &what);

}  // namespace pd::platform
