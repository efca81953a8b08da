#include "fuse/passthrough.h"

#include <sys/stat.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "fuse/daemon.h"
#include "fuse/inode_table.h"
#include "layers/sys/fuse_dev.h"

namespace layerfs {
namespace {

namespace abi = sys::fuse_abi;

Daemon& daemon_of(void* userdata) { return *static_cast<Daemon*>(userdata); }

ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t n = sys::read_dev(BorrowedFd(fd), buf, len);
  if (n >= static_cast<ssize_t>(sizeof(abi::InHeader))) {
    Daemon& d = daemon_of(userdata);
    abi::InHeader in;
    std::memcpy(&in, buf, sizeof in);
    d.requests.saw(in.opcode);
    Requests::set_kill_suidgid(sys::asks_kill_suidgid(buf, static_cast<size_t>(n)));
    if (in.opcode == abi::kOpInit) d.passthrough.saw_init(buf, static_cast<size_t>(n));
  }
  return n;
}

ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
  daemon_of(userdata).passthrough.before_reply(iov, count);
  return sys::writev_dev(BorrowedFd(fd), iov, count);
}

ssize_t io_splice(int in, off_t* in_off, int out, off_t* out_off, size_t len, unsigned flags,
                  void*) {
  return sys::splice_fds(BorrowedFd(in), in_off, BorrowedFd(out), out_off, len, flags);
}

// A timeout as the kernel takes it: whole seconds and nanoseconds (libfuse's own conversion).
void split_timeout(double t, uint64_t* sec, uint32_t* nsec) {
  if (t <= 0) {
    *sec = 0;
    *nsec = 0;
    return;
  }
  if (t >= static_cast<double>(ULONG_MAX)) {
    *sec = ULONG_MAX;
    *nsec = 0;
    return;
  }
  *sec = static_cast<uint64_t>(t);
  const double frac = (t - static_cast<double>(*sec)) * 1.0e9;
  *nsec = frac >= 999999999.0 ? 999999999U : static_cast<uint32_t>(frac);
}

abi::Attr attr_of(const struct stat& st) {
  abi::Attr a{};
  a.ino = st.st_ino;
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = static_cast<uint32_t>(st.st_rdev);
  a.size = static_cast<uint64_t>(st.st_size);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  return a;
}

}  // namespace

const fuse_custom_io Passthrough::kDeviceIo = {
    .writev = io_writev, .read = io_read, .splice_receive = io_splice, .splice_send = io_splice};

void Passthrough::saw_init(const void* buf, size_t n) {
  if (n < sizeof(abi::InHeader) + offsetof(abi::InitIn, unused)) return;
  abi::InHeader in;
  std::memcpy(&in, buf, sizeof in);
  abi::InitIn init;
  std::memcpy(&init, static_cast<const char*>(buf) + sizeof in, offsetof(abi::InitIn, unused));
  uint64_t flags = init.flags;
  if (flags & abi::kInitExt) flags |= static_cast<uint64_t>(init.flags2) << 32;
  offered_ = (flags & abi::kPassthrough) != 0;
  kill_offered_ = (flags & abi::kHandleKillprivV2) != 0;
  init_unique_ = in.unique;
}

void Passthrough::before_reply(struct iovec* iov, int count) {
  const uint64_t unique = init_unique_.load(std::memory_order_relaxed);
  if (unique == 0 || count < 2 || iov[0].iov_len != sizeof(abi::OutHeader)) return;
  abi::OutHeader out;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (out.unique != unique) return;
  init_unique_ = 0;
  if (out.error != 0 || iov[1].iov_len < sizeof(abi::InitOut)) return;
  abi::InitOut init;
  std::memcpy(&init, iov[1].iov_base, sizeof init);
  // The kernel drops passthrough silently where it also caches writes back.
  if (wanted_ && offered_ && !(init.flags & abi::kWritebackCache)) {
    init.flags |= static_cast<uint32_t>(abi::kInitExt);
    init.flags2 |= static_cast<uint32_t>(abi::kPassthrough >> 32);
    init.max_stack_depth = 1;  // backing files on a filesystem that is not itself stacked
    on_ = true;
  }
  // The daemon clears set-id bits itself where the kernel asks (FUSE_HANDLE_KILLPRIV_V2), so
  // the kernel asks for security.capability once after each refresh of a file's attributes
  // instead of before every write(2): a round trip per write saved, passed through or not.
  // A write the daemon serves carries the ask (Requests::kill_suidgid); for one passed through,
  // which never reaches the daemon, the kernel still sends a SETATTR without fields when its
  // view of the file has set-id bits to drop, and the daemon answers it as chown(f, -1, -1),
  // which drops them (apply_setattr).
  if (kill_offered_) init.flags |= static_cast<uint32_t>(abi::kHandleKillprivV2);
  std::memcpy(iov[1].iov_base, &init, sizeof init);
}

