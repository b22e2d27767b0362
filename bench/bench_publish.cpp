// Publish hashing throughput: pd_manifest_hash_file() on one file; prints seconds.
#include <peerdist.h>

#include <chrono>
#include <cstdio>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    auto t0 = std::chrono::steady_clock::now();
    pd_manifest *m = nullptr;
    if (pd_manifest_hash_file(&m, argv[1], nullptr) != PD_OK) {
        std::fprintf(stderr, "%s\n", pd_error_last()->message);
        return 1;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%.4f\n", s);
    pd_manifest_free(m);
    return 0;
}
