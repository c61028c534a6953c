// client.h - the client side of a ring and an iov, shared by the local and 3FS backends.
#pragma once
#include <semaphore.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <queue>
#include <vector>

#include "hf3fs_usrbio.h"
#include "ring_layout.h"
#include "shm.h"
#include "util.h"

namespace usrbio {

struct RegFd;

// Slot allocation, lowest free index first. alloc/free may run on different threads.
class SlotAlloc {
 public:
  explicit SlotAlloc(int cap) : cap_(cap), used_(size_t(cap), 0) {}
  // Returns the lowest free slot, or -1 when all `cap` slots are in use.
  int alloc();
  // Free slots reaped from completions; out-of-range or free slots are ignored.
  void free_many(const int32_t *slots, int n);

 private:
  std::mutex mu_;
  int cap_;
  int bump_ = 0;  // slots >= bump_ were never handed out
  std::priority_queue<int, std::vector<int>, std::greater<int>> freed_;  // all < bump_
  std::vector<uint8_t> used_;
};

// iovh: what the library keeps for an iov it created, opened or (locally) wrapped.
struct ClientIov {
  virtual ~ClientIov() = default;
  virtual void unlink() {}
  virtual int memreg_state() { return 0; }
};

// iorh: a ring as the client sees it. Backends supply how files are named to the executor and
// how it is woken.
class ClientRing {
 public:
  ClientRing(std::shared_ptr<Mapping> map, int entries, bool for_read)
      : map_(std::move(map)),
        v(map_->base, entries),
        entries(entries),
        for_read(for_read),
        slots(entries),
        slot_files_(size_t(entries)) {}
  virtual ~ClientRing() = default;

  // The fileIid the executor knows `rec` by; 0 and *iid, or -errno.
  virtual int file_iid(RegFd &rec, uint64_t *iid) = 0;
  // Wake the executor: new sqes were published or cqe space was freed.
  virtual void notify() = 0;
  // 0 while the executor serving this ring is alive, else -errno (-EPIPE).
  virtual int alive() { return 0; }
  // Longest single sleep in wait_for_ios, in ms.
  virtual long wait_slice_ms() { return 100; }

  int prep(const hf3fs_iov *iov, bool read, void *ptr, int fd, size_t off, uint64_t len, const void *userdata);
  int wait(hf3fs_cqe *cqes, int cqec, int min_results, const timespec *abs_timeout);

 protected:
  std::shared_ptr<Mapping> map_;

 public:
  RingView v;
  const int entries;
  const bool for_read;

 private:
  SlotAlloc slots;
  // wait_for_ios polls this long before sleeping (env USRBIO_WAIT_SPIN_US, default 20, 0..10000).
  const uint64_t spin_ns_ = uint64_t(std::clamp(env_long("USRBIO_WAIT_SPIN_US", 20), 0L, 10000L)) * 1000;
  // The registration each prepared slot uses, held until the slot is reaped, so that
  // hf3fs_dereg_fd does not pull the file from under I/Os already prepared.
  std::vector<std::shared_ptr<RegFd>> slot_files_;
  int32_t sqe_head_ = 0;  // private copy of sqeHead (the preparing thread's)
  std::mutex reap_mu_;    // several waiters on one ring are tolerated
};

}  // namespace usrbio
