// Bounded event queue (design §1.5, style "Threads and events"): producers on any
// thread, the host pulls. Overflow keeps the oldest events and counts the rest; the
// count is delivered as one PD_EVENT_DROPPED event once room frees up. A wake signal is
// readable while events are queued, for hosts with their own event loop.
#pragma once

#include "platform/wake_signal.h"

#include <peerdist/events.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

namespace pd::core {

class event_queue {
public:
    event_queue(std::size_t capacity, pd_notify_cb notify, void *notify_user_data);
    event_queue(const event_queue &) = delete;
    event_queue &operator=(const event_queue &) = delete;

    void push(pd_event event);
    // Copies up to `capacity` events into `out` (stride `stride` bytes, writing at most
    // min(stride, sizeof(pd_event)) per event). Returns the count.
    std::size_t pop(void *out, std::size_t stride, std::size_t capacity);
    // Waits until an event is queued or the timeout passes (negative: forever).
    bool wait(int timeout_ms);
    // The descriptor readable while events are queued (POSIX), or -1.
    int fd() const { return wake_.fd(); }
    // The event object signalled while events are queued (Windows), or null.
    void *handle() const { return wake_.handle(); }
    std::size_t dropped_total() const;

private:
    void set_signalled_locked(bool on);

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<pd_event> queue_;
    std::size_t capacity_;
    std::size_t dropped_pending_ = 0;
    std::size_t dropped_total_ = 0;
    bool signalled_ = false;
    platform::wake_signal wake_;
    pd_notify_cb notify_;
    void *notify_user_data_;
};

// True on a thread that is inside the host's notify callback (calls back are misuse).
bool in_notify_callback();

// Builds an event with the timestamp set and the message copied (truncated safely).
pd_event make_event(pd_event_type type, std::uint64_t job_id, const char *message);

}  // namespace pd::core
