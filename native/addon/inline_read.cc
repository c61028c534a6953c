// inline_read.cc - page-cache reads on the calling JS thread, many per system call.
//
// readNow (one preadv2(RWF_NOWAIT)) and readBatch (n such reads): the engine's inline path
// (src/engine/engine.ts, #inlineOk). A system call costs about 1 us on a VM; n 4 KiB reads in
// one io_uring_enter cost 1.5 us each at n = 4 and 1.1 us at n = 16, against 2.6 us alone. Each
// environment (main thread, worker) has its own small io_uring, made on the first batch of two
// or more; where io_uring is refused (or USRBIO_INLINE_URING=0) a batch is n preadv2 calls.
// Every read carries RWF_NOWAIT, so io_uring never hands one to a kernel worker: a range the
// page cache does not hold whole comes back short or -EAGAIN, and the engine sends it to a ring.
//
// A batch of kHelperMin reads or more is shared with the environment's BatchHelper thread where
// the process may run on two CPUs or more: both threads take chunks (half the batch, at most
// BatchHelper::kChunk reads) until none is left, and readBatch returns when every chunk is done. Most of an inline read's time is
// the kernel's copy from the page cache (4 KiB reads at concurrency 64: 64% of the JS thread in
// the kernel, a third of it in _copy_to_iter), so the second CPU halves that part.
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "addon.h"

namespace usrbio_addon {

constexpr int kHelperMin = 4;  // the smallest batch shared with the BatchHelper (2 chunks of 2)

// One environment's io_uring for inline batches. Used by its JS thread only.
class InlineReader {
 public:
  static constexpr unsigned kEntries = 64;  // the largest batch one io_uring_enter takes

  ~InlineReader() {
    if (sqes_) munmap(sqes_, sqes_bytes_);
    if (map_) munmap(map_, map_bytes_);
    if (fd_ >= 0) close(fd_);
  }

