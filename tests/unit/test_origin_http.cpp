// The HTTP origin path in C++ too, so the ASan/UBSan preset exercises Beast and TLS-free
// HTTP code against a real nginx (the full scenario matrix is tests/python/test_origin_http.py).
#include "helpers.h"

#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

namespace {

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool port_open(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

struct nginx {
    pid_t pid = -1;
    int port = 0;
    nginx(const std::string &dir, const std::string &root) {
        port = free_port();
        std::filesystem::create_directories(dir + "/tmp");
        std::ofstream conf(dir + "/nginx.conf");
        conf << (::geteuid() == 0 ? "user root;\n" : "") << "daemon off; worker_processes 1; pid " << dir
             << "/nginx.pid;\nevents { worker_connections 64; }\nhttp { access_log off; client_body_temp_path " << dir
             << "/tmp; proxy_temp_path " << dir << "/tmp; fastcgi_temp_path " << dir << "/tmp; uwsgi_temp_path " << dir
             << "/tmp; scgi_temp_path " << dir << "/tmp;\n  server { listen 127.0.0.1:" << port << "; root " << root
             << "; location = /loop { return 302 /loop; } } }\n";
        conf.close();
        pid = ::fork();
        if (pid == 0) {
            ::setsid();
            ::execlp("nginx", "nginx", "-p", dir.c_str(), "-c", (dir + "/nginx.conf").c_str(), "-e",
                     (dir + "/error.log").c_str(), static_cast<char *>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 200 && !port_open(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ~nginx() {
        if (pid > 0) {
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    std::string url(const std::string &path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

}  // namespace

TEST(origin_http, download_from_nginx_and_errors) {
    if (::system("command -v nginx >/dev/null 2>&1") != 0) GTEST_SKIP() << "nginx is not installed";
    pdtest::temp_dir dir;
    std::filesystem::create_directories(dir / "www");
    auto data = pdtest::random_bytes(5 * 1024 * 1024 + 777, 42);
    pdtest::write_file(dir / "www/p.bin", data);
    nginx server(dir / "nginx", dir / "www");
    ASSERT_TRUE(port_open(server.port)) << "nginx did not start";

    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    ASSERT_EQ(pd_session_load_plugin(s, PD_TEST_PLUGIN_DIR), PD_OK);
    ASSERT_EQ(pd_session_set_setting(s, "plugin.origin.retries", "1"), PD_OK);
    ASSERT_EQ(pd_session_set_setting(s, "plugin.origin.retry_backoff_ms", "20"), PD_OK);
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, (dir / "www/p.bin").c_str(), nullptr), PD_OK);

    auto run = [&](const std::string &origin, const std::string &dest) {
        EXPECT_EQ(pd_content_import(s, m, origin.c_str()), PD_OK);
        pd_job_options jo = PD_JOB_OPTIONS_INIT;
        jo.destination = dest.c_str();
        uint64_t job = 0;
        EXPECT_EQ(pd_job_start(&job, s, pd_manifest_id(m), &jo), PD_OK);
        return pdtest::wait_job(s, job);
    };
    auto missing = run(server.url("/nope.bin"), dir / "a.bin");
    EXPECT_EQ(missing.status.state, PD_JOB_FAILED);
    EXPECT_NE(std::string(missing.status.message).find("HTTP 404"), std::string::npos) << missing.status.message;
    auto loop = run(server.url("/loop"), dir / "a.bin");
    EXPECT_NE(std::string(loop.status.message).find("too many redirects"), std::string::npos) << loop.status.message;
    auto ok = run(server.url("/p.bin"), dir / "a.bin");
    ASSERT_EQ(ok.status.state, PD_JOB_COMPLETED) << ok.status.message;
    EXPECT_EQ(ok.status.bytes_by_source[PD_SOURCE_ORIGIN], data.size());
    EXPECT_EQ(pdtest::read_file(dir / "a.bin"), data);
    pd_manifest_free(m);
}
