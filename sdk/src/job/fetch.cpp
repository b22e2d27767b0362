#include "job/fetch.h"

#include "peer/swarm.h"
#include "store/block_store.h"
#include "util/error.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>
#include <atomic>

namespace pd::core {

void read_piece(const content::manifest &m, const platform::file &file, const plugin_host::stream &stream,
                const std::vector<std::uint64_t> &wanted, piece_result &r) {
    std::uint64_t offset = m.block_offset(r.piece.first_block);
    std::uint64_t end = std::min(m.size, m.block_offset(r.piece.first_block + r.piece.block_count));
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(end - offset));
    try {
        stream.read(offset, buf.data(), buf.size());
        r.bytes_fetched += buf.size();
    } catch (const error &e) {
        r.error = e.code();
        r.aborted = e.code() == PD_E_CANCELLED;
        r.message = e.what();
        return;
    }
    try {
        for (auto b : wanted) {
            const std::uint8_t *bytes = buf.data() + (m.block_offset(b) - offset);
            std::uint32_t len = m.block_length(b);
            if (crypto::sha256(bytes, len) != m.block_hashes[b]) {
                r.bad.push_back(b);
                continue;
            }
            file.pwrite(m.block_offset(b), bytes, len);
            r.good.push_back(b);
        }
    } catch (const error &e) {
        r.error = e.code();
        r.fatal = true;
        r.message = e.what();
    }
}

namespace {

// One request in flight, all on the network thread: the answer itself and one entry per block
// handed to the sink; the last of them hands the piece back.
struct peer_request {
    piece_result r;
    unsigned outstanding = 1;
    std::vector<std::uint64_t> wanted;
    peer_fetch_context ctx;

    void finish_one(const std::shared_ptr<peer_request> &self) {
        if (--outstanding) return;
        // Posted: the answer may end inside the link's own callback, and the job's reaction
        // (new requests on this link) must not run within it.
        boost::asio::post(*ctx.net, [self] { self->ctx.done(std::move(self->r)); });
    }
};

}  // namespace

void fetch_from_peer(const peer_fetch_context &ctx, piece_result r, std::vector<std::uint64_t> wanted) {
    auto st = std::make_shared<peer_request>();
    st->r = std::move(r);
    st->wanted = std::move(wanted);
    st->ctx = ctx;
    std::uint64_t first = st->wanted.front();
    auto count = static_cast<std::uint32_t>(st->wanted.back() - first + 1);
    std::int64_t sent_ms = store::now_ms();
    auto on_block = [st](std::uint64_t b, std::vector<std::uint8_t> bytes) {
        st->r.bytes_fetched += bytes.size();
        if (!std::binary_search(st->wanted.begin(), st->wanted.end(), b)) return;
        ++st->outstanding;
        st->ctx.sink->add(b, std::move(bytes), [st, b](const block_sink::outcome &o) {
            if (o.error) {
                st->r.error = o.error;
                st->r.fatal = true;
                st->r.message = o.message;
            } else if (o.good) {
                st->r.good.push_back(b);
                st->ctx.written(b);
            } else {
                st->r.bad.push_back(b);
            }
            st->finish_one(st);
        });
    };
    auto on_done = [st, sent_ms](const error *why, const std::string &rejected) {
        st->r.rejected = rejected;
        if (why) {
            st->r.error = why->code();
            st->r.message = why->what();
            st->r.aborted = why->code() == PD_E_CANCELLED;
        }
        if (!why) st->ctx.answered(st->r.bytes_fetched, sent_ms);
        st->finish_one(st);
    };
    auto link = st->r.peer->link;
    link->request(st->ctx.content, first, count, std::move(on_block), std::move(on_done));
}

