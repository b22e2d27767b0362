#include "net/async_channel.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "platform/socket_stamps.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

namespace pd::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {
error read_failed(const error_code &ec) {
    return error(PD_E_IO, PD_CATEGORY_NET, ec == asio::error::eof ? std::string(async_channel::closed_by_peer) : ec.message());
}
}  // namespace

async_channel::async_channel(asio::ip::tcp::socket socket, role r, const std::uint8_t *fleet_key, keyless policy)
    : socket_(std::move(socket)), hs_(r, fleet_key, policy) {}

template <class Fn>
void async_channel::read_exact(std::uint8_t *p, std::size_t n, Fn next) {
    asio::async_read(socket_, asio::buffer(p, n), [self = shared_from_this(), next = std::move(next)](const error_code &ec, std::size_t) mutable {
        if (ec) {
            auto e = read_failed(ec);
            return next(&e);
        }
        next(nullptr);
    });
}

void async_channel::handshake(done_fn done) {
    // A client's HELLO goes out at once; a server answers it (its HELLO carries its choice
    // of cipher) together with its FINISH.
    if (hs_.hello().size()) send_sealed(hs_.hello());
    read_exact(in_hello_.data(), in_hello_.size(), [this, done](const error *hello_failed) {
        if (hello_failed) return done(hello_failed);
        try {
            // Both FINISH messages are sent before either is checked, so both sides can
            // name a key mismatch.
            send_sealed(hs_.on_peer_hello(in_hello_.data(), in_hello_.size()));
        } catch (const error &e) {
            return done(&e);
        }
        read_exact(in_finish_.data(), in_finish_.size(), [this, done](const error *finish_failed) {
            if (finish_failed) return done(finish_failed);
            try {
                hs_.on_peer_finish(in_finish_.data(), in_finish_.size());
            } catch (const error &e) {
                return done(&e);
            }
            auto keys = hs_.keys();
            auto c = hs_.record_cipher();
            if (auto header = sealer_.start(c, keys.send); !header.empty()) send_sealed(std::move(header));
            auto opened = [this, done, keys, c](const error *header_failed) {
                if (header_failed) return done(header_failed);
                try {
                    opener_.start(c, keys.receive, in_header_.data());
                } catch (const error &e) {
                    return done(&e);
                }
                done(nullptr);
            };
            if (stream_header_size(c) == 0) return opened(nullptr);
            read_exact(in_header_.data(), stream_header_size(c), std::move(opened));
        });
    });
}

bool async_channel::use_kernel_arrival_times() {
    kernel_stamps_ = platform::enable_receive_timestamps(socket_.native_handle());
    return kernel_stamps_;
}

void async_channel::receive(record_fn done) {
    if (kernel_stamps_) return read_prefix_stamped(0, std::move(done));
    if (!progress_) return next_buffered(std::move(done), true);
    read_exact(prefix_.data(), 4, [this, done](const error *prefix_failed) {
        if (prefix_failed) return done(prefix_failed, {});
        record_started_ = std::chrono::steady_clock::now();
        read_body(done);
    });
}

