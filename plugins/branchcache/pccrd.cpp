// [MS-PCCRD] Probe and ProbeMatch: pccrd.h.
#include "pccrd.h"

#include "xml.h"

#include <sodium.h>

#include <cstdio>
#include <optional>

namespace pd_branchcache::pccrd {

namespace {

constexpr const char *soap_ns = "http://www.w3.org/2003/05/soap-envelope";
constexpr const char *wsa_ns = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
constexpr const char *wsd_ns = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
constexpr const char *peerdist_ns = "http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery";
constexpr const char *probe_action = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe";
constexpr const char *matches_action = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches";
constexpr const char *discovery_to = "urn:schemas-xmlsoap-org:ws:2005:04:discovery";
constexpr const char *anonymous_to = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
constexpr const char *strcmp0 = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";

std::string envelope(const std::string &header, const std::string &body) {
    return std::string("<?xml version=\"1.0\" encoding=\"utf-8\"?>") + "<soap:Envelope xmlns:soap=\"" + soap_ns +
           "\" xmlns:wsa=\"" + wsa_ns + "\" xmlns:wsd=\"" + wsd_ns + "\" xmlns:PeerDist=\"" + peerdist_ns + "\">" +
           "<soap:Header>" + header + "</soap:Header><soap:Body>" + body + "</soap:Body></soap:Envelope>";
}

std::string tag(const char *name, const std::string &text) { return std::string("<") + name + ">" + xml::escape(text) + "</" + name + ">"; }

// IDs as the specification's examples write hexadecimal: upper case (matching is by
// strcmp0, case-sensitive; docs/protocol.md §6).
std::string hex_upper(const std::vector<std::uint8_t> &b) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (auto v : b) out += digits[v >> 4], out += digits[v & 15];
    return out;
}

std::string scopes_text(const std::vector<segment_id> &ids) {
    std::string out;
    for (auto &id : ids) out += (out.empty() ? "" : " ") + hex_upper(id);
    return out;
}

bool fail(std::string &error, const char *why) {
    error = why;
    return false;
}

template <typename T>
parsed<T> refused(const char *why) {
    parsed<T> p;
    p.error = why;
    return p;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && xml::is_space(s[i])) ++i;
        auto start = i;
        while (i < s.size() && !xml::is_space(s[i])) ++i;
        if (i > start) out.push_back(s.substr(start, i - start));
    }
    return out;
}

// A Scopes list: hexadecimal IDs of a size some hash has, in either case.
bool parse_scopes(std::string_view text, std::vector<segment_id> &out, std::string &error) {
    auto ids = words(text);
    if (ids.empty()) return fail(error, "empty Scopes");
    if (ids.size() > max_segments) return fail(error, "too many segment IDs");
    for (auto w : ids) {
        if (w.size() != 64 && w.size() != 96 && w.size() != 128) return fail(error, "a segment ID of a size no hash has");
        segment_id id;
        for (std::size_t i = 0; i < w.size(); i += 2) {
            int hi = hex_digit(w[i]), lo = hex_digit(w[i + 1]);
            if (hi < 0 || lo < 0) return fail(error, "a segment ID that is not hexadecimal");
            id.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
        }
        out.push_back(std::move(id));
    }
    return true;
}

bool text_is(const xml::element *e, std::string_view want) { return e && xml::trim(e->text) == want; }

// The Types element names PeerDist:PeerDistData, whatever prefix the sender bound to it.
bool is_peerdist_type(const xml::element *types) {
    if (!types) return false;
    auto names = words(types->text);
    if (names.size() != 1) return false;
    auto q = types->resolve(names[0]);
    return q && q->first == peerdist_ns && q->second == "PeerDistData";
}

// A SOAP message as read: its Header and Body point into `root` (a vector's elements, which
// stay where they are when the message moves).
struct soap_message {
    xml::element root;
    const xml::element *header = nullptr;
    const xml::element *body = nullptr;
};

