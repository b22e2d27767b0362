// Helpers the *_win32.cpp files share: UTF-8 <-> UTF-16 at the Win32 boundary, and Win32
// error codes as pd::error. Internal to platform/; Windows only.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <string>

namespace pd::platform::win32 {

// UTF-8 (what the C ABI and the core carry) to UTF-16 (what Win32 takes). Throws
// PD_E_INVALID for bytes that are not UTF-8.
std::wstring wide(const std::string &utf8);
// UTF-16 to UTF-8 (invalid surrogates become U+FFFD).
std::string utf8(const std::wstring &wide);
// The system's message for a Win32 error code, in UTF-8 without the trailing line break.
std::string message(DWORD err);
// Throws pd::error for a Win32 error code, mapped as fail_errno maps errno (disk full ->
// PD_E_NOSPACE, access denied -> PD_E_READONLY, not found -> PD_E_NOT_FOUND, sharing or
// lock violation -> PD_E_BUSY, otherwise PD_E_IO), with `what` and the system's message.
[[noreturn]] void fail_error(DWORD err, const std::string &what);

}  // namespace pd::platform::win32
