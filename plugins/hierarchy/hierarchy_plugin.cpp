// The `hierarchy` backend (design §6, Adaptiva-style mode): the agent side of
// pd-coordinator. It registers the device with its facts, heartbeats, reports what it holds
// and how each job went, and answers the core's two questions per content from the
// coordinator's "sources" reply: which peers (its office's devices on the LAN; for the
// office's RVP also the nearest ancestor office's devices, marked " wan"), and whether
// this device may use the origin (only the top office with participants may). It also
// carries the coordinator's decisions to the core: contents described by the catalogue,
// retired ones, ones to pre-stage (and to raise to the foreground class for a deadline),
// revoked devices, the office WAN budget and the WiFi office's no-broadcast rule.
//
// Configuration (plugin.hierarchy.config, JSON): {"coordinator": "host:port",
// "fleet_key_file": "/path", "preferred": false, "timeout_ms": 5000, "outage_grace_ms":
// 120000}; "preferred": true makes the device a preferred one whatever its history. Without
// "coordinator" the backend stays idle. When the coordinator cannot be
// reached, its last answer for a content holds for outage_grace_ms (a restart does not send
// a branch to the origin); after that the backend has no opinion and the core uses its other
// sources, so a coordinator outage never stops a download.
#include "coordinator_client/protocol.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <peerdist/sys/plugin.h>

#include <boost/asio/ip/host_name.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace {

using pd::coord::json;

std::string hex(const std::uint8_t id[32]) { return pd::to_hex(id, 32); }

struct cached_sources {
    pd::coord::sources_reply reply;
    std::int64_t at_ms = 0;
};

struct backend {
    const pd_host_api *host = nullptr;
    std::string coordinator;
    std::array<std::uint8_t, 32> key{};
    bool preferred = false;
    int timeout_ms = 5000;
    std::int64_t outage_grace_ms = 120000;
    std::string device_id;

    std::mutex mu;  // the connection and the cache
    std::unique_ptr<pd::coord::coordinator_client> client;
    std::map<std::string, cached_sources> sources;
    bool registered = false;
    std::string last_error;
    std::int64_t heartbeat_ms = 5000;
    std::uint64_t applied_budget = 0;
    std::uint64_t revocations_known = 0;     // how many revoked keys the coordinator reported
    std::uint64_t revocations_reported = 0;  // how many of them the host has refused (agent thread)
    std::uint64_t retirements_known = 0;     // the newest content retirement the coordinator reported
    std::uint64_t retirements_applied = 0;   // the newest one handed to the host (agent thread)
    // Contents the coordinator's last heartbeat reply asked this RVP for (hex). Its own mutex: the
    // network thread's content_available must never wait behind a coordinator call on `mu`.
    std::mutex prestage_mu;
    std::set<std::string> prestaging;
    // Contents this device's jobs are fetching (hex), also under prestage_mu: their progress
    // goes with each heartbeat, for the administrators' view of a rollout.
    std::set<std::string> fetching;

    std::mutex stop_mu;  // also guards `reports`
    std::condition_variable stop_cv;
    bool stopping = false;
    std::vector<json> reports;  // job statistics waiting for the agent thread
    std::thread agent;

    void log(int level, const std::string &m) const { host->log(host->host, level, m.c_str()); }

    json facts(std::string *listen) {
        pd_device_facts f{};
        f.struct_size = sizeof f;
        char id[65] = "";
        if (host->struct_size >= offsetof(pd_host_api, device_facts) + sizeof host->device_facts && host->device_facts)
            host->device_facts(host->host, &f, id, sizeof id);
        device_id = id;
        if (listen) {
            char buf[512] = "";
            host->listen_addresses(host->host, buf, sizeof buf);
            *listen = buf;
            auto comma = listen->find(',');
            if (comma != std::string::npos) listen->resize(comma);
        }
        json out = {{"free_bytes", f.free_bytes}, {"usable_free_bytes", f.usable_free_bytes}, {"chassis", f.chassis},
                    {"os_type", f.os_type}, {"uptime_seconds", f.uptime_seconds}};
        // What the coordinator derives preferred devices from (hosts before 0.5 lack it).
        if (f.struct_size >= offsetof(pd_device_facts, bytes_served) + sizeof f.bytes_served) out["bytes_served"] = f.bytes_served;
        return out;
    }

