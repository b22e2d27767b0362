#include "coordinator/topology.h"

#include "util/text.h"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

namespace pd::coord {

const char *type_name(office_type t) {
    switch (t) {
    case office_type::vpn: return "VPN";
    case office_type::wifi: return "WiFi";
    default: return "Default";
    }
}

static std::optional<office_type> parse_type(std::string t) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (t == "default" || t.empty()) return office_type::standard;
    if (t == "vpn") return office_type::vpn;
    if (t == "wifi") return office_type::wifi;
    return std::nullopt;
}

std::optional<std::array<std::uint8_t, 16>> parse_address(const std::string &text) {
    boost::system::error_code ec;
    auto a = boost::asio::ip::make_address(text, ec);
    if (ec) return std::nullopt;
    if (a.is_v4()) {
        std::array<std::uint8_t, 16> out{};
        out[10] = out[11] = 0xff;  // ::ffff:a.b.c.d
        auto b = a.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), out.begin() + 12);
        return out;
    }
    if (a.to_v6().scope_id() != 0) return std::nullopt;  // "fe80::1%eth0" names a link, not an office
    return a.to_v6().to_bytes();
}

std::optional<ip_range> parse_range(const std::string &text) {
    ip_range r;
    r.text = text;
    auto dash = text.find('-');
    auto slash = text.find('/');
    if (dash != std::string::npos) {
        auto a = parse_address(text.substr(0, dash)), b = parse_address(text.substr(dash + 1));
        if (!a || !b || *b < *a) return std::nullopt;
        r.first = *a;
        r.last = *b;
        return r;
    }
    auto a = parse_address(text.substr(0, slash));
    if (!a) return std::nullopt;
    unsigned bits = 128;
    if (slash != std::string::npos) {
        bool v4 = text.find(':') == std::string::npos;
        unsigned prefix = 0;
        auto s = text.substr(slash + 1);
        auto res = std::from_chars(s.data(), s.data() + s.size(), prefix);
        if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size() || prefix > (v4 ? 32u : 128u))
            return std::nullopt;
        bits = v4 ? prefix + 96 : prefix;
    }
    r.first = r.last = *a;
    for (unsigned i = bits; i < 128; ++i) {
        auto byte = i / 8;
        auto mask = static_cast<std::uint8_t>(0x80u >> (i % 8));
        r.first[byte] = static_cast<std::uint8_t>(r.first[byte] & ~mask);
        r.last[byte] = static_cast<std::uint8_t>(r.last[byte] | mask);
    }
    if (r.first != *a) return std::nullopt;  // "10.1.0.7/24": host bits set, probably a typo
    return r;
}

topology_error::topology_error(std::vector<std::string> problems)
    : std::runtime_error([&] {
          std::string all = "topology rejected:";
          for (auto &p : problems) all += "\n  " + p;
          return all;
      }()),
      problems_(std::move(problems)) {}

// RFC 4180 fields: commas inside double quotes, "" for a quote.
static std::optional<std::vector<std::string>> split_csv(const std::string &line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                out.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                out.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            out.emplace_back();
        } else {
            out.back() += c;
        }
    }
    if (quoted) return std::nullopt;
    for (auto &f : out) {
        auto a = f.find_first_not_of(" \t"), b = f.find_last_not_of(" \t");
        f = a == std::string::npos ? "" : f.substr(a, b - a + 1);
    }
    return out;
}

