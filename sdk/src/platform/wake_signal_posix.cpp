#include "platform/wake_signal.h"

#include <fcntl.h>
#include <unistd.h>

namespace pd::platform {

// A self-pipe: one byte in it while set. Both ends non-blocking, so neither set() blocks.
wake_signal::wake_signal() {
    int fds[2];
    if (::pipe(fds) != 0) return;
    for (int fd : fds) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    read_end_ = fds[0];
    write_end_ = fds[1];
}

wake_signal::~wake_signal() {
    if (read_end_ >= 0) ::close(read_end_);
    if (write_end_ >= 0) ::close(write_end_);
}

void wake_signal::set(bool on) {
    if (read_end_ < 0) return;
    if (on) {
        char c = 1;
        (void)!::write(write_end_, &c, 1);
    } else {
        char buf[16];
        while (::read(read_end_, buf, sizeof buf) > 0) {
        }
    }
}

}  // namespace pd::platform
