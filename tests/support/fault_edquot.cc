// Preloaded into a daemon by tests: copy_file_range fails with EDQUOT once the process has
// copied LAYERFS_FAULT_EDQUOT_AFTER bytes in total, after copying up to that point, as a quota
// running out in the middle of a copy-up does. (Kernels built without CONFIG_QUOTA cannot
// produce a real EDQUOT.)
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace {
std::atomic<long long> copied{0};
}

extern "C" ssize_t copy_file_range(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t len,
                                   unsigned int flags) {
  using Real = ssize_t (*)(int, off_t*, int, off_t*, size_t, unsigned int);
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "copy_file_range"));
  const char* limit_text = getenv("LAYERFS_FAULT_EDQUOT_AFTER");
  const long long limit = limit_text ? atoll(limit_text) : -1;
  if (limit >= 0) {
    const long long left = limit - copied.load();
    if (left <= 0) {
      errno = EDQUOT;
      return -1;
    }
    if (static_cast<long long>(len) > left) len = static_cast<size_t>(left);
  }
  ssize_t n = real(fd_in, off_in, fd_out, off_out, len, flags);
  if (n > 0) copied += n;
  return n;
}
