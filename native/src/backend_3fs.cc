// backend_3fs.cc - real 3FS FUSE mounts: the 3FS client protocol.
//
// Memory is registered by symlinking its /dev/shm file into <mount>/3fs-virt/iovs/<key>;
// the submit semaphore is found by readlink of <mount>/3fs-virt/iovs/submit-ios[.ph|.pl];
// files are named by inode id. Unlike 3FS's own client this one unlinks a ring with the same
// key it registered (binary .f flags), never lets an exception cross the C ABI, never unlinks
// another process's registration from an iovopen'ed iov, and closes its semaphores.
#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "backend.h"
#include "client.h"
#include "regfd.h"
#include "util.h"

namespace usrbio {
namespace {

std::string iovs_dir(const char *mp) { return std::string(mp) + "/3fs-virt/iovs"; }

// Once per mount per process: an open directory on 3fs-virt/iovs. The daemon cleans up this
// process's registrations when its last reference closes (process exit).
void keep_liveness_fd(const char *mp) {
  static std::mutex mu;
  static auto *fds = new std::map<std::string, int>;
  std::lock_guard<std::mutex> g(mu);
  if (fds->count(mp)) return;
  int fd = open(iovs_dir(mp).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) (*fds)[mp] = fd;
}

std::string binary(uint64_t v) {
  if (!v) return "0";
  std::string s;
  while (v) {
    s.insert(s.begin(), char('0' + (v & 1)));
    v >>= 1;
  }
  return s;
}

struct ThreeFsIov final : ClientIov {
  std::shared_ptr<Mapping> map;
  std::string link;  // the registration symlink; empty for opened iovs (not ours to remove)
  ~ThreeFsIov() override {
    if (!link.empty()) ::unlink(link.c_str());
  }
  void unlink() override {
    if (map && map->owns_name) {
      shm_unlink(map->shm_name.c_str());
      map->owns_name = false;
    }
  }
};

// Create named shm, register it under `key_suffix`, fill iov. Returns 0 or -errno.
int create_registered(const char *mp, size_t size, size_t block_size, int numa, const std::string &key_suffix,
                      std::shared_ptr<Mapping> *map_out, std::string *link_out, uint8_t id[16]) {
  uint8_t name_id[16];
  random_uuid(name_id);
  random_uuid(id);
  std::string name = "/hf3fs-iov-" + uuid_text(name_id);
  std::shared_ptr<Mapping> map;
  int r = shm_create_named(name, size, numa, &map);
  if (r < 0) return r;
  std::string key = uuid_text(id);
  if (block_size) key += ".b" + std::to_string(block_size);
  key += key_suffix;
  std::string link = iovs_dir(mp) + "/" + key;
  std::string target = "/dev/shm" + name;
  if (symlink(target.c_str(), link.c_str()) != 0) return -errno;  // ~Mapping unlinks the shm name
  keep_liveness_fd(mp);
  *map_out = std::move(map);
  *link_out = std::move(link);
  return 0;
}

class ThreeFsRing final : public ClientRing {
 public:
  ThreeFsRing(std::shared_ptr<Mapping> map, int entries, bool for_read, sem_t *submit, std::string link, uint64_t dev)
      : ClientRing(std::move(map), entries, for_read), submit_(submit), link_(std::move(link)), dev_(dev) {}
  ~ThreeFsRing() override {
    if (!link_.empty()) unlink(link_.c_str());
    if (submit_) sem_close(submit_);
  }
  // A file is known to the daemon by its inode id; a file on another filesystem is not on this
  // mount (its st_ino could name an unrelated 3FS file), so it is refused like upstream does.
  int file_iid(RegFd &rec, uint64_t *iid) override {
    if (!rec.on_3fs && rec.dev != dev_) return -EBADF;
    *iid = rec.ino;
    return 0;
  }
  void notify() override { sem_post_untrusted(submit_); }  // the sem is world-writable
  long wait_slice_ms() override {
    static long jitter = std::max(1L, env_long("HF3FS_USRBIO_WAIT_JITTER_MS", 1));
    return jitter;
  }

