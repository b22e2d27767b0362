// libFuzzer target for every parser peerdist exposes to untrusted bytes: the manifest,
// BranchCache Content Information V1 and V2, publication records, the peer wire, the
// secure-channel handshake, the background controller, the coordinator's message framing
// and JSON, the topology CSV, endpoints and key files; the origin plugin's URL, Location
// and Content-Range parsing, branchcache discovery datagrams, the coordinator's replies as
// the hierarchy plugin reads them, pd-agent's config and its control-socket lines, and the
// [MS-PCCRR] and [MS-PCCRD] messages a BranchCache peer sends. The first input byte picks
// the parser. A parser may reject input only by throwing pd::error (or, in the plugins, by
// returning an error); anything else (a crash, a sanitizer report, another exception) is a
// bug. Accepted inputs must re-serialise to the same bytes.
#include "agent_protocol.h"
#include "branchcache/discovery.h"
#include "branchcache/pccrd.h"
#include "branchcache/pccrr.h"
#include "content/manifest.h"
#include "content/pccrc.h"
#include "content/publication.h"
#include "coordinator/console/request.h"
#include "coordinator/topology.h"
#include "coordinator_client/protocol.h"
#include "net/ledbat.h"
#include "net/secure_channel.h"
#include "origin/http_url.h"
#include "peer/wire.h"
#include "util/endpoint.h"
#include "util/error.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