// Records cut from a buffer that each read fills with as much as the socket holds, so one
// system call brings several records; each is opened straight from the buffer into its
// plaintext. `from_owner`: a record already buffered is delivered through the event loop,
// never from inside the owner's own receive() call.
void async_channel::next_buffered(record_fn done, bool from_owner) {
    std::size_t avail = in_end_ - in_begin_, need = 4;
    auto deliver = [this, from_owner](record_fn &fn, const error *why, bytes plain) {
        if (!from_owner) return fn(why, std::move(plain));
        std::optional<error> e;
        if (why) e = *why;
        asio::post(socket_.get_executor(), [self = shared_from_this(), fn = std::move(fn), e, plain = std::move(plain)]() mutable {
            if (self->closed_ && !e) e = error(PD_E_IO, PD_CATEGORY_NET, "channel closed");
            fn(e ? &*e : nullptr, e ? bytes{} : std::move(plain));
        });
    };
    if (avail >= 4) {
        try {
            std::size_t n = opener_.record_length(in_.data() + in_begin_);
            need = 4 + n;
            if (avail >= need) {
                bytes plain = opener_.open(in_.data() + in_begin_ + 4, n);
                in_begin_ += need;
                if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
                return deliver(done, nullptr, std::move(plain));
            }
        } catch (const error &e) {
            return deliver(done, &e, {});
        }
    }
    // Room for the rest of this record: what is left moves to the front when the space
    // behind it runs short, and the buffer grows (to max_input) when the record is larger.
    if (in_begin_ && in_.size() - in_end_ < std::max(need - avail, in_.size() / 4)) {
        if (avail) std::memmove(in_.data(), in_.data() + in_begin_, avail);
        in_begin_ = 0;
        in_end_ = avail;
    }
    if (in_.size() < need) in_.resize(std::min(max_input, std::max({in_.size() * 2, 2 * need, min_input})));
    socket_.async_read_some(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                            [self = shared_from_this(), done = std::move(done)](const error_code &ec, std::size_t k) mutable {
                                if (ec) {
                                    auto e = read_failed(ec);
                                    return done(&e, {});
                                }
                                self->in_end_ += k;
                                self->next_buffered(std::move(done), false);
                            });
}

void async_channel::read_prefix_stamped(std::size_t got, record_fn done) {
    socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this(), got, done](const error_code &ec) mutable {
        if (ec) {
            error e(PD_E_IO, PD_CATEGORY_NET, ec.message());
            return done(&e, {});
        }
        auto r = platform::read_stamped(self->socket_.native_handle(), self->prefix_.data() + got, 4 - got);
        if (r.count == 0) {
            error e(PD_E_IO, PD_CATEGORY_NET, closed_by_peer);
            return done(&e, {});
        }
        if (r.count < 0 && !r.would_block) {
            error e(PD_E_IO, PD_CATEGORY_NET, std::strerror(r.error));
            return done(&e, {});
        }
        if (r.count > 0) {
            if (got == 0) {
                // The kernel's clock is the system clock; carry the stamp over to steady time.
                auto now = std::chrono::steady_clock::now();
                self->record_started_ = now;
                // A stamp older than a few seconds, or from the future, is the system clock
                // being stepped (NTP) between the two readings, not an arrival: it is ignored.
                if (r.arrived) {
                    auto age = std::chrono::system_clock::now() - *r.arrived;
                    if (age > decltype(age)::zero() && age < std::chrono::seconds(5))
                        self->record_started_ = now - std::chrono::duration_cast<std::chrono::steady_clock::duration>(age);
                }
            }
            got += static_cast<std::size_t>(r.count);
            if (got == 4) return self->read_body(done);
        }
        self->read_prefix_stamped(got, std::move(done));
    });
}

void async_channel::read_body(record_fn done) {
    std::size_t n;
    try {
        n = opener_.record_length(prefix_.data());
    } catch (const error &e) {
        return done(&e, {});
    }
    record_.resize(n);
    if (progress_) return read_body_in_parts(0, std::move(done));
    read_exact(record_.data(), n, [this, done](const error *body_failed) {
        if (body_failed) return done(body_failed, {});
        open_record(done);
    });
}

void async_channel::read_body_in_parts(std::size_t got, record_fn done) {
    socket_.async_read_some(asio::buffer(record_.data() + got, record_.size() - got),
                            [self = shared_from_this(), got, done](const error_code &ec, std::size_t n) mutable {
                                if (ec) {
                                    auto e = read_failed(ec);
                                    return done(&e, {});
                                }
                                got += n;
                                if (got == self->record_.size()) return self->open_record(done);
                                if (self->progress_) self->progress_(n);
                                self->read_body_in_parts(got, std::move(done));
                            });
}

void async_channel::open_record(const record_fn &done) {
    bytes plain;
    plain.swap(record_);
    try {
        opener_.open_in_place(plain);
    } catch (const error &e) {
        return done(&e, {});
    }
    done(nullptr, std::move(plain));
}

