// service_client.cc - iovs and rings on a local directory served by a usrbio service.
//
// A process keeps one connection (ServiceConn) per service socket, shared by every iov, ring
// and file it has there and closed when the last of them is destroyed. Memory is a sealed memfd
// that the process maps and passes to the service; files are passed as fds on first use. The
// connection carries only setup requests and one-way dispatcher wake-ups (only while the
// dispatcher sleeps); I/O goes through the shared rings as with the embedded agent.
#include "service_client.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "client.h"
#include "regfd.h"
#include "service_proto.h"
#include "shm.h"
#include "usrbio_ext.h"
#include "util.h"

namespace usrbio {

class ServiceConn {
 public:
  ~ServiceConn() {
    if (bell_) munmap(const_cast<SvcDoorbellPage *>(bell_), 4096);
    if (fd_ >= 0) close(fd_);
  }

  // Connect to the service at `path`, check that it runs as root or as our user, say hello.
  // 0, or -errno (-ECONNREFUSED/-ENOENT: nothing listens; -EACCES: untrusted owner).
  static int open(const std::string &path, std::shared_ptr<ServiceConn> *out);

  // One request and its reply (at most one fd back, stored in *fd_out, else -1). Serialised per
  // connection. Returns rep.result, or -EPIPE when the service is gone, -ETIMEDOUT when it does
  // not answer within 10 s.
  int64_t request(SvcReq &q, int fd_in, SvcRep *rep, int *fd_out);

  // Wake the dispatcher if it announced that it sleeps (one message, no reply).
  void kick() {
    if (dead_.load(std::memory_order_relaxed)) return;
    if (!std::atomic_ref<uint32_t>(const_cast<uint32_t &>(bell_->sleeping)).load(std::memory_order_seq_cst)) return;
    SvcReq q{};
    q.magic = kSvcMagic;
    q.op = kOpKick;
    if (svc_send(fd_, &q, sizeof q, nullptr, 0) == -EPIPE) dead_ = true;
  }

  // 0 while the service is connected, else -EPIPE. Polls the socket for a hangup (no read).
  int alive() {
    if (dead_.load(std::memory_order_relaxed)) return -EPIPE;
    pollfd p{fd_, POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      dead_ = true;
      return -EPIPE;
    }
    return 0;
  }

  // True once the service is known to be gone (or this is a fork()ed child's copy).
  bool dead() const { return dead_.load(std::memory_order_relaxed); }

