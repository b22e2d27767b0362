// The session and its backends' catalogues (docs/coordinator.md "Catalogue"): learning a
// content from its id alone, fetching one an authority asks for (pre-staging), and dropping
// one it retired or that left the cache.
#include "core/session.h"

#include "content/pccrc.h"
#include "job/job.h"
#include "util/error.h"
#include "util/hex.h"

#include <boost/asio/steady_timer.hpp>

namespace pd::core {

namespace {

std::string short_id(const store::hash &id) { return to_hex(id.data(), id.size()).substr(0, 16) + "…"; }

}  // namespace

void session::resolve_content(const store::hash &id) {
    std::string reasons;
    for (auto &b : plugins_->backends()) {
        std::optional<plugin_host::content_description> d;
        std::string not_found;
        try {
            d = b->describe(id, not_found);
        } catch (const error &e) {
            reasons += std::string(reasons.empty() ? "" : "; ") + e.what();
            continue;
        }
        if (!d) {
            if (!not_found.empty()) reasons += (reasons.empty() ? "" : "; ") + b->name() + ": " + not_found;
            continue;
        }
        // Nothing a catalogue says is believed: the manifest must prove the id, and the
        // record must come from a trusted publisher (import_content).
        content::manifest m;
        try {
            m = content::manifest::parse(d->manifest.data(), d->manifest.size());
        } catch (const error &e) {
            fail(PD_E_INTEGRITY, PD_CATEGORY_CONTENT,
                 b->name() + " described content " + short_id(id) + " with a manifest that does not parse: " + e.what());
        }
        if (m.id != id)
            fail(PD_E_INTEGRITY, PD_CATEGORY_CONTENT, b->name() + " described content " + short_id(id) + " with another content's manifest");
        import_content(m, d->origins, d->publication.empty() ? nullptr : d->publication.data(), d->publication.size());
        return;
    }
    fail(PD_E_NOT_FOUND, PD_CATEGORY_CONTENT,
         "content " + short_id(id) + " is in no catalogue this session's backends know" + (reasons.empty() ? "" : ": " + reasons));
}

namespace {

// A display name from a locator: its last path segment, without a query; "content" when that
// is not a name validate_name accepts.
std::string name_from_locator(const std::string &locator) {
    std::string path = locator.substr(0, locator.find_first_of("?#"));
    std::string last = path.substr(path.find_last_of("/\\") + 1);
    try {
        content::validate_name(last);
        return last;
    } catch (const error &) {
        return "content";
    }
}

}  // namespace

store::hash session::import_from_origin(const std::string &locator, const std::string &name) {
    // Content Information for the largest content a manifest may describe (256 GiB).
    const auto max_info = static_cast<std::size_t>(content::pccrc::v1_info_bytes(content::max_content_size));
    std::string reasons;
    for (auto &b : plugins_->backends()) {
        std::string not_found;
        auto info = b->describe_origin(locator, max_info, not_found);  // a failure to ask throws with the plugin's reason
        if (!info) {
            if (!not_found.empty()) reasons += (reasons.empty() ? "" : "; ") + b->name() + ": " + not_found;
            continue;
        }
        content::manifest m;
        try {
            m = content::pccrc::v1_manifest(content::pccrc::v1_info::parse(info->data(), info->size()),
                                            name.empty() ? name_from_locator(locator) : name);
        } catch (const error &e) {
            fail(e.code(), PD_CATEGORY_CONTENT, "the origin " + locator + " answered with unusable Content Information: " + e.what());
        }
        import_content(m, locator, nullptr, 0);
        branchcache_->set_info(m.id, info->data(), info->size());
        return m.id;
    }
    fail(PD_E_NOT_FOUND, PD_CATEGORY_PLUGIN,
         "no origin answered " + locator + " with Content Information (PeerDist)" + (reasons.empty() ? "" : ": " + reasons));
}

void session::request_content(const store::hash &id, bool foreground) {
    // Describing may wait on a coordinator: a source I/O thread, never the network thread.
    {
        // An authority asks again with every heartbeat: a content that could not be described
        // or was refused is tried again (and logged) once a minute, not every time.
        std::lock_guard lk(requests_mu_);
        auto failed = request_failed_until_.find(id);
        if (failed != request_failed_until_.end() && store::now_ms() < failed->second) return;
    }
    boost::asio::post(source_io_, [this, id, foreground] {
        try {
            auto rec = store_->get(id);
            if (rec && rec->state == store::content_state::complete) return;
            if (!store_->manifest(id)) resolve_content(id);
            auto m = store_->manifest(id);
            boost::asio::post(net_, [this, id, m, foreground] {
                job_request r;
                r.content = id;
                std::uint64_t job_id = 0;
                try {
                    job_id = start_job(r, m, &job_id);
                    log(PD_LOG_INFO, "job " + std::to_string(job_id) + " fetches content " + short_id(id) + " as a backend asked (pre-staging)");
                } catch (const error &e) {
                    if (e.code() != PD_E_EXISTS) return log(PD_LOG_WARN, "cannot fetch content " + short_id(id) + " as a backend asked: " + e.what());
                }
                if (foreground && jobs_.count(job_id))
                    jobs_[job_id]->raise_to_foreground("an authority needs it before its deadline, sooner than the background class would bring it");
            });
        } catch (const std::exception &e) {
            log(PD_LOG_WARN, "cannot fetch content " + short_id(id) + " as a backend asked: " + e.what());
            std::lock_guard lk(requests_mu_);
            if (request_failed_until_.size() >= 4096) request_failed_until_.clear();  // bounded
            request_failed_until_[id] = store::now_ms() + 60000;
        }
    });
}

void session::retire_content(const store::hash &id) {
    boost::asio::post(net_, [this, id] {
        for (auto &[job_id, j] : jobs_)
            if (j->content() == id && j->active()) j->cancel();
        remove_when_idle(id, 0);
    });
}

// Network thread: a cancelled job lets go of its content once its workers answered.
void session::remove_when_idle(const store::hash &id, int attempt) {
    if (busy_contents().count(id)) {
        if (attempt >= 600) return log(PD_LOG_WARN, "content " + short_id(id) + " was retired but a job still holds it: not removed");
        auto timer = std::make_shared<boost::asio::steady_timer>(net_, std::chrono::milliseconds(50));
        timer->async_wait([this, id, attempt, timer](const boost::system::error_code &ec) {
            if (!ec) remove_when_idle(id, attempt + 1);
        });
        return;
    }
    auto rec = store_->get(id);
    if (!rec) return;
    store_->remove(id);
    log(PD_LOG_INFO, "content " + short_id(id) + " was retired: removed from the cache");
    auto e = make_event(PD_EVENT_CACHE_EVICTED, 0, ("retired " + to_hex(id.data(), 32)).c_str());
    std::memcpy(e.content.bytes, id.data(), 32);
    e.bytes_total = rec->size;
    events_.push(e);
    content_removed(id, rec->size, rec->name);
}

void session::remove_content(const store::hash &id) {
    call([&] {
        if (busy_contents().count(id)) fail(PD_E_BUSY, PD_CATEGORY_STORE, "a job is using this content");
        auto rec = store_->get(id);
        store_->remove(id);
        if (rec) content_removed(id, rec->size, rec->name);
    });
}

void session::content_removed(const store::hash &id, std::uint64_t size, const std::string &name) {
    branchcache_->forget(id);
    plugin_host::content_ref ref;
    ref.id = id;
    ref.size = size;
    ref.name = name;
    for (auto &b : plugins_->backends()) b->content_removed(ref);
}

}  // namespace pd::core