    // One request; reconnects (and re-registers) once when the connection broke. Caller holds mu.
    json call_locked(const json &request) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!client) {
                    client = std::make_unique<pd::coord::coordinator_client>(coordinator, key.data(), timeout_ms);
                    registered = false;
                    identify_locked();
                }
                if (!registered && request.value("op", "") != "register") register_locked();
                auto reply = client->call(request);
                if (reply.value("unregistered", false) && attempt == 0) {
                    registered = false;
                    continue;
                }
                if (!last_error.empty()) log(PD_LOG_INFO, "coordinator " + coordinator + " reachable again");
                last_error.clear();
                return reply;
            } catch (const std::exception &e) {
                // Anything the client or a reply's JSON throws: the connection is dropped,
                // never the agent (a wrong type in a reply is a nlohmann::json error).
                client.reset();
                auto *pe = dynamic_cast<const pd::error *>(&e);
                bool retry = pe && pe->code() != PD_E_AUTH && pe->code() != PD_E_TIMEOUT;
                if (attempt == 0 && retry) continue;
                if (last_error != e.what()) log(PD_LOG_WARN, e.what());
                last_error = e.what();
                throw;
            }
        }
    }

    // Proves this device's own key on the new connection (hosts before 0.5 have none: the
    // coordinator then treats the device as unidentified, which it may refuse).
    void identify_locked() {
        if (host->struct_size < offsetof(pd_host_api, device_sign) + sizeof host->device_sign || !host->device_sign) return;
        auto statement = pd::coord::device_statement(client->transcript());
        std::uint8_t sig[64], pub[32];
        if (host->device_sign(host->host, statement.data(), statement.size(), sig, pub) != 0) return;
        auto reply = client->call({{"op", "identify"}, {"device_id", device_id}, {"key", pd::to_hex(pub, 32)}, {"signature", pd::to_hex(sig, 64)}});
        if (reply.value("ok", false) != true) {
            auto why = reply.find("error");
            pd::fail(PD_E_AUTH, PD_CATEGORY_NET,
                     "coordinator " + coordinator + " refused this device's identity: " +
                         (why != reply.end() && why->is_string() ? why->get<std::string>() : std::string("no reason given")));
        }
    }

    void register_locked() {
        std::string listen;
        auto f = facts(&listen);
        json r = {{"op", "register"}, {"device_id", device_id}, {"version", PD_VERSION_STRING},
                  {"listen", listen}, {"facts", f}};
        if (preferred) r["preferred"] = true;  // the override; otherwise the coordinator judges by history
        boost::system::error_code ec;
        auto name = boost::asio::ip::host_name(ec);
        if (!ec) r["name"] = name;
        auto reply_json = client->call(r);
        auto reply = pd::coord::read_register_reply(reply_json);
        heartbeat_ms = reply.heartbeat_ms;
        apply_budget(reply.wan_budget);
        apply_office_type(reply_json);
        if (reply.revoked_devices) revocations_known = *reply.revoked_devices;
        if (auto retired = pd::coord::read_retired_count(reply_json)) retirements_known = *retired;
        registered = true;
        log(PD_LOG_INFO, "registered with " + coordinator + " in office '" + reply.office + "'");
    }

    // The office's WAN budget from the topology, handed to the core (hosts before 0.3 lack it).
    void apply_budget(std::optional<std::uint64_t> reported) {
        if (!reported || *reported == applied_budget) return;
        auto budget = *reported;
        if (host->struct_size < offsetof(pd_host_api, set_wan_budget) + sizeof host->set_wan_budget || !host->set_wan_budget) return;
        host->set_wan_budget(host->host, budget);
        applied_budget = budget;
        log(PD_LOG_INFO, budget ? "office WAN budget: " + std::to_string(budget) + " bytes/s" : std::string("office WAN budget lifted"));
    }

    // WiFi offices send no multicast or broadcast discovery (docs/hierarchy.md): the rule goes
    // to the core, which the broadcasting backends ask. Hosts before 0.5 lack it.
    void apply_office_type(const json &reply) {
        auto type = pd::coord::read_office_type(reply);
        if (!type || host->struct_size < offsetof(pd_host_api, set_discovery_broadcast) + sizeof host->set_discovery_broadcast ||
            !host->set_discovery_broadcast)
            return;
        host->set_discovery_broadcast(host->host, *type == "WiFi" ? 0 : 1);
    }

    json call(const json &request) {
        std::lock_guard lk(mu);
        return call_locked(request);
    }

    // Hands the host the revoked devices' keys it does not have yet, so its peers refuse
    // them too (docs/coordinator.md "Devices"). Agent thread.
    void refuse_revoked_devices() {
        if (host->struct_size < offsetof(pd_host_api, refuse_device) + sizeof host->refuse_device || !host->refuse_device) return;
        catch_up(revocations_reported, revocations_known, [&](std::uint64_t since) {
            auto page = pd::coord::read_revoked_devices(call({{"op", "revoked_devices"}, {"device_id", device_id}, {"since", since}}), since);
            for (auto &k : page.keys) host->refuse_device(host->host, k.data());
            return sequence_page{since + page.keys.size(), page.total};
        });
    }

    // Has the host drop the contents the coordinator retired since the last time (its
    // administrators removed them from the catalogue). Agent thread.
    void drop_retired_contents() {
        if (host->struct_size < offsetof(pd_host_api, retire_content) + sizeof host->retire_content || !host->retire_content) return;
        catch_up(retirements_applied, retirements_known, [&](std::uint64_t since) {
            auto page = pd::coord::read_retired_contents(call({{"op", "retired_contents"}, {"device_id", device_id}, {"since", since}}), since);
            for (auto &id : page.contents) host->retire_content(host->host, id.data());
            return sequence_page{page.upto, std::nullopt};
        });
    }

    // Where a page of a sequence the coordinator keeps (revoked devices, retired contents)
    // leaves off, and the sequence's length when the page says it.
    struct sequence_page {
        std::uint64_t next;
        std::optional<std::uint64_t> known;
    };

    // Pages through such a sequence from `applied` until it reaches `known` (both under
    // `mu`); `next_page(since)` hands a page's entries to the host and says where it ended.
    // A page that does not move on ends it (a coordinator that lost its list). Agent thread.
    template <class NextPage>
    void catch_up(std::uint64_t &applied, std::uint64_t &known, NextPage next_page) {
        for (;;) {
            std::uint64_t since;
            {
                std::lock_guard lk(mu);
                if (applied >= known) return;
                since = applied;
            }
            sequence_page page = next_page(since);
            std::lock_guard lk(mu);
            applied = page.next;
            if (page.known) known = *page.known;
            if (page.next == since) return;
        }
    }

    // The coordinator asks this device, its office's RVP, to bring contents into the office
    // (pre-staging): the host fetches each unless it has it or a job runs (asking again every
    // heartbeat restarts a job that failed). Agent thread.
    // `raised`: those the coordinator needs sooner than the background class would bring them
    // (a deadline): fetched over the foreground class.
    void prestage(const std::vector<std::array<std::uint8_t, 32>> &ids, const std::vector<std::array<std::uint8_t, 32>> &raised) {
        if (host->struct_size < offsetof(pd_host_api, request_content) + sizeof host->request_content || !host->request_content)
            return;
        std::set<std::string> now;
        for (auto &id : ids) now.insert(hex(id.data()));
        {
            // The reply lists everything this office still lacks: what it no longer lists
            // (done, withdrawn, retired, or another device became the RVP) is not reported on.
            std::lock_guard lk(prestage_mu);
            for (auto &id : now)
                if (!prestaging.count(id)) log(PD_LOG_INFO, "pre-staging content " + id.substr(0, 16) + "… into the office");
            prestaging = std::move(now);
        }
        for (auto &id : ids) {
            bool foreground = std::find(raised.begin(), raised.end(), id) != raised.end();
            host->request_content(host->host, id.data(), foreground ? PD_PLUGIN_REQUEST_FOREGROUND : 0);
        }
    }

    // How far the pre-staged contents and those being fetched have come: the coordinator
    // orders the office's children after it, predicts its finish and shows the rollout from
    // these. Agent thread.
    json progress() {
        json out = json::array();
        std::set<std::string> ids;
        {
            std::lock_guard lk(prestage_mu);
            ids = prestaging;
            ids.insert(fetching.begin(), fetching.end());
        }
        for (auto &id : ids) {
            if (out.size() == pd::coord::max_progress_per_heartbeat) break;
            auto raw = pd::from_hex(id);
            std::uint8_t label[32];
            std::uint64_t verified = 0, total = 0;
            if (!raw || host->content_label(host->host, raw->data(), label) != 0 ||
                host->lookup_label(host->host, label, &verified, &total) != 0)
                continue;
            out.push_back({{"content", id}, {"verified_blocks", verified}});
        }
        return out;
    }

    // The agent thread: heartbeats, and the reports hooks on the network thread queued.
    void run() {
        auto next_heartbeat = std::chrono::steady_clock::now();
        for (;;) {
            std::vector<json> pending;
            {
                std::unique_lock lk(stop_mu);
                stop_cv.wait_until(lk, next_heartbeat, [this] { return stopping || !reports.empty(); });
                if (stopping) return;
                pending.swap(reports);
            }
            try {
                for (auto &r : pending) call(r);
                if (std::chrono::steady_clock::now() >= next_heartbeat) {
                    auto reply = call({{"op", "heartbeat"}, {"device_id", device_id}, {"facts", facts(nullptr)},
                                       {"progress", progress()}});
                    apply_budget(pd::coord::read_wan_budget(reply));
                    apply_office_type(reply);
                    prestage(pd::coord::read_prestage(reply, "prestage"), pd::coord::read_prestage(reply, "foreground"));
                    if (auto revoked = pd::coord::read_revoked_count(reply)) {
                        std::lock_guard lk(mu);
                        revocations_known = *revoked;
                    }
                    if (auto retired = pd::coord::read_retired_count(reply)) {
                        std::lock_guard lk(mu);
                        retirements_known = *retired;
                    }
                    refuse_revoked_devices();
                    drop_retired_contents();
                    // After the call: the first one registers and learns the interval.
                    next_heartbeat = std::chrono::steady_clock::now() + std::chrono::milliseconds(heartbeat_ms);
                }
            } catch (const std::exception &) {
                // Logged once by call(); the next round tries again (reports of this round are dropped).
                next_heartbeat = std::chrono::steady_clock::now() + std::chrono::milliseconds(heartbeat_ms);
            }
        }
    }

    void report(json r) {
        {
            std::lock_guard lk(stop_mu);
            if (reports.size() < 1000) reports.push_back(std::move(r));
        }
        stop_cv.notify_all();
    }

    // The coordinator's answer for a content, at most `max_age_ms` old; null when unreachable.
    std::optional<pd::coord::sources_reply> sources_for(const pd_content_ref *c, std::int64_t max_age_ms) {
        std::string id = hex(c->id);
        std::int64_t now = host->now_ms(host->host);
        {
            std::lock_guard lk(prestage_mu);
            if (fetching.size() < pd::coord::max_progress_per_heartbeat) fetching.insert(id);
        }
        std::lock_guard lk(mu);
        auto it = sources.find(id);
        if (it != sources.end() && now - it->second.at_ms <= max_age_ms) return it->second.reply;
        try {
            auto raw = call_locked({{"op", "sources"}, {"device_id", device_id}, {"content", id}});
            if (raw.is_object() && raw.contains("ok") && raw.at("ok") == false) return std::nullopt;  // not assigned, unknown content
            auto reply = pd::coord::read_sources_reply(raw);
            sources[id] = {reply, now};
            return reply;
        } catch (const std::exception &) {
            // A coordinator restart must not send a whole branch to the origin: the last
            // answer holds for a grace period, then the backend has no opinion.
            if (it != sources.end() && now - it->second.at_ms <= outage_grace_ms) return it->second.reply;
            return std::nullopt;
        }
    }
};

