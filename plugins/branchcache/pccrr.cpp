// [MS-PCCRR] messages and block encryption: pccrr.h.
#include "pccrr.h"

#include <openssl/evp.h>

#include <memory>

namespace pd_branchcache::pccrr {

namespace {

constexpr std::size_t cipher_block = 16;  // AES

class writer {
public:
    void u32(std::uint32_t v) {
        out_.resize(out_.size() + 4);
        put_u32(out_.size() - 4, v);
    }
    // Overwrites the 4 bytes at `at` (a length known only once the rest is written).
    void put_u32(std::size_t at, std::uint32_t v) {
        for (std::size_t i = 0; i < 4; ++i) out_[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
    }
    std::size_t size() const { return out_.size(); }
    // A sized field (its length, its bytes) and, unless it ends the message, the zeros that
    // restore 4-byte alignment.
    void sized(const bytes &field, bool last = false) {
        u32(static_cast<std::uint32_t>(field.size()));
        out_.insert(out_.end(), field.begin(), field.end());
        if (!last) out_.resize(out_.size() + (4 - field.size() % 4) % 4, 0);
    }
    void ranges(const std::vector<block_range> &rs) {
        u32(static_cast<std::uint32_t>(rs.size()));
        for (auto &r : rs) u32(r.index), u32(r.count);
    }
    bytes take() { return std::move(out_); }

private:
    bytes out_;
};

class reader {
public:
    reader(const std::uint8_t *data, std::size_t size) : p_(data), left_(size) {}

