#include "peer/peer_server.h"

#include "core/event_queue.h"
#include "core/session.h"
#include "util/clock.h"
#include "util/hex.h"

#include "net/async_channel.h"

#include <cstring>

namespace pd::peer {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

class peer_server::connection : public std::enable_shared_from_this<connection> {
public:
    connection(peer_server &server, tcp::socket socket)
        : server_(server), idle_(socket.get_executor()) {
        error_code ec;
        auto ep = socket.remote_endpoint(ec);
        peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
        ip_ = ec ? "?" : ep.address().to_string();
        channel_ = std::make_shared<net::async_channel>(std::move(socket), net::role::server, server.fleet_key_.data());
    }

    const std::string &ip() const { return ip_; }
    bool authenticated() const { return authenticated_; }
    // The device key the client proved (hex), or "" before its HELLO.
    const std::string &device() const { return device_; }

    void start() {
        // Until it has authenticated, a connection gets peer.handshake_timeout_ms: silent
        // sockets cannot hold the slots legitimate peers need.
        arm(server_.session_.config().get_int("peer.handshake_timeout_ms"), "no handshake");
        auto self = shared_from_this();
        channel_->on_write_error([self](const error *why) { self->close(why->what(), true); });
        channel_->handshake([self](const error *why) {
            if (self->closed_) return;
            if (why) {
                ++self->server_.counters_.connections_refused;
                bool mismatch = why->code() == PD_E_AUTH;
                if (mismatch) self->server_.session_.log(PD_LOG_WARN, "peer " + self->peer_ + " refused: " + why->what());
                return self->close(why->what(), !mismatch);
            }
            self->authenticated_ = true;
            self->arm_idle();
            self->read_record();
        });
    }

    void close(const std::string &why, bool error) {
        if (closed_) return;
        closed_ = true;
        if (error) server_.session_.log(PD_LOG_INFO, "peer " + peer_ + " disconnected: " + why);
        channel_->close();
        idle_.cancel();
        server_.closed(this);
    }

private:
    void arm_idle() { arm(server_.session_.config().get_int("peer.idle_timeout_ms"), "idle timeout"); }
    void arm(std::int64_t ms, const char *why) {
        idle_.expires_after(std::chrono::milliseconds(ms));
        idle_.async_wait([self = shared_from_this(), why](const error_code &ec) {
            if (!ec) self->close(why, true);
        });
    }

    void read_record() {
        channel_->receive([self = shared_from_this()](const error *why, net::bytes plain) {
            if (self->closed_) return;
            if (why) {
                bool eof = std::string(why->what()) == net::async_channel::closed_by_peer;
                if (!eof) ++self->server_.counters_.connections_refused;  // bad framing, failed authentication
                return self->close(why->what(), !eof);
            }
            self->arm_idle();
            self->on_record(plain);
        });
    }

