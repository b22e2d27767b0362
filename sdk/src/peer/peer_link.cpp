#include "peer/peer_link.h"

#include "platform/socket_stamps.h"

#include "util/hex.h"

#include "util/clock.h"
#include "util/endpoint.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <limits>
#include <optional>
#include <utility>

namespace pd::peer {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

peer_link::peer_link(asio::io_context &io, std::string address, const std::array<std::uint8_t, 32> &fleet_key,
                     std::uint64_t own_node_id, wire::device_identity me)
    : io_(io), address_(std::move(address)), fleet_key_(fleet_key), own_node_id_(own_node_id), me_(std::move(me)),
      timer_(io), renew_timer_(io) {}

peer_link::~peer_link() {
    for (auto *c : {&live_, &draining_, &fresh_})
        if (*c && (*c)->channel) (*c)->channel->close();
}

void peer_link::connect(int timeout_ms, connect_fn done) {
    on_connected_ = std::move(done);
    connect_timeout_ms_ = timeout_ms;
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    timer_.async_wait([self, timeout_ms](const error_code &ec) {
        if (ec || self->ready_) return;
        self->fail(error(PD_E_TIMEOUT, PD_CATEGORY_NET,
                         "cannot connect to peer " + self->address_ + ": no answer within " + std::to_string(timeout_ms) + " ms"));
    });
    live_ = std::make_shared<connection>();
    dial(live_);
}

bool peer_link::renew() {
    if (!open() || fresh_ || draining_) return false;
    fresh_ = std::make_shared<connection>();
    renew_timer_.expires_after(std::chrono::milliseconds(connect_timeout_ms_));
    renew_timer_.async_wait([weak = weak_from_this(), c = fresh_](const error_code &ec) {
        auto self = weak.lock();
        if (ec || !self || self->fresh_ != c) return;
        self->drop_fresh("peer " + self->address_ + " did not answer within " + std::to_string(self->connect_timeout_ms_) + " ms");
    });
    dial(fresh_);
    return true;
}

void peer_link::dial(const connection_ptr &c) {
    auto self = shared_from_this();
    auto endpoint = parse_endpoint(address_);
    if (!endpoint) {
        asio::post(io_, [self, c] {
            self->connection_failed(c, error(PD_E_INVALID, PD_CATEGORY_NET, "peer address '" + self->address_ + "' is not host:port"));
        });
        return;
    }
    auto socket = std::make_shared<tcp::socket>(io_);
    auto on_connect = [self, c, socket](const error_code &ec) {
        if (self->failed_ || !self->ours(c)) return;
        if (ec) return self->connection_failed(c, error(PD_E_IO, PD_CATEGORY_NET, "cannot connect to peer " + self->address_ + ": " + ec.message()));
        error_code ignored;
        socket->set_option(tcp::no_delay(true), ignored);
        c->channel = std::make_shared<net::async_channel>(std::move(*socket), net::role::client, self->fleet_key_.data());
        if (self->path_) self->count_answers_as_they_drain(c);
        c->channel->on_write_error([weak = std::weak_ptr<peer_link>(self), weak_c = std::weak_ptr<connection>(c)](const error *why) {
            auto link = weak.lock();
            auto conn = weak_c.lock();
            if (link && conn && !link->failed_ && link->ours(conn))
                link->connection_failed(conn, error(PD_E_IO, PD_CATEGORY_NET, "peer " + link->address_ + ": " + why->what()));
        });
        c->channel->handshake([self, c](const error *why) {
            if (self->failed_ || !self->ours(c)) return;
            if (why) return self->connection_failed(c, error(why->code(), PD_CATEGORY_NET, "peer " + self->address_ + ": " + why->what()));
            auto mine = wire::signed_hello(self->me_, true, c->channel->transcript());
            mine.node_id = self->own_node_id_;
            // A paced link's delays are read from the answers' stamps: stamped as the serving
            // peer's TCP sends them, its own window's waits do not read as queueing.
            mine.capabilities = wire::capability_timestamps | (self->path_ ? wire::capability_stamp_as_sent : 0);
            c->channel->send(wire::encode(mine));
            self->read_next(c);
        });
    };
    if (!endpoint->is_name) {
        socket->async_connect(tcp::endpoint(asio::ip::make_address(endpoint->host), endpoint->port), on_connect);
        return;
    }
    auto resolver = std::make_shared<tcp::resolver>(io_);
    resolver->async_resolve(endpoint->host, std::to_string(endpoint->port),
                            [self, c, socket, resolver, on_connect](const error_code &ec, const tcp::resolver::results_type &results) {
                                if (self->failed_ || !self->ours(c)) return;
                                if (ec)
                                    return self->connection_failed(c, error(PD_E_IO, PD_CATEGORY_NET,
                                                                            "cannot resolve peer " + self->address_ + ": " + ec.message()));
                                asio::async_connect(*socket, results,
                                                    [on_connect](const error_code &e, const tcp::endpoint &) { on_connect(e); });
                            });
}

void peer_link::connection_failed(const connection_ptr &c, const error &why) {
    if (c == fresh_) return drop_fresh(why.what());
    if (c == draining_ && c->ops.empty()) return close_drained();
    fail(why);
}

void peer_link::read_next(const connection_ptr &c) {
    c->channel->receive([self = shared_from_this(), c](const error *why, net::bytes plain) {
        if (self->failed_ || !self->ours(c)) return;
        if (why) return self->connection_failed(c, error(why->code(), PD_CATEGORY_NET, "peer " + self->address_ + ": " + why->what()));
        wire::message m;
        try {
            m = wire::decode(plain.data(), plain.size());
        } catch (const error &e) {
            return self->connection_failed(c, error(e.code(), PD_CATEGORY_NET, "peer " + self->address_ + ": " + e.what()));
        }
        // Only an answer re-arms the request deadline: a peer that pushes HAVE_DELTAs (or
        // PONGs) and answers nothing must not keep a request alive forever.
        bool answer = !std::holds_alternative<wire::have_delta>(m) && !std::holds_alternative<wire::pong>(m);
        self->on_message(c, std::move(m));
        if (self->failed_ || !self->ours(c)) return;
        if (answer) self->arm_timer();
        self->read_next(c);
    });
}

void peer_link::on_hello(const connection_ptr &c, const wire::hello &h) {
    if (!wire::proves_identity(h, false, c->channel->transcript())) {
        if (c == fresh_) return drop_fresh("peer " + address_ + " did not prove its device key");
        return fail(error(PD_E_AUTH, PD_CATEGORY_NET, "peer " + address_ + " did not prove its device key"));
    }
    auto device = to_hex(h.device_key.data(), h.device_key.size());
    c->proven = true;
    if (c == fresh_) {
        // Whoever answers at the address now must be the device the link has been trusting.
        if (device != peer_device_) return drop_fresh("peer " + address_ + " answered as another device (" + device + ")");
        renew_timer_.cancel();
        c->answers_parts = (h.capabilities & wire::capability_parts) != 0;
        if (mid_block()) return;  // moves once the block's last part is out (send_next_paced)
        move_to_fresh();
        if (path_) path_->pump();
        return;
    }
    node_id_ = h.node_id;
    peer_answers_parts_ = (h.capabilities & wire::capability_parts) != 0;
    peer_device_ = std::move(device);
    ready_ = true;
    timer_.cancel();
    if (auto cb = std::exchange(on_connected_, nullptr)) cb(nullptr);
}

bool peer_link::mid_block() const {
    auto p = oldest_unsent_request();
    return p && p->next_offset != 0;
}

void peer_link::move_to_fresh() {
    draining_ = std::exchange(live_, std::exchange(fresh_, nullptr));
    peer_answers_parts_ = live_->answers_parts;
    ++renewals_;
    for (auto &[id, count] : interests_) {
        // The peer pushes HAVE_DELTAs only on a connection that asked for a HAVE: ask on this
        // one, and what it holds comes to the job as a delta (blocks it already knew are no
        // news to it).
        send_have(id, count, [weak = weak_from_this(), id = id, count = count](const error *why, have_answer a) {
            auto self = weak.lock();
            if (why || !self || !self->on_delta_) return;
            std::vector<std::uint64_t> held;
            for (std::uint64_t b = 0; b < count; ++b)
                if (a.bitmap[b / 8] & (1u << (b % 8))) held.push_back(b);
            self->on_delta_(id, held);
        });
    }
    if (draining_->ops.empty()) close_drained();
    arm_timer();
    if (on_renewal_) on_renewal_(true, {});
}

void peer_link::drop_fresh(const std::string &why) {
    renew_timer_.cancel();
    if (fresh_ && fresh_->channel) fresh_->channel->close();
    fresh_.reset();
    if (on_renewal_) on_renewal_(false, why);
}

void peer_link::close_drained() {
    auto c = std::exchange(draining_, nullptr);
    if (!c->channel || c->channel->closed()) return;
    c->channel->send(wire::encode(wire::goodbye{0, "renewed"}));
    // Weak: a channel that fails before it drains never calls back, and must not keep itself.
    c->channel->when_drained(0, [weak = std::weak_ptr<net::async_channel>(c->channel)] {
        if (auto channel = weak.lock()) channel->close();
    });
}

void peer_link::on_message(const connection_ptr &c, wire::message m) {
    auto protocol_error = [this, &c](const std::string &what) {
        connection_failed(c, error(PD_E_INVALID, PD_CATEGORY_NET, "peer " + address_ + " " + what));
    };
    if (!c->proven) {
        auto *h = std::get_if<wire::hello>(&m);
        if (!h) return protocol_error("did not answer HELLO");
        return on_hello(c, *h);
    }
    auto &ops = c->ops;
    if (auto *h = std::get_if<wire::have>(&m)) {
        if (ops.empty() || !ops.front().is_have || h->content != ops.front().content)
            return protocol_error("sent a HAVE nobody asked for");
        op o = std::move(ops.front());
        ops.pop_front();
        if (h->block_count != o.block_count && h->block_count != 0)
            return protocol_error("describes the content with another block count");
        have_answer a;
        a.fetching = (h->flags & wire::have_fetching) != 0;
        a.bitmap = std::move(h->bitmap);
        a.bitmap.resize(static_cast<std::size_t>((o.block_count + 7) / 8));
        o.on_have(nullptr, std::move(a));
        if (!failed_ && c == draining_ && ops.empty()) close_drained();
    } else if (auto *d = std::get_if<wire::data>(&m)) {
        if (ops.empty() || ops.front().is_have) return protocol_error("sent a block that was not asked for");
        op &o = ops.front();
        if (d->id != o.id || d->content != o.content || d->block != o.next_block || d->part != o.part ||
            (o.part && (d->offset != o.offset || d->bytes.size() != o.length)))
            return protocol_error("sent a block that was not asked for");
        if (o.paced) {
            op answered = std::move(ops.front());
            ops.pop_front();
            // The delay is timed to the first bytes of the answer: a block's last byte can also
            // wait for the serving peer's TCP window, which restarts small after an idle spell
            // (slow start after idle) — at the minimum rate every block would look 2-3 round
            // trips late, and a flow at its minimum would stay there (measured in the lab).
            // With a timestamp from the peer, the one-way delay of the data path alone: a round
            // trip also counts the queue on the way back, which another office's transfer
            // through this office's uplink fills (measured in the hierarchy lab: an office
            // serving its child office yielded to its own upload). Clocks differ by an
            // offset the base subtracts.
            auto t = steady_now_us();
            auto started = std::min(t, std::chrono::duration_cast<std::chrono::microseconds>(
                                           c->channel->record_started().time_since_epoch()).count());
            std::int64_t rtt = started - answered.sent_us;
            // In unsigned arithmetic: the peer's stamp is any 64 bits (the controller bounds it).
            std::int64_t delay = d->timed ? static_cast<std::int64_t>(static_cast<std::uint64_t>(started) - d->sent_us) : rtt;
            auto &cc = path_->cc_;
            c->head_arrived = 0;
            // Packets of this connection that came out of order since the last answer: the
            // serving peer's TCP lost one on the path (the receiver's only view of a loss).
            bool lost = false;
            if (auto ooo = platform::out_of_order_arrivals(c->channel->socket().native_handle())) {
                lost = c->out_of_order_seen && *ooo != *c->out_of_order_seen;
                if (lost) cc.on_loss(t);
                c->out_of_order_seen = ooo;
            }
            cc.on_delivered(answered.length, delay, rtt, t, source_, std::exchange(c->head_progress, 0));
            auto &p = answered.paced;
            --p->outstanding;
            // A part joins the block's earlier ones; the block goes on once its last part is in.
            // (Parts of a block are asked for one after another on one connection and answered
            // in order, so one buffer per connection holds the block being assembled.)
            bool whole = !answered.part;
            if (answered.part) {
                if (answered.offset == 0) c->assembling.clear();
                c->assembling.insert(c->assembling.end(), d->bytes.begin(), d->bytes.end());
                whole = answered.offset + answered.length == layout_.block_length(d->block);
                if (whole) d->bytes = std::move(c->assembling), c->assembling = {};
            }
            if (whole && !p->finished) p->on_block(d->block, std::move(d->bytes));
            if (failed_) return;
            if (!p->finished && p->unsent == 0 && p->outstanding == 0) finish_paced(p, nullptr, {});
            if (failed_) return;
            if (c == draining_ && ops.empty()) close_drained();
            if (path_->yield_changed(t) && on_yield_) on_yield_(cc.yielding(), cc.queue_delay_us(), cc.target_us());
            path_->after_answer(*this, lost, t);
            path_->pump();
            return;
        }
        ++o.next_block;
        bool last = --o.remaining == 0;
        o.on_block(d->block, std::move(d->bytes));
        if (last && !failed_) {
            op finished = std::move(ops.front());
            ops.pop_front();
            finished.on_done(nullptr, {});
            if (!failed_ && c == draining_ && ops.empty()) close_drained();
        }
    } else if (auto *r = std::get_if<wire::reject>(&m)) {
        if (ops.empty() || ops.front().is_have || ops.front().id != r->id)
            return protocol_error("rejected a request that is not outstanding");
        op o = std::move(ops.front());
        ops.pop_front();
        std::string reason = r->reason.empty() ? std::string("rejected") : r->reason;
        if (o.paced) {
            c->head_arrived = 0;
            c->assembling.clear();
            path_->cc_.on_abandoned(o.length - std::min<std::uint64_t>(o.length, std::exchange(c->head_progress, 0)));
            --o.paced->outstanding;
            if (!o.paced->finished) finish_paced(o.paced, nullptr, reason);
            if (!failed_ && c == draining_ && ops.empty()) close_drained();
            if (!failed_) path_->pump();
            return;
        }
        o.on_done(nullptr, reason);
        if (!failed_ && c == draining_ && ops.empty()) close_drained();
    } else if (auto *g = std::get_if<wire::goodbye>(&m)) {
        connection_failed(c, error(PD_E_IO, PD_CATEGORY_NET, "peer " + address_ + " said goodbye: " + g->reason));
    } else if (auto *delta = std::get_if<wire::have_delta>(&m)) {
        if (on_delta_) on_delta_(delta->content, delta->blocks);
    } else if (std::holds_alternative<wire::pong>(m)) {
        // Not asked for by this client; harmless.
    } else {
        protocol_error(std::string("sent ") + wire::name(m) + " to a client");
    }
}

void peer_link::query_have(const content::hash &id, std::uint64_t block_count, have_fn done) {
    if (!open()) {
        asio::post(io_, [done, e = closed_error()] { done(&e, {}); });
        return;
    }
    send_have(id, block_count, std::move(done));
    if (outstanding() == 1) arm_timer();
    auto known = std::find_if(interests_.begin(), interests_.end(), [&](auto &i) { return i.first == id; });
    if (known == interests_.end() && interests_.size() < max_interests) interests_.emplace_back(id, block_count);
}

void peer_link::send_have(const content::hash &id, std::uint64_t block_count, have_fn done) {
    op o;
    o.is_have = true;
    o.content = id;
    o.block_count = block_count;
    o.on_have = std::move(done);
    live_->ops.push_back(std::move(o));
    live_->channel->send(wire::encode(wire::have{id, 0, 0, {}}));
}

void peer_link::request(const content::hash &id, std::uint64_t first, std::uint32_t count, block_fn on_block, done_fn done) {
    if (!open()) {
        asio::post(io_, [done, e = closed_error()] { done(&e, {}); });
        return;
    }
    if (path_) {
        auto p = std::make_shared<paced_request>();
        p->content = id;
        p->next_block = first;
        p->unsent = count;
        p->order = path_->next_order_++;
        p->on_block = std::move(on_block);
        p->on_done = std::move(done);
        paced_.push_back(std::move(p));
        path_->pump();
        return;
    }
    op o;
    o.content = id;
    o.on_block = std::move(on_block);
    o.on_done = std::move(done);
    send_request(std::move(o), first, count);
}

void peer_link::send_request(op o, std::uint64_t first, std::uint32_t count) {
    o.id = next_request_++;
    o.next_block = first;
    o.remaining = count;
    o.sent_us = steady_now_us();
    auto request = o.part ? wire::message(wire::request_part{o.id, o.content, first, o.offset, o.length})
                          : wire::message(wire::request{o.id, o.content, first, count});
    live_->ops.push_back(std::move(o));
    live_->channel->send(wire::encode(request));
    if (outstanding() == 1) arm_timer();
}

void peer_link::set_background(std::shared_ptr<background_path> path, content::block_layout layout) {
    path_ = std::move(path);
    source_ = path_->join(shared_from_this());
    layout_ = layout;
    for (auto *c : {&live_, &draining_, &fresh_})
        if (*c && (*c)->channel) count_answers_as_they_drain(*c);
}

// The background class times answers by the kernel's arrival stamps and counts them as they
// drain; foreground links read whole records, several per system call.
void peer_link::count_answers_as_they_drain(const connection_ptr &c) {
    c->channel->use_kernel_arrival_times();
    c->channel->on_body_progress([weak = weak_from_this(), weak_c = std::weak_ptr<connection>(c)](std::size_t bytes) {
        auto self = weak.lock();
        auto conn = weak_c.lock();
        if (!self || !conn || self->failed_ || conn->ops.empty() || !conn->ops.front().paced) return;
        // Answers come in order: these bytes are the oldest block's. A record pushed in
        // between (HAVE_DELTA, a few bytes) may be counted to it; drained() caps it at the block.
        conn->head_arrived += bytes;
        auto drained = net::ledbat::drained(conn->head_arrived, conn->ops.front().length);
        if (drained <= conn->head_progress) return;
        self->path_->cc_.on_progress(drained - conn->head_progress);
        conn->head_progress = drained;
        self->path_->pump();
    });
}

std::shared_ptr<peer_link::paced_request> peer_link::oldest_unsent_request() const {
    // Requests finish in order; the oldest with blocks left to ask for goes first.
    auto it = std::find_if(paced_.begin(), paced_.end(), [](auto &p) { return p->unsent > 0; });
    return it == paced_.end() ? nullptr : *it;
}

std::optional<std::uint64_t> peer_link::oldest_unsent() const {
    auto p = oldest_unsent_request();
    if (!p) return std::nullopt;
    return p->order;
}

std::uint32_t peer_link::next_paced_bytes(std::uint32_t part) const {
    auto p = oldest_unsent_request();
    if (!p) return 0;
    auto rest = layout_.block_length(p->next_block) - p->next_offset;
    return peer_answers_parts_ ? std::min(rest, part) : rest;
}

void peer_link::send_next_paced(std::uint32_t part) {
    if (fresh_ && fresh_->proven && !mid_block()) move_to_fresh();
    auto p = oldest_unsent_request();
    op o;
    o.content = p->content;
    o.paced = p;
    o.offset = p->next_offset;
    o.length = next_paced_bytes(part);
    // A whole block goes as REQUEST, as to a peer that answers no parts.
    o.part = o.length < layout_.block_length(p->next_block);
    std::uint64_t b = p->next_block;
    p->next_offset += o.length;
    if (p->next_offset == layout_.block_length(b)) ++p->next_block, p->next_offset = 0, --p->unsent;
    ++p->outstanding;
    send_request(std::move(o), b, 1);
}

std::uint64_t peer_link::paced_in_flight() const {
    std::uint64_t bytes = 0;
    for (auto *c : {&live_, &draining_})
        if (*c)
            for (auto &o : (*c)->ops)
                if (o.paced) bytes += o.length;
    return bytes;
}

void peer_link::finish_paced(const std::shared_ptr<paced_request> &p, const error *why, const std::string &rejected) {
    p->finished = true;
    p->unsent = 0;
    paced_.erase(std::remove(paced_.begin(), paced_.end(), p), paced_.end());
    auto done = std::move(p->on_done);
    p->on_block = nullptr;
    done(why, rejected);
}

void peer_link::arm_timer() {
    if (outstanding() == 0) {
        timer_.cancel();
        return;
    }
    timer_.expires_after(std::chrono::milliseconds(request_timeout_ms_));
    timer_.async_wait([weak = weak_from_this(), ms = request_timeout_ms_](const error_code &ec) {
        auto self = weak.lock();
        if (ec || !self || self->failed_) return;
        self->fail(error(PD_E_TIMEOUT, PD_CATEGORY_NET,
                         "peer " + self->address_ + " answered nothing for " + std::to_string(ms) + " ms"));
    });
}

void peer_link::close(const std::string &why) { fail(error(PD_E_CANCELLED, PD_CATEGORY_NET, why)); }

void peer_link::fail(const error &why) {
    if (failed_) return;
    failed_ = true;
    timer_.cancel();
    renew_timer_.cancel();
    if (path_) {
        // Its unanswered requests leave the shared window; the other links may use it.
        auto unanswered = paced_in_flight();
        std::uint64_t counted = 0;  // of them, already out of the window as they drained
        for (auto *c : {&live_, &draining_})
            if (*c) counted += (*c)->head_progress;
        path_->leave(source_, unanswered - std::min(counted, unanswered));
        asio::post(io_, [path = path_] { path->pump(); });
    }
    std::deque<op> ops;
    for (auto *c : {&draining_, &live_, &fresh_}) {
        if (!*c) continue;
        if ((*c)->channel) (*c)->channel->close();
        for (auto &o : (*c)->ops) ops.push_back(std::move(o));
        (*c)->ops.clear();
    }
    fresh_.reset();
    on_delta_ = nullptr;  // they may hold their job
    on_yield_ = nullptr;
    on_renewal_ = nullptr;
    if (auto cb = std::exchange(on_connected_, nullptr)) cb(&why);
    auto paced = std::move(paced_);
    paced_.clear();
    for (auto &o : ops) {
        if (o.is_have)
            o.on_have(&why, {});
        else if (!o.paced)
            o.on_done(&why, {});
    }
    for (auto &p : paced)
        if (!p->finished) finish_paced(p, &why, {});
}

}  // namespace pd::peer
