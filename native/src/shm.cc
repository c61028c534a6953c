#include "shm.h"

#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "util.h"

namespace usrbio {

Mapping::~Mapping() {
  if (!external && base) munmap(base, size);
  if (fd >= 0) close(fd);
  if (owns_name && !shm_name.empty()) shm_unlink(shm_name.c_str());
}

int numa_node_count() {
  static int count = [] {
    FILE *f = fopen("/sys/devices/system/node/online", "r");
    if (!f) return 1;
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    // Format: "0", "0-3", "0-1,4"; the highest number + 1.
    int highest = 0, cur = 0;
    bool in = false;
    for (char *p = buf; *p; p++) {
      if (*p >= '0' && *p <= '9') {
        cur = cur * 10 + (*p - '0');
        in = true;
      } else {
        if (in && cur > highest) highest = cur;
        cur = 0;
        in = false;
      }
    }
    if (in && cur > highest) highest = cur;
    return highest + 1;
  }();
  return count;
}

int numa_bind(void *base, size_t size, int node) {
  if (node == -1) return 0;
  if (node < -1 || node >= numa_node_count() || node >= 1024) return -EINVAL;
  char path[64];
  snprintf(path, sizeof path, "/sys/devices/system/node/node%d", node);
  struct stat st;
  // A machine without /sys node information has exactly node 0.
  if (stat(path, &st) != 0 && !(node == 0 && stat("/sys/devices/system/node", &st) != 0)) return -EINVAL;
  unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
  mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
  long r = syscall(SYS_mbind, base, size, MPOL_BIND, mask, sizeof(mask) * 8, 0);
  return r == 0 ? 0 : -errno;
}

static int map_fd(int fd, size_t size, int numa, uint8_t **base) {
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  int r = numa_bind(p, size, numa);
  if (r < 0) {
    munmap(p, size);
    return r;
  }
  *base = static_cast<uint8_t *>(p);
  return 0;
}

int shm_create_memfd(const char *label, size_t size, int numa, std::shared_ptr<Mapping> *out) {
  if (size == 0) return -EINVAL;
  int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  if (ftruncate(fd, off_t(size)) != 0) {
    int e = -errno;
    close(fd);
    return e == -EFBIG || e == -EINVAL ? -ENOMEM : e;
  }
  // Sealed: a peer that receives this memfd cannot shrink it under us (no SIGBUS).
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->size = size;
  int r = map_fd(fd, size, numa, &m->base);
  if (r < 0) {
    m->base = nullptr;
    return r;  // ~Mapping closes fd
  }
  *out = std::move(m);
  return 0;
}

int shm_create_named(const std::string &name, size_t size, int numa, std::shared_ptr<Mapping> *out) {
  if (size == 0) return -EINVAL;
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
  if (fd < 0) return -errno;
  auto m = std::make_shared<Mapping>();
  m->shm_name = name;
  m->owns_name = true;
  m->size = size;
  if (ftruncate(fd, off_t(size)) != 0) {
    int e = -errno;
    close(fd);
    m->base = nullptr;
    return e;
  }
  int r = map_fd(fd, size, numa, &m->base);
  close(fd);
  if (r < 0) {
    m->base = nullptr;
    return r;
  }
  *out = std::move(m);
  return 0;
}

int shm_open_path(const std::string &path, size_t size, int numa, std::shared_ptr<Mapping> *out) {
  if (size == 0) return -EINVAL;
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || size_t(st.st_size) < size) {
    close(fd);
    return -EINVAL;
  }
  auto m = std::make_shared<Mapping>();
  m->size = size;
  int r = map_fd(fd, size, numa, &m->base);
  close(fd);
  if (r < 0) {
    m->base = nullptr;
    return r;
  }
  *out = std::move(m);
  return 0;
}

}  // namespace usrbio
