// File storage: a local path or a mounted share. Reads are positional (pread) because the
// host reads one stream from several source I/O threads at once. The plugin links nothing
// from the core, so its three OS calls stay here: a Windows build uses CreateFileW
// (FILE_SHARE_READ), GetFileSizeEx and ReadFile with an OVERLAPPED offset instead.
#include "source.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pd_origin {

namespace {

class file_source final : public source {
public:
    explicit file_source(std::string path) : path_(std::move(path)) {}
    ~file_source() override {
        if (fd_ >= 0) ::close(fd_);
    }

    status open(std::uint64_t size) override {
        fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) {
            int err = errno;
            return status::fail(err == ENOENT ? PD_PLUGIN_E_NOT_FOUND : PD_PLUGIN_E_IO,
                                "cannot open origin file '" + path_ + "': " + std::strerror(err));
        }
        struct stat st {};
        if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode))
            return status::fail(PD_PLUGIN_E_IO, "origin '" + path_ + "' is not a regular file");
        if (static_cast<std::uint64_t>(st.st_size) != size)
            return status::fail(PD_PLUGIN_E_CHANGED, "origin content changed: '" + path_ + "' is " +
                                                         std::to_string(st.st_size) + " bytes but the published content is " +
                                                         std::to_string(size));
        return {};
    }

    status read(std::uint64_t offset, void *buffer, std::size_t length) override {
        auto p = static_cast<char *>(buffer);
        std::size_t done = 0;
        while (done < length) {
            ssize_t n = ::pread(fd_, p + done, length - done, static_cast<off_t>(offset + done));
            if (n < 0) {
                if (errno == EINTR) continue;
                return status::fail(PD_PLUGIN_E_IO, "reading origin file '" + path_ + "': " + std::strerror(errno));
            }
            if (n == 0)
                return status::fail(PD_PLUGIN_E_CHANGED, "origin content changed: '" + path_ + "' ended at offset " +
                                                             std::to_string(offset + done));
            done += static_cast<std::size_t>(n);
        }
        return {};
    }

    std::string describe() const override { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace

std::unique_ptr<source> make_file_source(const std::string &path) { return std::make_unique<file_source>(path); }

}  // namespace pd_origin
