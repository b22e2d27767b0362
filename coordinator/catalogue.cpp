#include "coordinator/catalogue.h"

#include "content/manifest.h"
#include "util/error.h"
#include "util/hex.h"

#include <set>

namespace pd::coord {

namespace {

// A manifest proves its content id (the id is the hash of its header and segment hashes,
// which the parser recomputes): one that is not this content's is refused.
void require_manifest_of(const content_record &c, const std::string &bytes) {
    auto m = content::manifest::parse(bytes.data(), bytes.size());
    if (to_hex(m.id.data(), m.id.size()) != c.id) fail(PD_E_INVALID, PD_CATEGORY_API, "the manifest is another content's");
    if (m.size != c.size || m.block_count() != c.block_count || m.name != c.name)
        fail(PD_E_INVALID, PD_CATEGORY_API, "the manifest's size, block count or name differs from the publication's");
}

}  // namespace

catalogue::catalogue(coordinator_store &store) : store_(store) {}

void catalogue::load() {
    contents_.clear();
    for (auto &c : store_.contents()) contents_[c.id] = c;
    retired_.clear();
    for (auto &r : store_.retired_contents()) retired_[r.seq] = r;
    auto seq = store_.meta("retired_seq");
    retired_seq_ = seq ? std::strtoull(seq->c_str(), nullptr, 10) : 0;
}

publish_report catalogue::publish(std::vector<publication_request> requests, bool number_entries) {
    publish_report report;
    std::set<std::string> seen;
    std::vector<publication_entry> entries;
    for (std::size_t i = 0; i < requests.size(); ++i) {
        auto &[entry, keep_origins, keep_record] = requests[i];
        auto &c = entry.record;
        std::string status = "added";
        try {
            if (!seen.insert(c.id).second) fail(PD_E_INVALID, PD_CATEGORY_API, "content " + c.id + " is listed twice");
            if (!entry.manifest.empty()) require_manifest_of(c, entry.manifest);
            c.manifest_bytes = entry.manifest.size();
            if (auto known = find(c.id)) {
                // The id is the hash of the content: the same id with another size is a
                // damaged manifest, not a new version.
                if (known->size != c.size || known->block_count != c.block_count)
                    fail(PD_E_INVALID, PD_CATEGORY_API, "content " + c.id + " is published with another size or block count");
                if (keep_origins) c.origins = known->origins;
                if (keep_record) c.publication = known->publication;
                if (entry.manifest.empty()) c.manifest_bytes = known->manifest_bytes;
                bool same = known->name == c.name && known->origins == c.origins && known->publication == c.publication &&
                            (entry.manifest.empty() || known->manifest_bytes == c.manifest_bytes);
                status = same ? "unchanged" : "updated";
            }
        } catch (const error &e) {
            if (!number_entries) throw;
            fail(e.code(), e.category(), "contents[" + std::to_string(i) + "]: " + e.what());
        }
        (status == "added" ? report.added : status == "updated" ? report.updated : report.unchanged) += 1;
        report.contents.push_back({c.id, c.name, status});
        entries.push_back(std::move(entry));
    }
    store_.put_contents(entries);  // first: a failed transaction leaves the catalogue as it was
    for (auto &e : entries) {
        contents_[e.record.id] = e.record;
        for (auto it = retired_.begin(); it != retired_.end(); ++it)
            if (it->second.content_id == e.record.id) {
                retired_.erase(it);
                break;
            }
    }
    return report;
}

const content_record *catalogue::find(const std::string &content_id) const {
    auto it = contents_.find(content_id);
    return it == contents_.end() ? nullptr : &it->second;
}

std::optional<std::string> catalogue::manifest(const std::string &content_id) const {
    if (!find(content_id)) return std::nullopt;
    return store_.manifest(content_id);
}

bool catalogue::retire(const std::string &content_id, std::int64_t now_ms) {
    if (!contents_.count(content_id)) return false;
    auto seq = store_.retire_content(content_id, now_ms);
    contents_.erase(content_id);
    retired_seq_ = seq;
    retired_[seq] = {content_id, seq, now_ms};
    return true;
}

std::vector<retired_content> catalogue::retired_since(std::uint64_t since, std::size_t limit) const {
    std::vector<retired_content> out;
    for (auto it = retired_.upper_bound(since); it != retired_.end() && out.size() < limit; ++it) out.push_back(it->second);
    return out;
}

}  // namespace pd::coord
