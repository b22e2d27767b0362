#pragma once

#include <string>
#include <vector>

namespace pd {

// Splits "a, b,,c" on `sep` into trimmed, non-empty items: {"a", "b", "c"}.
inline std::vector<std::string> split_list(const std::string &text, char sep) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find(sep, pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        pos = end + 1;
        std::size_t first = item.find_first_not_of(" \t\r");
        std::size_t last = item.find_last_not_of(" \t\r");
        if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    }
    return out;
}

// One CSV field as RFC 4180 writes it: quoted when it holds a comma, a quote or a line
// break, or starts with '#' (which a reader would take for a comment line).
inline std::string csv_field(const std::string &field) {
    if (field.find_first_of(",\"\r\n") == std::string::npos && (field.empty() || field.front() != '#')) return field;
    std::string quoted = "\"";
    for (char c : field) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    return quoted + "\"";
}

}  // namespace pd
