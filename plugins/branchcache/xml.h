// A strict, bounded XML reader for the SOAP envelopes of [MS-PCCRD] (WS-Discovery): enough
// XML for what peers send, nothing a hostile datagram could turn against the reader.
//
// Read: an optional XML declaration, comments, one root element, elements with attributes,
// character data with the five predefined entities and character references, and
// namespaces (xmlns, xmlns:p) resolved to URIs. Refused, with a reason: a DOCTYPE (so no
// entity expansion, internal or external), CDATA sections, processing instructions other
// than the declaration, undeclared prefixes, mismatched or unclosed tags, duplicate
// attributes, characters XML 1.0 forbids, and anything over the bounds below. Text is
// returned as it stands (entities decoded); callers trim where the schema allows spaces.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pd_branchcache::xml {

constexpr std::size_t max_document_bytes = 65536;  // a UDP datagram at most
constexpr std::size_t max_depth = 16;
constexpr std::size_t max_elements = 512;

struct attribute {
    std::string ns, name, value;  // ns: the URI of the prefix, empty for an unprefixed attribute
};

struct element {
    std::string ns, name;  // the namespace URI and the local name
    std::vector<attribute> attributes;
    std::string text;  // the element's own character data, concatenated
    std::vector<element> children;
    std::map<std::string, std::string> scope;  // prefix -> URI in scope here ("" the default)

    // The first child with this namespace and local name, or null.
    const element *child(std::string_view ns, std::string_view name) const;
    // The value of an unprefixed attribute, or null.
    const std::string *attr(std::string_view name) const;
    // A QName in this element's text or attributes ("p:local") as {URI, local}; nothing if
    // its prefix is not in scope.
    std::optional<std::pair<std::string, std::string>> resolve(std::string_view qname) const;
};

struct parsed {
    std::optional<element> root;
    std::string error;  // why, when root is empty
};

parsed parse(std::string_view document);

// `text` with XML's five special characters escaped, for building documents.
std::string escape(std::string_view text);

// XML's whitespace: space, tab, CR, LF.
bool is_space(char c);

// `s` without the XML whitespace at either end.
std::string_view trim(std::string_view s);

}  // namespace pd_branchcache::xml
