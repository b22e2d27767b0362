#include "job/block_sink.h"

#include "crypto/hash.h"
#include "util/error.h"

#include <boost/asio/post.hpp>

namespace pd::core {

block_sink::block_sink(std::shared_ptr<const content::manifest> manifest, std::shared_ptr<platform::file> file,
                       boost::asio::thread_pool &workers, boost::asio::io_context &net)
    : manifest_(std::move(manifest)), file_(std::move(file)), workers_(workers), net_(net) {}

void block_sink::add(std::uint64_t block, std::vector<std::uint8_t> bytes, completion done) {
    std::lock_guard lk(mu_);
    queue_.push_back(item{block, std::move(bytes), std::move(done), {}});
    if (draining_) return;  // the running drain picks it up
    draining_ = true;
    boost::asio::post(workers_, [self = shared_from_this()] { self->drain(); });
}

void block_sink::drain() {
    std::vector<item> batch;
    for (;;) {
        {
            std::lock_guard lk(mu_);
            if (queue_.empty()) {
                draining_ = false;
                return;
            }
            batch.swap(queue_);
        }
        for (auto &it : batch) {
            const auto &m = *manifest_;
            try {
                it.result.good = it.bytes.size() == m.block_length(it.block) &&
                                 crypto::sha256(it.bytes.data(), it.bytes.size()) == m.block_hashes[it.block];
                if (it.result.good) file_->pwrite(m.block_offset(it.block), it.bytes.data(), it.bytes.size());
            } catch (const error &e) {
                it.result.good = false;
                it.result.error = e.code();
                it.result.message = e.what();
            }
            it.bytes = {};  // the memory goes now, not after the hand-back
        }
        boost::asio::post(net_, [batch = std::move(batch)] {
            for (const auto &it : batch) it.done(it.result);
        });
        batch = {};
    }
}

}  // namespace pd::core
