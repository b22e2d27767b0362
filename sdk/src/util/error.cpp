#include "util/error.h"

#include <cerrno>
#include <cstring>

namespace pd {

void fail_errno(int err, const std::string &what) {
    int code = PD_E_IO;
    switch (err) {
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        code = PD_E_NOSPACE;
        break;
    case EROFS:
    case EACCES:
    case EPERM:
        code = PD_E_READONLY;
        break;
    case ENOENT:
    case ENOTDIR:
        code = PD_E_NOT_FOUND;
        break;
    case ENOMEM:
        code = PD_E_NOMEM;
        break;
    case EWOULDBLOCK:
        code = PD_E_BUSY;
        break;
    default:
        break;
    }
    const char *detail = code == PD_E_NOSPACE ? "disk full" : std::strerror(err);
    throw error(code, PD_CATEGORY_OS, what + ": " + detail);
}

}  // namespace pd
