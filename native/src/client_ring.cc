#include <fcntl.h>
#include <sched.h>

#include <cerrno>
#include <cstring>

#include "backend.h"
#include "client.h"
#include "regfd.h"
#include "util.h"

namespace usrbio {

void fill_iov(hf3fs_iov *iov, uint8_t *base, ClientIov *h, const uint8_t id[16], const char *mp, size_t size,
              size_t block_size, int numa) {
  memset(iov, 0, sizeof *iov);
  iov->base = base;
  iov->iovh = h;
  memcpy(iov->id, id, 16);
  strncpy(iov->mount_point, mp, sizeof iov->mount_point - 1);
  iov->size = size;
  iov->block_size = block_size;
  iov->numa = numa;
}

void fill_ior(hf3fs_ior *ior, ClientRing *ring, uint8_t *base, size_t size, const uint8_t id[16], const char *mp,
              const RingParams &p) {
  memset(ior, 0, sizeof *ior);
  fill_iov(&ior->iov, base, nullptr, id, mp, size, 0, p.numa);
  ior->iorh = ring;
  strncpy(ior->mount_point, mp, sizeof ior->mount_point - 1);
  ior->for_read = p.for_read;
  ior->io_depth = p.io_depth;
  ior->priority = p.priority;
  ior->timeout = p.timeout;
  ior->flags = p.flags;
}

int SlotAlloc::alloc() {
  std::lock_guard<std::mutex> g(mu_);
  if (!freed_.empty()) {
    int s = freed_.top();
    freed_.pop();
    used_[size_t(s)] = 1;
    return s;
  }
  if (bump_ < cap_) {
    used_[size_t(bump_)] = 1;
    return bump_++;
  }
  return -1;
}

void SlotAlloc::free_many(const int32_t *slots, int n) {
  std::lock_guard<std::mutex> g(mu_);
  for (int i = 0; i < n; i++) {
    int s = slots[i];
    if (s < 0 || s >= bump_ || !used_[size_t(s)]) continue;
    used_[size_t(s)] = 0;
    freed_.push(s);
  }
}

int ClientRing::prep(const hf3fs_iov *iov, bool read, void *ptr, int fd, size_t off, uint64_t len,
                     const void *userdata) {
  if (read != for_read || !iov || !iov->base || len == 0 || !ptr) return -EINVAL;
  auto *p = static_cast<uint8_t *>(ptr);
  if (p < iov->base || size_t(p - iov->base) > iov->size || len > iov->size - size_t(p - iov->base)) return -EINVAL;
  if (fd == INT32_MIN) return -EINVAL;
  auto rec = regfd_lookup(fd);
  if (!rec) return -EBADF;
  if ((read && rec->accmode == O_WRONLY) || (!read && rec->accmode == O_RDONLY)) return -EACCES;
  uint64_t iid;
  int r = file_iid(*rec, &iid);
  if (r < 0) return r;
  int slot = slots.alloc();
  if (slot < 0) return -EAGAIN;
  const int E = v.E;
  int32_t next = (sqe_head_ + 1) % E;
  if (next == v.sqeTail().load()) {
    // The sqe positions are still held by an earlier batch that has not retired.
    int32_t s = slot;
    slots.free_many(&s, 1);
    return -EAGAIN;
  }
  IoArgs &a = v.args()[slot];
  memcpy(a.bufId, iov->id, 16);
  a.bufOff = uint64_t(p - iov->base);
  a.fileIid = iid;
  a.fileOff = off;
  a.ioLen = len;
  a.userdata = userdata;
  IoSqe &s = v.sqes()[sqe_head_];
  s.index = slot;
  s.pad = 0;
  s.userdata = userdata;
  slot_files_[size_t(slot)] = std::move(rec);
  sqe_head_ = next;
  v.sqeHead().store(next);  // seq_cst: publishes the entries above
  return slot;
}

static bool passed(const timespec *abs) {
  if (!abs) return false;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return now.tv_sec > abs->tv_sec || (now.tv_sec == abs->tv_sec && now.tv_nsec >= abs->tv_nsec);
}

int ClientRing::wait(hf3fs_cqe *cqes, int cqec, int min_results, const timespec *abs_timeout) {
  if (!cqes || cqec <= 0) return -EINVAL;
  if (abs_timeout && (abs_timeout->tv_nsec < 0 || abs_timeout->tv_nsec >= 1000000000L)) return -EINVAL;
  if (min_results > cqec) min_results = cqec;
  if (min_results < 0) min_results = 0;
  const int E = v.E;
  int filled = 0;
  bool spun = false;  // polled since the last sleep
  int32_t freed[256];
  for (;;) {
    int got = 0;
    {
      std::lock_guard<std::mutex> g(reap_mu_);
      int32_t head = v.cqeHead().load();
      int32_t tail = v.cqeTail().load();
      if (head < 0 || head >= E || tail < 0 || tail >= E) return filled ? filled : -EIO;
      int nf = 0;
      while (filled < cqec && tail != head) {
        const IoCqe &c = v.cqes()[tail];
        cqes[filled].index = c.index;
        cqes[filled].reserved = 0;
        cqes[filled].result = c.result;
        cqes[filled].userdata = c.userdata;
        if (c.index >= 0 && c.index < entries) slot_files_[size_t(c.index)].reset();  // before the slot is freed
        freed[nf++] = c.index;
        filled++;
        got++;
        tail = (tail + 1) % E;
        if (nf == int(sizeof freed / sizeof freed[0])) {
          v.cqeTail().store(tail);
          slots.free_many(freed, nf);
          nf = 0;
        }
      }
      if (got) {
        v.cqeTail().store(tail);
        slots.free_many(freed, nf);
      }
    }
    if (got) {
      notify();  // cqe space was freed
      continue;
    }
    if (filled >= min_results || passed(abs_timeout)) return filled;
    int a = alive();
    if (a < 0) return filled ? filled : a;
    // Poll briefly before sleeping: at low queue depth the completion is usually microseconds
    // away, and a semaphore sleep and wake costs more than that. The poll yields the CPU, so on
    // a small machine it does not starve the threads that produce the completion.
    if (spin_ns_ && !spun) {
      spun = true;
      uint64_t until = now_ns() + spin_ns_;
      int32_t tail = v.cqeTail().load();
      while (v.cqeHead().load(std::memory_order_acquire) == tail && now_ns() < until) sched_yield();
      continue;
    }
    spun = false;
    timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long slice = wait_slice_ms();
    until.tv_sec += slice / 1000;
    until.tv_nsec += (slice % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    if (abs_timeout && (abs_timeout->tv_sec < until.tv_sec ||
                        (abs_timeout->tv_sec == until.tv_sec && abs_timeout->tv_nsec < until.tv_nsec)))
      until = *abs_timeout;
    sem_timedwait(v.sem(), &until);  // result ignored: we re-check the ring either way
  }
}

}  // namespace usrbio
