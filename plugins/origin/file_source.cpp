// File storage: a local path or a mounted share. Reads are positional because the host
// reads one stream from several source I/O threads at once; the OS calls are the
// foundation's (platform/file.h), linked into the plugin, so Windows is the same code.
#include "source.h"

#include "platform/file.h"
#include "util/error.h"

namespace pd_origin {

namespace {

class file_source final : public source {
public:
    explicit file_source(std::string path) : path_(std::move(path)) {}

    status open(std::uint64_t size) override {
        try {
            file_ = pd::platform::file(path_, pd::platform::file::mode::read);
            if (!file_.regular()) return status::fail(PD_PLUGIN_E_IO, "origin '" + path_ + "' is not a regular file");
            auto actual = file_.size();
            if (actual != size)
                return status::fail(PD_PLUGIN_E_CHANGED, "origin content changed: '" + path_ + "' is " + std::to_string(actual) +
                                                             " bytes but the published content is " + std::to_string(size));
            return {};
        } catch (const pd::error &e) {
            return status::fail(e.code() == PD_E_NOT_FOUND ? PD_PLUGIN_E_NOT_FOUND : PD_PLUGIN_E_IO,
                                "origin file: " + std::string(e.what()));
        }
    }

    status read(std::uint64_t offset, void *buffer, std::size_t length) override {
        try {
            std::size_t got = file_.pread(offset, buffer, length);
            if (got < length)
                return status::fail(PD_PLUGIN_E_CHANGED,
                                    "origin content changed: '" + path_ + "' ended at offset " + std::to_string(offset + got));
            return {};
        } catch (const pd::error &e) {
            return status::fail(PD_PLUGIN_E_IO, "origin file: " + std::string(e.what()));
        }
    }

    std::string describe() const override { return path_; }

private:
    std::string path_;
    pd::platform::file file_;
};

}  // namespace

std::unique_ptr<source> make_file_source(const std::string &path) { return std::make_unique<file_source>(path); }

}  // namespace pd_origin
