// The coordinator's Prometheus text exposition (docs/console.md "Metrics"): what it counted
// since it started and what it holds now, per office where the question is per office.
#include "coordinator/server.h"

#include <sstream>

namespace pd::coord {

namespace {

// A label value as the exposition format wants it: backslash, quote and newline escaped.
std::string label(const std::string &value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

class exposition {
public:
    void family(const char *name, const char *type, const char *help) {
        out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    }
    void sample(const char *name, std::uint64_t value, const std::string &labels = {}) {
        out_ << name << (labels.empty() ? "" : "{" + labels + "}") << " " << value << "\n";
    }
    std::string text() const { return out_.str(); }

private:
    std::ostringstream out_;
};

}  // namespace

std::string server::metrics() {
    auto now = options_.now_ms();
    exposition m;
    struct counter {
        const char *name, *help;
        std::uint64_t value;
    };
    const counter totals[] = {
        {"pd_coordinator_registrations_total", "Device registrations answered", counters_.registrations},
        {"pd_coordinator_heartbeats_total", "Heartbeats answered", counters_.heartbeats},
        {"pd_coordinator_lookups_total", "Source lookups answered (\"sources\")", counters_.lookups},
        {"pd_coordinator_catalogue_lookups_total", "Contents described from the catalogue (\"content\")", counters_.catalogue_lookups},
        {"pd_coordinator_job_reports_total", "Finished jobs reported", counters_.job_reports},
        {"pd_coordinator_admin_operations_total", "Admin operations (protocol and console)", counters_.admin_operations},
        {"pd_coordinator_refused_handshakes_total", "Secure channels refused (wrong fleet key, forged proof)",
         counters_.refused_handshakes},
    };
    for (auto &c : totals) {
        m.family(c.name, "counter", c.help);
        m.sample(c.name, c.value);
    }
    std::size_t online = 0;
    for (auto &[id, d] : registry_.devices()) online += registry_.online(d, now);
    m.family("pd_coordinator_devices", "gauge", "Registered devices");
    m.sample("pd_coordinator_devices", registry_.device_count());
    m.family("pd_coordinator_devices_online", "gauge", "Devices heard from within three heartbeats");
    m.sample("pd_coordinator_devices_online", online);
    m.family("pd_coordinator_contents", "gauge", "Contents in the catalogue");
    m.sample("pd_coordinator_contents", catalogue_.contents().size());
    m.family("pd_coordinator_connections", "gauge", "Open agent and admin connections");
    m.sample("pd_coordinator_connections", connections_.size());

    // Transfers under way: a device holding part of a content, not all of it.
    auto active = registry_.partial_by_office();
    auto totals_by_office = rollout_.bytes_by_office();
    m.family("pd_coordinator_office_bytes_total", "counter", "Bytes delivered into an office for catalogue contents, by source");
    for (auto &[office, b] : totals_by_office) {
        auto o = "office=\"" + label(office) + "\"";
        m.sample("pd_coordinator_office_bytes_total", b.origin_bytes, o + ",source=\"origin\"");
        m.sample("pd_coordinator_office_bytes_total", b.wan_bytes, o + ",source=\"wan\"");
        m.sample("pd_coordinator_office_bytes_total", b.lan_bytes, o + ",source=\"lan\"");
        m.sample("pd_coordinator_office_bytes_total", b.local_bytes, o + ",source=\"local\"");
    }
    m.family("pd_coordinator_office_active_transfers", "gauge", "Devices of the office part way through a content");
    for (auto &[office, n] : active) m.sample("pd_coordinator_office_active_transfers", n, "office=\"" + label(office) + "\"");
    m.family("pd_coordinator_office_receive_bytes_per_second", "gauge", "Verified bytes the office's devices reported lately, per second");
    for (auto &o : registry_.current_topology().offices())
        m.sample("pd_coordinator_office_receive_bytes_per_second", static_cast<std::uint64_t>(rollout_.rate(o.name, now)),
                 "office=\"" + label(o.name) + "\"");
    return m.text();
}

}  // namespace pd::coord
