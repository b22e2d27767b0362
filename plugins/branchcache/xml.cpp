// The strict XML reader: xml.h.
#include "xml.h"

#include <cstdint>

namespace pd_branchcache::xml {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

namespace {

bool is_name_start(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':'; }

void append_utf8(std::string &out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | cp >> 6), out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | cp >> 12), out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | cp >> 18), out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
        out += static_cast<char>(0x80 | (cp >> 6 & 0x3f)), out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// XML 1.0's Char production for a character reference.
bool allowed_code_point(std::uint32_t cp) {
    return cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
           (cp >= 0x10000 && cp <= 0x10ffff);
}

class reader {
public:
    explicit reader(std::string_view doc) : s_(doc) {}

    parsed run() {
        parsed out;
        if (s_.size() > max_document_bytes) return fail(out, "document too long");
        for (char c : s_)
            if (static_cast<unsigned char>(c) < 0x20 && !is_space(c)) return fail(out, "control character");
        if (starts("<?xml") && !declaration()) return fail(out, error_);
        if (!misc()) return fail(out, error_);
        element root;
        if (!starts("<") || !parse_element(root, {}, 1)) return fail(out, error_.empty() ? "no root element" : error_);
        if (!misc()) return fail(out, error_);
        if (pos_ != s_.size()) return fail(out, "content after the root element");
        out.root = std::move(root);
        return out;
    }

private:
    parsed &fail(parsed &p, std::string why) {
        p.error = std::move(why);
        return p;
    }
    bool error(std::string why) {
        if (error_.empty()) error_ = std::move(why);
        return false;
    }
    bool starts(std::string_view t) const { return s_.substr(pos_, t.size()) == t; }
    void skip_space() {
        while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
    }

    bool declaration() {
        auto end = s_.find("?>", pos_);
        if (end == std::string_view::npos) return error("unterminated XML declaration");
        pos_ = end + 2;
        return true;
    }
    // Whitespace and comments between markup; a DOCTYPE, CDATA or processing instruction is refused.
    bool misc() {
        for (;;) {
            skip_space();
            if (starts("<!--")) {
                if (!comment()) return false;
            } else if (starts("<!") || starts("<?")) {
                return error(starts("<!DOCTYPE") ? "DOCTYPE refused" : starts("<![CDATA[") ? "CDATA refused" : "markup declaration refused");
            } else {
                return true;
            }
        }
    }
    bool comment() {
        auto end = s_.find("-->", pos_ + 4);
        if (end == std::string_view::npos) return error("unterminated comment");
        pos_ = end + 3;
        return true;
    }
    bool name(std::string &out) {
        auto start = pos_;
        if (pos_ >= s_.size() || !is_name_start(static_cast<unsigned char>(s_[pos_]))) return error("expected a name");
        while (pos_ < s_.size() && is_name_char(static_cast<unsigned char>(s_[pos_]))) ++pos_;
        if (pos_ - start > 256) return error("name too long");
        out.assign(s_.substr(start, pos_ - start));
        return true;
    }
    // An attribute value up to its closing quote, entities decoded.
    bool attribute_value(std::string &out, char quote) {
        while (pos_ < s_.size() && s_[pos_] != quote) {
            if (s_[pos_] == '<') return error("'<' in an attribute value");
            if (s_[pos_] == '&') {
                if (!reference(out)) return false;
            } else {
                out += s_[pos_++];
            }
        }
        if (pos_ >= s_.size()) return error("unterminated attribute value");
        ++pos_;
        return true;
    }
    // Character data up to the next markup, entities decoded.
    bool text(std::string &out) {
        while (pos_ < s_.size() && s_[pos_] != '<') {
            if (s_[pos_] == '&') {
                if (!reference(out)) return false;
            } else {
                out += s_[pos_++];
            }
        }
        return true;
    }
    // "&name;" or "&#N;" / "&#xH;" at pos_.
    bool reference(std::string &out) {
        auto end = s_.find(';', pos_);
        if (end == std::string_view::npos || end - pos_ > 12) return error("unterminated entity reference");
        auto ref = s_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        if (ref == "lt") out += '<';
        else if (ref == "gt") out += '>';
        else if (ref == "amp") out += '&';
        else if (ref == "quot") out += '"';
        else if (ref == "apos") out += '\'';
        else return char_ref(ref, out);
        return true;
    }
    bool char_ref(std::string_view ref, std::string &out) {
        if (ref.size() < 2 || ref[0] != '#') return error("unknown entity");
        bool hex = ref[1] == 'x';
        auto digits = ref.substr(hex ? 2 : 1);
        if (digits.empty() || digits.size() > 8) return error("bad character reference");
        std::uint32_t cp = 0;
        for (char d : digits) {
            int v = d >= '0' && d <= '9' ? d - '0' : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10 : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10 : -1;
            if (v < 0) return error("bad character reference");
            cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
        }
        if (!allowed_code_point(cp)) return error("character reference to a character XML forbids");
        append_utf8(out, cp);
        return true;
    }