void async_channel::send(const bytes &plaintext) {
    // Behind a record still to be stamped, a record is sealed in its turn.
    if (unsealed_) return send_stamped(plaintext, nullptr);
    send_sealed(sealer_.seal(plaintext.data(), plaintext.size()));
}

void async_channel::send_sealed(bytes record) {
    if (closed_) return;
    if (unsealed_) return write_failed("a sealed record queued behind records still to be sealed");
    auto counted = record.size();
    queued_bytes_ += counted;
    out_.push_back({std::move(record), true, nullptr, counted});
    if (out_.size() == 1) write_next();
}

void async_channel::send_stamped(bytes plaintext, stamp_fn stamp) {
    if (closed_) return;
    ++unsealed_;
    auto counted = plaintext.size();
    queued_bytes_ += counted;
    out_.push_back({std::move(plaintext), false, std::move(stamp), counted});
    if (out_.size() == 1) write_next();
}

bool async_channel::stamp_as_sent(std::size_t unsent_bytes) {
    if (!platform::limit_unsent_bytes(socket_.native_handle(), unsent_bytes)) return false;
    unsent_limit_ = unsent_bytes;
    return true;
}

void async_channel::write_next() {
    if (!unsent_limit_ || out_.front().sealed) return write_batch();
    // A record to stamp waits until TCP's unsent bytes are under the limit: stamped now, it
    // leaves within them.
    socket_.async_wait(asio::ip::tcp::socket::wait_write, [self = shared_from_this()](const error_code &ec) {
        if (self->closed_) return;
        if (ec) return self->write_failed(ec.message());
        self->write_batch();
    });
}

// Everything queued (up to a bound) goes out in one vectored write; records still plaintext
// are stamped and sealed as they join it, only as many as the socket takes at once when it
// limits its unsent bytes (the rest wait for the next write, unstamped).
void async_channel::write_batch() {
    std::vector<asio::const_buffer> batch;
    std::size_t bytes_in_batch = 0, counted = 0;
    for (auto &r : out_) {
        if (batch.size() == max_write_records || (bytes_in_batch && bytes_in_batch + r.data.size() > max_write_bytes)) break;
        if (!r.sealed) {
            if (unsent_limit_ && bytes_in_batch >= unsent_limit_) break;
            if (r.stamp) std::exchange(r.stamp, nullptr)(r.data);
            r.data = sealer_.seal(r.data.data(), r.data.size());
            r.sealed = true;
            --unsealed_;
        }
        batch.emplace_back(asio::buffer(r.data));
        bytes_in_batch += r.data.size();
        counted += r.counted;
    }
    asio::async_write(socket_, batch, [self = shared_from_this(), records = batch.size(), counted](const error_code &ec, std::size_t) {
        if (self->closed_) return;
        if (ec) return self->write_failed(ec.message());
        self->queued_bytes_ -= counted;
        self->out_.erase(self->out_.begin(), self->out_.begin() + static_cast<std::ptrdiff_t>(records));
        if (!self->out_.empty()) self->write_next();
        if (self->drained_ && self->queued_bytes_ <= self->drained_at_) std::exchange(self->drained_, nullptr)();
    });
}

// Reported once; the owner closes the channel.
void async_channel::write_failed(const std::string &why) {
    auto report = std::move(write_error_);
    write_error_ = nullptr;
    error e(PD_E_IO, PD_CATEGORY_NET, why);
    if (report) report(&e);
}

void async_channel::when_drained(std::size_t at_most, std::function<void()> f) {
    if (closed_) return;
    if (queued_bytes_ <= at_most) return f();
    drained_at_ = at_most;
    drained_ = std::move(f);
}

void async_channel::close() {
    if (closed_) return;
    closed_ = true;
    write_error_ = nullptr;
    progress_ = nullptr;
    drained_ = nullptr;
    error_code ec;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
}

}  // namespace pd::net
