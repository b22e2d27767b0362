// Shared test helpers: real temporary directories, deterministic files, job waits.
#pragma once

#include <peerdist.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <unistd.h>
#include <string>
#include <vector>

namespace pdtest {

class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "pdtest-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
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
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline std::vector<std::uint8_t> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
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

inline bool is_root() { return ::geteuid() == 0; }

}  // namespace pdtest
