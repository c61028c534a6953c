// api.cc - the exported C functions: argument checks, backend dispatch, and a guarantee that
// no C++ exception crosses the C ABI.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "backend.h"
#include "client.h"
#include "hf3fs_usrbio.h"
#include "memreg.h"
#include "regfd.h"
#include "usrbio_ext.h"
#include "util.h"

using namespace usrbio;

static_assert(sizeof(hf3fs_iov) == 312 && sizeof(hf3fs_ior) == 600 && sizeof(hf3fs_cqe) == 24);
static_assert(offsetof(hf3fs_ior, iorh) == 312 && offsetof(hf3fs_ior, for_read) == 576 &&
              offsetof(hf3fs_ior, flags) == 592);

namespace {

// Run f, mapping any exception to `err`.
template <class F, class R = decltype(std::declval<F>()())>
R guard(R err, F f) {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return err;
  } catch (...) {
    return err;
  }
}

bool mp_ok(const char *mp) { return mp && *mp && strnlen(mp, 256) < 256; }

constexpr unsigned long kIocGetMagic = 0x80046802;  // _IOR('h', 2, uint32_t)
constexpr int kPunchHoleMax = 1000;

struct HardlinkArg {
  ino_t ino;
  char str[NAME_MAX];
};
struct PunchHoleArg {
  int n;
  size_t flags;
  size_t start[kPunchHoleMax];
  size_t end[kPunchHoleMax];
};
constexpr unsigned long kIocHardlink = _IOW('h', 12, HardlinkArg);
constexpr unsigned long kIocPunchHole = _IOW('h', 13, PunchHoleArg);

// /proc/self/mountinfo writes blanks, tabs, newlines and backslashes in paths as \ooo octal.
std::string unescape_mountinfo(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

int ring_create(hf3fs_ior *ior, const char *mp, const RingParams &p) {
  if (!ior || !mp_ok(mp)) return -EINVAL;
  if (p.entries <= 0 || p.entries > kMaxRingEntries || p.io_depth > p.entries || p.timeout < 0 || p.numa < -1)
    return -EINVAL;
  return guard(-ENOMEM, [&] { return threefs_is_mount(mp) ? threefs_iorcreate(ior, mp, p) : local_iorcreate(ior, mp, p); });
}

}  // namespace

USRBIO_API bool hf3fs_is_hf3fs(int fd) {
  uint32_t magic = 0;
  return fd >= 0 && ioctl(fd, kIocGetMagic, &magic) == 0 && magic == HF3FS_SUPER_MAGIC;
}

USRBIO_API int hf3fs_extract_mount_point(char *out, int size, const char *path) {
  if (!path) return -1;
  return guard(-1, [&]() -> int {
    bool check_fs = true;
    if (const char *e = getenv("HF3FS_USRBIO_DONT_CHECKFS_FOR_MP")) check_fs = strcmp(e, "yes") != 0;
    char *canon = realpath(path, nullptr);
    if (!canon) return -1;
    std::string p = canon;
    free(canon);
    std::ifstream in("/proc/self/mountinfo");
    std::string line, best;
    while (std::getline(in, line)) {
      std::istringstream ss(line);
      std::vector<std::string> f;
      for (std::string w; ss >> w;) f.push_back(w);
      if (f.size() < 10) continue;
      const std::string mp = unescape_mountinfo(f[4]);
      const std::string &fstype = f[f.size() - 3];
      if (check_fs && fstype != "fuse.hf3fs") continue;
      std::string cand;
      size_t slash = mp.rfind('/');
      if (slash != std::string::npos && mp.substr(slash + 1) == "3fs-virt") {
        cand = slash == 0 ? "/" : mp.substr(0, slash);
      } else {
        struct stat st;
        if (stat((mp + "/3fs-virt").c_str(), &st) != 0) continue;
        cand = mp;
      }
      bool prefix = cand == "/" || p == cand || (p.size() > cand.size() && p.compare(0, cand.size(), cand) == 0 &&
                                                 p[cand.size()] == '/');
      if (prefix && cand > best) best = cand;
    }
    if (best.empty()) return -1;
    int need = int(best.size()) + 1;
    if (out && size >= need) memcpy(out, best.c_str(), size_t(need));
    return need;
  });
}

USRBIO_API int hf3fs_iovcreate(hf3fs_iov *iov, const char *mp, size_t size, size_t block_size, int numa) {
  if (!iov || !mp_ok(mp) || size == 0 || block_size > size || numa < -1) return -EINVAL;
  return guard(-ENOMEM, [&] {
    return threefs_is_mount(mp) ? threefs_iovcreate(iov, mp, size, block_size, numa)
                                : local_iovcreate(iov, mp, size, block_size, numa);
  });
}