    bool u32(std::uint32_t &v) {
        if (left_ < 4) return fail("truncated");
        v = static_cast<std::uint32_t>(p_[0]) << 24 | static_cast<std::uint32_t>(p_[1]) << 16 |
            static_cast<std::uint32_t>(p_[2]) << 8 | p_[3];
        p_ += 4, left_ -= 4;
        return true;
    }
    bool sized(bytes &field, std::size_t max, const char *what, bool last = false) {
        std::uint32_t n = 0;
        if (!u32(n)) return false;
        if (n > max) return fail(std::string(what) + " too long");
        std::size_t pad = last ? 0 : (4 - n % 4) % 4;
        if (left_ < n + pad) return fail("truncated");
        field.assign(p_, p_ + n);
        for (std::size_t i = 0; i < pad; ++i)
            if (p_[n + i] != 0) return fail("padding not zero");
        p_ += n + pad, left_ -= n + pad;
        return true;
    }
    // [MS-PCCRC]: the segment ID is a SHA-256, -384 or -512 (32 bytes required, 2.2.4.2).
    bool segment_id(bytes &id) {
        if (!sized(id, 64, "segment ID")) return false;
        if (id.size() != 32 && id.size() != 48 && id.size() != 64) return fail("segment ID of a size no hash has");
        return true;
    }
    bool ranges(std::vector<block_range> &rs) {
        std::uint32_t count = 0;
        if (!u32(count)) return false;
        if (count > max_ranges) return fail("too many block ranges");
        if (left_ < std::size_t{count} * 8) return fail("truncated");
        rs.resize(count);
        for (auto &r : rs) {
            u32(r.index), u32(r.count);
            if (r.count == 0 || r.index + std::uint64_t{r.count} > max_ranges) return fail("block range outside a segment");
        }
        return true;
    }
    bool end() { return left_ == 0 || fail("bytes after the message"); }
    const std::string &error() const { return error_; }

private:
    bool fail(std::string why) {
        if (error_.empty()) error_ = std::move(why);
        return false;
    }
    const std::uint8_t *p_;
    std::size_t left_;
    std::string error_;
};

struct type_of {
    msg_type operator()(const nego_req &) const { return msg_type::nego_req; }
    msg_type operator()(const nego_resp &) const { return msg_type::nego_resp; }
    msg_type operator()(const get_blk_list &) const { return msg_type::get_blk_list; }
    msg_type operator()(const blk_list &) const { return msg_type::blk_list; }
    msg_type operator()(const get_blks &) const { return msg_type::get_blks; }
    msg_type operator()(const blk &) const { return msg_type::blk; }
};

struct body_writer {
    writer &w;
    void operator()(const nego_req &m) const { w.u32(m.min_version.wire()), w.u32(m.max_version.wire()); }
    void operator()(const nego_resp &m) const { w.u32(m.min_version.wire()), w.u32(m.max_version.wire()); }
    void operator()(const get_blk_list &m) const { w.sized(m.segment_id), w.ranges(m.needed); }
    void operator()(const blk_list &m) const { w.sized(m.segment_id), w.ranges(m.ranges), w.u32(m.next_block_index); }
    void operator()(const get_blks &m) const { w.sized(m.segment_id), w.ranges(m.ranges), w.sized(m.vrf, true); }
    void operator()(const blk &m) const {
        w.sized(m.segment_id), w.u32(m.block_index), w.u32(m.next_block_index);
        w.sized(m.block), w.sized(m.vrf), w.sized(m.iv, true);
    }
};

bool read_body(reader &r, msg_type type, body &out) {
    switch (type) {
    case msg_type::nego_req:
    case msg_type::nego_resp: {
        std::uint32_t lo = 0, hi = 0;
        if (!r.u32(lo) || !r.u32(hi)) return false;
        if (type == msg_type::nego_req) out = nego_req{version::from_wire(lo), version::from_wire(hi)};
        else out = nego_resp{version::from_wire(lo), version::from_wire(hi)};
        return true;
    }
    case msg_type::get_blk_list: {
        get_blk_list m;
        if (!r.segment_id(m.segment_id) || !r.ranges(m.needed)) return false;
        out = std::move(m);
        return true;
    }
    case msg_type::blk_list: {
        blk_list m;
        if (!r.segment_id(m.segment_id) || !r.ranges(m.ranges) || !r.u32(m.next_block_index)) return false;
        out = std::move(m);
        return true;
    }
    case msg_type::get_blks: {
        get_blks m;
        if (!r.segment_id(m.segment_id) || !r.ranges(m.ranges) || !r.sized(m.vrf, max_vrf_bytes, "VrfBlock", true)) return false;
        out = std::move(m);
        return true;
    }
    case msg_type::blk: {
        blk m;
        if (!r.segment_id(m.segment_id) || !r.u32(m.block_index) || !r.u32(m.next_block_index) ||
            !r.sized(m.block, max_block_bytes + cipher_block, "block") || !r.sized(m.vrf, max_vrf_bytes, "VrfBlock") ||
            !r.sized(m.iv, 32, "IV", true))
            return false;
        out = std::move(m);
        return true;
    }
    default:
        return false;
    }
}

parsed failure(std::string why, bool unsupported_version = false) {
    parsed p;
    p.error = std::move(why);
    p.unsupported_version = unsupported_version;
    return p;
}

bool is_request(msg_type t) {
    return t == msg_type::nego_req || t == msg_type::get_blk_list || t == msg_type::get_blks || t == msg_type::get_seg_list;
}

parsed parse_message(const std::uint8_t *data, std::size_t size, bool want_request) {
    if (size > max_message_bytes) return failure("message too long");
    reader r(data, size);
    std::uint32_t protocol = 0, type = 0, length = 0, algo = 0;
    if (!r.u32(protocol) || !r.u32(type) || !r.u32(length) || !r.u32(algo)) return failure("message shorter than its header");
    if (length != size) return failure("MsgSize does not match the message");
    if (type > static_cast<std::uint32_t>(msg_type::seg_list) || is_request(static_cast<msg_type>(type)) != want_request)
        return failure(want_request ? "not a request" : "not a response");
    if (algo > static_cast<std::uint32_t>(crypto_algo::aes_256)) return failure("unknown CryptoAlgoId");
    message m;
    m.protocol = version::from_wire(protocol);
    m.algo = static_cast<crypto_algo>(algo);
    // 3.2.5: a request in a version the server does not speak is answered with NEGO_RESP; a
    // negotiation is understood in any version (its layout never changes).
    auto t = static_cast<msg_type>(type);
    if (t != msg_type::nego_req && t != msg_type::nego_resp && !(m.protocol == version{}))
        return failure("protocol version " + std::to_string(m.protocol.major) + "." + std::to_string(m.protocol.minor), true);
    if (t == msg_type::get_seg_list || t == msg_type::seg_list) return failure("segment lists are protocol 2.0");
    if (!read_body(r, t, m.content) || !r.end()) return failure(r.error());
    parsed result;
    result.msg = std::move(m);
    return result;
}

const EVP_CIPHER *cipher_for(crypto_algo algo) {
    switch (algo) {
    case crypto_algo::aes_128: return EVP_aes_128_cbc();
    case crypto_algo::aes_192: return EVP_aes_192_cbc();
    case crypto_algo::aes_256: return EVP_aes_256_cbc();
    default: return nullptr;
    }
}

// CBC over whole cipher blocks, no padding of OpenSSL's own (the caller pads).
std::optional<bytes> run_cbc(crypto_algo algo, const bytes &secret, const bytes &iv, const bytes &in, bool encrypt) {
    const EVP_CIPHER *cipher = cipher_for(algo);
    if (!cipher) return std::nullopt;
    auto key_size = static_cast<std::size_t>(EVP_CIPHER_key_length(cipher));
    if (secret.size() < key_size || iv.size() != cipher_block || in.size() % cipher_block) return std::nullopt;
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    bytes out(in.size() + cipher_block);
    int n = 0, tail = 0;
    if (!ctx || EVP_CipherInit_ex(ctx.get(), cipher, nullptr, secret.data(), iv.data(), encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
        EVP_CipherUpdate(ctx.get(), out.data(), &n, in.data(), static_cast<int>(in.size())) != 1 ||
        EVP_CipherFinal_ex(ctx.get(), out.data() + n, &tail) != 1)
        return std::nullopt;
    out.resize(static_cast<std::size_t>(n + tail));
    return out;
}

}  // namespace

msg_type message::type() const { return std::visit(type_of{}, content); }

bytes build(const message &m) {
    writer w;
    w.u32(m.protocol.wire());
    w.u32(static_cast<std::uint32_t>(m.type()));
    w.u32(0);  // MsgSize, set below
    w.u32(static_cast<std::uint32_t>(m.algo));
    std::visit(body_writer{w}, m.content);
    w.put_u32(8, static_cast<std::uint32_t>(w.size()));
    return w.take();
}

bytes with_transport_header(const bytes &message_bytes) {
    writer w;
    w.u32(static_cast<std::uint32_t>(message_bytes.size()));
    auto out = w.take();
    out.insert(out.end(), message_bytes.begin(), message_bytes.end());
    return out;
}

parsed parse_request(const std::uint8_t *data, std::size_t size) { return parse_message(data, size, true); }

parsed parse_response(const std::uint8_t *data, std::size_t size) {
    reader r(data, size);
    std::uint32_t length = 0;
    if (!r.u32(length)) return failure("no transport header");
    if (length != size - transport_header_size) return failure("transport header does not match the message");
    return parse_message(data + transport_header_size, length, false);
}

std::optional<bytes> encrypt_block(crypto_algo algo, const bytes &segment_secret, const bytes &iv, const bytes &block) {
    if (algo == crypto_algo::none) return block;
    bytes padded = block;
    padded.resize((block.size() + cipher_block - 1) / cipher_block * cipher_block, 0);
    return run_cbc(algo, segment_secret, iv, padded, true);
}

std::optional<bytes> decrypt_block(crypto_algo algo, const bytes &segment_secret, const bytes &iv, const bytes &ciphertext,
                                   std::size_t block_size) {
    if (algo == crypto_algo::none) {
        if (ciphertext.size() != block_size) return std::nullopt;
        return ciphertext;
    }
    if (ciphertext.size() < block_size || ciphertext.size() > block_size + cipher_block) return std::nullopt;
    auto plain = run_cbc(algo, segment_secret, iv, ciphertext, false);
    if (plain) plain->resize(block_size);
    return plain;
}

}  // namespace pd_branchcache::pccrr
