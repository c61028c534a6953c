// exec_uring.cc - the io_uring executor, on raw system calls (no liburing).
//
// The dispatcher thread owns one io_uring: it claims batches, queues their chunks as SQEs,
// submits and reaps in one io_uring_enter per loop turn, and sleeps in io_uring_enter with a
// read of the doorbell eventfd armed, so a client's submit or a deadline wakes it.
#include <sched.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "agent.h"
#include "util.h"

namespace usrbio {
namespace {

constexpr uint64_t kDoorbellTag = 1;  // user_data of the eventfd read (chunks are aligned pointers)

int sys_setup(unsigned entries, io_uring_params *p) { return int(syscall(__NR_io_uring_setup, entries, p)); }
int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void *arg, size_t argsz) {
  return int(syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz));
}

class UringExecutor final : public Executor {
 public:
  explicit UringExecutor(Agent *a) : a_(a) {}

  ~UringExecutor() override {
    if (sqes_) munmap(sqes_, sqes_bytes_);
    if (cq_map_ && cq_map_ != sq_map_) munmap(cq_map_, cq_bytes_);
    if (sq_map_) munmap(sq_map_, sq_bytes_);
    if (fd_ >= 0) close(fd_);
  }

  int init(unsigned entries) {
    io_uring_params p;
    int fd = -1;
    // Prefer single-issuer + deferred task work (6.1+): completions run only when we ask.
    // The ring is created disabled and enabled by the dispatcher thread, which becomes its issuer.
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED,
        IORING_SETUP_CQSIZE | IORING_SETUP_R_DISABLED, 0};
    for (unsigned flags : tries) {
      memset(&p, 0, sizeof p);
      p.flags = flags;
      p.cq_entries = entries * 2;
      fd = sys_setup(entries, &p);
      if (fd >= 0) break;
      if (errno != EINVAL) return -errno;
    }
    if (fd < 0) return -errno;
    fd_ = fd;
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) return -ENOSYS;
    deferred_ = p.flags & IORING_SETUP_DEFER_TASKRUN;
    disabled_ = p.flags & IORING_SETUP_R_DISABLED;
    sq_bytes_ = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    cq_bytes_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) sq_bytes_ = cq_bytes_ = std::max(sq_bytes_, cq_bytes_);
    sq_map_ = mmap(nullptr, sq_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (sq_map_ == MAP_FAILED) {
      sq_map_ = nullptr;
      return -errno;
    }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
      cq_map_ = sq_map_;
    } else {
      cq_map_ = mmap(nullptr, cq_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
      if (cq_map_ == MAP_FAILED) {
        cq_map_ = nullptr;
        return -errno;
      }
    }
    sqes_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
    void *s = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (s == MAP_FAILED) return -errno;
    sqes_ = static_cast<io_uring_sqe *>(s);
    auto *sq = static_cast<uint8_t *>(sq_map_);
    auto *cq = static_cast<uint8_t *>(cq_map_);
    sq_head_ = reinterpret_cast<unsigned *>(sq + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned *>(sq + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned *>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned *>(sq + p.sq_off.array);
    sq_entries_ = p.sq_entries;
    cq_head_ = reinterpret_cast<unsigned *>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned *>(cq + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned *>(cq + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe *>(cq + p.cq_off.cqes);
    cq_entries_ = p.cq_entries;
    local_tail_ = *sq_tail_;
    return 0;
  }

  const char *name() const override { return "io_uring"; }

  void wake() override { a_->doorbell().kick(); }

  // On the dispatcher thread: a ring created disabled is enabled here, making this thread its
  // single issuer.
  int prepare() override {
    if (disabled_ && syscall(__NR_io_uring_register, fd_, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) != 0) return -errno;
    return 0;
  }

  void run() override {
    Doorbell &db = a_->doorbell();
    std::vector<Batch *> batches;
    const uint64_t spin_ns = uint64_t(a_->options().spin_us) * 1000;
    uint64_t idle_since = 0;
    for (;;) {
      bool progress = false;
      batches.clear();
      if (a_->claim(batches)) {
        for (Batch *b : batches) a_->start_batch_q(b, backlog_);
        progress = true;
      }
      fill_sq();
      unsigned to_submit = local_tail_ - submitted_;
      if (to_submit || (inkernel_ && deferred_)) enter(to_submit, 0, nullptr);
      if (reap()) progress = true;
      if (progress) {
        idle_since = 0;
        continue;
      }
      if (a_->stopping() && a_->inflight() == 0 && backlog_.empty()) break;
      uint64_t now = now_ns();
      if (!idle_since) idle_since = now;
      if (inkernel_ == 0 && !a_->stopping() && now - idle_since < spin_ns) {
        sched_yield();  // not a bare pause: on a small machine the client threads need this CPU
        continue;
      }
      // Sleep: announce it, look once more, then wait for a completion, the doorbell or a deadline.
      db.sleeping.store(1, std::memory_order_seq_cst);
      batches.clear();
      if (a_->claim(batches)) {
        db.sleeping.store(0, std::memory_order_relaxed);
        for (Batch *b : batches) a_->start_batch_q(b, backlog_);
        idle_since = 0;
        continue;
      }
      if (!armed_) arm_doorbell();
      uint64_t timeout_ns = uint64_t(a_->options().scan_interval_ms) * 1000000ull;
      if (uint64_t d = a_->next_deadline()) {
        uint64_t n2 = now_ns();
        timeout_ns = d <= n2 ? 0 : std::min(timeout_ns, d - n2);
      }
      if (a_->stopping()) timeout_ns = std::min<uint64_t>(timeout_ns, 1000000);
      __kernel_timespec ts{int64_t(timeout_ns / 1000000000ull), int64_t(timeout_ns % 1000000000ull)};
      enter(local_tail_ - submitted_, 1, &ts);
      db.sleeping.store(0, std::memory_order_relaxed);
      reap();
      idle_since = 0;
    }
  }

 private:
  io_uring_sqe *get_sqe() {
    unsigned head = std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire);
    if (local_tail_ - head >= sq_entries_) return nullptr;
    io_uring_sqe *s = &sqes_[local_tail_ & sq_mask_];
    memset(s, 0, sizeof *s);
    sq_array_[local_tail_ & sq_mask_] = local_tail_ & sq_mask_;
    local_tail_++;
    return s;
  }

  void publish() { std::atomic_ref<unsigned>(*sq_tail_).store(local_tail_, std::memory_order_release); }

  // Move chunks from the backlog into the SQ while both queues have room. Large chunks go to
  // the copy pool instead: io_uring runs a buffered transfer of cached pages inline in this
  // thread's io_uring_enter, one memcpy at a time, while the pool copies on every core (1 MiB
  // page-cached reads: about 2x on 2 cores).
  void fill_sq() {
    while (!backlog_.empty()) {
      Chunk *c = backlog_.front();
      if (big_bytes_ && c->len - c->done >= big_bytes_) {
        backlog_.pop_front();
        if (!big_) big_ = std::make_unique<ChunkPool>(a_, big_threads());
        big_q_.push_back(c);
        continue;
      }
      if (inkernel_ + 2 >= cq_entries_) break;
      io_uring_sqe *s = get_sqe();
      if (!s) break;
      backlog_.pop_front();
      Io &io = *c->io;
      s->opcode = io.write ? IORING_OP_WRITE : IORING_OP_READ;
      s->fd = io.fd;
      s->off = c->off + c->done;
      s->addr = reinterpret_cast<uint64_t>(c->buf + c->done);
      s->len = unsigned(c->len - c->done);
      s->user_data = reinterpret_cast<uint64_t>(c);
      inkernel_++;
    }
    publish();
    if (!big_q_.empty()) big_->push(big_q_);
  }

  // The copy pool's size: two threads per core (a copy can block on a page fault), 4..16.
  static int big_threads() { return int(std::clamp<long>(2 * sysconf(_SC_NPROCESSORS_ONLN), 4, 16)); }

  void arm_doorbell() {
    io_uring_sqe *s = get_sqe();
    if (!s) return;  // SQ full: the next loop turn submits and frees room
    s->opcode = IORING_OP_READ;
    s->fd = a_->doorbell().efd;
    s->off = uint64_t(-1);
    s->addr = reinterpret_cast<uint64_t>(&efd_value_);
    s->len = sizeof efd_value_;
    s->user_data = kDoorbellTag;
    armed_ = true;
    publish();
  }

  void enter(unsigned to_submit, unsigned min_complete, __kernel_timespec *ts) {
    io_uring_getevents_arg arg{};
    arg.sigmask = 0;
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<uint64_t>(ts);
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    int r = sys_enter(fd_, to_submit, min_complete, flags, &arg, sizeof arg);
    if (r < 0 && errno != ETIME && errno != EINTR && errno != EAGAIN && errno != EBUSY)
      ULOG_WARN("io_uring_enter: %s", strerror(errno));
    // What the kernel consumed is what the SQ head says (including partial submissions).
    submitted_ = std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire);
  }

  // Reap every available CQE. Returns how many chunk CQEs were seen.
  unsigned reap() {
    unsigned head = *cq_head_;
    unsigned tail = std::atomic_ref<unsigned>(*cq_tail_).load(std::memory_order_acquire);
    unsigned seen = 0;
    for (; head != tail; head++) {
      io_uring_cqe *cqe = &cqes_[head & cq_mask_];
      uint64_t ud = cqe->user_data;
      int32_t res = cqe->res;
      if (ud == kDoorbellTag) {
        armed_ = false;
        continue;
      }
      seen++;
      inkernel_--;
      on_result(reinterpret_cast<Chunk *>(ud), res);
    }
    std::atomic_ref<unsigned>(*cq_head_).store(head, std::memory_order_release);
    return seen;
  }

  void on_result(Chunk *c, int32_t res) {
    Io &io = *c->io;
    if (res < 0) {
      if ((res == -EAGAIN || res == -EINTR) && ++c->retries < kMaxIoRetries) {
        backlog_.push_front(c);
        return;
      }
      finish(c, res);
      return;
    }
    if (res == 0) {
      if (!io.write) {
        finish(c, int64_t(c->done));  // EOF
        return;
      }
      if (++c->retries < kMaxIoRetries) {
        backlog_.push_front(c);
        return;
      }
      finish(c, -EIO);
      return;
    }
    c->done += uint64_t(res);
    if (c->done < c->len) {
      backlog_.push_front(c);  // short transfer: continue where it stopped (EOF shows as 0 next)
      return;
    }
    finish(c, int64_t(c->done));
  }

  // A chunk is final; queue the I/O's next piece, if it has one.
  void finish(Chunk *c, int64_t res) {
    if (Chunk *next = a_->chunk_done(c, res)) backlog_.push_back(next);
  }

  Agent *a_;
  int fd_ = -1;
  void *sq_map_ = nullptr, *cq_map_ = nullptr;
  size_t sq_bytes_ = 0, cq_bytes_ = 0, sqes_bytes_ = 0;
  io_uring_sqe *sqes_ = nullptr;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr;
  unsigned sq_mask_ = 0, sq_entries_ = 0;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned cq_mask_ = 0, cq_entries_ = 0;
  io_uring_cqe *cqes_ = nullptr;
  unsigned local_tail_ = 0;  // SQ tail including SQEs not yet published
  unsigned submitted_ = 0;   // SQ head as last seen: SQEs the kernel has consumed
  unsigned inkernel_ = 0;    // chunk SQEs queued or in flight (CQE not yet reaped)
  bool deferred_ = false;
  bool disabled_ = false;    // created with R_DISABLED: run() enables it
  bool armed_ = false;       // a doorbell read is in the ring
  uint64_t efd_value_ = 0;
  std::deque<Chunk *> backlog_;  // chunks waiting for SQ/CQ room; bounded by the in-flight budget
  // Chunks of at least big_bytes_ (USRBIO_URING_POOL_BYTES, default 256 KiB, 0 = never) go to
  // big_, made on first use; big_q_ only carries them from fill_sq to it.
  const uint64_t big_bytes_ = uint64_t(std::clamp<long>(env_long("USRBIO_URING_POOL_BYTES", 256 * 1024), 0, 1L << 30));
  std::unique_ptr<ChunkPool> big_;
  std::deque<Chunk *> big_q_;
};

}  // namespace

int create_uring_executor(Agent *agent, std::unique_ptr<Executor> *out) {
  auto e = std::make_unique<UringExecutor>(agent);
  int r = e->init(agent->options().uring_entries);
  if (r < 0) return r;
  *out = std::move(e);
  return 0;
}

}  // namespace usrbio