  // In a fork()ed child: the connection belongs to the parent. Close our copy; everything on it
  // reports -EPIPE here.
  void orphan() {
    dead_ = true;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  std::string path;

 private:
  int fd_ = -1;
  std::mutex mu_;
  const SvcDoorbellPage *bell_ = nullptr;
  std::atomic<bool> dead_{false};
};

namespace {

std::mutex g_mu;  // guards the two tables below
std::map<std::string, std::weak_ptr<ServiceConn>> &conns() {
  static auto *m = new std::map<std::string, std::weak_ptr<ServiceConn>>;  // never destroyed (exit)
  return *m;
}
std::map<std::string, std::string> &overrides() {
  static auto *m = new std::map<std::string, std::string>;
  return *m;
}

// pthread_atfork child handler: every connection belongs to the parent (see orphan()).
void after_fork_child() {
  new (&g_mu) std::mutex();
  for (auto &kv : conns())
    if (auto c = kv.second.lock()) c->orphan();
  conns().clear();
}

// A request header for `op`, arguments zeroed.
SvcReq make_req(SvcOp op) {
  SvcReq q{};
  q.magic = kSvcMagic;
  q.op = op;
  return q;
}

// Map a memfd we received (an iov another process created). Takes ownership of fd.
int map_received(int fd, size_t size, std::shared_ptr<Mapping> *out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 0 || uint64_t(st.st_size) < size) {
    close(fd);
    return -EINVAL;
  }
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  m->base = static_cast<uint8_t *>(p);
  m->size = size;
  *out = std::move(m);
  return 0;
}

}  // namespace

int ServiceConn::open(const std::string &path, std::shared_ptr<ServiceConn> *out) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, after_fork_child); });
  sockaddr_un sa{};
  if (path.empty() || path.size() >= sizeof sa.sun_path) return -ENAMETOOLONG;
  auto c = std::make_shared<ServiceConn>();
  c->path = path;
  c->fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (c->fd_ < 0) return -errno;
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  if (connect(c->fd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) return -errno;
  ucred cr{};
  socklen_t len = sizeof cr;
  if (getsockopt(c->fd_, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return -errno;
  if (cr.uid != 0 && cr.uid != geteuid()) {
    ULOG_WARN("ignoring the usrbio service at %s: it runs as uid %u (neither root nor us)", path.c_str(),
              unsigned(cr.uid));
    return -EACCES;
  }
  timeval tv{10, 0};  // a stopped (SIGSTOP) service must not hang create calls forever
  setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SvcReq q = make_req(kOpHello);
  q.a[0] = kSvcVersion;
  SvcRep rep;
  int bell = -1;
  int64_t r = c->request(q, -1, &rep, &bell);
  if (r < 0) return int(r);
  if (bell < 0) return -EPROTO;
  void *p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, bell, 0);
  close(bell);
  if (p == MAP_FAILED) return -errno;
  c->bell_ = static_cast<const SvcDoorbellPage *>(p);
  if (c->bell_->magic != kSvcMagic) return -EPROTO;
  *out = std::move(c);
  return 0;
}

int64_t ServiceConn::request(SvcReq &q, int fd_in, SvcRep *rep, int *fd_out) {
  if (fd_out) *fd_out = -1;
  std::lock_guard<std::mutex> g(mu_);
  if (dead_) return -EPIPE;
  int r = svc_send(fd_, &q, sizeof q, &fd_in, fd_in >= 0 ? 1 : 0);
  if (r < 0) {
    dead_ = true;
    return r == -EAGAIN ? -ETIMEDOUT : -EPIPE;
  }
  int fds[2];
  int n = 0;
  long got = svc_recv(fd_, rep, sizeof *rep, fds, 2, &n, 0);
  if (got != long(sizeof *rep) || rep->magic != kSvcMagic) {
    for (int i = 0; i < n; i++) close(fds[i]);
    dead_ = true;  // the conversation is out of step: never reuse it
    return got == -EAGAIN ? -ETIMEDOUT : -EPIPE;
  }
  for (int i = 0; i < n; i++) {
    if (i == 0 && fd_out) *fd_out = fds[i];
    else close(fds[i]);
  }
  return rep->result;
}

// ---------------------------------------------------------------- discovery

namespace {

// Connect to (or reuse our connection to) the service at path.
int conn_for(const std::string &path, std::shared_ptr<ServiceConn> *out) {
  std::lock_guard<std::mutex> g(g_mu);
  auto it = conns().find(path);
  if (it != conns().end()) {
    if (auto c = it->second.lock()) {
      if (c->alive() == 0) {
        *out = std::move(c);
        return 0;
      }
    }
    conns().erase(it);
  }
  std::shared_ptr<ServiceConn> c;
  int r = ServiceConn::open(path, &c);
  if (r < 0) return r;
  conns()[path] = c;
  *out = std::move(c);
  return 0;
}

}  // namespace

int service_for(const char *mp, std::shared_ptr<ServiceConn> *out) {
  out->reset();
  std::string spec;
  {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = overrides().find(mp);
    if (it != overrides().end()) spec = it->second;
  }
  if (spec.empty()) {
    const char *e = getenv("USRBIO_SERVICE");
    spec = e && *e ? e : "auto";
  }
  if (spec == "off") return 0;
  if (spec != "auto") return conn_for(spec, out);  // an explicit socket: it must work
  char *rp = realpath(mp, nullptr);
  if (!rp) return 0;  // the caller reports the directory's own error
  std::string p = rp;
  free(rp);
  // The directory or its nearest ancestor with a live service.
  for (;;) {
    std::string sock = svc_socket_path(p);
    struct stat st;
    if (!sock.empty() && lstat(sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      int r = conn_for(sock, out);
      if (r == 0) return 0;
      if (r != -ECONNREFUSED && r != -ENOENT && r != -EACCES) return r;  // e.g. -EUSERS: it runs but refuses
    }
    if (p == "/") return 0;
    size_t slash = p.rfind('/');
    p.resize(slash == 0 ? 1 : slash);
  }
}

// ---------------------------------------------------------------- iovs and rings

namespace {

struct ServiceIov final : ClientIov {
  std::shared_ptr<ServiceConn> conn;
  std::shared_ptr<Mapping> map;
  uint8_t id[16];
  bool registered = false;  // the service holds a reference for us
  ~ServiceIov() override {
    if (!registered) return;
    SvcReq q = make_req(kOpRemoveIov);
    memcpy(q.id, id, 16);
    SvcRep rep;
    conn->request(q, -1, &rep, nullptr);  // a dead service has dropped it already
  }
};

class ServiceRing final : public ClientRing {
 public:
  ServiceRing(std::shared_ptr<Mapping> map, int entries, bool for_read, std::shared_ptr<ServiceConn> conn)
      : ClientRing(std::move(map), entries, for_read),
        conn_(std::move(conn)),
        health_(reinterpret_cast<int32_t *>(map_->base + svc_health_offset(entries))) {}
  ~ServiceRing() override {
    if (!handle_) return;
    SvcReq q = make_req(kOpRemoveRing);
    q.a[0] = int64_t(handle_);
    SvcRep rep;
    conn_->request(q, -1, &rep, nullptr);
  }
  int attach(const RingParams &p) {
    v.sqeHead().store(0);
    v.cqeTail().store(0);
    SvcReq q = make_req(kOpAddRing);
    q.a[0] = p.entries;
    q.a[1] = p.for_read;
    q.a[2] = p.io_depth;
    q.a[3] = p.timeout;
    q.a[4] = p.priority;
    q.a[5] = int64_t(p.flags);
    SvcRep rep;
    int64_t r = conn_->request(q, map_->fd, &rep, nullptr);
    if (r < 0) return int(r);
    handle_ = uint64_t(rep.v[0]);
    return 0;
  }
  // Preparing thread only. Passes the file to the service on first use (or when it was last
  // passed to another service); the handle of the last file is cached as in LocalRing.
  int file_iid(RegFd &rec, uint64_t *iid) override {
    if (conn_->dead()) return -EPIPE;  // the service is gone, or a ring inherited across fork()
    uint32_t moves = rec.moves.load(std::memory_order_acquire);
    if (rec.serial == cached_serial_ && moves == cached_moves_) {
      *iid = cached_iid_;
      return 0;
    }
    std::lock_guard<std::mutex> g(rec.mu);
    auto cur = rec.svc.lock();
    if (cur != conn_) {
      SvcReq q = make_req(kOpAddFile);
      SvcRep rep;
      int64_t r = conn_->request(q, rec.dupfd, &rep, nullptr);
      if (r < 0) return int(r);
      if (cur) service_remove_file(*cur, rec.svc_handle);
      rec.svc = conn_;
      rec.svc_handle = uint64_t(rep.v[0]);
      rec.moves.fetch_add(1, std::memory_order_release);
    }
    *iid = rec.svc_handle;
    cached_serial_ = rec.serial;
    cached_moves_ = rec.moves.load(std::memory_order_relaxed);
    cached_iid_ = rec.svc_handle;
    return 0;
  }
  void notify() override { conn_->kick(); }
  // The ring's health word (written by the service's agent: -EIO fenced, -EPIPE stopped), then
  // the connection (a service killed outright writes nothing).
  int alive() override {
    int h = std::atomic_ref<int32_t>(*health_).load(std::memory_order_relaxed);
    if (h < 0) return h;
    return conn_->alive();
  }

 private:
  std::shared_ptr<ServiceConn> conn_;
  int32_t *health_;
  uint64_t handle_ = 0;
  uint64_t cached_serial_ = 0;
  uint32_t cached_moves_ = 0;
  uint64_t cached_iid_ = 0;
};

}  // namespace

void service_remove_file(ServiceConn &c, uint64_t handle) {
  SvcReq q = make_req(kOpRemoveFile);
  q.a[0] = int64_t(handle);
  SvcRep rep;
  c.request(q, -1, &rep, nullptr);
}

int service_iovcreate(const std::shared_ptr<ServiceConn> &c, hf3fs_iov *iov, const char *mp, size_t size,
                      size_t block_size, int numa) {
  std::shared_ptr<Mapping> map;
  int r = shm_create_memfd("hf3fs-iov", size, numa, &map);  // sealed against shrinking
  if (r < 0) return r;
  if (env_long("USRBIO_IOV_POPULATE", 1) != 0) madvise(map->base, size, 23 /* MADV_POPULATE_WRITE */);
  auto *h = new ServiceIov;
  h->conn = c;
  h->map = map;
  random_uuid(h->id);
  SvcReq q = make_req(kOpAddIov);
  memcpy(q.id, h->id, 16);
  q.a[0] = int64_t(size);
  q.a[1] = int64_t(block_size);
  SvcRep rep;
  int64_t rr = c->request(q, map->fd, &rep, nullptr);
  if (rr < 0) {
    delete h;
    return int(rr);
  }
  h->registered = true;
  fill_iov(iov, map->base, h, h->id, mp, size, block_size, numa);
  return 0;
}

int service_iovopen(const std::shared_ptr<ServiceConn> &c, hf3fs_iov *iov, const uint8_t id[16], const char *mp,
                    size_t size, size_t block_size, int numa) {
  SvcReq q = make_req(kOpOpenIov);
  memcpy(q.id, id, 16);
  q.a[0] = int64_t(size);
  q.a[1] = int64_t(block_size);
  SvcRep rep;
  int fd = -1;
  int64_t r = c->request(q, -1, &rep, &fd);
  if (r < 0) return int(r);
  if (fd < 0) return -EPROTO;
  std::shared_ptr<Mapping> map;
  int m = map_received(fd, size, &map);
  auto *h = new ServiceIov;  // its destructor releases the service's reference on failure
  h->conn = c;
  h->registered = true;
  memcpy(h->id, id, 16);
  if (m < 0) {
    delete h;
    return m;
  }
  m = numa_bind(map->base, size, numa);
  if (m < 0) {
    delete h;
    return m;
  }
  h->map = map;
  fill_iov(iov, map->base, h, id, mp, size, block_size, numa);
  return 0;
}

int service_iorcreate(const std::shared_ptr<ServiceConn> &c, hf3fs_ior *ior, const char *mp, const RingParams &p) {
  std::shared_ptr<Mapping> map;
  int r = shm_create_memfd("hf3fs-ior", ring_bytes(size_t(p.entries)), p.numa, &map);
  if (r < 0) return r;
  auto *ring = new ServiceRing(map, p.entries, p.for_read, c);
  return attach_and_fill(ior, ring, map->base, map->size, mp, p);
}

}  // namespace usrbio

using namespace usrbio;

USRBIO_API int usrbio_service_socket(const char *dir, char *out, size_t out_size) {
  if (!dir || !out || out_size == 0) return -EINVAL;
  char *rp = realpath(dir, nullptr);
  if (!rp) return -errno;
  std::string s = svc_socket_path(rp);
  free(rp);
  if (s.empty()) return -ENAMETOOLONG;
  if (s.size() + 1 > out_size) return -ERANGE;
  memcpy(out, s.c_str(), s.size() + 1);
  return 0;
}

USRBIO_API int usrbio_service_override(const char *mount_point, const char *spec) {
  if (!mount_point || !*mount_point || strlen(mount_point) >= 256) return -EINVAL;
  if (spec && (!*spec || strlen(spec) >= 108)) return -EINVAL;
  std::lock_guard<std::mutex> g(g_mu);
  if (!spec) {
    overrides().erase(mount_point);
    return 0;
  }
  if (!overrides().count(mount_point) && overrides().size() >= 64) return -ENOSPC;
  overrides()[mount_point] = spec;
  return 0;
}

USRBIO_API int usrbio_service_query(const char *path, struct usrbio_service_stats *out) {
  if (!path || !out) return -EINVAL;
  std::string sock;
  struct stat st;
  if (stat(path, &st) != 0) return -errno;
  if (S_ISSOCK(st.st_mode)) {
    sock = path;
  } else {
    char *rp = realpath(path, nullptr);
    if (!rp) return -errno;
    std::string p = rp;
    free(rp);
    for (;;) {
      std::string s = svc_socket_path(p);
      struct stat ss;
      if (!s.empty() && lstat(s.c_str(), &ss) == 0 && S_ISSOCK(ss.st_mode)) {
        sock = s;
        break;
      }
      if (p == "/") return -ESRCH;
      size_t slash = p.rfind('/');
      p.resize(slash == 0 ? 1 : slash);
    }
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (sock.size() >= sizeof sa.sun_path) {
    close(fd);
    return -ENAMETOOLONG;
  }
  memcpy(sa.sun_path, sock.c_str(), sock.size() + 1);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int r = 0;
  if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
    r = errno == ECONNREFUSED ? -ESRCH : -errno;  // a stale socket: no service
  } else {
    SvcReq q = make_req(kOpStats);
    SvcRep rep;
    int fds[2], n = 0;
    r = svc_send(fd, &q, sizeof q, nullptr, 0);
    if (r == 0) {
      long got = svc_recv(fd, &rep, sizeof rep, fds, 2, &n, 0);
      for (int i = 0; i < n; i++) close(fds[i]);
      if (got != long(sizeof rep) || rep.magic != kSvcMagic) r = got < 0 && got != -EAGAIN ? int(got) : -EPROTO;
      else if (rep.result < 0) r = int(rep.result);
      else *out = rep.stats;
    }
  }
  close(fd);
  return r;
}
