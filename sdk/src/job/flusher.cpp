#include "job/flusher.h"

#include "core/session.h"
#include "util/error.h"

#include <boost/asio/post.hpp>

namespace pd::core {

namespace asio = boost::asio;

flusher::flusher(session &s, store::hash content, std::shared_ptr<platform::file> file, block_bitmap durable,
                 std::uint64_t verified_bytes, std::weak_ptr<listener> owner)
    : session_(s), content_(content), file_(std::move(file)), owner_(std::move(owner)), durable_(std::move(durable)),
      verified_bytes_(verified_bytes), timer_(s.net()) {}

void flusher::add(std::uint64_t block, std::uint32_t length) {
    pending_.push_back(block);
    pending_bytes_ += length;
}

void flusher::schedule(bool now, std::uint64_t flush_bytes, std::int64_t interval_ms) {
    if (pending_.empty()) return;
    flush_bytes_ = flush_bytes;
    if (running_) {
        again_ = true;  // the next batch leaves when this one is done
        return;
    }
    if (now || pending_bytes_ >= flush_bytes) return start_batch();
    if (timer_armed_) return;
    timer_armed_ = true;
    timer_.expires_after(std::chrono::milliseconds(interval_ms));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
        self->timer_armed_ = false;
        if (!ec && !self->running_ && !self->pending_.empty()) self->start_batch();
    });
}

void flusher::start_batch() {
    running_ = true;
    auto blocks = std::move(pending_);
    pending_.clear();
    pending_bytes_ = 0;
    asio::post(session_.workers(), [self = shared_from_this(), blocks = std::move(blocks)]() mutable {
        std::uint64_t verified = 0;
        std::string error;
        int code = 0;
        try {
            // Durable first, then recorded: a crash between the two only loses the record.
            self->file_->datasync();
            verified = self->session_.store().mark_verified(self->content_, blocks);
        } catch (const pd::error &e) {
            error = e.what();
            code = e.code();
        }
        asio::post(self->session_.net(), [self, verified, blocks = std::move(blocks), error, code]() mutable {
            self->on_batch_done(verified, std::move(blocks), error, code);
        });
    });
}

void flusher::on_batch_done(std::uint64_t verified, std::vector<std::uint64_t> blocks, std::string error, int code) {
    running_ = false;
    auto owner = owner_.lock();
    if (!error.empty()) {
        if (owner) owner->on_flush_failed(code, "making blocks durable failed: " + error);
        return;
    }
    for (auto b : blocks) durable_.set(b);
    verified_bytes_ = verified;
    if (again_) {
        again_ = false;
        if (!pending_.empty()) start_batch();
    }
    if (owner) owner->on_durable(blocks, verified);
}

void flusher::flush_sync() {
    if (pending_.empty()) return;
    try {
        file_->datasync();
        verified_bytes_ = session_.store().mark_verified(content_, pending_);
        for (auto b : pending_) durable_.set(b);
        pending_.clear();
        pending_bytes_ = 0;
    } catch (const pd::error &e) {
        session_.log(PD_LOG_ERROR, std::string("flushing at shutdown: ") + e.what());
    }
}

}  // namespace pd::core