    void on_record(const net::bytes &plain) {
        wire::message m;
        try {
            m = wire::decode(plain.data(), plain.size());
        } catch (const error &e) {
            ++server_.counters_.connections_refused;
            return close(e.what(), true);
        }
        if (auto *hello = std::get_if<wire::hello>(&m)) {
            if (!wire::proves_identity(*hello, true, channel_->transcript())) {
                ++server_.counters_.connections_refused;
                return close("did not prove its device key", true);
            }
            auto device = to_hex(hello->device_key.data(), hello->device_key.size());
            if (server_.session_.device_refused(device)) {
                ++server_.counters_.connections_refused;
                server_.session_.log(PD_LOG_WARN, "peer " + peer_ + " refused: device " + device.substr(0, 16) + "… was revoked");
                return close("a revoked device", false);
            }
            device_ = device;
            timestamps_ = (hello->capabilities & wire::capability_timestamps) != 0;
            if (timestamps_ && (hello->capabilities & wire::capability_stamp_as_sent)) channel_->stamp_as_sent(unsent_limit);
            auto h = wire::signed_hello(server_.session_.device_identity(), false, channel_->transcript());
            h.node_id = server_.session_.node_id();
            h.capabilities = wire::capability_timestamps | wire::capability_parts;
            channel_->send(wire::encode(h));
        } else if (auto *h = std::get_if<wire::have>(&m)) {
            // The client follows this content from now on: HAVE_DELTAs keep it current.
            if (interests_.size() < max_interests) interests_.insert(h->content);
            return send_have(h->content);  // reads the next record when the answer is queued
        } else if (auto *r = std::get_if<wire::request>(&m)) {
            return serve_request(*r);  // reads the next record when the blocks are queued
        } else if (auto *part = std::get_if<wire::request_part>(&m)) {
            return serve_part(*part);  // likewise
        } else if (auto *p = std::get_if<wire::ping>(&m)) {
            channel_->send(wire::encode(wire::pong{p->sent_us, static_cast<std::uint64_t>(steady_now_us())}));
        } else if (std::holds_alternative<wire::goodbye>(m)) {
            return close("said goodbye", false);
        } else if (std::holds_alternative<wire::cancel>(m) || std::holds_alternative<wire::have_delta>(m) ||
                   std::holds_alternative<wire::pong>(m)) {
            // Requests are answered in order and at once; nothing to cancel. Deltas are for clients.
        } else {
            return close(std::string("unexpected ") + wire::name(m) + " from a client", true);
        }
        read_record();
    }

public:
    void push_delta(const content::hash &content, const std::vector<std::uint64_t> &blocks) {
        if (closed_ || !interests_.count(content)) return;
        for (std::size_t i = 0; i < blocks.size(); i += wire::max_have_delta) {
            auto end = std::min(blocks.size(), i + wire::max_have_delta);
            wire::have_delta d{content, std::vector<std::uint64_t>(blocks.begin() + static_cast<std::ptrdiff_t>(i),
                                                                         blocks.begin() + static_cast<std::ptrdiff_t>(end))};
            // While a worker seals an answer the sealer is its; the delta follows the answer.
            if (answering_)
                deferred_.push_back(wire::encode(d));
            else
                channel_->send(wire::encode(d));
        }
    }

private:
    static constexpr std::size_t max_interests = 64;
    static constexpr std::size_t max_queued_bytes = 2u << 20;
    // A paced client's answers leave within this many bytes of their stamp
    // (capability_stamp_as_sent): 6.5 ms at 20 Mbit/s, 1.3 ms at 100 Mbit/s — and enough for
    // TCP to keep sending while the network thread comes round to the next write.
    static constexpr std::size_t unsent_limit = 16 * 1024;

    // Answers are built on a worker (SQLite, disk, sealing) and queued in request order:
    // this connection reads no other request until the answer is queued, so its sealer is
    // never used by two threads at once and the network thread only moves bytes.
    template <class Build>
    void answer_on_worker(Build build) {
        auto self = shared_from_this();
        answering_ = true;
        asio::post(server_.session_.workers(), [self, build = std::move(build)] {
            std::size_t bytes = 0, blocks = 0;
            // Each record, and what the network thread still does with it. A stamped answer is
            // stamped as the network thread writes it (stamped here, the worker's hand-off would
            // count as path delay: a busy serving device's scheduling read as WAN queue); a
            // connection that stamps seals every record there, in the order they go out.
            // The others are sealed here, off the network thread.
            enum class then { send_sealed, seal, stamp_and_seal };
            std::vector<std::pair<net::bytes, then>> records;
            bool seal_here = !self->timestamps_;
            std::string failure;
            try {
                for (auto &msg : build(self->server_.session_)) {
                    auto *d = std::get_if<wire::data>(&msg);
                    // A block served in parts counts once, with its first part.
                    if (d) bytes += d->bytes.size(), blocks += !d->part || d->offset == 0;
                    auto plain = wire::encode(msg);
                    if (seal_here) {
                        // (A PART to a client that asked for no stamps carries the worker's time.)
                        if (d && d->timed) wire::restamp(plain, static_cast<std::uint64_t>(steady_now_us()));
                        records.emplace_back(self->channel_->sealer().seal(plain.data(), plain.size()), then::send_sealed);
                    } else {
                        records.emplace_back(std::move(plain), d && d->timed ? then::stamp_and_seal : then::seal);
                    }
                }
            } catch (const std::exception &e) {
                // Whatever a request makes fail here closes its connection, never the process.
                failure = e.what();
            }
            asio::post(self->idle_.get_executor(), [self, records = std::move(records), bytes, blocks, failure]() mutable {
                if (self->closed_) return;
                if (!failure.empty()) return self->close("answering failed: " + failure, true);
                self->server_.counters_.bytes_uploaded += bytes;
                self->server_.bytes_served_.fetch_add(bytes, std::memory_order_relaxed);
                self->server_.counters_.blocks_uploaded += blocks;
                auto delay = self->server_.reserve_upload(bytes);
                auto go = [self, records = std::move(records)]() mutable {
                    for (auto &[record, next] : records) {
                        if (next == then::stamp_and_seal)
                            self->channel_->send_stamped(std::move(record), [](net::bytes &plain) {
                                wire::restamp(plain, static_cast<std::uint64_t>(steady_now_us()));
                            });
                        else if (next == then::seal)
                            self->channel_->send(record);
                        else
                            self->channel_->send_sealed(std::move(record));
                    }
                    self->answering_ = false;
                    for (auto &d : self->deferred_) self->channel_->send(d);
                    self->deferred_.clear();
                    // Back-pressure: the next request is read only once this connection's
                    // queue is small again, so a client that never reads holds at most one
                    // answer plus max_queued_bytes here, however many requests it sends.
                    self->channel_->when_drained(max_queued_bytes, [self] {
                        if (!self->closed_) self->read_record();
                    });
                };
                if (delay.count() <= 0) return go();
                auto timer = std::make_shared<asio::steady_timer>(self->idle_.get_executor(), delay);
                timer->async_wait([timer, go = std::move(go), self](const error_code &ec) mutable {
                    if (!ec && !self->closed_) go();
                });
            });
        });
    }

