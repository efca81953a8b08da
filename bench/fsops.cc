// The file-system operations the side-by-side benchmark (bench/compare) times, each as one
// process so that no shell loop is measured: fsops COMMAND ARGS...
//   mkfiles DIR N SIZE [PREFIX]  create N files of SIZE bytes (building layers, create-small)
//   mktree DIR N [PREFIX]        N entries: directories d0000000... of 1,000 files each
//   mkdirs DIR N                 N directories: d0000000... of up to 1,000 empty directories each
//   delete DIR N [PREFIX]        unlink the N files mkfiles made
//   walk DIR                     readdir and lstat everything below DIR (find + stat)
//   list DIR                     readdir DIR only
//   stat DIR N [PREFIX]          lstat the N files mkfiles made
//   chmod DIR N [PREFIX]         chmod 0600 each, then set its times (metadata-only copy-up)
//   append FILE                  append one byte
//   open-rdwr FILE               open O_RDWR and close, writing nothing
//   randread FILE OPS SEED       OPS 4 KiB reads at random aligned offsets
//   mmapread FILE                map FILE shared, read-only, and read a byte of every 4 KiB page
// It prints the count of objects it handled; any failure is one line on stderr and exit 1.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  fprintf(stderr, "fsops: %s: %s\n", what.c_str(), strerror(errno));
  exit(1);
}

std::string name_of(const std::string& dir, const std::string& prefix, long i) {
  char buf[32];
  snprintf(buf, sizeof buf, "%07ld", i);
  return dir + "/" + prefix + buf;
}

long arg_count(const char* s) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0) {
    errno = EINVAL;
    die(std::string("count '") + s + "'");
  }
  return v;
}

void mkfiles(const std::string& dir, long n, long size, const std::string& prefix) {
  std::string data(static_cast<size_t>(size), 'x');
  for (long i = 0; i < n; ++i) {
    std::string p = name_of(dir, prefix, i);
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) die(p);
    if (size > 0 && write(fd, data.data(), data.size()) != size) die(p);
    if (close(fd) != 0) die(p);
  }
}

long walk(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) die(dir);
  long count = 0;
  std::vector<std::string> subdirs;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) die(dir + "/" + e->d_name);
    ++count;
    if (S_ISDIR(st.st_mode)) subdirs.push_back(dir + "/" + e->d_name);
  }
  closedir(d);
  for (const auto& s : subdirs) count += walk(s);
  return count;
}

long list(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) die(dir);
  long count = 0;
  while (readdir(d)) ++count;
  closedir(d);
  return count - 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: fsops COMMAND ARGS... (see bench/fsops.cc)\n");
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string path = argv[2];
  const std::string prefix = [&] {
    int at = (cmd == "mkfiles") ? 5 : 4;
    return argc > at ? std::string(argv[at]) : std::string("f");
  }();
  long count = 0;
  if (cmd == "mkfiles" && argc >= 5) {
    count = arg_count(argv[3]);
    mkfiles(path, count, arg_count(argv[4]), prefix);
  } else if (cmd == "mktree" && argc >= 4) {
    long n = arg_count(argv[3]);
    for (long made = 0, d = 0; made < n; ++d) {
      std::string sub = name_of(path, "d", d);
      if (mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) die(sub);
      long here = std::min(999L, n - made - 1);
      mkfiles(sub, here, 0, prefix);
      made += here + 1;
    }
    count = n;
  } else if (cmd == "mkdirs" && argc >= 4) {
    long n = arg_count(argv[3]);
    for (long made = 0, d = 0; made < n; ++d) {
      std::string sub = name_of(path, "d", d);
      if (mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) die(sub);
      ++made;
      for (long i = 0; i < 1000 && made < n; ++i, ++made) {
        std::string leaf = name_of(sub, "s", i);
        if (mkdir(leaf.c_str(), 0755) != 0) die(leaf);
      }
    }
    count = n;
  } else if (cmd == "delete" && argc >= 4) {
    count = arg_count(argv[3]);
    for (long i = 0; i < count; ++i) {
      std::string p = name_of(path, prefix, i);
      if (unlink(p.c_str()) != 0) die(p);
    }
  } else if (cmd == "walk") {
    count = walk(path);
  } else if (cmd == "list") {
    count = list(path);
  } else if ((cmd == "stat" || cmd == "chmod") && argc >= 4) {
    count = arg_count(argv[3]);
    for (long i = 0; i < count; ++i) {
      std::string p = name_of(path, prefix, i);
      struct stat st;
      if (cmd == "stat") {
        if (lstat(p.c_str(), &st) != 0) die(p);
      } else if (chmod(p.c_str(), 0600) != 0 || utimensat(AT_FDCWD, p.c_str(), nullptr, 0) != 0) {
        die(p);
      }
    }
  } else if (cmd == "append") {
    int fd = open(path.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, "!", 1) != 1 || close(fd) != 0) die(path);
    count = 1;
  } else if (cmd == "open-rdwr") {
    int fd = open(path.c_str(), O_RDWR);
    if (fd < 0 || close(fd) != 0) die(path);
    count = 1;
  } else if (cmd == "randread" && argc == 5) {
    long ops = arg_count(argv[3]);
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) != 0) die(path);
    const long blocks = st.st_size / 4096;
    if (blocks == 0) die(path + " (smaller than 4 KiB)");
    std::mt19937_64 gen(static_cast<uint64_t>(arg_count(argv[4])));
    char buf[4096];
    for (long i = 0; i < ops; ++i) {
      off_t at = static_cast<off_t>(gen() % static_cast<uint64_t>(blocks)) * 4096;
      if (pread(fd, buf, sizeof buf, at) != static_cast<ssize_t>(sizeof buf)) die(path);
    }
    close(fd);
    count = ops;
  } else if (cmd == "mmapread") {
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) die(path + " (empty or no size)");
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die(path + " (mmap)");
    const volatile unsigned char* bytes = static_cast<const unsigned char*>(map);
    for (size_t at = 0; at < size; at += 4096) (void)bytes[at];  // a volatile read: a fault
    munmap(map, size);
    close(fd);
    count = static_cast<long>((size + 4095) / 4096);
  } else {
    fprintf(stderr, "fsops: unknown command or wrong arguments: %s\n", cmd.c_str());
    return 2;
  }
  printf("%ld\n", count);
  return 0;
}
