// kill -9 mid-download: a real child process is killed outright (SIGKILL; TerminateProcess on
// Windows); the next run resumes and re-fetches only what was not yet durable.
#include "helpers.h"

#include "store/block_store.h"

#include <utility>

#ifdef _WIN32
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#else
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

// A child process whose standard output the test reads line by line, killed outright
// (SIGKILL; TerminateProcess on Windows: neither lets it run any code) or awaited.
struct child {
#ifdef _WIN32
    HANDLE process = nullptr;
#else
    pid_t pid = -1;
#endif
    FILE *out = nullptr;

    void spawn(const std::vector<std::string> &args) {
#ifdef _WIN32
        SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, TRUE};
        HANDLE read_end, write_end;
        ASSERT_TRUE(CreatePipe(&read_end, &write_end, &inherit, 0));
        SetHandleInformation(read_end, HANDLE_FLAG_INHERIT, 0);
        std::wstring command;
        for (auto &a : args) command += L"\"" + std::filesystem::u8path(a).wstring() + L"\" ";
        STARTUPINFOW si{};
        si.cb = sizeof si;
        si.dwFlags = STARTF_USESTDHANDLES;
        si.hStdOutput = write_end;
        si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
        PROCESS_INFORMATION pi{};
        ASSERT_TRUE(CreateProcessW(nullptr, command.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi));
        CloseHandle(write_end);
        CloseHandle(pi.hThread);
        process = pi.hProcess;
        out = _fdopen(_open_osfhandle(reinterpret_cast<intptr_t>(read_end), _O_RDONLY), "r");
#else
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::dup2(fds[1], 1);
            ::close(fds[0]);
            ::close(fds[1]);
            std::vector<char *> argv;
            for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(fds[1]);
        out = ::fdopen(fds[0], "r");
#endif
    }
    // Kills it at once; true when it died of the kill (not of its own accord).
    bool kill_hard() {
#ifdef _WIN32
        bool killed = TerminateProcess(process, 137) != 0;
        WaitForSingleObject(process, INFINITE);
        DWORD code = 0;
        GetExitCodeProcess(process, &code);
        CloseHandle(std::exchange(process, nullptr));
        return killed && code == 137;
#else
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(std::exchange(pid, -1), &status, 0);
        return WIFSIGNALED(status);
#endif
    }
    // Waits for it; its exit status.
    int wait() {
#ifdef _WIN32
        WaitForSingleObject(process, INFINITE);
        DWORD code = 1;
        GetExitCodeProcess(process, &code);
        CloseHandle(std::exchange(process, nullptr));
        return static_cast<int>(code);
#else
        int status = 0;
        ::waitpid(std::exchange(pid, -1), &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
#endif
    }
    ~child() {
        if (out) fclose(out);
#ifdef _WIN32
        if (process) kill_hard();
#else
        if (pid > 0) kill_hard();
#endif
    }
};

std::uint64_t stat_field(const std::string &line, const std::string &key) {
    auto p = line.find(key + "=");
    return p == std::string::npos ? UINT64_MAX : std::stoull(line.substr(p + key.size() + 1));
}

}  // namespace

TEST(resume, sigkill_mid_download_loses_only_blocks_in_flight) {
    pdtest::temp_dir dir;
    const std::size_t size = 24 * 1024 * 1024;
    auto data = pdtest::random_bytes(size, 99);
    pdtest::write_file(dir / "origin.bin", data);
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, (dir / "origin.bin").c_str(), nullptr), PD_OK);
    ASSERT_EQ(pd_manifest_write_file(m, (dir / "m.pdm").c_str()), PD_OK);
    pd::store::hash id;
    std::memcpy(id.data(), pd_manifest_id(m)->bytes, 32);
    pd_manifest_free(m);
    std::string helper = PD_TEST_FETCH_HELPER;
    auto args = [&](const char *rate) {
        return std::vector<std::string>{helper,           dir / "cache", PD_TEST_PLUGIN_DIR, dir / "m.pdm",
                                        dir / "origin.bin", rate,          dir / "out.bin"};
    };

    // Run 1: throttled to 8 MB/s, killed once a third is durable.
    std::uint64_t last_progress = 0;
    {
        child c;
        c.spawn(args("8000000"));
        char line[512];
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (std::fgets(line, sizeof line, c.out)) {
            std::string l = line;
            if (l.rfind("progress ", 0) == 0) last_progress = std::stoull(l.substr(9));
            ASSERT_EQ(l.rfind("error", 0), std::string::npos) << l;
            if (last_progress >= size / 3 || std::chrono::steady_clock::now() > deadline) break;
        }
        ASSERT_GE(last_progress, size / 3);
        ASSERT_LT(last_progress, size) << "finished before the kill: the test proves nothing";
        ASSERT_TRUE(c.kill_hard());
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "out.bin")) << "a partial download was delivered";

    // Everything reported durable is still recorded as verified.
    std::uint64_t durable = 0;
    {
        pd::store::block_store st(dir / "cache", {});
        auto rec = st.get(id);
        ASSERT_TRUE(rec);
        durable = rec->verified_bytes;
    }
    EXPECT_GE(durable, last_progress);

    // Run 2: unthrottled; resumes from the durable blocks.
    child c;
    c.spawn(args("0"));
    char line[512];
    std::string stats;
    while (std::fgets(line, sizeof line, c.out)) {
        std::string l = line;
        ASSERT_EQ(l.rfind("failed", 0), std::string::npos) << l;
        if (l.rfind("stats ", 0) == 0) stats = l;
    }
    ASSERT_EQ(c.wait(), 0) << stats;
    EXPECT_NE(stats.find("state=completed"), std::string::npos) << stats;
    EXPECT_EQ(stat_field(stats, "local"), durable) << stats;
    EXPECT_EQ(stat_field(stats, "origin"), size - durable) << stats;
    // Fetched bytes: the missing blocks, plus at most one piece per gap of verified blocks
    // inside a piece (pieces are contiguous reads).
    EXPECT_LE(stat_field(stats, "fetched"), size - durable + 8u * 1024 * 1024) << stats;
    EXPECT_EQ(pdtest::read_file(dir / "out.bin"), data);
}
