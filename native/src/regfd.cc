#include "regfd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <shared_mutex>
#include <unordered_map>

#include "agent.h"
#include "hf3fs_usrbio.h"
#include "service_client.h"

namespace usrbio {
namespace {

struct Table {
  std::shared_mutex mu;
  std::unordered_map<int, std::shared_ptr<RegFd>> by_fd;  // keys: original fd and dupfd
};

Table &table() {
  static Table *t = new Table;  // never destroyed: lookups may run during exit
  return *t;
}

}  // namespace

RegFd::~RegFd() {
  if (auto a = agent.lock()) a->remove_file(agent_handle);
  if (auto c = svc.lock()) service_remove_file(*c, svc_handle);
  if (dupfd >= 0) close(dupfd);
}

int regfd_register(int fd, uint64_t flags) {
  if (fd < 0) return EBADF;
  if (flags != 0) return EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return EBADF;
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return EINVAL;
  Table &t = table();
  std::unique_lock<std::shared_mutex> g(t.mu);
  if (t.by_fd.count(fd)) return EINVAL;  // already registered (as fd or as a handle's dup)
  auto rec = std::make_shared<RegFd>();
  rec->fd = fd;
  rec->accmode = fl & O_ACCMODE;
  rec->ino = st.st_ino;
  rec->dev = st.st_dev;
  rec->on_3fs = hf3fs_is_hf3fs(fd);
  static std::atomic<uint64_t> next_serial{1};
  rec->serial = next_serial.fetch_add(1);
  rec->dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (rec->dupfd < 0) return errno;
  t.by_fd[fd] = rec;
  t.by_fd[rec->dupfd] = rec;
  return -rec->dupfd;
}

void regfd_deregister(int fd) {
  if (fd == INT_MIN) return;
  int key = fd < 0 ? -fd : fd;
  std::shared_ptr<RegFd> dead;  // destroyed outside the lock
  Table &t = table();
  std::unique_lock<std::shared_mutex> g(t.mu);
  auto it = t.by_fd.find(key);
  if (it == t.by_fd.end()) return;
  dead = it->second;
  // Erase only keys that still name this record: after the application closed a registered fd
  // without deregistering it, its number may since have become another registration's dup.
  for (int k : {dead->fd, dead->dupfd}) {
    auto e = t.by_fd.find(k);
    if (e != t.by_fd.end() && e->second == dead) t.by_fd.erase(e);
  }
}

std::shared_ptr<RegFd> regfd_lookup(int fd) {
  if (fd == INT_MIN) return nullptr;
  int key = fd < 0 ? -fd : fd;
  Table &t = table();
  std::shared_lock<std::shared_mutex> g(t.mu);
  auto it = t.by_fd.find(key);
  return it == t.by_fd.end() ? nullptr : it->second;
}

}  // namespace usrbio
