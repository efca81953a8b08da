// Building layer fixtures and comparing what two mounts show.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace layerfs::test {

namespace fs = std::filesystem;

// Fixture builders; each creates parent directories as needed and fails the test on error.
void write_file(const fs::path& p, const std::string& content, mode_t mode = 0644);
// The content of a file; "<error: ...>" where it cannot be read (a value no test expects).
std::string read_file(const fs::path& p);
void make_dir(const fs::path& p, mode_t mode = 0755);
void make_symlink(const std::string& target, const fs::path& p);
void make_hardlink(const fs::path& existing, const fs::path& p);
void make_whiteout(const fs::path& p);  // char device 0/0
void make_fifo(const fs::path& p);
void set_xattr(const fs::path& p, const std::string& name, const std::string& value);
// Sets the atime of every path below root to one fixed instant after any "now" a test sees.
// Relatime then never updates it, so atime can be compared between mounts like any field
// (reads through either mount would otherwise move it at times that depend on timestamp
// granularity). mtimes are kept.
void pin_atimes(const fs::path& root);
// Whether this process may write trusted.* xattrs (needs CAP_SYS_ADMIN).
bool can_set_trusted_xattrs(const fs::path& dir);

// lstat of p; a path that cannot be read fails the test.
struct stat lstat_of(const fs::path& p);
// Whether p is a char device 0/0 (a whiteout).
bool is_device_whiteout(const fs::path& p);
// The value of xattr `name` of p (a symlink is not followed), or "" where it has none.
std::string xattr_of(const fs::path& p, const std::string& name);

struct NodeInfo {
  struct stat st {};
  std::string link;     // symlink target
  std::string content;  // regular files
  std::map<std::string, std::string> xattrs;
};

// Every path below root ("" is root itself) as lstat and friends see it. A name a directory
// lists but lstat cannot find is left out (kernel overlayfs lists some whiteouts it hides).
using Tree = std::map<std::string, NodeInfo>;

struct SnapshotOptions {
  bool content = true;
  bool xattrs = true;
};
Tree snapshot(const fs::path& root, SnapshotOptions opts = {});

// Fields compare() may skip.
struct Ignore {
  bool dev = true;
  bool ino = false;
  bool atime = false;
  bool times = false;
  bool nlink = false;
  bool dir_nlink = false;  // st_nlink of directories only
  bool blocks = false;
};

// Differences between two snapshots, one line each; empty when they agree.
std::vector<std::string> compare(const Tree& a, const Tree& b, Ignore ignore = {});

// The paths of a snapshot, sorted, one per line (for readable assertion messages).
std::string paths_of(const Tree& t);

}  // namespace layerfs::test
