// platform/wake_signal.h on Windows: a manual-reset event, signalled while set, for hosts
// that wait with WaitForMultipleObjects or MsgWaitForMultipleObjects.
#include "platform/wake_signal.h"

#include "platform/win32.h"

namespace pd::platform {

wake_signal::wake_signal() { event_ = ::CreateEventW(nullptr, TRUE, FALSE, nullptr); }

wake_signal::~wake_signal() {
    if (event_) ::CloseHandle(event_);
}

void wake_signal::set(bool on) {
    if (!event_) return;
    if (on)
        ::SetEvent(event_);
    else
        ::ResetEvent(event_);
}

}  // namespace pd::platform
