// [MS-PCCRD] Probe and ProbeMatch (plugins/branchcache/pccrd.h) against the specification's
// examples, and the strict XML reader under them (xml.h) against what a hostile datagram
// can hold.
#include "branchcache/pccrd.h"
#include "branchcache/xml.h"

#include <gtest/gtest.h>

namespace rd = pd_branchcache::pccrd;
namespace xml = pd_branchcache::xml;

namespace {

std::vector<std::uint8_t> id_of(const std::string &hex) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < hex.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

const std::string zero_id = std::string(64, '0');
const std::string two_id = "02" + std::string(62, '0');

// [MS-PCCRD] 4.3, "Version 1.0 ProbeMatch Message", as published but for two typos that
// leave it malformed XML: the soap namespace lacks its quotes, the PeerDist namespace its
// closing quote and the tag's '>'. Both mended here (published_4_3 keeps them).
const std::string example_4_3 =
    R"(<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
    xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
    xmlns:PeerDist= "http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery">
  <soap:Header>
    <wsa:To> http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous </wsa:To>
    <wsa:Action> http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches </wsa:Action>
    <wsa:MessageID> urn:uuid:7f4b09a3-96c9-4170-9eb3-1c805a52f444 </wsa:MessageID>
    <wsa:RelatesTo> urn:uuid:91528b47-b96d-4e30-981f-308c0586926f </wsa:RelatesTo>
    <wsd:AppSequence InstanceId="1218765447" MessageNumber="4"/>
  </soap:Header>
  <soap:Body>
    <wsd:ProbeMatches>
      <wsd:ProbeMatch>
        <wsa:EndpointReference>
          <wsa:Address> urn:uuid:87A89944-0230-43a5-AC4E-FAB1386C8E2C </wsa:Address>
        </wsa:EndpointReference>
        <wsd:Types> PeerDist:PeerDistData </wsd:Types>
        <wsd:Scopes> 0200000000000000000000000000000000000000000000000000000000000000 0000000000000000000000000000000000000000000000000000000000000000 </wsd:Scopes>
        <wsd:XAddrs> 157.59.141.183:54321 </wsd:XAddrs>
        <wsd:MetadataVersion> 1 </wsd:MetadataVersion>
        <PeerDist:PeerDistData>
          <PeerDist:BlockCount> 0000002A </PeerDist:BlockCount>
        </PeerDist:PeerDistData>
      </wsd:ProbeMatch>
    </wsd:ProbeMatches>
  </soap:Body>
</soap:Envelope>)";

// A version 1.0 Probe: the body of 2.2.2.1's example (its Scopes, one ID, and MatchBy) in the
// envelope of 4.3 with WS-Discovery's Probe header — the Probe that 4.3's RelatesTo names.
const std::string probe_2_2_2_1 =
    R"(<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
    xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
    xmlns:PeerDist="http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery">
  <soap:Header>
    <wsa:To> urn:schemas-xmlsoap-org:ws:2005:04:discovery </wsa:To>
    <wsa:Action> http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe </wsa:Action>
    <wsa:MessageID> urn:uuid:91528b47-b96d-4e30-981f-308c0586926f </wsa:MessageID>
  </soap:Header>
  <soap:Body>
    <wsd:Probe>
      <wsd:Types> PeerDist:PeerDistData </wsd:Types>
      <wsd:Scopes MatchBy="http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0"> 0200000000000000000000000000000000000000000000000000000000000000 </wsd:Scopes>
    </wsd:Probe>
  </soap:Body>
</soap:Envelope>)";

std::string replace(std::string s, const std::string &from, const std::string &to) {
    auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
}

}  // namespace

TEST(pccrd, the_4_3_probe_match_example_parses) {
    auto p = rd::parse_probe_match(example_4_3);
    ASSERT_TRUE(p.msg) << p.error;
    auto &m = *p.msg;
    EXPECT_EQ(m.message_id, "urn:uuid:7f4b09a3-96c9-4170-9eb3-1c805a52f444");
    EXPECT_EQ(m.relates_to, "urn:uuid:91528b47-b96d-4e30-981f-308c0586926f");
    EXPECT_EQ(m.endpoint, "urn:uuid:87A89944-0230-43a5-AC4E-FAB1386C8E2C");
    EXPECT_EQ(m.instance_id, 1218765447u);
    EXPECT_EQ(m.message_number, 4u);
    ASSERT_EQ(m.segments.size(), 2u);
    EXPECT_EQ(m.segments[0], id_of(two_id));
    EXPECT_EQ(m.segments[1], id_of(zero_id));
    // Two IDs and eight digits: the 16-bit counts of 2.2.3.9's prose, 0 and 42 (docs/protocol.md §6).
    EXPECT_EQ(m.block_counts, (std::vector<std::uint32_t>{0, 42}));
    EXPECT_EQ(m.addresses, (std::vector<std::string>{"157.59.141.183:54321"}));

    // As published, the example is not XML: refused, with the reason.
    auto published = replace(replace(example_4_3, R"(xmlns:soap="http://www.w3.org/2003/05/soap-envelope")",
                                     "xmlns:soap=http://www.w3.org/2003/05/soap-envelope"),
                             R"(PeerDistributionDiscovery">)", "PeerDistributionDiscovery");
    auto refused = rd::parse_probe_match(published);
    EXPECT_FALSE(refused.msg);
    EXPECT_EQ(refused.error, "expected a quoted value");
}

