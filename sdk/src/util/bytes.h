// Bounds-checked little/big-endian readers and writers for the binary formats
// (manifests, publication records, Content Information). A reader never reads past
// its end: it throws PD_E_INVALID naming what was being parsed.
#pragma once

#include "util/error.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace pd {

class byte_writer {
public:
    explicit byte_writer(bool big_endian = false) : big_(big_endian) {}
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) { put(v, 2); }
    void u32(std::uint32_t v) { put(v, 4); }
    void u64(std::uint64_t v) { put(v, 8); }
    void bytes(const void *p, std::size_t n) {
        if (n == 0) return;
        auto b = static_cast<const std::uint8_t *>(p);
        out_.insert(out_.end(), b, b + n);
    }
    std::vector<std::uint8_t> &data() { return out_; }
    std::size_t size() const { return out_.size(); }

private:
    void put(std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) {
            int shift = big_ ? 8 * (n - 1 - i) : 8 * i;
            out_.push_back(static_cast<std::uint8_t>(v >> shift));
        }
    }
    bool big_;
    std::vector<std::uint8_t> out_;
};

class byte_reader {
public:
    byte_reader(const void *data, std::size_t len, const char *what, bool big_endian = false)
        : p_(static_cast<const std::uint8_t *>(data)), len_(len), what_(what), big_(big_endian) {}
    std::uint8_t u8() { return static_cast<std::uint8_t>(get(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(get(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(get(4)); }
    std::uint64_t u64() { return get(8); }
    void bytes(void *dst, std::size_t n) {
        need(n);
        if (n == 0) return;  // dst may be an empty vector's null data()
        std::memcpy(dst, p_ + pos_, n);
        pos_ += n;
    }
    std::string string(std::size_t n) {
        need(n);
        std::string s(reinterpret_cast<const char *>(p_ + pos_), n);
        pos_ += n;
        return s;
    }
    std::size_t remaining() const { return len_ - pos_; }
    std::size_t position() const { return pos_; }
    void expect_end() const {
        if (pos_ != len_)
            fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
                 std::string(what_) + ": " + std::to_string(len_ - pos_) + " unexpected trailing bytes");
    }
    void need(std::size_t n) const {
        if (n > len_ - pos_)
            fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
                 std::string(what_) + ": truncated at byte " + std::to_string(pos_) + " (need " +
                     std::to_string(n) + ", have " + std::to_string(len_ - pos_) + ")");
    }

private:
    std::uint64_t get(int n) {
        need(static_cast<std::size_t>(n));
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) {
            int shift = big_ ? 8 * (n - 1 - i) : 8 * i;
            v |= static_cast<std::uint64_t>(p_[pos_ + i]) << shift;
        }
        pos_ += static_cast<std::size_t>(n);
        return v;
    }
    const std::uint8_t *p_;
    std::size_t len_;
    std::size_t pos_ = 0;
    const char *what_;
    bool big_;
};

}  // namespace pd