// The message with its Header and Body, checked for the action; nothing, and `error`, else.
std::optional<soap_message> open_envelope(std::string_view datagram, const char *action, std::string &error) {
    auto doc = xml::parse(datagram);
    if (!doc.root) {
        error = doc.error;
        return std::nullopt;
    }
    soap_message m;
    m.root = std::move(*doc.root);
    m.header = m.root.child(soap_ns, "Header");
    m.body = m.root.child(soap_ns, "Body");
    if (m.root.ns != soap_ns || m.root.name != "Envelope") error = "not a SOAP 1.2 envelope";
    else if (!m.header || !m.body) error = "envelope without Header or Body";
    else if (!text_is(m.header->child(wsa_ns, "Action"), action)) error = "another action";
    else return m;
    return std::nullopt;
}

bool parse_u64(std::string_view s, std::uint64_t &out) {
    if (s.empty() || s.size() > 19) return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

// 2.2.3.9: BlockCount is hexBinary, one count a segment. The example in 4.3 and the
// implementations known to interoperate write 8 digits (32 bits) a count; the prose of
// 2.2.3.9 shows 4 (16 bits). Both are read, by the length against the IDs' number.
bool parse_block_counts(std::string_view text, std::size_t segments, std::vector<std::uint32_t> &out, std::string &error) {
    auto digits = xml::trim(text);
    std::size_t width = digits.size() == 8 * segments ? 8 : digits.size() == 4 * segments ? 4 : 0;
    if (!width) return fail(error, "BlockCount does not hold one count a segment");
    for (std::size_t i = 0; i < digits.size(); i += width) {
        std::uint32_t v = 0;
        for (std::size_t j = 0; j < width; ++j) {
            int d = hex_digit(digits[i + j]);
            if (d < 0) return fail(error, "BlockCount is not hexadecimal");
            v = v << 4 | static_cast<std::uint32_t>(d);
        }
        out.push_back(v);
    }
    return true;
}

}  // namespace

std::string build(const probe &p) {
    std::string header = tag("wsa:To", discovery_to) + tag("wsa:Action", probe_action) + tag("wsa:MessageID", p.message_id);
    std::string body = std::string("<wsd:Probe>") + tag("wsd:Types", "PeerDist:PeerDistData") + "<wsd:Scopes MatchBy=\"" +
                       strcmp0 + "\">" + scopes_text(p.segments) + "</wsd:Scopes></wsd:Probe>";
    return envelope(header, body);
}

std::string build(const probe_match &m) {
    std::string header = tag("wsa:To", anonymous_to) + tag("wsa:Action", matches_action) + tag("wsa:MessageID", m.message_id) +
                         tag("wsa:RelatesTo", m.relates_to) + "<wsd:AppSequence InstanceId=\"" + std::to_string(m.instance_id) +
                         "\" MessageNumber=\"" + std::to_string(m.message_number) + "\"/>";
    std::string addresses, counts;
    for (auto &a : m.addresses) addresses += (addresses.empty() ? "" : " ") + a;
    for (auto c : m.block_counts) {
        char buf[9];
        std::snprintf(buf, sizeof buf, "%08X", c);
        counts += buf;
    }
    std::string body = "<wsd:ProbeMatches><wsd:ProbeMatch><wsa:EndpointReference>" + tag("wsa:Address", m.endpoint) +
                       "</wsa:EndpointReference>" + tag("wsd:Types", "PeerDist:PeerDistData") +
                       tag("wsd:Scopes", scopes_text(m.segments)) + tag("wsd:XAddrs", addresses) + tag("wsd:MetadataVersion", "1") +
                       "<PeerDist:PeerDistData>" + tag("PeerDist:BlockCount", counts) +
                       "</PeerDist:PeerDistData></wsd:ProbeMatch></wsd:ProbeMatches>";
    return envelope(header, body);
}

