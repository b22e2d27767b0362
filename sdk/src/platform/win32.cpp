#include "platform/win32.h"

#include "util/error.h"

namespace pd::platform::win32 {

std::wstring wide(const std::string &utf8_text) {
    if (utf8_text.empty()) return {};
    int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8_text.data(), static_cast<int>(utf8_text.size()), nullptr, 0);
    if (n <= 0) fail(PD_E_INVALID, PD_CATEGORY_OS, "'" + utf8_text + "' is not UTF-8");
    std::wstring out(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8_text.data(), static_cast<int>(utf8_text.size()), out.data(), n);
    return out;
}

std::string utf8(const std::wstring &wide_text) {
    if (wide_text.empty()) return {};
    int n = ::WideCharToMultiByte(CP_UTF8, 0, wide_text.data(), static_cast<int>(wide_text.size()), nullptr, 0, nullptr, nullptr);
    std::string out(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
    if (n > 0) ::WideCharToMultiByte(CP_UTF8, 0, wide_text.data(), static_cast<int>(wide_text.size()), out.data(), n, nullptr, nullptr);
    return out;
}

std::string message(DWORD err) {
    wchar_t *buf = nullptr;
    DWORD n = ::FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                               err, 0, reinterpret_cast<wchar_t *>(&buf), 0, nullptr);
    std::string text = n ? utf8(std::wstring(buf, n)) : "error " + std::to_string(err);
    if (buf) ::LocalFree(buf);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.')) text.pop_back();
    return text;
}

void fail_error(DWORD err, const std::string &what) {
    int code = PD_E_IO;
    switch (err) {
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
        code = PD_E_NOSPACE;
        break;
    case ERROR_ACCESS_DENIED:
    case ERROR_WRITE_PROTECT:
        code = PD_E_READONLY;
        break;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_NAME:
        code = PD_E_NOT_FOUND;
        break;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        code = PD_E_NOMEM;
        break;
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
        code = PD_E_BUSY;
        break;
    default:
        break;
    }
    fail(code, PD_CATEGORY_OS, what + ": " + message(err));
}

}  // namespace pd::platform::win32