USRBIO_API int hf3fs_iovopen(hf3fs_iov *iov, const uint8_t id[16], const char *mp, size_t size, size_t block_size,
                             int numa) {
  if (!iov || !id || !mp_ok(mp) || size == 0 || block_size > size || numa < -1) return -EINVAL;
  return guard(-ENOMEM, [&] {
    return threefs_is_mount(mp) ? threefs_iovopen(iov, id, mp, size, block_size, numa)
                                : local_iovopen(iov, id, mp, size, block_size, numa);
  });
}

USRBIO_API void hf3fs_iovunlink(hf3fs_iov *iov) {
  if (!iov || !iov->iovh) return;
  guard(0, [&] {
    static_cast<ClientIov *>(iov->iovh)->unlink();
    return 0;
  });
}

USRBIO_API int hf3fs_iovwrap(hf3fs_iov *iov, void *buf, const uint8_t id[16], const char *mp, size_t size,
                             size_t block_size, int numa) {
  if (!iov || !buf || !id || !mp_ok(mp) || size == 0 || block_size > size || numa < -1) return -EINVAL;
  return guard(-ENOMEM, [&]() -> int {
    if (threefs_is_mount(mp)) {
      // 3FS: struct fill only; the caller has registered the memory itself.
      int r = numa_bind(buf, size, numa);
      if (r < 0) return r;
      fill_iov(iov, static_cast<uint8_t *>(buf), nullptr, id, mp, size, block_size, numa);
      return 0;
    }
    return local_iovwrap(iov, buf, id, mp, size, block_size, numa);
  });
}

USRBIO_API void hf3fs_iovdestroy(hf3fs_iov *iov) {
  if (!iov || !iov->iovh) return;
  guard(0, [&] {
    delete static_cast<ClientIov *>(iov->iovh);
    return 0;
  });
  iov->iovh = nullptr;
  iov->base = nullptr;
}

USRBIO_API size_t hf3fs_ior_size(int entries) {
  if (entries <= 0 || entries > kMaxRingEntries) return 0;
  return ring_bytes(size_t(entries));
}

USRBIO_API int hf3fs_iorwrap(hf3fs_ior *ior, void *buf, const char *mp, size_t size, bool for_read, int io_depth,
                             int priority, int timeout, uint64_t flags) {
  if (!ior || !buf || !mp_ok(mp) || timeout < 0) return -EINVAL;
  size_t entries = ring_entries_for(size);
  if (entries == 0 || io_depth > int(entries)) return -EINVAL;
  RingParams p{int(entries), for_read, io_depth, priority, timeout, -1, flags};
  return guard(-ENOMEM, [&] {
    return threefs_is_mount(mp) ? threefs_iorwrap(ior, buf, mp, size, p) : local_iorwrap(ior, buf, mp, size, p);
  });
}

USRBIO_API int hf3fs_iorcreate(hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int numa) {
  return ring_create(ior, mp, RingParams{entries, for_read, io_depth, 0, 0, numa, 0});
}

USRBIO_API int hf3fs_iorcreate2(hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int priority,
                                int numa) {
  return ring_create(ior, mp, RingParams{entries, for_read, io_depth, priority, 0, numa, 0});
}

USRBIO_API int hf3fs_iorcreate3(hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int priority,
                                int timeout, int numa) {
  return ring_create(ior, mp, RingParams{entries, for_read, io_depth, priority, timeout, numa, 0});
}

USRBIO_API int hf3fs_iorcreate4(hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int timeout,
                                int numa, uint64_t flags) {
  return ring_create(ior, mp, RingParams{entries, for_read, io_depth, 0, timeout, numa, flags});
}

USRBIO_API void hf3fs_iordestroy(hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return;
  guard(0, [&] {
    delete static_cast<ClientRing *>(ior->iorh);
    return 0;
  });
  ior->iorh = nullptr;
  ior->iov.base = nullptr;
}

USRBIO_API int hf3fs_io_entries(const hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return -EINVAL;
  return static_cast<const ClientRing *>(ior->iorh)->entries;
}

USRBIO_API int hf3fs_reg_fd(int fd, uint64_t flags) {
  return guard(ENOMEM, [&] { return regfd_register(fd, flags); });
}

USRBIO_API void hf3fs_dereg_fd(int fd) {
  guard(0, [&] {
    regfd_deregister(fd);
    return 0;
  });
}

USRBIO_API int hf3fs_prep_io(const hf3fs_ior *ior, const hf3fs_iov *iov, bool read, void *ptr, int fd, size_t off,
                             uint64_t len, const void *userdata) {
  if (!ior || !ior->iorh) return -EINVAL;
  return guard(-ENOMEM, [&] { return static_cast<ClientRing *>(ior->iorh)->prep(iov, read, ptr, fd, off, len, userdata); });
}

USRBIO_API int hf3fs_submit_ios(const hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return -EINVAL;
  static_cast<ClientRing *>(ior->iorh)->notify();
  return 0;
}