// No exception crosses the plugin boundary: one that escapes a hook is logged and the
// hook answers PD_PLUGIN_E_GENERIC (the core then uses its other sources).
template <class F>
int32_t guarded(const pd_host_api *host, const char *hook, F &&body) noexcept {
    try {
        return body();
    } catch (const std::exception &e) {
        try {
            host->log(host->host, PD_LOG_WARN, (std::string("hierarchy ") + hook + ": " + e.what()).c_str());
        } catch (...) {
        }
    } catch (...) {
    }
    return PD_PLUGIN_E_GENERIC;
}

int32_t PD_CALLBACK hy_create(void **self, const pd_host_api *host, const char *config) {
    return guarded(host, "configuration", [&]() -> int32_t {
        auto b = std::make_unique<backend>();
        b->host = host;
        json cfg = json::parse(config ? config : "{}", nullptr, false);
        if (cfg.is_discarded() || !cfg.is_object()) {
            host->log(host->host, PD_LOG_ERROR, "configuration is not a JSON object");
            return PD_PLUGIN_E_INVALID;
        }
        try {
            b->coordinator = cfg.value("coordinator", std::string());
            b->preferred = cfg.value("preferred", false);
            b->timeout_ms = std::clamp(cfg.value("timeout_ms", 5000), 100, 600000);
            b->outage_grace_ms = std::max<std::int64_t>(0, cfg.value("outage_grace_ms", std::int64_t{120000}));
            if (!b->coordinator.empty()) b->key = pd::read_fleet_key(cfg.value("fleet_key_file", std::string()));
        } catch (const std::exception &e) {
            host->log(host->host, PD_LOG_ERROR, (std::string("configuration: ") + e.what()).c_str());
            return PD_PLUGIN_E_INVALID;
        }
        if (!b->coordinator.empty()) {
            b->facts(nullptr);  // learns the device id
            b->agent = std::thread([p = b.get()] { p->run(); });
        }
        *self = b.release();
        return PD_PLUGIN_OK;
    });
}