    void send_have(const content::hash &id) {
        answer_on_worker([id](session &sess) {
            wire::have h;
            h.content = id;
            h.flags = sess.is_fetching(id) ? wire::have_fetching : 0;
            try {
                auto rec = sess.servable(id);
                auto m = rec ? sess.store().manifest(id) : nullptr;
                // A bitmap over one record (contents past 128 GiB at 64 KiB blocks), or
                // blocks larger than the wire carries: nothing to offer peers.
                if (m && (m->block_count() + 7) / 8 + 64 <= net::max_record_plaintext &&
                    m->block_size <= wire::max_block_bytes) {
                    h.block_count = m->block_count();
                    h.bitmap = rec->verified;
                    h.bitmap.resize(static_cast<std::size_t>((h.block_count + 7) / 8));
                }
            } catch (const error &) {
                h.block_count = 0;  // an unreadable index holds nothing to offer
                h.bitmap.clear();
            }
            return std::vector<wire::message>{std::move(h)};
        });
    }

    // Answers a request for `content` on a worker: REJECT when the cache does not hold it, when
    // its blocks are larger than the wire carries, or when `answer` fails; otherwise what
    // `answer(sess, record, manifest, out)` puts in `out`.
    template <class Answer>
    void answer_from_cache(std::uint32_t id, const content::hash &content, Answer answer) {
        answer_on_worker([id, content, answer = std::move(answer)](session &sess) {
            std::vector<wire::message> out;
            try {
                auto rec = sess.servable(content);
                auto m = rec ? sess.store().manifest(content) : nullptr;
                if (!rec || !m)
                    out.push_back(wire::reject{id, 1, "content not held"});
                else if (m->block_size > wire::max_block_bytes)
                    out.push_back(wire::reject{id, 5, "blocks of this content are larger than the wire carries"});
                else
                    answer(sess, *rec, *m, out);
            } catch (const error &e) {
                out.clear();
                out.push_back(wire::reject{id, 4, e.what()});
            }
            return out;
        });
    }

    void serve_request(wire::request r) {
        answer_from_cache(r.id, r.content, [r, timestamps = timestamps_](session &sess, const store::content_record &rec,
                                                                         const content::manifest &m, std::vector<wire::message> &out) {
            if (r.first_block + r.count > m.block_count()) return out.push_back(wire::reject{r.id, 2, "request beyond the content"});
            // Only blocks whose verified bit is set (durable and hash-checked) leave: the
            // leading run of held blocks is sent, the first missing one rejected.
            std::uint64_t end = r.first_block;
            while (end < r.first_block + r.count && rec.block_verified(end)) ++end;
            for (std::uint64_t b = r.first_block; b < end; ++b) {
                wire::data d{r.id, r.content, b, sess.read_held(r.content, m.block_offset(b), m.block_length(b))};
                d.timed = timestamps;  // stamped as it is written (answer_on_worker)
                out.push_back(std::move(d));
            }
            if (end < r.first_block + r.count) out.push_back(wire::reject{r.id, 3, "block " + std::to_string(end) + " not held"});
        });
    }

