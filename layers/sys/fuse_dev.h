// The FUSE device: its raw reads and writes (a session that looks at its own traffic) and the
// backing-file ioctls of FUSE passthrough (Linux 6.9+), with the kernel ABI this needs beyond
// what the system's <linux/fuse.h> declares.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "layers/base/result.h"
#include "layers/base/unique_fd.h"

namespace layerfs::sys {

// From the kernel's include/uapi/linux/fuse.h (protocol 7.40).
namespace fuse_abi {

constexpr uint32_t kOpInit = 26;                    // FUSE_INIT
constexpr uint64_t kInitExt = 1ULL << 30;           // FUSE_INIT_EXT: flags2 is there
constexpr uint64_t kWritebackCache = 1ULL << 16;    // FUSE_WRITEBACK_CACHE
constexpr uint64_t kHandleKillprivV2 = 1ULL << 28;  // FUSE_HANDLE_KILLPRIV_V2
constexpr uint64_t kPassthrough = 1ULL << 37;       // FUSE_PASSTHROUGH (bit 5 of flags2)
constexpr uint32_t kOpenPassthrough = 1U << 7;      // FOPEN_PASSTHROUGH
constexpr uint32_t kOpenKeepCache = 1U << 1;        // FOPEN_KEEP_CACHE

struct InHeader {  // struct fuse_in_header
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;
  uint16_t padding;
};
static_assert(sizeof(InHeader) == 40);

struct OutHeader {  // struct fuse_out_header
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(OutHeader) == 16);

struct InitIn {  // struct fuse_init_in
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint32_t flags2;
  uint32_t unused[11];
};
static_assert(sizeof(InitIn) == 64);

struct InitOut {  // struct fuse_init_out
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint32_t unused[6];
};
static_assert(sizeof(InitOut) == 64);
static_assert(offsetof(InitOut, flags2) == 32 && offsetof(InitOut, max_stack_depth) == 36);

struct OpenOut {  // struct fuse_open_out
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == 16 && offsetof(OpenOut, backing_id) == 12);

struct Attr {  // struct fuse_attr
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint32_t rdev;
  uint32_t blksize;
  uint32_t flags;
};
static_assert(sizeof(Attr) == 88);

struct EntryOut {  // struct fuse_entry_out
  uint64_t nodeid;
  uint64_t generation;
  uint64_t entry_valid;
  uint64_t attr_valid;
  uint32_t entry_valid_nsec;
  uint32_t attr_valid_nsec;
  Attr attr;
};
static_assert(sizeof(EntryOut) == 128);

struct BackingMap {  // struct fuse_backing_map
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
static_assert(sizeof(BackingMap) == 16);

}  // namespace fuse_abi

// read(2) and writev(2) on the device, and splice(2) for a session's spliced transfers. Each
// returns what the call does (-1 with errno set on failure): libfuse's custom io contract.
ssize_t read_dev(BorrowedFd fd, void* buf, size_t size);
ssize_t writev_dev(BorrowedFd fd, const struct iovec* iov, int count);
ssize_t splice_fds(BorrowedFd in, off_t* in_off, BorrowedFd out, off_t* out_off, size_t len,
                   unsigned flags);

// Whether the request in `buf` (`n` bytes read from the device) asks the daemon to clear the
// set-id bits of the file it changes: under FUSE_HANDLE_KILLPRIV_V2 the kernel asks so on WRITE,
// OPEN with O_TRUNC and SETATTR of the size, when the caller lacks CAP_FSETID (CREATE makes a new
// file: nothing to kill; a chown, which it flags too, drops them by itself on the upper).
// libfuse 3.14 does not pass these flags on.
bool asks_kill_suidgid(const void* buf, size_t n);

// FUSE_DEV_IOC_BACKING_OPEN: registers `file` as a backing file on the connection of
// `dev`, giving its id. Needs CAP_SYS_ADMIN in the initial user namespace (EPERM otherwise);
// ELOOP where the file's filesystem is stacked as deep as the mount allows.
Result<int32_t> backing_open(BorrowedFd dev, BorrowedFd file);
// FUSE_DEV_IOC_BACKING_CLOSE.
Result<void> backing_close(BorrowedFd dev, int32_t id);

}  // namespace layerfs::sys