void PD_CALLBACK hy_destroy(void *self) {
    auto b = static_cast<backend *>(self);
    {
        std::lock_guard lk(b->stop_mu);
        b->stopping = true;
    }
    b->stop_cv.notify_all();
    if (b->agent.joinable()) b->agent.join();
    delete b;
}

int32_t PD_CALLBACK hy_find_peers(void *self, const pd_content_ref *c, char *out, size_t out_size) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty() || out_size == 0) return 0;
    out[0] = '\0';
    return guarded(b->host, "find_peers", [&]() -> int32_t {
        auto reply = b->sources_for(c, 0);  // fresh: the office's RVP may have changed
        if (!reply) return 0;
        std::string lines;
        int n = 0;
        // The core checks each peer's HELLO against the key the coordinator enrolled for it.
        auto line = [&](const std::string &p, const char *kind) {
            auto key = reply->device_keys.find(p);
            return p + kind + (key == reply->device_keys.end() ? "" : " device=" + key->second) + "\n";
        };
        for (auto &p : reply->lan) lines += line(p, ""), ++n;
        for (auto &p : reply->wan) lines += line(p, " wan"), ++n;
        if (lines.size() >= out_size) return PD_PLUGIN_E_GENERIC;
        std::memcpy(out, lines.c_str(), lines.size() + 1);
        return n;
    });
}

