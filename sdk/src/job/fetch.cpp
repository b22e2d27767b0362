#include "job/fetch.h"

#include "util/error.h"

#include <algorithm>

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

bool write_verified_block(const content::manifest &m, const platform::file &file, std::uint64_t block,
                          const std::vector<std::uint8_t> &bytes) {
    // A block of the wrong length is as bad as one with the wrong hash.
    if (bytes.size() != m.block_length(block) || crypto::sha256(bytes.data(), bytes.size()) != m.block_hashes[block])
        return false;
    file.pwrite(m.block_offset(block), bytes.data(), bytes.size());
    return true;
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

}  // namespace pd::core