int32_t Passthrough::open(const Inode& inode, BorrowedFd fd, File file, bool writes, Io* io) {
  *io = Io::kUncounted;
  if (!on()) return 0;
  std::lock_guard lock(mu_);
  Use& use = uses_[&inode];
  if (use.superseded || (use.lower && writes)) {
    // Handles on the lower file live: this open must see a node id of its own.
    use.superseded = true;
    return kStale;
  }
  // A lower file's fd is the backing only while the file is still lower: an open that raced a
  // copy-up holds the lower data, which the upper copy may no longer have. (The layer is read
  // under mu_, so a copy-up finished before this is seen here, and one finished after it
  // finds `use.lower` set when it changes the data: see changed().)
  const bool stale_fd = file == File::kLower && inode.layer() == 0;
  if (use.backing_id != 0) {
    // The one backing file every passthrough open of the inode shares (the kernel refuses a
    // second): the upper file, or a lower one that only read-only opens reach (above).
    ++use.passthrough;
    ++opens_;
    *io = Io::kPassthrough;
    return use.backing_id;
  }
  if ((file == File::kFixed || lower_) && use.cached == 0 && !stale_fd) {
    auto id = sys::backing_open(dev_, fd);
    if (id.ok()) {
      use.backing_id = *id;
      use.lower = file == File::kLower;
      ++use.passthrough;
      ++opens_;
      *io = Io::kPassthrough;
      return use.backing_id;
    }
    if (id.error() == EPERM) on_ = false;  // not allowed here; other errors are the file's own
  }
  ++use.cached;
  *io = Io::kCached;
  return 0;
}

bool Passthrough::changed(const Inode& inode) {
  if (!on()) return false;
  std::lock_guard lock(mu_);
  auto it = uses_.find(&inode);
  if (it == uses_.end() || !it->second.lower) return false;
  it->second.superseded = true;
  return true;
}

void Passthrough::close(const Inode& inode, Io io) {
  if (io == Io::kUncounted) return;
  std::lock_guard lock(mu_);
  auto it = uses_.find(&inode);
  if (it == uses_.end()) return;
  Use& use = it->second;
  if (io == Io::kCached && use.cached > 0) --use.cached;
  if (io == Io::kPassthrough && use.passthrough > 0 && --use.passthrough == 0) {
    (void)sys::backing_close(dev_, use.backing_id);
    use.backing_id = 0;
    use.lower = false;
    use.superseded = false;
  }
  if (use.cached == 0 && use.passthrough == 0) uses_.erase(it);
}

int Passthrough::reply_open(fuse_req_t req, uint64_t fh, int32_t backing_id) {
  abi::OpenOut out{fh, abi::kOpenPassthrough, backing_id};
  struct iovec iov {
    &out, sizeof out
  };
  return fuse_reply_iov(req, &iov, 1);
}

int Passthrough::reply_create(fuse_req_t req, const fuse_entry_param& e, uint64_t fh,
                              int32_t backing_id) {
  abi::EntryOut entry{};
  entry.nodeid = e.ino;
  entry.generation = e.generation;
  split_timeout(e.entry_timeout, &entry.entry_valid, &entry.entry_valid_nsec);
  split_timeout(e.attr_timeout, &entry.attr_valid, &entry.attr_valid_nsec);
  entry.attr = attr_of(e.attr);
  abi::OpenOut out{fh, abi::kOpenPassthrough, backing_id};
  struct iovec iov[2] = {{&entry, sizeof entry}, {&out, sizeof out}};
  return fuse_reply_iov(req, iov, 2);
}

}  // namespace layerfs
