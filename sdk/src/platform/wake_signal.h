// A level-triggered wake-up handle for hosts with their own event loop: readable (POSIX) or
// signalled (a Windows manual-reset event) while set. POSIX in wake_signal_posix.cpp.
#pragma once

namespace pd::platform {

class wake_signal {
public:
    // Where the platform has none (or it could not be made), native() is -1 and set() does nothing.
    wake_signal();
    ~wake_signal();
    wake_signal(const wake_signal &) = delete;
    wake_signal &operator=(const wake_signal &) = delete;

    // Makes the handle readable (true) or not (false). Not thread-safe: the caller serialises.
    void set(bool on);
    // The descriptor a host polls for readability, or -1.
    int native() const { return read_end_; }

private:
    int read_end_ = -1;
    int write_end_ = -1;
};

}  // namespace pd::platform