    struct raw_attribute {
        std::string qname, value;
    };

    bool resolve_name(const std::string &qname, const std::map<std::string, std::string> &scope, bool is_attribute,
                      std::string &ns, std::string &local) {
        auto colon = qname.find(':');
        if (colon == std::string::npos) {
            local = qname;
            auto d = scope.find("");
            ns = is_attribute || d == scope.end() ? "" : d->second;  // unprefixed attributes have no namespace
            return true;
        }
        auto prefix = qname.substr(0, colon);
        local = qname.substr(colon + 1);
        if (local.empty() || local.find(':') != std::string::npos) return error("malformed name " + qname);
        auto p = scope.find(prefix);
        if (p == scope.end()) return error("undeclared prefix " + prefix);
        ns = p->second;
        return true;
    }

    bool parse_element(element &e, std::map<std::string, std::string> scope, std::size_t depth) {
        if (depth > max_depth) return error("nested too deep");
        if (++elements_ > max_elements) return error("too many elements");
        ++pos_;  // '<'
        std::string qname;
        if (!name(qname)) return false;
        std::vector<raw_attribute> raw;
        for (;;) {
            auto before = pos_;
            skip_space();
            if (starts("/>") || starts(">")) break;
            if (pos_ == before) return error("expected a space before an attribute");
            raw_attribute a;
            if (!name(a.qname)) return false;
            skip_space();
            if (!starts("=")) return error("expected '='");
            ++pos_;
            skip_space();
            if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) return error("expected a quoted value");
            char quote = s_[pos_++];
            if (!attribute_value(a.value, quote)) return false;
            for (auto &other : raw)
                if (other.qname == a.qname) return error("duplicate attribute " + a.qname);
            if (a.qname == "xmlns") scope[""] = a.value;
            else if (a.qname.rfind("xmlns:", 0) == 0) {
                if (a.value.empty()) return error("empty namespace for a prefix");
                scope[a.qname.substr(6)] = a.value;
            }
            raw.push_back(std::move(a));
        }
        e.scope = scope;
        if (!resolve_name(qname, scope, false, e.ns, e.name)) return false;
        for (auto &a : raw) {
            if (a.qname == "xmlns" || a.qname.rfind("xmlns:", 0) == 0) continue;
            attribute out;
            if (!resolve_name(a.qname, scope, true, out.ns, out.name)) return false;
            out.value = std::move(a.value);
            e.attributes.push_back(std::move(out));
        }
        if (starts("/>")) {
            pos_ += 2;
            return true;
        }
        ++pos_;  // '>'
        for (;;) {
            if (pos_ >= s_.size()) return error("unclosed element " + qname);
            if (starts("</")) {
                pos_ += 2;
                std::string closing;
                if (!name(closing)) return false;
                skip_space();
                if (closing != qname) return error("mismatched closing tag " + closing);
                if (!starts(">")) return error("unclosed element " + qname);
                ++pos_;
                return true;
            }
            if (starts("<!--")) {
                if (!comment()) return false;
            } else if (starts("<!") || starts("<?")) {
                return error(starts("<![CDATA[") ? "CDATA refused" : "markup declaration refused");
            } else if (starts("<")) {
                e.children.emplace_back();
                if (!parse_element(e.children.back(), scope, depth + 1)) return false;
            } else if (!text(e.text)) {
                return false;
            }
        }
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    std::size_t elements_ = 0;
    std::string error_;
};

}  // namespace

const element *element::child(std::string_view want_ns, std::string_view want_name) const {
    for (auto &c : children)
        if (c.ns == want_ns && c.name == want_name) return &c;
    return nullptr;
}

const std::string *element::attr(std::string_view want) const {
    for (auto &a : attributes)
        if (a.ns.empty() && a.name == want) return &a.value;
    return nullptr;
}

std::optional<std::pair<std::string, std::string>> element::resolve(std::string_view qname) const {
    auto colon = qname.find(':');
    auto prefix = colon == std::string_view::npos ? std::string() : std::string(qname.substr(0, colon));
    auto local = colon == std::string_view::npos ? qname : qname.substr(colon + 1);
    auto p = scope.find(prefix);
    if (p == scope.end() || local.empty()) return std::nullopt;
    return std::make_pair(p->second, std::string(local));
}

parsed parse(std::string_view document) { return reader(document).run(); }

std::string escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace pd_branchcache::xml