    // A range of one verified block, as PART; REJECT when the block is not held or the range
    // is not inside it.
    void serve_part(wire::request_part r) {
        answer_from_cache(r.id, r.content, [r](session &sess, const store::content_record &rec, const content::manifest &m,
                                               std::vector<wire::message> &out) {
            if (r.block >= m.block_count() || std::uint64_t{r.offset} + r.length > m.block_length(r.block))
                return out.push_back(wire::reject{r.id, 2, "request beyond the content"});
            if (!rec.block_verified(r.block)) return out.push_back(wire::reject{r.id, 3, "block " + std::to_string(r.block) + " not held"});
            wire::data d{r.id, r.content, r.block, sess.read_held(r.content, m.block_offset(r.block) + r.offset, r.length)};
            d.part = d.timed = true;  // stamped as it is written (answer_on_worker)
            d.offset = r.offset;
            out.push_back(std::move(d));
        });
    }

    peer_server &server_;
    asio::steady_timer idle_;
    std::shared_ptr<net::async_channel> channel_;
    std::string peer_, ip_;
    bool authenticated_ = false;
    std::set<content::hash> interests_;  // contents the client asked HAVE for
    std::vector<net::bytes> deferred_;   // deltas waiting for an answer being sealed
    bool answering_ = false;
    bool timestamps_ = false;  // the client asked for TIMED_DATA (HELLO capability)
    std::string device_;       // the device key the client proved in its HELLO (hex)
    bool closed_ = false;
};

peer_server::peer_server(session &s, const std::array<std::uint8_t, 32> &fleet_key) : session_(s), fleet_key_(fleet_key) {}

peer_server::~peer_server() = default;

void peer_server::serve(tcp::acceptor &acceptor) { accept_next(acceptor); }

void peer_server::accept_next(tcp::acceptor &acceptor) {
    acceptor.async_accept([this, &acceptor](const error_code &ec, tcp::socket socket) {
        if (stopped_ || ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (ec) {
            // Out of descriptors (EMFILE, ENFILE) or memory: retrying at once spins the
            // network thread. Wait, then accept again.
            auto timer = std::make_shared<asio::steady_timer>(session_.net(), std::chrono::milliseconds(100));
            timer->async_wait([this, timer, &acceptor](const error_code &e) {
                if (!e && !stopped_) accept_next(acceptor);
            });
            return;
        }
        {
            error_code ignored;
            auto remote = socket.remote_endpoint(ignored).address().to_string();
            std::size_t handshaking = 0;
            for (auto &c : connections_) handshaking += !c->authenticated() && c->ip() == remote;
            if (connections_.size() >= static_cast<std::size_t>(session_.config().get_int("peer.max_connections")) ||
                handshaking >= max_handshaking_per_address) {
                socket.close(ignored);  // over a limit: refuse at once
                ++counters_.connections_refused;
            } else {
                ++counters_.connections_accepted;
                socket.set_option(tcp::no_delay(true), ignored);
                auto c = std::make_shared<connection>(*this, std::move(socket));
                connections_.insert(c);
                c->start();
            }
        }
        accept_next(acceptor);
    });
}

void peer_server::closed(connection *c) {
    for (auto it = connections_.begin(); it != connections_.end(); ++it)
        if (it->get() == c) {
            // Keep the object alive until its handlers have run.
            auto keep = *it;
            connections_.erase(it);
            asio::post(session_.net(), [keep] {});
            return;
        }
}

void peer_server::drop_device(const std::string &device_key) {
    auto all = connections_;
    for (auto &c : all)
        if (c->device() == device_key) c->close("its device was revoked", true);
}

void peer_server::stop() {
    stopped_ = true;
    auto all = connections_;
    for (auto &c : all) c->close("session stopping", false);
    connections_.clear();
}

void peer_server::blocks_verified(const content::hash &content, const std::vector<std::uint64_t> &blocks) {
    if (blocks.empty()) return;
    for (auto &c : connections_) c->push_delta(content, blocks);
}

peer_server::counters peer_server::stats() const {
    counters c = counters_;
    c.connections_open = static_cast<std::uint32_t>(connections_.size());
    return c;
}

std::chrono::steady_clock::duration peer_server::reserve_upload(std::size_t bytes) {
    std::int64_t rate = session_.config().get_int("peer.upload_rate_bytes");
    if (rate <= 0 || bytes == 0) return {};
    auto now = std::chrono::steady_clock::now();
    auto start = std::max(now, upload_free_);
    upload_free_ = start + std::chrono::microseconds(static_cast<std::int64_t>(bytes) * 1000000 / rate);
    return start - now;
}

}  // namespace pd::peer