topology topology::parse_csv(const std::string &text) {
    std::vector<std::string> problems;
    topology t;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    bool header = false;
    std::size_t columns = 5;
    std::map<std::string, int> first_line;
    while (std::getline(in, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        auto fields = split_csv(line);
        auto at = "line " + std::to_string(n) + ": ";
        if (!fields) {
            problems.push_back(at + "unterminated quote");
            continue;
        }
        if (!header) {
            std::string h;
            for (auto &f : *fields) h += (h.empty() ? "" : ",") + f;
            std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (h == csv_header_v1)
                columns = 4;
            else if (h != csv_header)
                problems.push_back(at + "expected the header '" + std::string(csv_header) + "'");
            header = true;
            continue;
        }
        if (fields->size() != columns) {
            problems.push_back(at + "expected " + std::to_string(columns) + " fields (" +
                               (columns == 5 ? csv_header : csv_header_v1) + "), found " + std::to_string(fields->size()));
            continue;
        }
        office o;
        o.line = n;
        o.name = (*fields)[0];
        o.parent = (*fields)[1];
        if (o.name.empty()) {
            problems.push_back(at + "an office needs a name");
            continue;
        }
        auto type = parse_type((*fields)[2]);
        if (!type) problems.push_back(at + "unknown office type '" + (*fields)[2] + "' (Default, VPN or WiFi)");
        o.type = type.value_or(office_type::standard);
        std::string ranges = (*fields)[3];
        std::replace(ranges.begin(), ranges.end(), ' ', ';');
        std::istringstream rs(ranges);
        std::string item;
        while (std::getline(rs, item, ';')) {
            if (item.empty()) continue;
            if (auto r = parse_range(item))
                o.ranges.push_back(*r);
            else
                problems.push_back(at + "bad address range '" + item + "'");
        }
        if (columns == 5 && !(*fields)[4].empty()) {
            const std::string &b = (*fields)[4];
            std::int64_t v = -1;
            auto res = std::from_chars(b.data(), b.data() + b.size(), v);
            if (res.ec != std::errc() || res.ptr != b.data() + b.size() || v < 0)
                problems.push_back(at + "bad WAN budget '" + b + "' (bytes per second, empty for none)");
            else
                o.wan_budget = v;
        }
        auto [it, fresh] = first_line.emplace(o.name, n);
        if (!fresh) {
            problems.push_back(at + "duplicate office name '" + o.name + "' (first on line " + std::to_string(it->second) + ")");
            continue;
        }
        t.offices_.push_back(std::move(o));
    }
    if (!header) problems.push_back("line 1: expected the header '" + std::string(csv_header) + "'");
    t.index();
    // Parents, roots, cycles.
    std::vector<const office *> roots;
    for (auto &o : t.offices_) {
        if (o.parent.empty())
            roots.push_back(&o);
        else if (!t.find(o.parent))
            problems.push_back("line " + std::to_string(o.line) + ": unknown parent '" + o.parent + "' of '" + o.name + "'");
    }
    if (header && roots.empty() && !t.offices_.empty())
        problems.push_back("line " + std::to_string(t.offices_.front().line) +
                           ": no root office (exactly one office has an empty parent)");
    for (std::size_t i = 1; i < roots.size(); ++i)
        problems.push_back("line " + std::to_string(roots[i]->line) + ": second root office '" + roots[i]->name +
                           "' (the root is '" + roots[0]->name + "', line " + std::to_string(roots[0]->line) + ")");
    // Cycles, in linear time: each office is walked up once; a walk that meets its own path
    // found a cycle, reported once, from its first office in the file.
    std::map<const office *, int> state;  // 1: on the current walk, 2: done
    for (auto &o : t.offices_) {
        std::vector<const office *> path;
        const office *cur = &o;
        while (cur && !state[cur]) {
            state[cur] = 1;
            path.push_back(cur);
            cur = cur->parent.empty() ? nullptr : t.find(cur->parent);
        }
        if (cur && state[cur] == 1) {
            auto begin = std::find(path.begin(), path.end(), cur);
            std::vector<const office *> cycle(begin, path.end());
            std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end(), [](auto *x, auto *y) { return x->line < y->line; }),
                        cycle.end());
            std::string loop;
            for (auto *c : cycle) loop += c->name + " -> ";
            problems.push_back("line " + std::to_string(cycle.front()->line) + ": office '" + cycle.front()->name +
                               "' is in a cycle: " + loop + cycle.front()->name);
        }
        for (auto *p : path) state[p] = 2;
    }
    // Overlaps between offices (within one office they are harmless).
    struct owned {
        const ip_range *range;
        const office *owner;
    };
    std::vector<owned> all;
    for (auto &o : t.offices_)
        for (auto &r : o.ranges) all.push_back({&r, &o});
    std::sort(all.begin(), all.end(), [](const owned &a, const owned &b) { return a.range->first < b.range->first; });
    // A sweep in address order: each range is compared with the one reaching furthest so far,
    // so a range overlapping another office's is reported once, in O(n log n).
    const owned *reach = nullptr;
    for (auto &cur : all) {
        if (reach && !(reach->range->last < cur.range->first) && reach->owner != cur.owner) {
            auto &later = reach->owner->line > cur.owner->line ? *reach : cur;
            auto &earlier = &later == reach ? cur : *reach;
            problems.push_back("line " + std::to_string(later.owner->line) + ": range " + later.range->text +
                               " of '" + later.owner->name + "' overlaps " + earlier.range->text + " of '" +
                               earlier.owner->name + "' (line " + std::to_string(earlier.owner->line) + ")");
        }
        if (!reach || reach->range->last < cur.range->last) reach = &cur;
    }
    if (!problems.empty()) {
        std::stable_sort(problems.begin(), problems.end(), [](const std::string &a, const std::string &b) {
            auto num = [](const std::string &s) { return std::atoi(s.c_str() + 5); };
            return num(a) < num(b);
        });
        // Bounded: a file of garbage lines must not make a reply of megabytes.
        if (problems.size() > max_problems) {
            auto more = problems.size() - max_problems;
            problems.resize(max_problems);
            problems.push_back("... and " + std::to_string(more) + " more problems");
        }
        throw topology_error(std::move(problems));
    }
    return t;
}

