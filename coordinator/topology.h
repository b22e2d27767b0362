// The office tree the coordinator routes content along (design §6, docs/hierarchy.md): a
// root (the Central Office) and offices below it, each with address ranges and a type.
// Every address belongs to at most one office: ranges of different offices never overlap,
// so "which office is this device in" has one answer.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pd::coord {

// Default: devices share and discover by broadcast. VPN: devices do not serve peers (their
// link is someone else's WAN) but do broadcast. WiFi: devices share, never broadcast.
enum class office_type { standard, vpn, wifi };
const char *type_name(office_type t);  // "Default", "VPN", "WiFi"

// An inclusive range of addresses; IPv4 is stored IPv4-mapped so both families compare.
struct ip_range {
    std::array<std::uint8_t, 16> first{}, last{};
    std::string text;  // as written: "10.1.0.0/24" or "10.1.2.10-10.1.2.200"
    bool contains(const std::array<std::uint8_t, 16> &a) const { return first <= a && a <= last; }
    bool overlaps(const ip_range &o) const { return !(last < o.first || o.last < first); }
};

// Parses "10.1.0.0/24", "10.1.2.10-10.1.2.200", "10.1.2.7" or the IPv6 forms.
std::optional<ip_range> parse_range(const std::string &text);
// An address as the 16 bytes ranges compare; nullopt when it is not one.
std::optional<std::array<std::uint8_t, 16>> parse_address(const std::string &text);

struct office {
    std::string name;
    std::string parent;  // empty for the root
    office_type type = office_type::standard;
    std::vector<ip_range> ranges;
    std::int64_t wan_budget = 0;  // bytes/s its devices may pull from other offices (0: no cap)
    int line = 0;  // where it came from in the CSV (0: built, not parsed)
};

// Every problem of a rejected CSV, each with its line number.
class topology_error : public std::runtime_error {
public:
    explicit topology_error(std::vector<std::string> problems);
    const std::vector<std::string> &problems() const { return problems_; }

private:
    std::vector<std::string> problems_;
};

class topology {
public:
    static constexpr const char *root_name = "Central Office";
    static constexpr const char *csv_header = "name,parent,type,ranges,wan_budget";
    // A refused import lists at most this many problems (then how many more there were).
    static constexpr std::size_t max_problems = 100;
    static constexpr const char *csv_header_v1 = "name,parent,type,ranges";  // still accepted

    // The CSV format of docs/hierarchy.md. Throws topology_error listing every problem:
    // bad column counts, unknown types, bad addresses, duplicate names, unknown parents,
    // cycles, overlapping ranges, zero or several roots.
    static topology parse_csv(const std::string &text);
    std::string to_csv() const;

    // Without an uploaded topology (or with distribution optimisation off): the Central
    // Office (no ranges) and, below it, one office per subnet that a registered device's
    // address falls in, /24 and /64 unless told otherwise.
    // With `v4_prefix` (8-32) and `v6_prefix` (16-128) bits per subnet.
    static topology automatic(const std::vector<std::string> &device_addresses, unsigned v4_prefix = 24,
                              unsigned v6_prefix = 64);

    const std::vector<office> &offices() const { return offices_; }
    const office *find(const std::string &name) const;
    // The office whose ranges hold the address, or null (such devices use the origin).
    const office *locate(const std::string &address) const;
    // The office's parent, or null for the root.
    const office *parent(const office &o) const;
    // Offices from `o` up to the root, `o` first.
    std::vector<const office *> path_to_root(const office &o) const;
    bool empty() const { return offices_.empty(); }

private:
    void index();
    std::vector<office> offices_;
    std::map<std::string, std::size_t> by_name_;
};

}  // namespace pd::coord