USRBIO_API int hf3fs_wait_for_ios(const hf3fs_ior *ior, hf3fs_cqe *cqes, int cqec, int min_results,
                                  const timespec *abs_timeout) {
  if (!ior || !ior->iorh) return -EINVAL;
  return guard(-ENOMEM, [&] { return static_cast<ClientRing *>(ior->iorh)->wait(cqes, cqec, min_results, abs_timeout); });
}

USRBIO_API int usrbio_ior_drain(const hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return -EINVAL;
  sem_t *sem = static_cast<ClientRing *>(ior->iorh)->v.sem();
  int n = 0;
  while (n < INT_MAX && sem_trywait(sem) == 0) n++;
  return n;
}

USRBIO_API int usrbio_ior_sleep(const hf3fs_ior *ior, long timeout_us) {
  if (!ior || !ior->iorh || timeout_us < 0) return -EINVAL;
  timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_us / 1000000;
  until.tv_nsec += (timeout_us % 1000000) * 1000;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  if (sem_timedwait(static_cast<ClientRing *>(ior->iorh)->v.sem(), &until) == 0) return 0;
  return -errno;
}

USRBIO_API int usrbio_ior_health(const hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return -EINVAL;
  return static_cast<ClientRing *>(ior->iorh)->alive();
}

USRBIO_API int usrbio_ior_wake(const hf3fs_ior *ior) {
  if (!ior || !ior->iorh) return -EINVAL;
  sem_post_untrusted(static_cast<ClientRing *>(ior->iorh)->v.sem());
  return 0;
}

USRBIO_API int hf3fs_hardlink(const char *target, const char *link_name) {
  if (!target || !link_name) return EINVAL;
  return guard(ENOMEM, [&]() -> int {
    int fd = open(target, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && hf3fs_is_hf3fs(fd)) {
      std::string l = link_name;
      size_t slash = l.rfind('/');
      std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : l.substr(0, slash));
      std::string base = slash == std::string::npos ? l : l.substr(slash + 1);
      struct stat st;
      if (base.empty() || base.size() >= NAME_MAX || stat(dir.c_str(), &st) != 0) {
        int e = base.empty() || base.size() >= NAME_MAX ? EINVAL : errno;
        close(fd);
        return e;
      }
      HardlinkArg arg{};
      arg.ino = st.st_ino;
      memcpy(arg.str, base.c_str(), base.size() + 1);
      int r = ioctl(fd, kIocHardlink, &arg);
      int e = r == 0 ? 0 : errno;
      close(fd);
      return e;
    }
    if (fd >= 0) close(fd);
    return link(target, link_name) == 0 ? 0 : errno;
  });
}

USRBIO_API int hf3fs_punchhole(int fd, int n, const size_t *start, const size_t *end, size_t flags) {
  if (n < 0 || n > kPunchHoleMax || (n > 0 && (!start || !end))) return EINVAL;
  for (int i = 0; i < n; i++)
    if (end[i] < start[i] || end[i] > size_t(INT64_MAX)) return EINVAL;
  if (fcntl(fd, F_GETFD) < 0) return EBADF;
  if (hf3fs_is_hf3fs(fd)) {
    auto *arg = static_cast<PunchHoleArg *>(calloc(1, sizeof(PunchHoleArg)));
    if (!arg) return ENOMEM;
    arg->n = n;
    arg->flags = flags;
    for (int i = 0; i < n; i++) {
      arg->start[i] = start[i];
      arg->end[i] = end[i];
    }
    int r = ioctl(fd, kIocPunchHole, arg);
    int e = r == 0 ? 0 : errno;
    free(arg);
    return e;
  }
  if (flags != 0) return EINVAL;
  for (int i = 0; i < n; i++) {
    if (end[i] == start[i]) continue;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(start[i]), off_t(end[i] - start[i])) != 0)
      return errno;
  }
  return 0;
}

// ---------------------------------------------------------------- extensions

USRBIO_API const char *usrbio_version(void) { return "0.1.0"; }

USRBIO_API int usrbio_mount_kind(const char *mp) {
  if (!mp_ok(mp)) return -EINVAL;
  return guard(-ENOMEM, [&]() -> int {
    if (threefs_is_mount(mp)) return 1;
    struct stat st;
    if (stat(mp, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
  });
}

USRBIO_API int usrbio_iov_memreg_state(const hf3fs_iov *iov, char *reason, size_t reason_size) {
  return guard(-ENOMEM, [&]() -> int {
    if (reason && reason_size) {
      std::string why;
      memreg_available(&why);
      snprintf(reason, reason_size, "%s", why.c_str());
    }
    if (!iov || !iov->iovh) return -EINVAL;
    return static_cast<ClientIov *>(iov->iovh)->memreg_state();
  });
}
