#include "layers/base/log.h"

#include <cstdio>
#include <string>

namespace layerfs::log {
namespace {

const char* g_program = "layerfs";

void emit(const char* level, const char* fmt, va_list ap) {
  // Format into one buffer so concurrent threads never interleave within a line.
  char body[2048];
  vsnprintf(body, sizeof body, fmt, ap);
  std::string line = std::string(g_program) + ": " + level + body + "\n";
  fputs(line.c_str(), stderr);
}

}  // namespace

void set_program(const char* name) { g_program = name; }

void error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("", fmt, ap);
  va_end(ap);
}

void warn(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("warning: ", fmt, ap);
  va_end(ap);
}

}  // namespace layerfs::log