  // Set up the ring; false (and the caller uses preadv2) when io_uring is unavailable.
  bool init() {
    const char *env = getenv("USRBIO_INLINE_URING");
    if (env && strcmp(env, "0") == 0) return false;
    io_uring_params p;
    int fd = -1;
    // SUBMIT_ALL: an SQE refused at submission does not stop the ones after it.
    const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, 0};
    for (unsigned flags : tries) {
      memset(&p, 0, sizeof p);
      p.flags = flags;
      fd = int(syscall(__NR_io_uring_setup, kEntries, &p));
      if (fd >= 0 || errno != EINVAL) break;
    }
    if (fd < 0) return false;
    fd_ = fd;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP) || p.cq_entries < kEntries)
      return false;
    map_bytes_ = std::max<size_t>(p.sq_off.array + p.sq_entries * sizeof(uint32_t),
                                  p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
    void *m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (m == MAP_FAILED) return false;
    map_ = static_cast<uint8_t *>(m);
    sqes_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
    void *s = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (s == MAP_FAILED) return false;
    sqes_ = static_cast<io_uring_sqe *>(s);
    sq_head_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned *>(map_ + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned *>(map_ + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned *>(map_ + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned *>(map_ + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe *>(map_ + p.cq_off.cqes);
    return true;
  }

  // Run n (1..kEntries) reads, read k of `len[k]` bytes at file offset `off[k]` of `fd[k]` into
  // `dst[k]`, and set res[k] to the bytes read or -errno. Returns 0, or -EIO when the ring
  // failed: entries may then be left in it, so the caller must destroy this reader (closing the
  // ring drops them) and serve the batch with preadv2. Every read is RWF_NOWAIT, so each
  // completes within the io_uring_enter that submits it; waits are only for submitted reads.
  int run(int n, const int *fd, const double *off, const uint32_t *len, uint8_t *const *dst, double *res) {
    const unsigned tail = *sq_tail_;
    for (int k = 0; k < n; k++) {
      unsigned i = (tail + unsigned(k)) & sq_mask_;
      io_uring_sqe *s = &sqes_[i];
      memset(s, 0, sizeof *s);
      s->opcode = IORING_OP_READ;
      s->fd = fd[k];
      s->off = uint64_t(off[k]);
      s->addr = reinterpret_cast<uint64_t>(dst[k]);
      s->len = len[k];
      s->rw_flags = RWF_NOWAIT;
      s->user_data = uint64_t(k);
      sq_array_[i] = i;
      res[k] = -ECANCELED;
    }
    std::atomic_ref<unsigned>(*sq_tail_).store(tail + unsigned(n), std::memory_order_release);
    int got = 0;
    for (int tries = 0; got < n; tries++) {
      const unsigned consumed = std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire) - tail;
      const unsigned to_submit = unsigned(n) - consumed;
      // What is in the kernel completes; a submission that stops short (an SQE refused) is
      // retried a few times, never waited for.
      const unsigned wait = to_submit ? 0 : consumed - unsigned(got);
      if (tries >= 8) return -EIO;
      int r = int(syscall(__NR_io_uring_enter, fd_, to_submit, wait, IORING_ENTER_GETEVENTS, nullptr, 0));
      if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) return -EIO;
      unsigned head = *cq_head_;
      unsigned ct = std::atomic_ref<unsigned>(*cq_tail_).load(std::memory_order_acquire);
      for (; head != ct; head++) {
        const io_uring_cqe &c = cqes_[head & cq_mask_];
        if (c.user_data < uint64_t(n)) res[c.user_data] = double(c.res);
        got++;
      }
      std::atomic_ref<unsigned>(*cq_head_).store(head, std::memory_order_release);
    }
    return 0;
  }

 private:
  int fd_ = -1;
  uint8_t *map_ = nullptr;
  size_t map_bytes_ = 0;
  io_uring_sqe *sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr, *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0;
  io_uring_cqe *cqes_ = nullptr;
};

void destroy_inline_reader(InlineReader *r) { delete r; }

namespace {

ssize_t read_now(int fd, uint8_t *dst, size_t len, off_t off) {
  struct iovec v = {dst, len};
  ssize_t n = preadv2(fd, &v, 1, off, RWF_NOWAIT);
  return n < 0 ? -errno : n;
}

uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Run reads [0, n) of the arrays with reader `*r` (null: preadv2). A ring that fails is deleted
// and *r set to null; the reads are then made again with preadv2 (they are idempotent).
void run_reads(InlineReader *&r, int n, const int *fd, const double *off, const uint32_t *len, uint8_t *const *dst,
               double *res) {
  if (r && n > 1) {
    if (r->run(n, fd, off, len, dst, res) == 0) return;
    delete r;
    r = nullptr;
  }
  for (int k = 0; k < n; k++) res[k] = double(read_now(fd[k], dst[k], len[k], off_t(off[k])));
}

}  // namespace

// A second thread for large inline batches (see the top of this file). One per environment,
// made on its first batch of kHelperMin reads or more; stopped and joined by the environment's
// cleanup. Between batches it spins for twice the moving average of the gap between them (at
// most USRBIO_INLINE_HELPER_SPIN_US, default 1000), yielding its CPU every 16 us, then sleeps on
// a futex that the JS thread wakes when it publishes a batch. The JS thread never waits for the
// helper to wake: it runs every chunk not yet taken, and waits only for those the helper started.
class BatchHelper {
 public:
  static constexpr int kChunk = 8;  // the most reads in one chunk (a batch of n has chunks of min(8, ceil(n/2)))

  // Start the thread; false when it could not be made (the batches then run on the JS thread).
  bool start() {
    const char *spin = getenv("USRBIO_INLINE_HELPER_SPIN_US");
    if (spin && *spin) spin_max_ns_ = uint64_t(std::clamp(atof(spin), 0.0, 10000.0) * 1000);
    // The thread may run on every CPU of the process but the one the JS thread is on now.
    // Otherwise a futex wake from the JS thread places it on the waker's CPU (wake-affine), where
    // its spin only keeps the JS thread from running.
    cpu_set_t set;
    const int here = sched_getcpu();
    if (sched_getaffinity(0, sizeof set, &set) != 0 || here < 0 || here >= CPU_SETSIZE) return false;
    CPU_CLR(here, &set);
    if (CPU_COUNT(&set) == 0) return false;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return false;
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // signals go to the application's threads
    started_ = pthread_create(&thread_, &attr, [](void *p) -> void * {
      static_cast<BatchHelper *>(p)->loop();
      return nullptr;
    }, this) == 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    pthread_attr_destroy(&attr);
    return started_;
  }

  ~BatchHelper() {
    stop_.store(true);
    wake();
    if (started_) pthread_join(thread_, nullptr);
  }

  // Run reads [0, n) as InlineReader::run does, sharing them with the helper thread; `mine` is
  // the calling thread's reader (null: preadv2; set to null if its ring failed). Returns when
  // every read has its result. The arrays must stay valid until then. JS thread only.
  void run(InlineReader *&mine, int n, const int *fd, const double *off, const uint32_t *len, uint8_t *const *dst,
           double *res) {
    chunk_ = std::min(kChunk, (n + 1) / 2);
    const int chunks = (n + chunk_ - 1) / chunk_;
    n_ = n;
    fd_ = fd;
    off_ = off;
    len_ = len;
    dst_ = dst;
    res_ = res;
    done_.store(0, std::memory_order_relaxed);
    const uint64_t seq = (claim_.load(std::memory_order_relaxed) >> 32) + 1;
    claim_.store((seq << 32) | (uint64_t(chunks) << 16), std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst)) wake();
    int c;
    while ((c = take(seq)) >= 0) {
      chunk(mine, c);
      done_.fetch_add(1, std::memory_order_release);
    }
    // Every chunk is taken: wait for those the helper is running.
    const uint64_t t0 = done_.load(std::memory_order_acquire) == chunks ? 0 : now_ns();
    for (unsigned spins = 0; done_.load(std::memory_order_acquire) != chunks; spins++) {
      if (spins < 4096) cpu_relax();
      else sched_yield();
    }
    batches_++;
    if (t0 && now_ns() - t0 > 100000) stalls_++;
  }

  // [batches run, chunks the helper thread ran, batches that waited over 100 us for it, sleeps]
  void stats(double *out) const {
    out[0] = double(batches_);
    out[1] = double(helper_chunks_.load(std::memory_order_relaxed));
    out[2] = double(stalls_);
    out[3] = double(sleeps_.load(std::memory_order_relaxed));
  }

 private:
  // Claim the next chunk of job `seq`, or -1 when none is left (or the job is over).
  int take(uint64_t seq) {
    uint64_t v = claim_.load(std::memory_order_acquire);
    for (;;) {
      if ((v >> 32) != seq || (v & 0xffff) >= ((v >> 16) & 0xffff)) return -1;
      if (claim_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        return int(v & 0xffff);
    }
  }

  void chunk(InlineReader *&r, int c) {
    const int b = c * chunk_;
    const int m = std::min(chunk_, n_ - b);
    run_reads(r, m, fd_ + b, off_ + b, len_ + b, dst_ + b, res_ + b);
  }

  void wake() {
    wake_word_.fetch_add(1, std::memory_order_seq_cst);
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(&wake_word_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

  void loop() {
    pthread_setname_np(pthread_self(), "usrbio-inline");
    InlineReader *ring = new InlineReader;
    if (!ring->init()) {
      delete ring;
      ring = nullptr;
    }
    uint64_t seen = 0;         // the last job looked at
    uint64_t gap_ns = 50000;   // moving average of the idle time before a job
    uint64_t idle_since = 0;   // when the last job's chunks ran out
    while (!stop_.load(std::memory_order_relaxed)) {
      const uint64_t seq = claim_.load(std::memory_order_acquire) >> 32;
      if (seq != seen) {
        if (idle_since) {
          const uint64_t g = std::min(now_ns() - idle_since, 2 * spin_max_ns_);
          gap_ns = (gap_ns * 7 + g) / 8;
        }
        seen = seq;
        int c;
        while ((c = take(seq)) >= 0) {
          chunk(ring, c);
          helper_chunks_.fetch_add(1, std::memory_order_relaxed);
          done_.fetch_add(1, std::memory_order_release);
        }
        idle_since = now_ns();
        continue;
      }
      // Wait for the next job: spin for twice the usual gap (at most spin_max_ns_), yielding the
      // CPU every 16 us to whatever else may run on it, then sleep on the futex.
      const uint64_t window = std::min(spin_max_ns_, 2 * gap_ns + 5000);
      const uint64_t t0 = now_ns();
      uint64_t last_yield = t0;
      bool hit = false;
      for (unsigned k = 0; window; k++) {
        cpu_relax();
        if ((claim_.load(std::memory_order_acquire) >> 32) != seen || stop_.load(std::memory_order_relaxed)) {
          hit = true;
          break;
        }
        if ((k & 63) == 63) {
          const uint64_t t = now_ns();
          if (t - t0 > window) break;
          if (t - last_yield > 16000) {
            sched_yield();
            last_yield = t;
          }
        }
      }
      if (hit) continue;
      const uint32_t w = wake_word_.load(std::memory_order_seq_cst);
      sleeping_.store(1, std::memory_order_seq_cst);
      if ((claim_.load(std::memory_order_seq_cst) >> 32) == seen && !stop_.load(std::memory_order_seq_cst)) {
        sleeps_.fetch_add(1, std::memory_order_relaxed);
        syscall(SYS_futex, reinterpret_cast<uint32_t *>(&wake_word_), FUTEX_WAIT_PRIVATE, w, nullptr, nullptr, 0);
      }
      sleeping_.store(0, std::memory_order_relaxed);
    }
    delete ring;
  }

  // The job: written by the JS thread before it publishes claim_, read by both until done_.
  int n_ = 0;
  int chunk_ = kChunk;  // reads per chunk of this job
  const int *fd_ = nullptr;
  const double *off_ = nullptr;
  const uint32_t *len_ = nullptr;
  uint8_t *const *dst_ = nullptr;
  double *res_ = nullptr;
  // (job number << 32) | (chunks << 16) | next chunk to take; a chunk is taken by CAS on it.
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> done_{0};  // chunks of the current job finished
  std::atomic<uint32_t> wake_word_{0};  // the helper's futex
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> helper_chunks_{0}, sleeps_{0};
  uint64_t batches_ = 0, stalls_ = 0;  // JS thread only
  uint64_t spin_max_ns_ = 1000000;
  pthread_t thread_{};
  bool started_ = false;
};

void destroy_batch_helper(BatchHelper *h) { delete h; }

namespace {

// Whether this process may run on two CPUs or more.
bool two_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_COUNT(&set) >= 2;
}

// readNow(fd, buf, at, length, offset) -> bytes read, or -errno. One preadv2(RWF_NOWAIT) of
// `length` bytes at file `offset` into buf[at..]: it copies what the page cache holds and never
// waits for the device (-EAGAIN when nothing of the range is cached; a short count when only a
// prefix is, or at end of file). The caller checked fd, range and buffer; runs on the JS thread.
Napi::Value ReadNow(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[1].IsTypedArray()) return Napi::Number::New(env, -EINVAL);
  const int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  const size_t at = size_t(info[2].As<Napi::Number>().Int64Value());
  const size_t len = size_t(info[3].As<Napi::Number>().Int64Value());
  const off_t off = off_t(info[4].As<Napi::Number>().Int64Value());
  uint8_t *base = static_cast<uint8_t *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  if (at > ta.ByteLength() || len > ta.ByteLength() - at) return Napi::Number::New(env, -EINVAL);
  return Napi::Number::New(env, double(read_now(fd, base + at, len, off)));
}

// readBatch(n, reqs: Float64Array, buf) -> 0, or -EINVAL for a malformed call (nothing read).
// reqs holds n (1..64) records [fd, fileOffset, length, at] and then n results: read k copies
// into buf[at..at+length) and its result (bytes read or -errno, as readNow's) goes to
// reqs[4n + k]. One
// io_uring_enter for the lot where io_uring works, else n preadv2 calls. Ranges are checked
// against buf here; the caller validated the fds and offsets. JS thread only.
Napi::Value ReadBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto *state = static_cast<EnvState *>(info.Data());
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      !info[2].IsTypedArray())
    return Napi::Number::New(env, -EINVAL);
  const int n = info[0].As<Napi::Number>().Int32Value();
  Napi::Float64Array reqs = info[1].As<Napi::Float64Array>();
  Napi::TypedArray ta = info[2].As<Napi::TypedArray>();
  if (n < 1 || n > int(InlineReader::kEntries) || reqs.ElementLength() < size_t(n) * 5)
    return Napi::Number::New(env, -EINVAL);
  uint8_t *base = static_cast<uint8_t *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const size_t cap = ta.ByteLength();
  double *q = reqs.Data();
  int fds[InlineReader::kEntries];
  double offs[InlineReader::kEntries];
  uint32_t lens[InlineReader::kEntries];
  uint8_t *dst[InlineReader::kEntries];
  double res[InlineReader::kEntries];
  for (int k = 0; k < n; k++) {
    const double *e = q + 4 * k;
    // (negated comparisons: NaN fails them; a double converts to an integer only in range)
    if (!(e[0] >= 0 && e[0] <= 2147483647 && e[1] >= 0 && e[1] <= 9007199254740991.0 && e[2] >= 1 &&
          e[2] <= 0x7fffffff && e[3] >= 0 && e[3] + e[2] <= double(cap)))
      return Napi::Number::New(env, -EINVAL);
    fds[k] = int(e[0]);
    offs[k] = e[1];
    lens[k] = uint32_t(e[2]);
    dst[k] = base + size_t(e[3]);
  }
  if (n > 1 && state->reader_state == 0) {
    auto *r = new InlineReader;
    if (r->init()) {
      state->reader = r;
      state->reader_state = 1;
    } else {
      delete r;
      state->reader_state = -1;
    }
  }
  if (n >= kHelperMin && state->helper_state == 0) {
    const char *env = getenv("USRBIO_INLINE_HELPER");
    state->helper_state = -1;
    if (!(env && strcmp(env, "0") == 0) && two_cpus()) {
      auto *h = new BatchHelper;
      if (h->start()) {
        state->helper = h;
        state->helper_state = 1;
      } else {
        delete h;
      }
    }
  }
  if (n >= kHelperMin && state->helper_state > 0)
    state->helper->run(state->reader, n, fds, offs, lens, dst, res);
  else
    run_reads(state->reader, n, fds, offs, lens, dst, res);
  // a broken ring was dropped (with what it held): preadv2 from now on
  if (state->reader_state > 0 && !state->reader) state->reader_state = -1;
  for (int k = 0; k < n; k++) q[4 * n + k] = res[k];
  return Napi::Number::New(env, 0);
}

