#include "helpers.h"

#include <atomic>
#ifdef _WIN32
#include <windows.h>
#else
#include <poll.h>
#endif

namespace {

std::string fake_dir() { return PD_TEST_FAKE_PLUGIN_DIR; }

// What a host's own event loop sees: the descriptor readable (POSIX) or the event object
// signalled (Windows), each platform's call saying the other's is unsupported.
class wake_handle {
public:
    explicit wake_handle(pd_session *s) {
#ifdef _WIN32
        EXPECT_EQ(pd_session_event_handle(&handle_, s), PD_OK);
        int fd;
        EXPECT_EQ(pd_session_event_fd(&fd, s), PD_E_UNSUPPORTED);
#else
        EXPECT_EQ(pd_session_event_fd(&fd_, s), PD_OK);
        void *handle;
        EXPECT_EQ(pd_session_event_handle(&handle, s), PD_E_UNSUPPORTED);
#endif
    }
    bool signalled() const {
#ifdef _WIN32
        return ::WaitForSingleObject(static_cast<HANDLE>(handle_), 0) == WAIT_OBJECT_0;
#else
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
#endif
    }

private:
    int fd_ = -1;
    void *handle_ = nullptr;
};

}  // namespace

TEST(events, overflow_keeps_oldest_and_reports_drops) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    std::string cache = dir / "cache";
    o.cache_dir = cache.c_str();
    o.event_queue_capacity = 2;
    ASSERT_EQ(pd_session_new(&s.s, &o), PD_OK);
    // Four plugins load: four PLUGIN_LOADED events into a queue of two, plus log lines.
    pd_session_load_plugin(s, fake_dir().c_str());
    pd_event ev[16];
    size_t n = 0;
    ASSERT_EQ(pd_session_poll_events(s, ev, sizeof(pd_event), 16, &n), PD_OK);
    ASSERT_EQ(n, 3u);
    EXPECT_EQ(ev[2].type, PD_EVENT_DROPPED);
    EXPECT_GE(ev[2].count, 2u);
    ASSERT_EQ(pd_session_poll_events(s, ev, sizeof(pd_event), 16, &n), PD_OK);
    EXPECT_EQ(n, 0u);
}

TEST(events, wake_fd_follows_the_queue_and_wait_times_out) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    wake_handle wake(s);
    EXPECT_FALSE(wake.signalled());
    pd_event ev[4];
    size_t n = 0;
    EXPECT_EQ(pd_session_wait_events(s, ev, sizeof(pd_event), 4, &n, 50), PD_E_TIMEOUT);
    ASSERT_EQ(pd_session_load_plugin(s, (fake_dir() + "/" + pdtest::module_file("good")).c_str()), PD_OK);
    EXPECT_TRUE(wake.signalled());
    ASSERT_EQ(pd_session_wait_events(s, ev, sizeof(pd_event), 4, &n, 1000), PD_OK);
    EXPECT_GE(n, 1u);
    // Drain the rest, then the descriptor is quiet again.
    while (pd_session_poll_events(s, ev, sizeof(pd_event), 4, &n) == PD_OK && n) {
    }
    EXPECT_FALSE(wake.signalled());
}

TEST(events, smaller_caller_struct_gets_a_prefix_only) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    ASSERT_EQ(pd_session_load_plugin(s, (fake_dir() + "/" + pdtest::module_file("good")).c_str()), PD_OK);
    // An older host whose pd_event ended before `message`: stride is its size.
    const size_t old_size = offsetof(pd_event, message);
    std::vector<unsigned char> buf(old_size * 4 + 16, 0xAB);
    size_t n = 0;
    ASSERT_EQ(pd_session_poll_events(s, reinterpret_cast<pd_event *>(buf.data()), old_size, 4, &n), PD_OK);
    ASSERT_GE(n, 1u);
    EXPECT_EQ(buf[n * old_size], 0xAB) << "wrote past the caller's stride";
}

namespace {
struct notify_state {
    std::atomic<int> calls{0};
    std::atomic<int> reentry_rc{1};
    pd_session *s = nullptr;
};
void PD_CALLBACK on_notify(void *user) {
    auto st = static_cast<notify_state *>(user);
    st->calls++;
    pd_event ev;
    size_t n = 0;
    st->reentry_rc = pd_session_poll_events(st->s, &ev, sizeof ev, 1, &n);
}
}  // namespace

TEST(events, notify_only_wakes_and_may_not_call_back) {
    pdtest::temp_dir dir;
    notify_state st;
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    std::string cache = dir / "cache";
    o.cache_dir = cache.c_str();
    o.notify = on_notify;
    o.notify_user_data = &st;
    pd_session *s = nullptr;
    ASSERT_EQ(pd_session_new(&s, &o), PD_OK);
    st.s = s;
    ASSERT_EQ(pd_session_load_plugin(s, (fake_dir() + "/" + pdtest::module_file("good")).c_str()), PD_OK);
    EXPECT_GE(st.calls.load(), 1);
    EXPECT_EQ(st.reentry_rc.load(), PD_E_MISUSE);
    pd_session_free(s);
}
