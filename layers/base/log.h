// Minimal logging: one line per message on stderr, prefixed with the program name. Debug lines
// are printed only when enabled (layerfs -d).
#pragma once

#include <cstdarg>

namespace layerfs::log {

void set_program(const char* name);
void set_debug(bool on);
bool debug_enabled();

[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warn(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...);

}  // namespace layerfs::log
