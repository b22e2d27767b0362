// Where a job's origin-side bytes come from: the loaded backends that serve data, nearest
// source class first (design §2), tried in turn until one opens a stream; a stream that fails
// gives way to the next backend. Also the origin policy: a backend with one (a hierarchy) may
// keep this device off the origin for now — not off nearer streams (BranchCache's wire mode),
// which open whatever it says — and is asked again at every discovery round; a job that
// stalls overrides it. Opening blocks inside plugins, so it runs on the session's
// source I/O threads; the state lives on the network thread.
#pragma once

#include "plugin_host/plugin_host.h"

#include <memory>
#include <string>
#include <vector>

namespace pd::core {

class session;

class source_chain : public std::enable_shared_from_this<source_chain> {
public:
    // What the job hears, on the network thread.
    struct listener {
        virtual ~listener() = default;
        // An attempt ended: `opened` is the stream (null when every remaining source said no),
        // `reasons` one line per backend that could not serve, `last_code` the last
        // failure's code (PD_E_NO_SOURCE when none said more).
        virtual void on_source_opened(std::shared_ptr<plugin_host::stream> opened, std::vector<std::string> reasons,
                                      int last_code) = 0;
        // A backend keeps this device off the origin for now (`who`: its name).
        virtual void on_origin_withheld(const std::string &who) = 0;
    };

    // `requested_origin`: the job's origin locator ("" : the one recorded at publication).
    source_chain(session &s, plugin_host::content_ref content, std::string requested_origin, std::weak_ptr<listener> owner);

    // Tries the next sources, unless an attempt is under way.
    void open_next();
    // The stream in use failed: it closes once in-flight reads let go; open_next() tries the
    // sources after it.
    void failed();
    // The stream in use, or null.
    const std::shared_ptr<plugin_host::stream> &stream() const { return stream_; }
    void close() { stream_.reset(); }
    bool opening() const { return opening_; }
    // No loaded backend serves data at all.
    bool none_loaded() const { return sources_.empty(); }

    // The origin policy's latest answer from a discovery round ("" : nobody refuses).
    void policy_answer(const std::string &refused_by);
    // Who keeps this device off the origin now, or "".
    const std::string &withheld_by() const { return withheld_by_; }
    // The job made no progress while withheld: the origin is used whatever backends say.
    void override_policy();
    bool policy_overridden() const { return override_; }

    // Blocking (source I/O threads): the first backend whose policy says "not now", or "".
    static std::string refused_by(const std::vector<std::shared_ptr<plugin_host::backend>> &backends,
                                  const plugin_host::content_ref &content);

private:
    void withhold(const std::string &who);

    session &session_;
    plugin_host::content_ref content_;
    std::string requested_origin_;
    std::weak_ptr<listener> owner_;
    std::vector<std::shared_ptr<plugin_host::backend>> sources_;
    std::size_t next_ = 0;
    std::shared_ptr<plugin_host::stream> stream_;
    bool opening_ = false, override_ = false;
    std::string withheld_by_;
};

}  // namespace pd::core
