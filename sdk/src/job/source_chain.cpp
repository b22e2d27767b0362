#include "job/source_chain.h"

#include "core/session.h"
#include "util/error.h"

#include <boost/asio/post.hpp>

#include <algorithm>

namespace pd::core {

namespace asio = boost::asio;

source_chain::source_chain(session &s, plugin_host::content_ref content, std::string requested_origin,
                           std::weak_ptr<listener> owner)
    : session_(s), content_(std::move(content)), requested_origin_(std::move(requested_origin)), owner_(std::move(owner)) {
    for (auto &b : session_.plugins().backends())
        if (b->can_stream()) sources_.push_back(b);
    // Nearest class first; load order within a class.
    std::stable_sort(sources_.begin(), sources_.end(),
                     [](auto &a, auto &b) { return a->source_class() < b->source_class(); });
}

std::string source_chain::refused_by(const std::vector<std::shared_ptr<plugin_host::backend>> &backends,
                                     const plugin_host::content_ref &content) {
    for (auto &b : backends)
        if (b->origin_allowed(content) == false) return b->name();
    return {};
}

void source_chain::open_next() {
    if (opening_) return;
    opening_ = true;
    std::vector<std::shared_ptr<plugin_host::backend>> candidates(
        sources_.begin() + static_cast<std::ptrdiff_t>(std::min(next_, sources_.size())), sources_.end());
    auto policies = session_.plugins().backends();
    asio::post(session_.source_io(), [self = shared_from_this(), candidates, policies, check_policy = !override_]() mutable {
        auto ref = self->content_;
        ref.origin = self->requested_origin_;
        if (ref.origin.empty()) {
            try {
                if (auto rec = self->session_.store().get(ref.id)) ref.origin = rec->origin;
            } catch (const pd::error &) {
                // No recorded origin: backends are asked without one and say so.
            }
        }
        std::vector<std::string> reasons;
        int last_code = PD_E_NO_SOURCE;
        std::shared_ptr<plugin_host::stream> opened;
        std::size_t tried = 0;
        for (auto &b : candidates) {
            // The origin policy keeps this device off the origin, not off nearer sources (a
            // LAN-class stream, BranchCache's wire mode): asked before the first origin.
            if (check_policy && b->source_class() == PD_SOURCE_ORIGIN) {
                if (auto who = refused_by(policies, ref); !who.empty()) {
                    asio::post(self->session_.net(), [self, who] {
                        self->opening_ = false;  // nearer sources are asked again when the origin is allowed
                        self->withhold(who);
                    });
                    return;
                }
                check_policy = false;
            }
            ++tried;
            try {
                opened = b->open(ref);
                if (opened) break;
            } catch (const pd::error &e) {
                if (e.code() != PD_E_NOT_FOUND) last_code = e.code();
                reasons.push_back(e.what());
            }
        }
        asio::post(self->session_.net(), [self, opened, reasons = std::move(reasons), last_code, tried]() mutable {
            self->opening_ = false;
            self->next_ += opened ? tried - 1 : tried;
            self->stream_ = opened;
            if (auto owner = self->owner_.lock()) owner->on_source_opened(opened, std::move(reasons), last_code);
        });
    });
}

void source_chain::failed() {
    if (!stream_) return;
    stream_.reset();
    ++next_;
}

void source_chain::withhold(const std::string &who) {
    if (withheld_by_ != who)
        session_.log(PD_LOG_INFO, "job " + std::to_string(content_.job_id) + ": " + who +
                                      " keeps this device off the origin for now");
    withheld_by_ = who;
    stream_.reset();
    if (auto owner = owner_.lock()) owner->on_origin_withheld(who);
}

void source_chain::policy_answer(const std::string &refused_by) {
    if (override_) return;
    bool on_origin = stream_ && stream_->source().source_class() == PD_SOURCE_ORIGIN;
    if (!refused_by.empty() && (on_origin || (!stream_ && withheld_by_ != refused_by))) {
        withhold(refused_by);
    } else if (refused_by.empty() && !withheld_by_.empty() && !stream_) {
        withheld_by_.clear();
        next_ = 0;  // the nearer sources first again: they may hold it by now
        if (!stream_) open_next();
    }
}

void source_chain::override_policy() {
    override_ = true;
    withheld_by_.clear();
    open_next();
}

}  // namespace pd::core