int32_t PD_CALLBACK hy_origin_allowed(void *self, const pd_content_ref *c) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty()) return PD_PLUGIN_E_NOT_FOUND;
    return guarded(b->host, "origin_allowed", [&]() -> int32_t {
        auto reply = b->sources_for(c, 1000);
        if (!reply) return PD_PLUGIN_E_NOT_FOUND;  // coordinator down: no opinion
        return reply->origin_allowed ? 1 : 0;
    });
}

void PD_CALLBACK hy_content_available(void *self, const pd_content_ref *c) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty()) return;
    guarded(b->host, "content_available", [&]() -> int32_t {
        auto id = hex(c->id);
        {
            std::lock_guard lk(b->prestage_mu);
            b->prestaging.erase(id);
            b->fetching.erase(id);
        }
        b->report({{"op", "holding"}, {"device_id", b->device_id}, {"content", id}, {"complete", true}});
        return 0;
    });
}

void PD_CALLBACK hy_job_finished(void *self, const pd_content_ref *c, int32_t, const uint64_t *bytes, size_t classes) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty() || classes < 4) return;
    guarded(b->host, "job_finished", [&]() -> int32_t {
        auto id = hex(c->id);
        {
            std::lock_guard lk(b->prestage_mu);
            b->fetching.erase(id);
        }
        b->report({{"op", "job_stats"}, {"device_id", b->device_id}, {"content", id},
                   {"bytes", {{"local", bytes[PD_SOURCE_LOCAL]}, {"lan", bytes[PD_SOURCE_LAN]}, {"wan", bytes[PD_SOURCE_WAN]},
                              {"origin", bytes[PD_SOURCE_ORIGIN]}}}});
        return 0;
    });
}