TEST(pccrd, the_2_2_2_1_probe_parses_and_builds_back) {
    auto p = rd::parse_probe(probe_2_2_2_1);
    ASSERT_TRUE(p.msg) << p.error;
    EXPECT_EQ(p.msg->message_id, "urn:uuid:91528b47-b96d-4e30-981f-308c0586926f");
    ASSERT_EQ(p.msg->segments, (std::vector<rd::segment_id>{id_of(two_id)}));
    // What we send carries the same: built, then read by the same strict reader.
    auto again = rd::parse_probe(rd::build(*p.msg));
    ASSERT_TRUE(again.msg) << again.error;
    EXPECT_EQ(again.msg->message_id, p.msg->message_id);
    EXPECT_EQ(again.msg->segments, p.msg->segments);
    // Upper-case hexadecimal on the wire, like the specification's examples.
    EXPECT_NE(rd::build(rd::probe{"urn:uuid:x", {id_of("ab" + std::string(62, 'c'))}}).find("AB" + std::string(62, 'C')), std::string::npos);
}

TEST(pccrd, a_probe_match_builds_and_parses_with_32_bit_counts) {
    rd::probe_match m;
    m.message_id = rd::new_urn_uuid();
    m.relates_to = "urn:uuid:91528b47-b96d-4e30-981f-308c0586926f";
    m.endpoint = rd::new_urn_uuid();
    m.instance_id = 7, m.message_number = 3;
    m.segments = {id_of(two_id), id_of(std::string(96, 'e')), id_of(std::string(128, '1'))};
    m.block_counts = {512, 1, 70000};
    m.addresses = {"10.1.2.3:54321", "[fd00::5]:54321"};
    auto text = rd::build(m);
    EXPECT_NE(text.find("<PeerDist:BlockCount>000002000000000100011170</PeerDist:BlockCount>"), std::string::npos) << text;
    auto p = rd::parse_probe_match(text);
    ASSERT_TRUE(p.msg) << p.error;
    EXPECT_EQ(p.msg->segments, m.segments);
    EXPECT_EQ(p.msg->block_counts, m.block_counts);
    EXPECT_EQ(p.msg->addresses, m.addresses);
    EXPECT_EQ(p.msg->endpoint, m.endpoint);
    EXPECT_EQ(p.msg->instance_id, 7u);
    EXPECT_EQ(m.message_id.size(), 45u);
    EXPECT_EQ(m.message_id[23], '4');  // a version 4 UUID
}

TEST(pccrd, prefixes_are_whatever_the_sender_binds) {
    // Another sender's prefixes and a default namespace: the same Probe.
    std::string other = R"(<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">)"
                        R"(<e:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>urn:uuid:1</a:MessageID></e:Header>)"
                        R"(<e:Body><Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:pd="http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery">)"
                        R"(<Types>pd:PeerDistData</Types><Scopes>)" + two_id + R"(</Scopes></Probe></e:Body></e:Envelope>)";
    auto p = rd::parse_probe(other);
    ASSERT_TRUE(p.msg) << p.error;
    EXPECT_EQ(p.msg->segments.size(), 1u);
    // The name PeerDistData under a prefix bound elsewhere is not PeerDist's.
    auto foreign = replace(other, "xmlns:pd=\"http://schemas.microsoft.com/p2p/2007/09/PeerDistributionDiscovery\"", "xmlns:pd=\"urn:other\"");
    EXPECT_EQ(rd::parse_probe(foreign).error, "not a PeerDist Probe");
}

