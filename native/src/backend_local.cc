// backend_local.cc - local directories, served by an agent embedded in this process.
//
// The embedded host starts the agent on the first iov or ring and stops it when the last one
// is destroyed, or at process exit.
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <mutex>

#include "agent.h"
#include "backend.h"
#include "client.h"
#include "regfd.h"
#include "service_client.h"
#include "usrbio_ext.h"
#include "util.h"

namespace usrbio {
namespace {

void after_fork_child();

class EmbeddedHost {
 public:
  // Take a reference on the agent, starting it if needed. Returns 0 or -errno.
  int acquire(std::shared_ptr<Agent> *out) {
    std::lock_guard<std::mutex> g(mu_);
    if (!agent_) {
      AgentOptions o;
      int r = Agent::create(o, &agent_);
      if (r < 0) return r;
      static std::once_flag once;
      std::call_once(once, [] {
        atexit([] { host().shutdown(); });
        pthread_atfork(nullptr, nullptr, [] { usrbio::after_fork_child(); });
      });
    }
    users_++;
    *out = agent_;
    return 0;
  }
  // Drop a reference taken on `agent`; the last one stops it. References to an agent that
  // shutdown() already stopped are ignored.
  void release(const std::shared_ptr<Agent> &agent) {
    std::shared_ptr<Agent> stop;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (agent != agent_) return;
      if (users_ > 0 && --users_ == 0) stop = std::move(agent_);
    }
    if (stop) stop->stop();
  }
  // In a fork()ed child: the agent's threads exist only in the parent. Orphan it (rings and
  // iovs inherited from the parent report -EPIPE) and let the child start its own on next use.
  // Runs single-threaded in the child; the agent object is deliberately leaked.
  void after_fork_child() {
    new (&mu_) std::mutex();  // may have been held by a parent thread at fork time
    if (agent_) {
      agent_->orphan();
      new std::shared_ptr<Agent>(std::move(agent_));  // never destroyed: its threads are gone
    }
    agent_.reset();
    users_ = 0;
  }
  // Process exit: finish in-flight I/O and join the agent's threads.
  void shutdown() {
    std::shared_ptr<Agent> stop;
    {
      std::lock_guard<std::mutex> g(mu_);
      stop = std::move(agent_);
      users_ = 0;
    }
    if (stop) stop->stop();
  }
  std::shared_ptr<Agent> current() {
    std::lock_guard<std::mutex> g(mu_);
    return agent_;
  }
  static EmbeddedHost &host() {
    static EmbeddedHost *h = new EmbeddedHost;  // never destroyed: used from atexit
    return *h;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Agent> agent_;
  int users_ = 0;  // iovs + rings of this process on local mount points
};

EmbeddedHost &host() { return EmbeddedHost::host(); }

// An iov registered with the agent; shared by its creator and every iovopen of it.
struct LocalIovShared {
  uint8_t id[16];
  std::shared_ptr<Mapping> map;
  size_t block_size;
  std::shared_ptr<Agent> agent;
  int holders = 0;
};

std::mutex g_iovs_mu;
std::map<std::string, LocalIovShared *> &iov_registry() {
  static auto *m = new std::map<std::string, LocalIovShared *>;
  return *m;
}

// Child side of fork(): the agent and its iov registrations belong to the parent.
void after_fork_child() {
  new (&g_iovs_mu) std::mutex();
  iov_registry().clear();  // entries stay alive for the inherited LocalIovs (never freed here)
  host().after_fork_child();
}

struct LocalIov final : ClientIov {
  LocalIovShared *shared;
  explicit LocalIov(LocalIovShared *s) : shared(s) {}
  ~LocalIov() override {
    LocalIovShared *dead = nullptr;
    {
      std::lock_guard<std::mutex> g(g_iovs_mu);
      if (--shared->holders == 0) {
        iov_registry().erase(std::string(reinterpret_cast<char *>(shared->id), 16));
        dead = shared;
      }
    }
    if (dead) {
      dead->agent->remove_iov(dead->id, dead->map->external);  // caller memory: wait for its I/O
      host().release(dead->agent);
      delete dead;
    }
  }
  int memreg_state() override { return shared->agent->iov_memreg_state(shared->id); }
};

class LocalRing final : public ClientRing {
 public:
  LocalRing(std::shared_ptr<Mapping> map, int entries, bool for_read, std::shared_ptr<Agent> agent)
      : ClientRing(std::move(map), entries, for_read), agent_(std::move(agent)) {}
  ~LocalRing() override {
    if (ring_id_) agent_->remove_ring(ring_id_, map_->external);  // caller memory: wait for its I/O
    host().release(agent_);
  }
  int attach(const RingParams &p) {
    // The client owns sqeHead and cqeTail: start them at 0 (caller memory may hold anything).
    v.sqeHead().store(0);
    v.cqeTail().store(0);
    return agent_->add_ring(map_->base, map_->size, p.entries, p.for_read, p.io_depth, p.timeout, p.priority, p.flags,
                            map_, &ring_id_, &health_);
  }
  // Called by the preparing thread only. The handle of the last file is cached: it changes only
  // when the registration moves to another agent, which bumps rec.moves.
  int file_iid(RegFd &rec, uint64_t *iid) override {
    if (agent_->orphaned()) return -EPIPE;  // a ring inherited across fork()
    uint32_t moves = rec.moves.load(std::memory_order_acquire);
    if (rec.serial == cached_serial_ && moves == cached_moves_) {
      *iid = cached_iid_;
      return 0;
    }
    std::lock_guard<std::mutex> g(rec.mu);
    auto cur = rec.agent.lock();
    if (cur != agent_) {
      uint64_t h;
      int r = agent_->add_file(rec.dupfd, &h);
      if (r < 0) return r;
      if (cur) cur->remove_file(rec.agent_handle);
      rec.agent = agent_;
      rec.agent_handle = h;
      rec.moves.fetch_add(1, std::memory_order_release);
    }
    *iid = rec.agent_handle;
    cached_serial_ = rec.serial;
    cached_moves_ = rec.moves.load(std::memory_order_relaxed);
    cached_iid_ = rec.agent_handle;
    return 0;
  }
  void notify() override { agent_->doorbell().ring(); }
  int alive() override { return agent_->orphaned() ? -EPIPE : health_->load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<Agent> agent_;
  uint64_t ring_id_ = 0;
  std::shared_ptr<std::atomic<int>> health_;  // written by the agent: 0, -EIO fenced, -EPIPE stopped
  // file_iid cache (preparing thread only): the last registration's serial, moves and handle.
  uint64_t cached_serial_ = 0;
  uint32_t cached_moves_ = 0;
  uint64_t cached_iid_ = 0;
};

int check_dir(const char *mp) {
  struct stat st;
  if (stat(mp, &st) != 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

// Register `map` under `id` and fill iov. Takes an agent reference that the LocalIov releases.
int register_iov(hf3fs_iov *iov, std::shared_ptr<Mapping> map, const uint8_t id[16], const char *mp,
                 size_t block_size, int numa) {
  std::shared_ptr<Agent> agent;
  int r = host().acquire(&agent);
  if (r < 0) return r;
  r = agent->add_iov(id, map->base, map->size, block_size, map);
  if (r < 0) {
    host().release(agent);
    return r;
  }
  auto *s = new LocalIovShared;
  memcpy(s->id, id, 16);
  s->map = map;
  s->block_size = block_size;
  s->agent = agent;
  s->holders = 1;
  {
    std::lock_guard<std::mutex> g(g_iovs_mu);
    iov_registry()[std::string(reinterpret_cast<const char *>(id), 16)] = s;
  }
  fill_iov(iov, map->base, new LocalIov(s), id, mp, map->size, block_size, numa);
  return 0;
}

}  // namespace

std::shared_ptr<Agent> EmbeddedHost_current() { return host().current(); }

int local_iovcreate(hf3fs_iov *iov, const char *mp, size_t size, size_t block_size, int numa) {
  int r = check_dir(mp);
  if (r < 0) return r;
  std::shared_ptr<ServiceConn> svc;
  r = service_for(mp, &svc);
  if (r < 0) return r;
  if (svc) return service_iovcreate(svc, iov, mp, size, block_size, numa);
  std::shared_ptr<Mapping> map;
  r = shm_create_memfd("hf3fs-iov", size, numa, &map);
  if (r < 0) return r;
  // Fault the whole buffer in now, as 3FS's RDMA registration (which pins it) does. Otherwise the
  // first read into each 4 KiB page pays for allocating and zeroing it inside the executor, and
  // with io_uring that lands on the single dispatcher thread: 256 x 1 MiB into a fresh iov took
  // 7-16x as long as into a used one (see bench/README.md). USRBIO_IOV_POPULATE=0 skips it
  // (pages are then allocated on first use). Kernels without
  // MADV_POPULATE_WRITE (< 5.14) skip it.
  if (env_long("USRBIO_IOV_POPULATE", 1) != 0) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    // ENOMEM/EFAULT: the memory is not there (RAM, or a shmem limit). Anything else (EINVAL on
    // old kernels, EINTR) only loses the optimisation.
    if (madvise(map->base, size, MADV_POPULATE_WRITE) != 0 && (errno == ENOMEM || errno == EFAULT)) return -ENOMEM;
  }
  uint8_t id[16];
  random_uuid(id);
  return register_iov(iov, std::move(map), id, mp, block_size, numa);
}

int local_iovopen(hf3fs_iov *iov, const uint8_t id[16], const char *mp, size_t size, size_t block_size, int numa) {
  int r = check_dir(mp);
  if (r < 0) return r;
  std::shared_ptr<ServiceConn> svc;
  r = service_for(mp, &svc);
  if (r < 0) return r;
  if (svc) return service_iovopen(svc, iov, id, mp, size, block_size, numa);
  std::lock_guard<std::mutex> g(g_iovs_mu);
  auto it = iov_registry().find(std::string(reinterpret_cast<const char *>(id), 16));
  if (it == iov_registry().end()) return -ENOENT;
  LocalIovShared *s = it->second;
  if (s->map->size != size || s->block_size != block_size) return -EINVAL;
  s->holders++;
  fill_iov(iov, s->map->base, new LocalIov(s), id, mp, size, block_size, numa);
  return 0;
}

int local_iovwrap(hf3fs_iov *iov, void *buf, const uint8_t id[16], const char *mp, size_t size, size_t block_size,
                  int numa) {
  int r = check_dir(mp);
  if (r < 0) return r;
  std::shared_ptr<ServiceConn> svc;
  r = service_for(mp, &svc);
  if (r < 0) return r;
  if (svc) return -EOPNOTSUPP;  // caller memory cannot be shared with a service
  r = numa_bind(buf, size, numa);
  if (r < 0) return r;
  auto map = std::make_shared<Mapping>();
  map->base = static_cast<uint8_t *>(buf);
  map->size = size;
  map->external = true;
  return register_iov(iov, std::move(map), id, mp, block_size, numa);
}

static int attach_ring(hf3fs_ior *ior, const char *mp, std::shared_ptr<Mapping> map, const RingParams &p) {
  int r;
  std::shared_ptr<Agent> agent;
  r = host().acquire(&agent);
  if (r < 0) return r;
  auto *ring = new LocalRing(map, p.entries, p.for_read, agent);  // releases the host reference
  return attach_and_fill(ior, ring, map->base, map->size, mp, p);
}

int local_iorcreate(hf3fs_ior *ior, const char *mp, const RingParams &p) {
  int r = check_dir(mp);
  if (r < 0) return r;
  std::shared_ptr<ServiceConn> svc;
  r = service_for(mp, &svc);
  if (r < 0) return r;
  if (svc) return service_iorcreate(svc, ior, mp, p);
  std::shared_ptr<Mapping> map;
  r = shm_create_memfd("hf3fs-ior", ring_bytes(size_t(p.entries)), p.numa, &map);
  if (r < 0) return r;
  return attach_ring(ior, mp, std::move(map), p);
}

int local_iorwrap(hf3fs_ior *ior, void *buf, const char *mp, size_t size, const RingParams &p) {
  int r = check_dir(mp);
  if (r < 0) return r;
  std::shared_ptr<ServiceConn> svc;
  r = service_for(mp, &svc);
  if (r < 0) return r;
  if (svc) return -EOPNOTSUPP;  // caller memory cannot be shared with a service
  auto map = std::make_shared<Mapping>();
  map->base = static_cast<uint8_t *>(buf);
  map->size = size;
  map->external = true;
  return attach_ring(ior, mp, std::move(map), p);
}

}  // namespace usrbio

USRBIO_API int usrbio_get_agent_stats(struct usrbio_agent_stats *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  auto a = usrbio::EmbeddedHost_current();
  if (!a) {
    snprintf(out->executor, sizeof out->executor, "none");
    return 0;
  }
  usrbio::AgentStats s;
  a->stats(&s);
  s.copy_counts(out);
  snprintf(out->executor, sizeof out->executor, "%s", s.executor);
  return 0;
}