// The coordinator's catalogue: a device starts a download from the content id alone.
int32_t PD_CALLBACK hy_describe_content(void *self, const uint8_t id[32], pd_content_description_fn accept, void *context,
                                        char *message, size_t message_size) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty()) return PD_PLUGIN_E_NOT_FOUND;
    auto say = [&](const std::string &m) {
        if (message && message_size) std::snprintf(message, message_size, "%s", m.c_str());
    };
    try {
        auto reply = pd::coord::read_content_reply(b->call({{"op", "content"}, {"device_id", b->device_id}, {"content", hex(id)}}));
        pd_content_description d{};
        d.struct_size = sizeof d;
        d.manifest = reply.manifest.data();
        d.manifest_len = reply.manifest.size();
        d.publication = reply.publication.empty() ? nullptr : reply.publication.data();
        d.publication_len = reply.publication.size();
        d.origins = reply.origins.c_str();
        accept(context, &d);
        return PD_PLUGIN_OK;
    } catch (const pd::error &e) {
        say("coordinator " + b->coordinator + ": " + e.what());
        return e.code() == PD_E_NOT_FOUND ? PD_PLUGIN_E_NOT_FOUND : PD_PLUGIN_E_IO;
    } catch (const std::exception &e) {
        say("coordinator " + b->coordinator + ": " + e.what());
        return PD_PLUGIN_E_GENERIC;
    }
}

// The device no longer holds the content: the coordinator stops sending peers here for it.
void PD_CALLBACK hy_content_removed(void *self, const pd_content_ref *c) {
    auto b = static_cast<backend *>(self);
    if (b->coordinator.empty()) return;
    guarded(b->host, "content_removed", [&]() -> int32_t {
        b->report({{"op", "holding"}, {"device_id", b->device_id}, {"content", hex(c->id)}, {"verified_blocks", 0}, {"complete", false}});
        return 0;
    });
}

const pd_backend_vtable hy_vtable = {
    sizeof(pd_backend_vtable), 1 /* PD_SOURCE_LAN */, hy_create,         hy_destroy,     nullptr, nullptr, nullptr,
    hy_content_available,      hy_find_peers,         hy_origin_allowed, hy_job_finished, hy_describe_content,
    hy_content_removed,        nullptr,
};

const pd_backend_vtable *PD_CALLBACK hy_backend_for(uint32_t abi) { return abi == 1 ? &hy_vtable : nullptr; }

const pd_plugin_descriptor hy_descriptor = {
    sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "hierarchy", "0.1.0", "Apache-2.0",
    "Offices, RVP election and parent-to-child flow through pd-coordinator", hy_backend_for,
};

}  // namespace

extern "C" PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) { return &hy_descriptor; }
