// A level-triggered wake-up handle for hosts with their own event loop: readable (POSIX) or
// signalled (a Windows manual-reset event) while set. POSIX in wake_signal_posix.cpp,
// Windows in wake_signal_win32.cpp.
#pragma once

namespace pd::platform {

class wake_signal {
public:
    // Where it could not be made, fd() is -1, handle() null and set() does nothing.
    wake_signal();
    ~wake_signal();
    wake_signal(const wake_signal &) = delete;
    wake_signal &operator=(const wake_signal &) = delete;

    // Makes the handle readable (true) or not (false). Not thread-safe: the caller serialises.
    void set(bool on);
    // The descriptor a host polls for readability (POSIX), or -1.
    int fd() const { return read_end_; }
    // The event object a host waits on (Windows: a HANDLE), or null.
    void *handle() const { return event_; }

private:
    int read_end_ = -1;
    int write_end_ = -1;
    void *event_ = nullptr;
};

}  // namespace pd::platform