 private:
  sem_t *submit_;
  std::string link_;
  uint64_t dev_;  // st_dev of the mount point
};

// The submit semaphore of a priority: readlink must name /dev/shm/sem.<name>.
int open_submit_sem(const char *mp, int priority, sem_t **out) {
  std::string link = iovs_dir(mp) + (priority < 0 ? "/submit-ios.ph" : priority > 0 ? "/submit-ios.pl" : "/submit-ios");
  char buf[256];
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) return -errno;
  buf[n] = 0;
  const char *prefix = "/dev/shm/sem.";
  size_t plen = strlen(prefix);
  if (size_t(n) <= plen || strncmp(buf, prefix, plen) != 0 || strchr(buf + plen, '/')) return -EIO;
  std::string name = std::string("/") + (buf + plen);
  sem_t *s = sem_open(name.c_str(), 0);
  if (s == SEM_FAILED) return -errno;
  *out = s;
  return 0;
}

int make_ring(hf3fs_ior *ior, const char *mp, std::shared_ptr<Mapping> map, const uint8_t id[16], std::string link,
              const RingParams &p) {
  sem_t *sem = nullptr;
  int r = open_submit_sem(mp, p.priority, &sem);
  if (r < 0) {
    if (!link.empty()) unlink(link.c_str());
    return r;
  }
  struct stat st;
  if (stat(mp, &st) != 0) {
    int e = -errno;
    sem_close(sem);
    if (!link.empty()) unlink(link.c_str());
    return e;
  }
  auto *ring = new ThreeFsRing(map, p.entries, p.for_read, sem, std::move(link), st.st_dev);
  fill_ior(ior, ring, map->base, map->size, id, mp, p);
  return 0;
}

}  // namespace

bool threefs_is_mount(const char *mp) {
  char buf[256];
  return readlink((iovs_dir(mp) + "/submit-ios").c_str(), buf, sizeof buf) > 0;
}

int threefs_iovcreate(hf3fs_iov *iov, const char *mp, size_t size, size_t block_size, int numa) {
  std::shared_ptr<Mapping> map;
  std::string link;
  uint8_t id[16];
  int r = create_registered(mp, size, block_size, numa, "", &map, &link, id);
  if (r < 0) return r;
  auto *h = new ThreeFsIov;
  h->map = map;
  h->link = std::move(link);
  fill_iov(iov, map->base, h, id, mp, size, block_size, numa);
  return 0;
}

int threefs_iovopen(hf3fs_iov *iov, const uint8_t id[16], const char *mp, size_t size, size_t block_size, int numa) {
  std::string key = uuid_text(id);
  if (block_size) key += ".b" + std::to_string(block_size);
  char *target = realpath((iovs_dir(mp) + "/" + key).c_str(), nullptr);
  if (!target) return -errno;
  std::string t = target;
  free(target);
  if (t.rfind("/dev/shm/", 0) != 0) return -EINVAL;
  std::shared_ptr<Mapping> map;
  int r = shm_open_path(t, size, numa, &map);
  if (r < 0) return r;
  auto *h = new ThreeFsIov;
  h->map = map;
  fill_iov(iov, map->base, h, id, mp, size, block_size, numa);
  return 0;
}

int threefs_iorcreate(hf3fs_ior *ior, const char *mp, const RingParams &p) {
  std::string suffix = std::string(p.for_read ? ".r" : ".w") + std::to_string(p.io_depth);
  if (p.priority) suffix += p.priority < 0 ? ".ph" : ".pl";
  suffix += ".t" + std::to_string(p.timeout);
  if (p.flags) suffix += ".f" + binary(p.flags);
  std::shared_ptr<Mapping> map;
  std::string link;
  uint8_t id[16];
  int r = create_registered(mp, ring_bytes(size_t(p.entries)), 0, p.numa, suffix, &map, &link, id);
  if (r < 0) return r;
  // The daemon holds its own mapping now: drop the name so nothing is left in /dev/shm.
  shm_unlink(map->shm_name.c_str());
  map->owns_name = false;
  return make_ring(ior, mp, std::move(map), id, std::move(link), p);
}

int threefs_iorwrap(hf3fs_ior *ior, void *buf, const char *mp, size_t size, const RingParams &p) {
  auto map = std::make_shared<Mapping>();
  map->base = static_cast<uint8_t *>(buf);
  map->size = size;
  map->external = true;
  uint8_t id[16] = {0};
  return make_ring(ior, mp, std::move(map), id, std::string(), p);
}

}  // namespace usrbio
