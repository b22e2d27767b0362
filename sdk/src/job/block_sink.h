// Where a job's blocks from peers are verified and written: one queue per job, drained on the
// workers a batch at a time. A drain takes every block that queued while the last one ran,
// so a fast link costs one worker wake-up and one hand-back to the network thread per batch
// rather than two thread switches per 64 KiB block, and the job's file sees one writer at a
// time (concurrent pwrite to one file spins on the inode lock: docs/benchmarks.md).
#pragma once

#include "content/manifest.h"
#include "platform/file.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pd::core {

class block_sink : public std::enable_shared_from_this<block_sink> {
public:
    // What became of one block: `error` non-zero when writing failed (the disk, not the data).
    struct outcome {
        bool good = false;  // matched its hash and is written
        int error = 0;
        std::string message;
    };
    using completion = std::function<void(const outcome &)>;

    block_sink(std::shared_ptr<const content::manifest> manifest, std::shared_ptr<platform::file> file,
               boost::asio::thread_pool &workers, boost::asio::io_context &net);

    // Queues `bytes` as block `block`; `done` runs later on the network thread. A block of the
    // wrong length is as bad as one with the wrong hash. Any thread.
    void add(std::uint64_t block, std::vector<std::uint8_t> bytes, completion done);

private:
    struct item {
        std::uint64_t block;
        std::vector<std::uint8_t> bytes;
        completion done;
        outcome result;
    };
    void drain();  // worker

    const std::shared_ptr<const content::manifest> manifest_;
    const std::shared_ptr<platform::file> file_;
    boost::asio::thread_pool &workers_;
    boost::asio::io_context &net_;
    std::mutex mu_;
    std::vector<item> queue_;
    bool draining_ = false;
};

}  // namespace pd::core
