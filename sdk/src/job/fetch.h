// The worker side of a job: what a piece fetch brings back, the functions that verify blocks
// against the manifest before anything is written, the end-to-end check and delivery. They
// run on source I/O threads and workers and touch only what they are given.
#pragma once

#include "content/manifest.h"
#include "job/block_sink.h"
#include "job/piece_picker.h"
#include "core/event_queue.h"
#include "job/job_request.h"
#include "plugin_host/plugin_host.h"
#include "util/error.h"
#include "platform/file.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

namespace pd::peer {
struct peer_slot;
}

namespace pd::core {

// One fetch of one piece, as it comes back to the network thread.
struct piece_result {
    std::uint32_t index = 0;
    piece_picker::piece piece{};
    std::shared_ptr<plugin_host::stream> stream;  // the origin-side stream the bytes came from, or
    std::shared_ptr<peer::peer_slot> peer;        // the peer they came from
    std::uint32_t source_class = PD_SOURCE_ORIGIN;
    std::string source_name;
    std::string rejected;                         // a peer's REJECT reason
    std::vector<std::uint64_t> good;              // verified and written
    std::vector<std::uint64_t> bad;               // failed verification, discarded
    std::uint64_t bytes_fetched = 0;
    int error = 0;
    bool fatal = false;    // a local failure (disk): the job fails
    bool aborted = false;  // stopped by pause/cancel: requeued silently
    std::string message;
};

// Reads the piece from `stream` in one call and writes each block of `wanted` that verifies
// (source I/O thread). Failures land in `r`.
void read_piece(const content::manifest &m, const platform::file &file, const plugin_host::stream &stream,
                const std::vector<std::uint64_t> &wanted, piece_result &r);

// What a request to a peer needs besides the link: where blocks are verified and written, and
// what the network thread hears.
struct peer_fetch_context {
    content::hash content;
    std::shared_ptr<block_sink> sink;
    boost::asio::io_context *net;
    std::function<void(std::uint64_t block)> written;         // a block verified and on disk
    std::function<void(std::uint64_t bytes, std::int64_t sent_ms)> answered;  // the answer ended well
    std::function<void(piece_result)> done;                     // the piece is back
};

// Asks `r.peer` for blocks [first, first + count) of the piece; each of `wanted` that
// arrives is verified and written by the sink as it lands, so a block can be shared moments
// after it was received and a connection that dies loses only what was on the wire. `done`
// runs once the answer has ended and every block task has finished. Network thread.
void fetch_from_peer(const peer_fetch_context &ctx, piece_result r, std::vector<std::uint64_t> wanted);

// verify_on_disk over the whole content, split into ranges verified on up to `max_parts`
// workers at once (hashing is the bound); `done` runs on the worker that finished last, with
// the first failure. Everything referenced must outlive `done` (the job keeps itself alive
// through the callbacks).
void verify_in_parts(boost::asio::thread_pool &workers, unsigned max_parts, const content::manifest &m,
                     const platform::file &file, const block_bitmap *only, std::function<bool()> stopped,
                     std::function<void(std::uint64_t)> unmark, std::function<void(std::optional<error>)> done);

// The PD_EVENT_BLOCK_REJECTED for a block of `r` that failed verification: which block, at
// which offset, from which source.
pd_event block_rejected_event(std::uint64_t job_id, const content::manifest &m, std::uint64_t block, const piece_result &r);

// The content verified end to end: marks it complete (and pinned when asked) in the store
// and delivers it to the request's destination; returns where it now is (worker).
std::string complete_and_deliver(store::block_store &store, const content::manifest &m, const platform::file &file,
                                 const job_request &request);

// End to end: re-reads blocks [first, last) from disk and re-hashes them (worker); with
// `only`, just the blocks it holds. Throws PD_E_INTEGRITY naming the first bad block (after
// `unmark` took it out of the index), PD_E_CANCELLED once `stopped()` says so.
void verify_on_disk(const content::manifest &m, const platform::file &file, std::uint64_t first, std::uint64_t last,
                    const block_bitmap *only, const std::function<bool()> &stopped,
                    const std::function<void(std::uint64_t)> &unmark);

}  // namespace pd::core