// inlineHelper(out: Float64Array(5)) -> fills out with [state, batches shared, chunks the
// helper ran, batches that waited over 100 us for it, times it went to sleep]; state is 1 when this environment's large
// batches are shared with a BatchHelper thread, -1 when they are not (one CPU, no thread, or
// USRBIO_INLINE_HELPER=0), 0 before its first batch of kHelperMin reads or more.
Napi::Value InlineHelperStats(const Napi::CallbackInfo &info) {
  auto *state = static_cast<EnvState *>(info.Data());
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[0].As<Napi::Float64Array>().ElementLength() < 5)
    return Napi::Number::New(info.Env(), -EINVAL);
  double *out = info[0].As<Napi::Float64Array>().Data();
  out[0] = state->helper_state;
  out[1] = out[2] = out[3] = out[4] = 0;
  if (state->helper) state->helper->stats(out + 1);
  return Napi::Number::New(info.Env(), 0);
}

// inlineReader() -> 1 when this environment's batches use io_uring, -1 when they use preadv2
// (io_uring refused, or USRBIO_INLINE_URING=0), 0 before its first batch of two or more.
Napi::Value InlineReaderState(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), static_cast<EnvState *>(info.Data())->reader_state);
}

}  // namespace

void RegisterInlineRead(Napi::Env env, Napi::Object exports, EnvState *state) {
  exports.Set("readNow", Napi::Function::New(env, ReadNow, "readNow"));
  exports.Set("readBatch", Napi::Function::New(env, ReadBatch, "readBatch", state));
  exports.Set("inlineReader", Napi::Function::New(env, InlineReaderState, "inlineReader", state));
  exports.Set("inlineHelper", Napi::Function::New(env, InlineHelperStats, "inlineHelper", state));
}

}  // namespace usrbio_addon