pd_event block_rejected_event(std::uint64_t job_id, const content::manifest &m, std::uint64_t block, const piece_result &r) {
    auto e = make_event(PD_EVENT_BLOCK_REJECTED, job_id,
                        ("block " + std::to_string(block) + " (offset " + std::to_string(m.block_offset(block)) +
                         ") failed verification; data from source '" + r.source_name + "' discarded")
                            .c_str());
    std::memcpy(e.content.bytes, m.id.data(), 32);
    e.count = block;
    e.error_code = PD_E_INTEGRITY;
    e.source_class = r.source_class;
    return e;
}

std::string complete_and_deliver(store::block_store &store, const content::manifest &m, const platform::file &file,
                                 const job_request &request) {
    store.mark_complete(m.id);
    if (request.pin) store.set_pinned(m.id, true);
    std::string cached = store.data_path(m.id);
    if (request.destination.empty()) return cached;
    auto done = platform::deliver_file(file, cached, request.destination, m.size,
                                       request.hardlink ? platform::delivery::hardlink : platform::delivery::copy);
    // The cache now watches the file it shares with the host's (store::shared_file_intact).
    if (done == platform::delivery::hardlink) store.mark_shared(m.id);
    return request.destination;
}

void verify_on_disk(const content::manifest &m, const platform::file &file, std::uint64_t first, std::uint64_t last,
                    const block_bitmap *only, const std::function<bool()> &stopped,
                    const std::function<void(std::uint64_t)> &unmark) {
    constexpr std::uint64_t chunk_blocks = 64;
    std::vector<std::uint8_t> buf(chunk_blocks * m.block_size);
    auto wanted = [&](std::uint64_t b) { return !only || only->test(b); };
    for (std::uint64_t b = first; b < last;) {
        if (!wanted(b)) {
            ++b;
            continue;
        }
        if (stopped()) fail(PD_E_CANCELLED, PD_CATEGORY_JOB, "stopped during final verification");
        std::uint64_t n = 1;
        while (n < chunk_blocks && b + n < last && wanted(b + n)) ++n;
        std::uint64_t off = m.block_offset(b);
        std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(n * m.block_size, m.size - off));
        if (file.pread(off, buf.data(), len) != len)
            fail(PD_E_INTEGRITY, PD_CATEGORY_STORE, "cached data file is shorter than the content");
        for (std::uint64_t i = 0; i < n; ++i) {
            std::size_t boff = static_cast<std::size_t>(i * m.block_size);
            if (crypto::sha256(buf.data() + boff, m.block_length(b + i)) != m.block_hashes[b + i]) {
                unmark(b + i);
                fail(PD_E_INTEGRITY, PD_CATEGORY_STORE,
                     "end-to-end verification failed: block " + std::to_string(b + i) +
                         " changed on disk after it was verified; the content must be fetched again");
            }
        }
        b += n;
    }
}

void verify_in_parts(boost::asio::thread_pool &workers, unsigned max_parts, const content::manifest &m,
                     const platform::file &file, const block_bitmap *only, std::function<bool()> stopped,
                     std::function<void(std::uint64_t)> unmark, std::function<void(std::optional<error>)> done) {
    std::uint64_t blocks = m.block_count();
    std::uint64_t parts = std::max<std::uint64_t>(1, std::min<std::uint64_t>(max_parts, (blocks + 63) / 64));
    struct shared_state {
        std::atomic<std::uint64_t> remaining;
        std::mutex mu;
        std::optional<error> first_error;
    };
    auto st = std::make_shared<shared_state>();
    st->remaining = parts;
    for (std::uint64_t part = 0; part < parts; ++part) {
        std::uint64_t first = blocks * part / parts, last = blocks * (part + 1) / parts;
        boost::asio::post(workers, [&m, &file, only, stopped, unmark, done, st, first, last] {
            try {
                verify_on_disk(m, file, first, last, only, stopped, unmark);
            } catch (const error &e) {
                std::lock_guard lk(st->mu);
                if (!st->first_error) st->first_error = e;
            }
            if (--st->remaining == 0) done(st->first_error);
        });
    }
}

}  // namespace pd::core
