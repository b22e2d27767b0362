// Shared test helpers: real temporary directories, deterministic files, job waits.
#pragma once

#include <peerdist.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>
#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace pdtest {

class temp_dir {
public:
    // A new directory under the system's temporary folder (create_directory is exclusive:
    // a name someone else took is skipped).
    temp_dir() {
        std::random_device rd;
        for (int attempt = 0; attempt < 100; ++attempt) {
            char name[32];
            std::snprintf(name, sizeof name, "pdtest-%08x%04x", rd(), rd() & 0xffff);
            auto p = std::filesystem::temp_directory_path() / name;
            if (std::filesystem::create_directory(p)) {
                path_ = p.generic_string();
                return;
            }
        }
        throw std::runtime_error("no temporary directory could be made");
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string &path() const { return path_; }
    std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

inline std::vector<std::uint8_t> random_bytes(std::size_t size, std::uint32_t seed) {
    std::vector<std::uint8_t> out(size);
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < size; i += 4) {
        auto v = static_cast<std::uint32_t>(rng());  // mt19937 yields 32-bit values
        std::memcpy(out.data() + i, &v, std::min<std::size_t>(4, size - i));
    }
    return out;
}

inline void write_file(const std::string &path, const std::vector<std::uint8_t> &data) {
    std::ofstream out(std::filesystem::u8path(path), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline std::vector<std::uint8_t> read_file(const std::string &path) {
    std::ifstream in(std::filesystem::u8path(path), std::ios::binary);
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_random_file(const std::string &path, std::size_t size, std::uint32_t seed) {
    write_file(path, random_bytes(size, seed));
}

struct session_ptr {
    pd_session *s = nullptr;
    ~session_ptr() { pd_session_free(s); }
    pd_session *operator->() { return s; }
    operator pd_session *() { return s; }
};

inline int open_session(session_ptr &out, const std::string &cache, std::uint64_t quota = 0) {
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = cache.c_str();
    o.cache_quota_bytes = quota;
    int rc = pd_session_new(&out.s, &o);
    // These tests are about fetching and storing: they import unsigned contents. The trust
    // rules have their own tests (test_publication.cpp), on sessions opened without this.
    if (rc == PD_OK) rc = pd_session_set_setting(out.s, "trust.allow_unsigned", "1");
    return rc;
}

inline std::string last_error() { return pd_error_last()->message; }

struct job_outcome {
    pd_job_status status{};
    std::vector<pd_event> events;
    bool timed_out = false;
    bool has(std::uint32_t type) const {
        for (auto &e : events)
            if (e.type == type) return true;
        return false;
    }
    std::string message_of(std::uint32_t type) const {
        for (auto &e : events)
            if (e.type == type) return e.message;
        return "";
    }
};

// Collects events until the job completes, fails or is cancelled (bounded in time).
inline job_outcome wait_job(pd_session *s, std::uint64_t job, int timeout_s = 120) {
    job_outcome out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
        pd_event ev[32];
        size_t n = 0;
        int rc = pd_session_wait_events(s, ev, sizeof(pd_event), 32, &n, 200);
        bool done = false;
        if (rc == PD_OK)
            for (size_t i = 0; i < n; ++i) {
                out.events.push_back(ev[i]);
                if (ev[i].job_id == job && (ev[i].type == PD_EVENT_JOB_COMPLETED || ev[i].type == PD_EVENT_JOB_FAILED ||
                                            ev[i].type == PD_EVENT_JOB_CANCELLED))
                    done = true;
            }
        if (done) break;
        if (std::chrono::steady_clock::now() > deadline) {
            out.timed_out = true;
            break;
        }
    }
    out.status.struct_size = sizeof out.status;
    pd_job_status_get(&out.status, s, job);
    return out;
}

// Waits (bounded) until the job reports at least `bytes` verified and durable.
inline bool wait_progress(pd_session *s, std::uint64_t job, std::uint64_t bytes, int timeout_s = 60) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        pd_job_status st{};
        st.struct_size = sizeof st;
        if (pd_job_status_get(&st, s, job) != PD_OK) return false;
        if (st.bytes_verified >= bytes) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

#ifdef _WIN32
inline bool is_root() { return false; }
#else
inline bool is_root() { return ::geteuid() == 0; }
#endif

// A file:// URL for an absolute path: file:///tmp/x, or file:///C:/x on Windows.
inline std::string file_url(const std::string &path) { return path.front() == '/' ? "file://" + path : "file:///" + path; }

// How many names a file has (std::filesystem::hard_link_count says 1 for every file on
// MinGW's runtime).
inline std::uint64_t link_count(const std::string &path) {
#ifdef _WIN32
    HANDLE f = CreateFileW(std::filesystem::u8path(path).c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           nullptr, OPEN_EXISTING, 0, nullptr);
    BY_HANDLE_FILE_INFORMATION info{};
    bool ok = f != INVALID_HANDLE_VALUE && GetFileInformationByHandle(f, &info);
    if (f != INVALID_HANDLE_VALUE) CloseHandle(f);
    return ok ? info.nNumberOfLinks : 0;
#else
    return std::filesystem::hard_link_count(path);
#endif
}

// Delivers content `id` to `dest` with the default options (a hard link to the cache's file),
// then changes the byte at `offset` in place, as a host patching its file would — past the
// file system's coarse modification-time tick, so the write shows. Returns the file's bytes.
inline std::vector<std::uint8_t> deliver_then_host_writes(pd_session *s, const pd_content_id *id, const std::string &dest,
                                                          std::uint64_t offset) {
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = dest.c_str();
    uint64_t job = 0;
    EXPECT_EQ(pd_job_start(&job, s, id, &jo), PD_OK);
    EXPECT_EQ(wait_job(s, job).status.state, PD_JOB_COMPLETED);
    EXPECT_EQ(link_count(dest), 2u);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    {
        std::fstream io(std::filesystem::u8path(dest), std::ios::in | std::ios::out | std::ios::binary);
        io.seekg(static_cast<std::streamoff>(offset));
        char c = 0;
        io.get(c);
        io.seekp(static_cast<std::streamoff>(offset));
        io.put(static_cast<char>(c ^ 0x5a));
    }
    return read_file(dest);
}

// The file name of a plugin module on this platform ("good" -> "good.so" or "good.dll").
inline std::string module_file(const std::string &name) { return name + PD_TEST_MODULE_SUFFIX; }

}  // namespace pdtest
