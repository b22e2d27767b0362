#include "core/event_queue.h"

#include "store/block_store.h"

#include <chrono>
#include <cstring>

namespace pd::core {

static thread_local bool notifying = false;

bool in_notify_callback() { return notifying; }

pd_event make_event(pd_event_type type, std::uint64_t job_id, const char *message) {
    pd_event e;
    std::memset(&e, 0, sizeof e);
    e.type = type;
    e.job_id = job_id;
    e.timestamp_ms = store::now_ms();
    if (message) {
        std::strncpy(e.message, message, sizeof e.message - 1);
        // Do not leave half a UTF-8 sequence at a truncation point.
        std::size_t n = std::strlen(e.message);
        if (n == sizeof e.message - 1) {
            while (n > 0 && (static_cast<unsigned char>(e.message[n - 1]) & 0xC0) == 0x80) --n;
            if (n > 0 && (static_cast<unsigned char>(e.message[n - 1]) & 0x80)) --n;
            e.message[n] = '\0';
        }
    }
    return e;
}

event_queue::event_queue(std::size_t capacity, pd_notify_cb notify, void *notify_user_data)
    : capacity_(capacity ? capacity : 4096), notify_(notify), notify_user_data_(notify_user_data) {}

void event_queue::set_signalled_locked(bool on) {
    if (on == signalled_) return;
    signalled_ = on;
    wake_.set(on);
}

void event_queue::push(pd_event event) {
    bool was_empty;
    {
        std::lock_guard lk(mu_);
        was_empty = queue_.empty();
        if (dropped_pending_ && queue_.size() < capacity_) {
            auto d = make_event(PD_EVENT_DROPPED, 0, "events were dropped because the queue was full");
            d.count = dropped_pending_;
            dropped_pending_ = 0;
            queue_.push_back(d);
        }
        if (queue_.size() >= capacity_) {
            ++dropped_pending_;
            ++dropped_total_;
            return;
        }
        queue_.push_back(event);
        set_signalled_locked(true);
    }
    cv_.notify_all();
    // Outside the lock: the host may take its own locks in the callback.
    if (was_empty && notify_) {
        notifying = true;
        notify_(notify_user_data_);
        notifying = false;
    }
}

std::size_t event_queue::pop(void *out, std::size_t stride, std::size_t capacity) {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    auto dst = static_cast<unsigned char *>(out);
    std::size_t copy = std::min(stride, sizeof(pd_event));
    while (n < capacity) {
        pd_event e;
        if (!queue_.empty()) {
            e = queue_.front();
            queue_.pop_front();
        } else if (dropped_pending_) {
            // The losses are reported after the (older) events that were kept.
            e = make_event(PD_EVENT_DROPPED, 0, "events were dropped because the queue was full");
            e.count = dropped_pending_;
            dropped_pending_ = 0;
        } else {
            break;
        }
        std::memcpy(dst + n * stride, &e, copy);
        ++n;
    }
    if (queue_.empty() && !dropped_pending_) set_signalled_locked(false);
    return n;
}

bool event_queue::wait(int timeout_ms) {
    std::unique_lock lk(mu_);
    auto ready = [&] { return !queue_.empty() || dropped_pending_; };
    if (timeout_ms < 0) {
        cv_.wait(lk, ready);
        return true;
    }
    return cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), ready);
}

std::size_t event_queue::dropped_total() const {
    std::lock_guard lk(mu_);
    return dropped_total_;
}

}  // namespace pd::core
