// Minimal logging: one line per message on stderr, prefixed with the program name. (The
// daemon's -d output is libfuse's own request trace.)
#pragma once

#include <cstdarg>

namespace layerfs::log {

void set_program(const char* name);

[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warn(const char* fmt, ...);

}  // namespace layerfs::log