std::string topology::to_csv() const {
    std::string out = std::string("# peerdist topology v1\n") + csv_header + "\n";
    for (auto &o : offices_) {
        std::string ranges;
        for (auto &r : o.ranges) ranges += (ranges.empty() ? "" : ";") + r.text;
        out += csv_field(o.name) + "," + csv_field(o.parent) + "," + type_name(o.type) + "," + csv_field(ranges) + "," +
               (o.wan_budget ? std::to_string(o.wan_budget) : std::string()) + "\n";
    }
    return out;
}

topology topology::automatic(const std::vector<std::string> &device_addresses, unsigned v4_prefix, unsigned v6_prefix) {
    topology t;
    office root;
    root.name = root_name;
    t.offices_.push_back(root);
    std::set<std::string> seen;
    for (auto &address : device_addresses) {
        auto a = parse_address(address);
        if (!a) continue;
        bool v4 = address.find(':') == std::string::npos;
        // The subnet: the address with its host bits cleared.
        unsigned bits = v4 ? 96 + v4_prefix : v6_prefix;
        auto masked = *a;
        for (unsigned i = 0; i < 128; ++i)
            if (i >= bits) masked[i / 8] = static_cast<std::uint8_t>(masked[i / 8] & ~(0x80u >> (i % 8)));
        std::string net;
        if (v4) {
            boost::asio::ip::address_v4::bytes_type b;
            std::copy(masked.begin() + 12, masked.end(), b.begin());
            net = boost::asio::ip::address_v4(b).to_string() + "/" + std::to_string(v4_prefix);
        } else {
            net = boost::asio::ip::address_v6(masked).to_string() + "/" + std::to_string(v6_prefix);
        }
        if (!seen.insert(net).second) continue;
        office o;
        o.name = "Subnet " + net;
        o.parent = root_name;
        o.ranges.push_back(*parse_range(net));
        t.offices_.push_back(std::move(o));
    }
    t.index();
    return t;
}

void topology::index() {
    by_name_.clear();
    for (std::size_t i = 0; i < offices_.size(); ++i) by_name_.emplace(offices_[i].name, i);
}

const office *topology::find(const std::string &name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &offices_[it->second];
}

const office *topology::locate(const std::string &address) const {
    auto a = parse_address(address);
    if (!a) return nullptr;
    for (auto &o : offices_)
        for (auto &r : o.ranges)
            if (r.contains(*a)) return &o;
    return nullptr;
}

const office *topology::parent(const office &o) const { return o.parent.empty() ? nullptr : find(o.parent); }

std::vector<const office *> topology::path_to_root(const office &o) const {
    std::vector<const office *> out;
    for (const office *cur = &o; cur && out.size() <= offices_.size(); cur = parent(*cur)) out.push_back(cur);
    return out;
}

}  // namespace pd::coord
