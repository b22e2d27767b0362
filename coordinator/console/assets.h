// The console's pages, scripts and styles, compiled into pd-coordinator from
// coordinator/console/assets/ (cmake/embed_assets.cmake): nothing is fetched from elsewhere,
// so the console works on a network without the internet.
#pragma once

#include <cstddef>

namespace pd::coord::console {

struct asset {
    const char *path;  // "/", "/console.js", ...
    const char *content_type;
    const unsigned char *data;
    std::size_t size;
};

extern const asset assets[];
extern const std::size_t asset_count;

}  // namespace pd::coord::console
