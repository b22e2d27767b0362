// The catalogue (docs/coordinator.md "Catalogue"): the contents administrators published —
// each one's name, size, ordered origins, publisher's record and manifest — and the contents
// they retired. Agents start a download from a content id alone by asking it for the rest,
// and drop retired contents from their caches. Metadata only; the manifests' bytes stay in
// the store until a device asks. Not thread-safe: the server's network thread owns it.
#pragma once

#include "coordinator/store.h"

#include <map>
#include <string>
#include <vector>

namespace pd::coord {

// One content as an administrator publishes it.
struct publication_request {
    publication_entry entry;
    bool keep_origins = false;  // none given: the stored origins stay
    bool keep_record = false;   // no record given: the stored one stays
};

struct publish_report {
    std::size_t added = 0, updated = 0, unchanged = 0;
    struct line {
        std::string content, name, status;  // status: added, updated or unchanged
    };
    std::vector<line> contents;
};

class catalogue {
public:
    explicit catalogue(coordinator_store &store);
    // Reads everything back from the store (restart).
    void load();

    // Checks every request, then stores all or none in one transaction. Refused (pd::error
    // PD_E_INVALID; with `number_entries`, naming the entry: "contents[3]: ...") when a manifest is not the content's
    // (another id, size, block count or name), when a known content comes with another size
    // or block count (a damaged manifest: the id is the hash of the content), or when an id
    // is listed twice.
    publish_report publish(std::vector<publication_request> requests, bool number_entries);
    const content_record *find(const std::string &content_id) const;
    const std::map<std::string, content_record> &contents() const { return contents_; }
    // The stored manifest (read from the store), nullopt when none was published.
    std::optional<std::string> manifest(const std::string &content_id) const;

    // Removes a content everywhere: the coordinator forgets it, and agents learn from the
    // retirement sequence that they should drop it. False when it is not in the catalogue.
    bool retire(const std::string &content_id, std::int64_t now_ms);
    // The newest retirement's sequence number (0: none yet); it only grows.
    std::uint64_t retired_seq() const { return retired_seq_; }
    // Retirements after `since`, oldest first, at most `limit`.
    std::vector<retired_content> retired_since(std::uint64_t since, std::size_t limit) const;

private:
    coordinator_store &store_;
    std::map<std::string, content_record> contents_;
    std::map<std::uint64_t, retired_content> retired_;  // by sequence number
    std::uint64_t retired_seq_ = 0;
};

}  // namespace pd::coord