void write_seed(const std::string &dir, const std::string &name, std::uint8_t selector, const std::vector<std::uint8_t> &body) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.put(static_cast<char>(selector));
    out.write(reinterpret_cast<const char *>(body.data()), static_cast<std::streamsize>(body.size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    const char *dir = std::getenv("PD_FUZZ_SEEDS");
    if (!dir) return 0;
    std::vector<pd::content::hash> blocks(5);
    for (std::size_t i = 0; i < blocks.size(); ++i) blocks[i] = pd::crypto::sha256(&i, sizeof i);
    auto m = pd::content::manifest::from_block_hashes(4 * 65536 + 100, blocks, "seed.bin");
    write_seed(dir, "manifest", 0, m.serialize());
    write_seed(dir, "v1", 1,
               *pd::from_hex("00010c80000000000000000000000100000000000000000000007e85010000000100"
                             "d8d976354a4872e925761803f458d9daaa67f8e31c630fb74e6a312ef8a25aba"
                             "11afc0d7949243f94f9c1fab35d9fd1e331fcf7811a2e01d3587b38d770a29e2"
                             "02000000"
                             "73c18ab8549110f8e90e71bbc3ab2aa8c44d13f4929499255b660f24ec77800b"
                             "974bdd65567fdeeccdafe457a9503b4548f66ed3b188dcfda0ac382b09711acc"));
    write_seed(dir, "v2", 2,
               *pd::from_hex("000204000000000000000000000000000000000000000000000000000000000000000088000099de"
                             "e0d0c358e2684b62330d32b5f1978724a0d0a52bdc5e781fae71ff57a8be3dd4"
                             "58037ed404116bb616d9b14116088520c47cdc50abcea3fae188a98ea22df3c0"));
    std::uint8_t pk[32], sk[64];
    std::memset(sk, 7, 32);
    pd::crypto::ensure_initialised();
    pd::crypto::ed25519_keypair(pk, sk);
    pd::content::publication p;
    p.id = m.id;
    p.size = m.size;
    p.name = m.name;
    p.origin = "https://cdn.example/seed.bin";
    write_seed(dir, "publication", 3, p.sign(sk));
    write_seed(dir, "wire-request", 4, pd::peer::wire::encode(pd::peer::wire::request{1, m.id, 0, 16}));
    write_seed(dir, "wire-have", 4, pd::peer::wire::encode(pd::peer::wire::have{m.id, 5, 0, {0x1f}}));
    write_seed(dir, "wire-timed-data", 4, pd::peer::wire::encode(pd::peer::wire::data{3, m.id, 1, std::vector<std::uint8_t>(64, 9), true, 777}));
    write_seed(dir, "wire-request-part", 4, pd::peer::wire::encode(pd::peer::wire::request_part{2, m.id, 1, 16384, 16384}));
    write_seed(dir, "wire-part", 4,
               pd::peer::wire::encode(pd::peer::wire::data{2, m.id, 1, std::vector<std::uint8_t>(64, 7), true, 778, true, 16384}));
    {
        namespace net = pd::net;
        net::key32 key{};
        key[0] = 1;
        net::handshake client(net::role::client, key.data(), net::keyless::refused, net::all_ciphers);
        auto with_mode = [](int mode, std::vector<std::uint8_t> v) {
            v.insert(v.begin(), static_cast<std::uint8_t>(mode));
            return v;
        };
        write_seed(dir, "handshake-server", 5, with_mode(0, client.hello()));
        net::handshake server(net::role::server, key.data(), net::keyless::refused, net::all_ciphers);
        write_seed(dir, "handshake-client", 5, with_mode(1, server.on_peer_hello(client.hello().data(), net::hello_size)));
        for (auto c : {net::cipher::xchacha20poly1305, net::cipher::aes256gcm}) {
            net::record_sealer sealer;
            auto stream = sealer.start(c, key);
            for (std::size_t size : {0, 3, 1000}) {
                std::vector<std::uint8_t> plain(size, 0x61);
                auto r = sealer.seal(plain.data(), plain.size());
                stream.insert(stream.end(), r.begin(), r.end());
            }
            write_seed(dir, std::string("records-") + net::cipher_name(c), 5, with_mode(c == net::cipher::aes256gcm ? 3 : 2, stream));
        }
    }
    // Background controller: sends and deliveries 25 ms apart with a growing queue.
    std::vector<std::uint8_t> steps;
    for (std::uint32_t i = 0; i < 64; ++i) {
        std::uint32_t v = 25000 + i * 3000;
        steps.push_back(static_cast<std::uint8_t>(i % 2));
        steps.insert(steps.end(), reinterpret_cast<std::uint8_t *>(&v), reinterpret_cast<std::uint8_t *>(&v) + 4);
    }
    write_seed(dir, "ledbat", 6, steps);
    // Coordinator framing: a one-record request, and a message in parts (a 0 byte splits records).
    std::string one = R"({"op":"sources","device_id":"d","content":")" + pd::to_hex(m.id.data(), 32) + "\"}";
    write_seed(dir, "coord-one", 7, std::vector<std::uint8_t>(one.begin(), one.end()));
    std::string parts = std::string(R"({"parts":2})") + '\0' + R"({"op":"admin.topo)" + '\0' + R"(logy.export"})";
    write_seed(dir, "coord-parts", 7, std::vector<std::uint8_t>(parts.begin(), parts.end()));
    std::string csv = "# comment\nname,parent,type,ranges,wan_budget\nCentral Office,,Default,10.0.0.0/24,\n"
                      "\"A, b\",Central Office,WiFi,10.1.0.0/24;10.1.2.10-10.1.2.20;fd00::/64,1000\n";
    write_seed(dir, "topology", 8, std::vector<std::uint8_t>(csv.begin(), csv.end()));
    for (std::string e : {std::string("10.1.2.3:7400"), std::string("[2001:db8::1]:80"), std::string("coordinator.example:7400"), std::string(64, 'a') + "\n"})
        write_seed(dir, "endpoint-" + std::to_string(e.size()), 9, std::vector<std::uint8_t>(e.begin(), e.end()));
    auto text_seed = [&](const std::string &name, std::uint8_t selector, const std::string &t) {
        write_seed(dir, name, selector, std::vector<std::uint8_t>(t.begin(), t.end()));
    };
    text_seed("origin-url", 10, std::string("https://cdn.example:8443/dir/a.msi?x=1") + '\0' + "../b.msi" + '\0' + "bytes 0-65535/1048576");
    pd_branchcache::key dk{};
    dk.fill(0x42);  // the key case 11 opens with: the seeds open
    pd_branchcache::answer a;
    a.port = 7400, a.verified_blocks = 2, a.block_count = 9;
    auto ab = pd_branchcache::encode(a, dk);
    write_seed(dir, "discovery-answer", 11, std::vector<std::uint8_t>(ab.begin(), ab.end()));
    auto qb = pd_branchcache::encode(pd_branchcache::query{}, dk);
    write_seed(dir, "discovery-query", 11, std::vector<std::uint8_t>(qb.begin(), qb.end()));
    text_seed("coord-register-reply", 12, R"({"ok":true,"office":"HQ","heartbeat_ms":5000,"wan_budget":0})");
    text_seed("coord-revoked-reply", 12, R"({"ok":true,"since":1,"total":3,"keys":[")" + std::string(64, 'c') + "\"]}");
    text_seed("coord-heartbeat-reply", 12, R"({"ok":true,"office":"WiFi","office_type":"WiFi","retired_contents":4,"prestage":[")" +
                                               std::string(64, 'a') + R"("],"foreground":[")" + std::string(64, 'a') + "\"]}");
    text_seed("coord-retired-reply", 12, R"({"ok":true,"upto":5,"contents":[")" + std::string(64, 'd') + "\"]}");
    text_seed("coord-content-reply", 12, R"({"ok":true,"manifest":"UERNRgEAAQA=","publication":"abcd","origins":["http://cdn/a","file:///s/a"]})");
    text_seed("coord-sources-reply", 12, R"({"ok":true,"origin_allowed":false,"lan":["10.0.0.2:7400"],"wan":["[fd00::1]:7400"]})");
    text_seed("agent-config", 13, R"({"cache_dir":"/c","control_socket":"/s","quota_percent":50,"log_level":"debug",)"
                                  R"("settings":{"job.piece_size_kib":256},"plugins":{"origin":{"max_connections":8}},)"
                                  R"("device":{"chassis":"laptop","free_bytes":5}})");
    text_seed("agent-request", 14, R"({"cmd":"download","manifest":"/m.pdm","origin":"https://cdn/x","pin":true,"id":1})");
    text_seed("agent-setting", 14, R"({"cmd":"setting","key":"k","value":{"a":[1,true]}})");
    pd::admin_credential credential;
    for (std::size_t i = 0; i < 32; ++i) credential.admin_seed[i] = static_cast<std::uint8_t>(i * 7 + 1);
    text_seed("admin-credential", 15, pd::format_admin_credential(credential, "seed"));
    text_seed("console-request", 16, std::string("/api/v1/prestage/status") + '\0' + "content=ab%20cd&x=+1" + '\0' + "a=b; pd_console=" + std::string(64, 'f'));
    // [MS-PCCRR] (case 17): the first byte picks request or response.
    namespace rr = pd_branchcache::pccrr;
    rr::bytes segment(32, 0x49), iv(16, 1);
    auto pccrr_seed = [&](const std::string &name, std::uint8_t side, const rr::bytes &b) {
        rr::bytes body{side};
        body.insert(body.end(), b.begin(), b.end());
        write_seed(dir, name, 17, body);
    };
    pccrr_seed("pccrr-nego-req", 0, rr::build({rr::version{}, rr::crypto_algo::none, rr::nego_req{{1, 0}, {2, 0}}}));
    pccrr_seed("pccrr-getblklist", 0, rr::build({rr::version{}, rr::crypto_algo::none, rr::get_blk_list{segment, {{0, 4}, {9, 2}}}}));
    pccrr_seed("pccrr-getblks", 0, rr::build({rr::version{}, rr::crypto_algo::aes_128, rr::get_blks{segment, {{3, 1}}, {}}}));
    pccrr_seed("pccrr-nego-resp", 1, rr::with_transport_header(rr::build({rr::version{}, rr::crypto_algo::none, rr::nego_resp{{1, 0}, {1, 0}}})));
    pccrr_seed("pccrr-blklist", 1, rr::with_transport_header(rr::build({rr::version{}, rr::crypto_algo::none, rr::blk_list{segment, {{0, 4}}, 7}})));
    pccrr_seed("pccrr-blk", 1, rr::with_transport_header(rr::build({rr::version{}, rr::crypto_algo::aes_128,
                                                                    rr::blk{segment, 3, 4, rr::bytes(48, 7), {}, iv}})));
    // [MS-PCCRD] (case 18): the first byte picks Probe or ProbeMatch.
    namespace rd = pd_branchcache::pccrd;
    rd::probe_match match{"urn:uuid:a", "urn:uuid:b", "urn:uuid:c", 1, 2, {segment, segment}, {3, 512}, {"10.0.0.1:54321"}};
    text_seed("pccrd-probe", 18, std::string(1, '\0') + rd::build(rd::probe{"urn:uuid:a", {segment}}));
    text_seed("pccrd-probe-match", 18, std::string(1, '\1') + rd::build(match));
    return 0;
}

// The input as three texts separated by 0 bytes (missing ones empty).
static std::array<std::string, 3> three_parts(const std::uint8_t *body, std::size_t len) {
    std::string text(reinterpret_cast<const char *>(body), len);
    auto first = text.find('\0'), second = text.find('\0', first == std::string::npos ? first : first + 1);
    return {text.substr(0, first), first == std::string::npos ? "" : text.substr(first + 1, second - first - 1),
            second == std::string::npos ? "" : text.substr(second + 1)};
}

static bool cookie_has_separator(const std::string &v) { return v.find(';') != std::string::npos; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t *body = data + 1;
    std::size_t len = size - 1;
    try {
        switch (data[0] % 19) {
        case 0: {
            auto m = pd::content::manifest::parse(body, len);
            if (m.serialize() != std::vector<std::uint8_t>(body, body + len)) std::abort();
            break;
        }
        case 1: {
            auto v = pd::content::pccrc::v1_info::parse(body, len);
            if (v.serialize() != std::vector<std::uint8_t>(body, body + len)) std::abort();
            // An origin's answer to a PeerDist request: the manifest derived from it (or a
            // clean refusal) describes exactly its blocks.
            auto m = pd::content::pccrc::v1_manifest(v, "content");
            std::size_t blocks = 0;
            for (auto &seg : v.segments) blocks += seg.block_hashes.size();
            if (m.block_count() != blocks) std::abort();
            break;
        }
        case 2:
            pd::content::pccrc::v2_info::parse(body, len).serialize();
            break;
        case 3: {
            static const std::uint8_t key[32] = {0};
            pd::content::publication::verify(body, len, key);
            break;
        }
        case 4: {
            auto m = pd::peer::wire::decode(body, len);
            if (pd::peer::wire::encode(m) != std::vector<std::uint8_t>(body, body + len)) std::abort();
            break;
        }
        case 5: {
            // The secure channel from the peer's side, by the first byte: a server reading a
            // client's HELLO (with any cipher offer) and FINISH, a client reading a server's
            // (with any choice), or a stream header and records opened under either cipher.
            // Nothing forged verifies; everything else is a clean rejection.
            namespace net = pd::net;
            if (len < 1) break;
            int mode = body[0] % 4;
            const std::uint8_t *p = body + 1;
            std::size_t n = len - 1;
            net::key32 key{};
            key[0] = 1;
            if (mode < 2) {
                net::handshake hs(mode == 0 ? net::role::server : net::role::client, key.data(), net::keyless::refused, net::all_ciphers);
                if (n < net::hello_size) break;
                hs.on_peer_hello(p, net::hello_size);
                hs.on_peer_finish(p + net::hello_size, n - net::hello_size);
                std::abort();  // a forged FINISH verified
            }
            auto c = mode == 2 ? net::cipher::xchacha20poly1305 : net::cipher::aes256gcm;
            std::size_t header = net::stream_header_size(c);
            if (n < header) break;
            net::record_opener opener;
            opener.start(c, key, p);
            for (p += header, n -= header; n >= 4;) {
                std::size_t record = opener.record_length(p);
                if (record > n - 4) break;
                opener.open(p + 4, record);
                p += 4 + record;
                n -= 4 + record;
            }
            break;
        }
        case 6: {
            // The background controller fed what a peer controls: when answers arrive (any
            // delay, clocks that jump), how much is in flight and how often packets are lost. Its window stays in bounds and
            // it never asks the caller to wait into the past.
            pd::net::ledbat_config c;
            c.target_us = 5000 + (len ? body[0] : 0) * 1000;  // the case byte alone: an empty body
            pd::net::ledbat cc(c);
            std::int64_t now = 0;
            for (std::size_t i = 0; i + 5 <= len; i += 5) {
                std::uint32_t v;
                std::memcpy(&v, body + i + 1, 4);
                now += static_cast<std::int64_t>(v % 1000000);
                // The high bits pick one of four peers under the shared window (their own bases).
                auto source = static_cast<std::uint32_t>(body[i] >> 6);
                switch (body[i] % 8) {
                case 0: {
                    auto at = cc.send_at(65536, now);
                    if (at != 0 && at < now) std::abort();
                    if (at == 0) cc.on_sent(65536, now);
                    break;
                }
                case 1: cc.on_delivered(65536, static_cast<std::int64_t>(v) - 1000, v % 500000, now, source); break;
                case 2: cc.on_delivered(65536, static_cast<std::int64_t>(v) * 4096 - (1ll << 50), v, now, source); break;  // clock offsets
                case 7: {
                    // A hostile peer's stamp: any 64 bits, as peer_link passes it on.
                    std::int64_t stamp = static_cast<std::int64_t>((std::uint64_t{v} << 32) * 0x9e3779b97f4a7c15ull);
                    cc.on_delivered(65536, stamp, v % 500000, now, source);
                    break;
                }
                case 3: cc.on_abandoned(v); break;
                case 4: cc.forget_source(source); break;
                case 5: {
                    // Part of an answer, then the rest of it: counted once.
                    auto before = cc.in_flight();
                    auto drained = pd::net::ledbat::drained(v % 70000, 65536);
                    cc.on_progress(drained);
                    if (before >= drained && cc.in_flight() != before - drained) std::abort();
                    cc.on_delivered(65536, v % 50000, v % 50000, now, source, drained);
                    break;
                }
                case 6: cc.on_loss(now); break;  // as often as a peer's packets come out of order
                }
                if (cc.window() < c.min_window || cc.window() > c.max_window || cc.queue_delay_us() < 0) std::abort();
                // A shallow buffer lowers the target, never under its floor nor over the configured one.
                auto floor = std::min(c.target_us, pd::net::ledbat::min_target_us);
                if (cc.target_us() < floor || cc.target_us() > c.target_us) std::abort();
            }
            break;
        }
        case 7: {
            // Records as a coordinator connection receives them (a 0 byte ends a record),
            // then each message dumped again (what a reply built from it would do).
            pd::coord::message_assembler in;
            std::size_t start = 0;
            for (std::size_t i = 0; i <= len; ++i) {
                if (i < len && body[i] != 0) continue;
                auto message = in.feed(pd::net::bytes(body + start, body + i));
                start = i + 1;
                if (!message) continue;
                if (!message->is_object()) std::abort();
                (void)message->dump();
            }
            break;
        }
        case 8: {
            std::string text(reinterpret_cast<const char *>(body), len);
            try {
                auto t = pd::coord::topology::parse_csv(text);
                // What export writes, import reads back to the same offices.
                if (pd::coord::topology::parse_csv(t.to_csv()).to_csv() != t.to_csv()) std::abort();
            } catch (const pd::coord::topology_error &e) {
                if (e.problems().empty() || e.problems().size() > pd::coord::topology::max_problems + 1) std::abort();
            }
            break;
        }
        case 9: {
            std::string text(reinterpret_cast<const char *>(body), len);
            auto e = pd::parse_endpoint(text, (len & 1) ? pd::port_rule::listen : pd::port_rule::connect);
            if (e && e->host.empty()) std::abort();
            (void)pd::parse_fleet_key(text);
            break;
        }
        case 10: {
            // A URL, a Location against it, a Content-Range: 0 bytes separate them.
            auto [base, location, range] = three_parts(body, len);
            if (auto u = pd_origin::parse_url(base)) {
                // What goes into a request line carries no control byte or space.
                for (unsigned char c : u->text() + u->host + u->port)
                    if (c <= 0x20 || c >= 0x7f) std::abort();
                if (auto r = pd_origin::resolve(*u, location))
                    for (unsigned char c : r->text())
                        if (c <= 0x20 || c >= 0x7f) std::abort();
            }
            if (auto r = pd_origin::parse_content_range(range))
                if (r->first > r->last || r->last >= r->size) std::abort();
            break;
        }
        case 11: {
            // Datagrams under a fixed key: what opens re-seals to what opens the same way.
            pd_branchcache::key k{};
            k.fill(0x42);
            if (auto q = pd_branchcache::decode_query(body, len, k)) {
                auto again = pd_branchcache::decode_query(pd_branchcache::encode(*q, k).data(), pd_branchcache::query_size, k);
                if (!again || again->content != q->content || again->window != q->window) std::abort();
            }
            if (auto a = pd_branchcache::decode_answer(body, len, k)) {
                if (a->port == 0 || a->verified_blocks > a->block_count) std::abort();
                auto again = pd_branchcache::decode_answer(pd_branchcache::encode(*a, k).data(), pd_branchcache::answer_size, k);
                if (!again || again->port != a->port || again->query_id != a->query_id) std::abort();
            }
            break;
        }
        case 12: {
            // A reply as the hierarchy plugin reads it: through the assembler's limits, then
            // each reader. Only pd::error may come out.
            pd::coord::message_assembler in;
            auto reply = in.feed(pd::net::bytes(body, body + len));
            if (!reply) break;
            try {
                (void)pd::coord::read_register_reply(*reply);
            } catch (const pd::error &) {
            }
            try {
                (void)pd::coord::read_wan_budget(*reply);
            } catch (const pd::error &) {
            }
            try {
                (void)pd::coord::read_revoked_count(*reply);
            } catch (const pd::error &) {
            }
            try {
                auto since = reply->is_object() && reply->contains("since") && (*reply)["since"].is_number_unsigned()
                                 ? (*reply)["since"].get<std::uint64_t>()
                                 : 0;
                auto page = pd::coord::read_revoked_devices(*reply, since);
                if (page.keys.size() > pd::coord::max_revoked_per_reply || since + page.keys.size() > page.total) std::abort();
            } catch (const pd::error &) {
            }
            // The catalogue's and pre-staging's fields (docs/coordinator.md).
            try {
                (void)pd::coord::read_retired_count(*reply);
                (void)pd::coord::read_office_type(*reply);
                for (const char *key : {"prestage", "foreground"})
                    if (pd::coord::read_prestage(*reply, key).size() > pd::coord::max_prestage_per_reply) std::abort();
            } catch (const pd::error &) {
            }
            try {
                auto page = pd::coord::read_retired_contents(*reply, 2);
                if (page.upto < 2 || page.contents.size() > pd::coord::max_retired_per_reply) std::abort();
            } catch (const pd::error &) {
            }
            try {
                auto c = pd::coord::read_content_reply(*reply);
                if (c.origins.find('\r') != std::string::npos || c.publication.size() > 64 * 1024) std::abort();
            } catch (const pd::error &) {
            }
            auto s = pd::coord::read_sources_reply(*reply);
            if (s.lan.size() > pd::coord::max_peers || s.wan.size() > pd::coord::max_peers) std::abort();
            for (auto *list : {&s.lan, &s.wan})
                for (auto &p : *list)
                    if (p.find_first_of("\n\r ") != std::string::npos) std::abort();
            break;
        }
        case 13:
            try {
                (void)pd_agent::parse_config(std::string(reinterpret_cast<const char *>(body), len), "fuzz.json");
            } catch (const pd_agent::input_error &) {
            }
            break;
        case 14:
            try {
                auto r = pd_agent::parse_request(std::string(reinterpret_cast<const char *>(body), len));
                if (!r.args.is_object()) std::abort();
            } catch (const pd_agent::input_error &) {
            }
            break;
        case 15: {
            // An administrator's credential file: what parses formats back to the same keys.
            auto c = pd::parse_admin_credential(std::string(reinterpret_cast<const char *>(body), len));
            auto again = pd::parse_admin_credential(pd::format_admin_credential(c, "fuzz"));
            if (again.admin_seed != c.admin_seed || again.coordinator_key != c.coordinator_key) std::abort();
            break;
        }
        case 16: {
            // The console's own request parsing: a path, a query string and a Cookie header,
            // 0 bytes between them.
            auto [path, query, cookie] = three_parts(body, len);
            if (auto op = pd::coord::console::operation_of(path)) {
                if (op->rfind("admin.", 0) != 0 || op->size() > 70) std::abort();
                for (char c : op->substr(6))
                    if (!((c >= 'a' && c <= 'z') || c == '_' || c == '.')) std::abort();
                if (op->find("..") != std::string::npos) std::abort();
            }
            if (auto fields = pd::coord::console::query_fields(query)) {
                if (!fields->is_object() || fields->contains("op")) std::abort();
                for (auto &[k, v] : fields->items())
                    if (k.empty() || !v.is_string()) std::abort();
                (void)fields->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            }
            if (cookie_has_separator(pd::coord::console::cookie_value(cookie, "pd_console"))) std::abort();
            break;
        }
        case 17: {
            // A BranchCache peer's [MS-PCCRR] request or response: what parses builds back to
            // the same bytes, and a block decrypts only within its bounds.
            namespace rr = pd_branchcache::pccrr;
            if (len < 1) break;
            bool request = body[0] % 2 == 0;
            auto p = request ? rr::parse_request(body + 1, len - 1) : rr::parse_response(body + 1, len - 1);
            if (p.msg.has_value() == !p.error.empty()) std::abort();
            if (!p.msg) break;
            auto again = rr::build(*p.msg);
            if (!request) again = rr::with_transport_header(again);
            if (again != rr::bytes(body + 1, body + len)) std::abort();
            if (auto *b = std::get_if<rr::blk>(&p.msg->content)) {
                auto plain = rr::decrypt_block(p.msg->algo, rr::bytes(32, 9), b->iv, b->block, b->block.size() / 2);
                if (plain && plain->size() != b->block.size() / 2) std::abort();
            }
            break;
        }
        case 18: {
            // A BranchCache peer's [MS-PCCRD] datagram: what parses, built again, parses to the same.
            namespace rd = pd_branchcache::pccrd;
            if (len < 1) break;
            std::string_view text(reinterpret_cast<const char *>(body + 1), len - 1);
            if (body[0] % 2 == 0) {
                auto p = rd::parse_probe(text);
                if (p.msg.has_value() == !p.error.empty()) std::abort();
                if (!p.msg) break;
                auto again = rd::parse_probe(rd::build(*p.msg));
                if (!again.msg || again.msg->segments != p.msg->segments) std::abort();
            } else {
                auto p = rd::parse_probe_match(text);
                if (p.msg.has_value() == !p.error.empty()) std::abort();
                if (!p.msg) break;
                if (p.msg->block_counts.size() != p.msg->segments.size()) std::abort();
                auto again = rd::parse_probe_match(rd::build(*p.msg));
                if (!again.msg || again.msg->segments != p.msg->segments || again.msg->block_counts != p.msg->block_counts ||
                    again.msg->addresses != p.msg->addresses)
                    std::abort();
            }
            break;
        }
        }
    } catch (const pd::error &) {
        // A clean rejection.
    }
    return 0;
}
