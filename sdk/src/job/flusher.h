// Makes a job's written blocks durable in batches and records them in the verified index:
// fdatasync of the content's data file, then block_store::mark_verified, on a worker. A block
// is written (and may be served to nobody yet) -> pending -> durable and verified. Batches go
// out when job.flush_bytes are pending, job.flush_interval_ms after the first pending block,
// or at once when asked (the last blocks, pause, cancel, failure).
#pragma once

#include "platform/file.h"
#include "store/block_store.h"
#include "util/bitmap.h"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pd::core {

class session;

class flusher : public std::enable_shared_from_this<flusher> {
public:
    // What the job hears, on the network thread.
    struct listener {
        virtual ~listener() = default;
        // `blocks` are durable and recorded; `verified_bytes` is the content's total now.
        virtual void on_durable(const std::vector<std::uint64_t> &blocks, std::uint64_t verified_bytes) = 0;
        virtual void on_flush_failed(int code, const std::string &message) = 0;
    };

    // `durable`: the blocks the index holds already.
    flusher(session &s, store::hash content, std::shared_ptr<platform::file> file, block_bitmap durable,
            std::uint64_t verified_bytes, std::weak_ptr<listener> owner);

    // A verified block was written: it waits for the next batch.
    void add(std::uint64_t block, std::uint32_t length);
    // Sends a batch now (`now`), or once enough is pending or the interval passed.
    void schedule(bool now, std::uint64_t flush_bytes, std::int64_t interval_ms);
    // Shutdown: makes the pending blocks durable on this thread (errors are logged).
    void flush_sync();
    // Stops the interval timer (the job ended).
    void cancel_timer() { timer_.cancel(); }
    // The job completed: nothing is left to flush, and the data file's handle goes (on
    // Windows a file with an open handle cannot lose a name: store::shared_file_intact).
    void release_file() { file_.reset(); }

    bool durable(std::uint64_t block) const { return durable_.test(block); }
    bool all_durable(std::uint64_t block_count) const { return durable_.count() == block_count; }
    std::uint64_t verified_bytes() const { return verified_bytes_; }
    bool pending() const { return !pending_.empty(); }
    // A batch is on a worker.
    bool busy() const { return running_; }

private:
    void start_batch();
    void on_batch_done(std::uint64_t verified, std::vector<std::uint64_t> blocks, std::string error, int code);

    session &session_;
    store::hash content_;
    std::shared_ptr<platform::file> file_;
    std::weak_ptr<listener> owner_;
    block_bitmap durable_;
    std::uint64_t verified_bytes_;
    std::vector<std::uint64_t> pending_;
    std::uint64_t pending_bytes_ = 0;
    bool running_ = false, again_ = false, timer_armed_ = false;
    std::uint64_t flush_bytes_ = 0;
    boost::asio::steady_timer timer_;
};

}  // namespace pd::core
