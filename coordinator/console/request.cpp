#include "coordinator/console/request.h"

#include <cstring>

namespace pd::coord::console {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string cookie_value(const std::string &header, const std::string &name) {
    for (std::size_t pos = 0; pos < header.size();) {
        while (pos < header.size() && (header[pos] == ' ' || header[pos] == ';')) ++pos;
        auto end = header.find(';', pos);
        if (end == std::string::npos) end = header.size();
        auto pair = header.substr(pos, end - pos);
        auto eq = pair.find('=');
        if (eq != std::string::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
        pos = end + 1;
    }
    return "";
}

std::optional<nlohmann::json> query_fields(const std::string &query) {
    auto fields = nlohmann::json::object();
    for (std::size_t pos = 0; pos < query.size();) {
        auto end = query.find('&', pos);
        if (end == std::string::npos) end = query.size();
        auto pair = query.substr(pos, end - pos);
        pos = end + 1;
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        std::string parts[2] = {pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1)};
        for (auto &p : parts) {
            std::string out;
            for (std::size_t i = 0; i < p.size(); ++i) {
                if (p[i] == '+') {
                    out += ' ';
                } else if (p[i] == '%') {
                    if (i + 2 >= p.size() || hex_digit(p[i + 1]) < 0 || hex_digit(p[i + 2]) < 0) return std::nullopt;
                    out += static_cast<char>(hex_digit(p[i + 1]) * 16 + hex_digit(p[i + 2]));
                    i += 2;
                } else {
                    out += p[i];
                }
            }
            p = out;
        }
        if (parts[0].empty() || parts[0] == "op") return std::nullopt;
        fields[parts[0]] = parts[1];
    }
    return fields;
}

std::optional<std::string> operation_of(const std::string &path) {
    constexpr const char *prefix = "/api/v1/";
    if (path.rfind(prefix, 0) != 0) return std::nullopt;
    auto rest = path.substr(std::strlen(prefix));
    if (rest.empty() || rest.size() > 64 || rest.front() == '/' || rest.back() == '/' || rest.find("//") != std::string::npos)
        return std::nullopt;
    for (auto &c : rest) {
        if (c == '/') c = '.';
        else if (!((c >= 'a' && c <= 'z') || c == '_')) return std::nullopt;
    }
    return "admin." + rest;
}

}  // namespace pd::coord::console
