// What the binding's translation units share: the error a failed C call becomes (turned into
// a peerdist.errors exception by the module's translator), and conversions of ids and buffers.
#pragma once

#include <peerdist.h>

#include <pybind11/pybind11.h>

#include <string>

namespace peerdist_python {

namespace py = pybind11;

struct native_error {
    int code, category;
    std::string message;
};

inline void check(int rc) {
    if (rc == PD_OK) return;
    const pd_error *e = pd_error_last();
    throw native_error{rc, e->category, e->message};
}

inline std::string id_hex(const pd_content_id *id) {
    char hex[65];
    check(pd_content_id_to_hex(hex, id));
    return hex;
}

inline pd_content_id parse_id(const std::string &hex) {
    pd_content_id id;
    check(pd_content_id_from_hex(&id, hex.c_str()));
    return id;
}

inline py::bytes take_buf(pd_buf &b) {
    py::bytes out(reinterpret_cast<const char *>(b.ptr), b.size);
    pd_buf_dispose(&b);
    return out;
}

struct manifest {
    pd_manifest *m = nullptr;
    explicit manifest(pd_manifest *p) : m(p) {}
    ~manifest() { pd_manifest_free(m); }
    manifest(const manifest &) = delete;
    manifest &operator=(const manifest &) = delete;
};

// Binds peerdist._native.Admin (admin.cpp).
void bind_admin(py::module_ &mod);

}  // namespace peerdist_python
