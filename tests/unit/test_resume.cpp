// kill -9 mid-download: a real child process is killed with SIGKILL; the next run
// resumes and re-fetches only what was not yet durable.
#include "helpers.h"

#include "store/block_store.h"

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct child {
    pid_t pid = -1;
    FILE *out = nullptr;
    ~child() {
        if (out) fclose(out);
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

void spawn(child &c, const std::vector<std::string> &args) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    c.pid = ::fork();
    ASSERT_GE(c.pid, 0);
    if (c.pid == 0) {
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
    c.out = ::fdopen(fds[0], "r");
}

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
        spawn(c, args("8000000"));
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
        ::kill(c.pid, SIGKILL);
        int status = 0;
        ::waitpid(c.pid, &status, 0);
        c.pid = -1;
        ASSERT_TRUE(WIFSIGNALED(status));
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
    spawn(c, args("0"));
    char line[512];
    std::string stats;
    while (std::fgets(line, sizeof line, c.out)) {
        std::string l = line;
        ASSERT_EQ(l.rfind("failed", 0), std::string::npos) << l;
        if (l.rfind("stats ", 0) == 0) stats = l;
    }
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    c.pid = -1;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << stats;
    EXPECT_NE(stats.find("state=completed"), std::string::npos) << stats;
    EXPECT_EQ(stat_field(stats, "local"), durable) << stats;
    EXPECT_EQ(stat_field(stats, "origin"), size - durable) << stats;
    // Fetched bytes: the missing blocks, plus at most one piece per gap of verified blocks
    // inside a piece (pieces are contiguous reads).
    EXPECT_LE(stat_field(stats, "fetched"), size - durable + 8u * 1024 * 1024) << stats;
    EXPECT_EQ(pdtest::read_file(dir / "out.bin"), data);
}