parsed<probe> parse_probe(std::string_view datagram) {
    parsed<probe> out;
    auto env = open_envelope(datagram, probe_action, out.error);
    if (!env) return out;
    auto header = env->header, body = env->body;
    probe p;
    auto id = header->child(wsa_ns, "MessageID");
    if (!id || xml::trim(id->text).empty()) return refused<probe>("Probe without MessageID");
    // A ProbeMatch repeats it: a long one would make answers to forged sources larger than
    // the Probes (a reflection flood).
    if (xml::trim(id->text).size() > max_message_id) return refused<probe>("MessageID too long");
    p.message_id = std::string(xml::trim(id->text));
    auto pr = body->child(wsd_ns, "Probe");
    if (!pr) return refused<probe>("no Probe in the body");
    if (!is_peerdist_type(pr->child(wsd_ns, "Types"))) return refused<probe>("not a PeerDist Probe");
    auto scopes = pr->child(wsd_ns, "Scopes");
    if (!scopes) return refused<probe>("Probe without Scopes");
    auto match_by = scopes->attr("MatchBy");
    if (match_by && *match_by != strcmp0) return refused<probe>("Scopes matched by another rule (version 2.0?)");
    if (!parse_scopes(scopes->text, p.segments, out.error)) return out;
    out.msg = std::move(p);
    return out;
}

parsed<probe_match> parse_probe_match(std::string_view datagram) {
    parsed<probe_match> out;
    auto env = open_envelope(datagram, matches_action, out.error);
    if (!env) return out;
    auto header = env->header, body = env->body;
    probe_match m;
    auto id = header->child(wsa_ns, "MessageID");
    auto relates = header->child(wsa_ns, "RelatesTo");
    if (!id || !relates) return refused<probe_match>("ProbeMatches without MessageID or RelatesTo");
    m.message_id = std::string(xml::trim(id->text));
    m.relates_to = std::string(xml::trim(relates->text));
    if (auto seq = header->child(wsd_ns, "AppSequence")) {
        auto instance = seq->attr("InstanceId"), number = seq->attr("MessageNumber");
        if (!instance || !number || !parse_u64(*instance, m.instance_id) || !parse_u64(*number, m.message_number))
            return refused<probe_match>("malformed AppSequence");
    }
    auto matches = body->child(wsd_ns, "ProbeMatches");
    auto match = matches ? matches->child(wsd_ns, "ProbeMatch") : nullptr;
    if (!match) return refused<probe_match>("no ProbeMatch in the body");
    if (!is_peerdist_type(match->child(wsd_ns, "Types"))) return refused<probe_match>("not a PeerDist ProbeMatch");
    auto epr = match->child(wsa_ns, "EndpointReference");
    auto address = epr ? epr->child(wsa_ns, "Address") : nullptr;
    if (!address) return refused<probe_match>("ProbeMatch without an endpoint address");
    m.endpoint = std::string(xml::trim(address->text));
    auto scopes = match->child(wsd_ns, "Scopes");
    if (!scopes) return refused<probe_match>("ProbeMatch without Scopes");
    if (!parse_scopes(scopes->text, m.segments, out.error)) return out;
    auto xaddrs = match->child(wsd_ns, "XAddrs");
    if (!xaddrs) return refused<probe_match>("ProbeMatch without XAddrs");
    for (auto a : words(xaddrs->text)) m.addresses.emplace_back(a);
    if (m.addresses.empty() || m.addresses.size() > max_addresses) return refused<probe_match>("XAddrs empty or too long");
    auto data = match->child(peerdist_ns, "PeerDistData");
    auto counts = data ? data->child(peerdist_ns, "BlockCount") : nullptr;
    if (!counts) return refused<probe_match>("ProbeMatch without BlockCount");
    if (!parse_block_counts(counts->text, m.segments.size(), m.block_counts, out.error)) return out;
    out.msg = std::move(m);
    return out;
}

std::string new_urn_uuid() {
    if (sodium_init() < 0) return {};
    std::uint8_t b[16];
    randombytes_buf(b, sizeof b);
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
    char out[46];
    std::snprintf(out, sizeof out, "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                  b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return out;
}

}  // namespace pd_branchcache::pccrd