// A hostile LAN: each bent message is dropped with a reason (3.2.4.1 drops malformed ones
// silently; the reason is for the log and these tests).
TEST(pccrd, an_attackers_datagrams_are_refused_with_a_reason) {
    auto refuse_probe = [](const std::string &text, const std::string &why) {
        auto p = rd::parse_probe(text);
        EXPECT_FALSE(p.msg) << why;
        EXPECT_EQ(p.error, why);
    };
    refuse_probe(replace(probe_2_2_2_1, "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
                         "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"),
                 "DOCTYPE refused");
    refuse_probe(replace(probe_2_2_2_1, "urn:uuid:91528b47", "<![CDATA[x]]>urn:uuid:91528b47"), "CDATA refused");
    refuse_probe(replace(probe_2_2_2_1, "<wsd:Probe>", "<q:Probe>"), "undeclared prefix q");
    refuse_probe(replace(probe_2_2_2_1, "</wsd:Probe>", "</wsd:Probes>"), "mismatched closing tag wsd:Probes");
    refuse_probe(probe_2_2_2_1.substr(0, probe_2_2_2_1.size() - 1), "unclosed element soap:Envelope");
    refuse_probe(replace(probe_2_2_2_1, "/Probe </wsa:Action>", "/Hello </wsa:Action>"), "another action");
    refuse_probe(replace(probe_2_2_2_1, " " + two_id + " ", std::string(" ") + "0g" + std::string(62, '0') + " "),
                 "a segment ID that is not hexadecimal");
    refuse_probe(replace(probe_2_2_2_1, " " + two_id + " ", " " + two_id + "0 "), "a segment ID of a size no hash has");
    std::string many;
    for (int i = 0; i < 65; ++i) many += " " + two_id;
    refuse_probe(replace(probe_2_2_2_1, " " + two_id + " ", many), "too many segment IDs");
    refuse_probe(replace(probe_2_2_2_1, " " + two_id + " ", " "), "empty Scopes");
    refuse_probe(replace(probe_2_2_2_1, "discovery/strcmp0", "discovery/rfc3986"), "Scopes matched by another rule (version 2.0?)");
    refuse_probe(replace(probe_2_2_2_1, "urn:uuid:91528b47", "&#0;urn:uuid:91528b47"), "character reference to a character XML forbids");
    refuse_probe(replace(probe_2_2_2_1, "urn:uuid:91528b47", "&lol;urn:uuid:91528b47"), "unknown entity");
    refuse_probe(replace(probe_2_2_2_1, "urn:uuid:91528b47", std::string("\x01", 1) + "urn:uuid:91528b47"), "control character");
    refuse_probe(replace(probe_2_2_2_1, "<wsd:Scopes MatchBy", "<wsd:Scopes MatchBy=\"x\" MatchBy"), "duplicate attribute MatchBy");
    std::string deep;
    for (int i = 0; i < 20; ++i) deep += "<x>";
    refuse_probe(replace(probe_2_2_2_1, "<soap:Body>", "<soap:Body>" + deep), "nested too deep");
    std::string wide;
    for (int i = 0; i < 600; ++i) wide += "<x/>";
    refuse_probe(replace(probe_2_2_2_1, "<soap:Body>", "<soap:Body>" + wide), "too many elements");
    refuse_probe(probe_2_2_2_1 + std::string(70000, ' '), "document too long");
    refuse_probe(probe_2_2_2_1 + "<x/>", "content after the root element");
    refuse_probe(replace(probe_2_2_2_1, "urn:uuid:91528b47", "urn:uuid:" + std::string(300, 'a')), "MessageID too long");
    // Every prefix of a good Probe is refused, none read past its end.
    for (std::size_t n = 0; n < probe_2_2_2_1.size(); ++n) EXPECT_FALSE(rd::parse_probe(probe_2_2_2_1.substr(0, n)).msg) << n;

    auto refuse_match = [](const std::string &text, const std::string &why) {
        auto p = rd::parse_probe_match(text);
        EXPECT_FALSE(p.msg) << why;
        EXPECT_EQ(p.error, why);
    };
    refuse_match(replace(example_4_3, "> 0000002A <", "> 0000002A00 <"), "BlockCount does not hold one count a segment");
    refuse_match(replace(example_4_3, "> 0000002A <", "> 0000002Z <"), "BlockCount is not hexadecimal");
    refuse_match(replace(example_4_3, "InstanceId=\"1218765447\"", "InstanceId=\"-1\""), "malformed AppSequence");
    refuse_match(replace(example_4_3, "InstanceId=\"1218765447\"", "InstanceId=\"99999999999999999999\""), "malformed AppSequence");
    std::string addresses;
    for (int i = 0; i < 9; ++i) addresses += " 10.0.0." + std::to_string(i) + ":1";
    refuse_match(replace(example_4_3, " 157.59.141.183:54321 ", addresses), "XAddrs empty or too long");
    refuse_match(replace(example_4_3, "<wsa:RelatesTo> urn:uuid:91528b47-b96d-4e30-981f-308c0586926f </wsa:RelatesTo>", ""),
                 "ProbeMatches without MessageID or RelatesTo");
    refuse_match(probe_2_2_2_1, "another action");  // a Probe is not an answer
}

TEST(pccrd, the_xml_reader_decodes_what_xml_allows) {
    auto p = xml::parse("<?xml version='1.0'?><!-- c --><a xmlns='urn:a' xmlns:b='urn:b' b:x='1&amp;2' y=\"&#x41;&#66;\">"
                        "t&lt;&gt;&quot;&apos;<b:c/><!-- inside -->u&#233;</a> ");
    ASSERT_TRUE(p.root) << p.error;
    EXPECT_EQ(p.root->ns, "urn:a");
    EXPECT_EQ(p.root->text, "t<>\"'u\xc3\xa9");
    ASSERT_EQ(p.root->attributes.size(), 2u);
    EXPECT_EQ(p.root->attributes[0].ns, "urn:b");
    EXPECT_EQ(p.root->attributes[0].value, "1&2");
    EXPECT_EQ(*p.root->attr("y"), "AB");  // an unprefixed attribute has no namespace
    ASSERT_NE(p.root->child("urn:b", "c"), nullptr);
    EXPECT_EQ(xml::escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
}
