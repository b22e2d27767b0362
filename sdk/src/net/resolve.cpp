#include "net/resolve.h"

#include "util/error.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace pd::net {

boost::asio::ip::address bind_address(const endpoint &where, const std::string &what) {
    namespace ip = boost::asio::ip;
    if (!where.is_name) return ip::make_address(where.host);
    boost::asio::io_context io;
    ip::tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(where.host, std::to_string(where.port), ip::tcp::resolver::passive, ec);
    if (ec || results.empty())
        fail(PD_E_INVALID, PD_CATEGORY_NET, what + " '" + where.host + "' does not resolve" + (ec ? ": " + ec.message() : std::string()));
    for (auto &r : results)
        if (r.endpoint().address().is_v4()) return r.endpoint().address();
    return results.begin()->endpoint().address();
}

}  // namespace pd::net
