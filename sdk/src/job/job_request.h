// What a host asked a job for (pd_job_start's options, checked).
#pragma once

#include "store/block_store.h"

#include <string>

namespace pd::core {

struct job_request {
    store::hash content{};
    std::string destination;  // where to deliver; "" leaves the content in the cache
    std::string origin;       // origin locator; "" uses the one recorded at publication
    bool pin = false;         // never evicted once complete
    bool hardlink = false;    // deliver as a hard link instead of a copy
};

}  // namespace pd::core
