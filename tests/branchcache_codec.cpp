// pd_test_branchcache_codec: the branchcache plugin's [MS-PCCRR]/[MS-PCCRD] codec on the
// command line, so that tests/python/test_branchcache_codec.py can hold it against an
// independent implementation written from the specifications in Python
// (tests/python/branchcache_client.py): each side builds what the other parses.
//
//   decode request|response|probe|probe-match   < message   -> JSON on stdout
//   encode                                       < JSON      -> message on stdout
//   encrypt|decrypt ALGO SECRET_HEX IV_HEX [SIZE] < data     -> data on stdout
//
// JSON carries bytes as lowercase hexadecimal. Exit status 1 and the parser's reason on
// stderr for a refused message.
#include "branchcache/pccrd.h"
#include "branchcache/pccrr.h"
#include "util/hex.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace rr = pd_branchcache::pccrr;
namespace rd = pd_branchcache::pccrd;
using nlohmann::json;

namespace {

std::string hex(const std::vector<std::uint8_t> &b) { return pd::to_hex(b); }

// Bytes from the JSON's hexadecimal; throws (exit status 2) when it is not.
std::vector<std::uint8_t> unhex(const std::string &h) {
    auto b = pd::from_hex(h);
    if (!b) throw std::invalid_argument("not hexadecimal: " + h);
    return *b;
}

json ranges_json(const std::vector<rr::block_range> &rs) {
    json out = json::array();
    for (auto &r : rs) out.push_back({r.index, r.count});
    return out;
}

std::vector<rr::block_range> ranges_of(const json &j) {
    std::vector<rr::block_range> out;
    for (auto &r : j) out.push_back({r.at(0).get<std::uint32_t>(), r.at(1).get<std::uint32_t>()});
    return out;
}

json message_json(const rr::message &m) {
    json j{{"version", {m.protocol.major, m.protocol.minor}}, {"algo", static_cast<std::uint32_t>(m.algo)}};
    if (auto *nr = std::get_if<rr::nego_req>(&m.content)) {
        j["type"] = "nego_req", j["min"] = {nr->min_version.major, nr->min_version.minor}, j["max"] = {nr->max_version.major, nr->max_version.minor};
    } else if (auto *ns = std::get_if<rr::nego_resp>(&m.content)) {
        j["type"] = "nego_resp", j["min"] = {ns->min_version.major, ns->min_version.minor}, j["max"] = {ns->max_version.major, ns->max_version.minor};
    } else if (auto *gl = std::get_if<rr::get_blk_list>(&m.content)) {
        j["type"] = "get_blk_list", j["segment"] = hex(gl->segment_id), j["ranges"] = ranges_json(gl->needed);
    } else if (auto *bl = std::get_if<rr::blk_list>(&m.content)) {
        j["type"] = "blk_list", j["segment"] = hex(bl->segment_id), j["ranges"] = ranges_json(bl->ranges), j["next"] = bl->next_block_index;
    } else if (auto *gb = std::get_if<rr::get_blks>(&m.content)) {
        j["type"] = "get_blks", j["segment"] = hex(gb->segment_id), j["ranges"] = ranges_json(gb->ranges), j["vrf"] = hex(gb->vrf);
    } else if (auto *bk = std::get_if<rr::blk>(&m.content)) {
        j["type"] = "blk", j["segment"] = hex(bk->segment_id), j["index"] = bk->block_index, j["next"] = bk->next_block_index;
        j["block"] = hex(bk->block), j["vrf"] = hex(bk->vrf), j["iv"] = hex(bk->iv);
    }
    return j;
}

rr::version version_of(const json &j) { return {j.at(0).get<std::uint16_t>(), j.at(1).get<std::uint16_t>()}; }

int encode(const json &j) {
    auto type = j.at("type").get<std::string>();
    std::string out;
    if (type == "probe") {
        rd::probe p{j.at("message_id").get<std::string>(), {}};
        for (auto &s : j.at("segments")) p.segments.push_back(unhex(s.get<std::string>()));
        out = rd::build(p);
    } else if (type == "probe_match") {
        rd::probe_match m;
        m.message_id = j.at("message_id"), m.relates_to = j.at("relates_to"), m.endpoint = j.at("endpoint");
        m.instance_id = j.at("instance_id"), m.message_number = j.at("message_number");
        for (auto &s : j.at("segments")) m.segments.push_back(unhex(s.get<std::string>()));
        m.block_counts = j.at("block_counts").get<std::vector<std::uint32_t>>();
        m.addresses = j.at("addresses").get<std::vector<std::string>>();
        out = rd::build(m);
    } else {
        rr::message m;
        m.protocol = j.contains("version") ? version_of(j["version"]) : rr::version{};
        m.algo = static_cast<rr::crypto_algo>(j.value("algo", 0u));
        if (type == "nego_req") m.content = rr::nego_req{version_of(j.at("min")), version_of(j.at("max"))};
        else if (type == "nego_resp") m.content = rr::nego_resp{version_of(j.at("min")), version_of(j.at("max"))};
        else if (type == "get_blk_list") m.content = rr::get_blk_list{unhex(j.at("segment")), ranges_of(j.at("ranges"))};
        else if (type == "blk_list") m.content = rr::blk_list{unhex(j.at("segment")), ranges_of(j.at("ranges")), j.at("next")};
        else if (type == "get_blks") m.content = rr::get_blks{unhex(j.at("segment")), ranges_of(j.at("ranges")), unhex(j.value("vrf", ""))};
        else if (type == "blk")
            m.content = rr::blk{unhex(j.at("segment")), j.at("index"), j.at("next"), unhex(j.at("block")), unhex(j.value("vrf", "")), unhex(j.at("iv"))};
        else return std::cerr << "unknown type " << type << "\n", 2;
        auto bytes = rr::build(m);
        bool response = type == "nego_resp" || type == "blk_list" || type == "blk";
        if (response) bytes = rr::with_transport_header(bytes);
        out.assign(bytes.begin(), bytes.end());
    }
    std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
    return 0;
}

int decode(const std::string &what, const std::string &in) {
    json j;
    std::string error;
    if (what == "request" || what == "response") {
        auto *data = reinterpret_cast<const std::uint8_t *>(in.data());
        auto p = what == "request" ? rr::parse_request(data, in.size()) : rr::parse_response(data, in.size());
        if (p.msg) j = message_json(*p.msg);
        error = p.error;
    } else if (what == "probe") {
        auto p = rd::parse_probe(in);
        if (p.msg) {
            j = {{"message_id", p.msg->message_id}, {"segments", json::array()}};
            for (auto &s : p.msg->segments) j["segments"].push_back(hex(s));
        }
        error = p.error;
    } else if (what == "probe-match") {
        auto p = rd::parse_probe_match(in);
        if (p.msg) {
            auto &m = *p.msg;
            j = {{"message_id", m.message_id}, {"relates_to", m.relates_to}, {"endpoint", m.endpoint}, {"instance_id", m.instance_id},
                 {"message_number", m.message_number}, {"block_counts", m.block_counts}, {"addresses", m.addresses}, {"segments", json::array()}};
            for (auto &s : m.segments) j["segments"].push_back(hex(s));
        }
        error = p.error;
    } else {
        return std::cerr << "decode what?\n", 2;
    }
    if (!error.empty()) return std::cerr << error << "\n", 1;
    std::cout << j.dump() << "\n";
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::string cmd = argc > 1 ? argv[1] : "";
    try {
        if (cmd == "decode" && argc == 3) return decode(argv[2], in);
        if (cmd == "encode" && argc == 2) return encode(json::parse(in));
        if ((cmd == "encrypt" && argc == 5) || (cmd == "decrypt" && argc == 6)) {
            auto algo = static_cast<rr::crypto_algo>(std::stoul(argv[2]));
            rr::bytes data(in.begin(), in.end());
            auto out = cmd == "encrypt" ? rr::encrypt_block(algo, unhex(argv[3]), unhex(argv[4]), data)
                                        : rr::decrypt_block(algo, unhex(argv[3]), unhex(argv[4]), data, std::stoul(argv[5]));
            if (!out) return std::cerr << "refused\n", 1;
            std::cout.write(reinterpret_cast<const char *>(out->data()), static_cast<std::streamsize>(out->size()));
            return 0;
        }
    } catch (const std::exception &e) {
        return std::cerr << e.what() << "\n", 2;
    }
    std::cerr << "usage: see tests/branchcache_codec.cpp\n";
    return 2;
}
