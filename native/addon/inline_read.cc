// inline_read.cc - page-cache reads on the calling JS thread, many per system call.
//
// readNow (one preadv2(RWF_NOWAIT)) and readBatch (n such reads): the engine's inline path
// (src/engine/engine.ts, #inlineOk). A system call costs about 1 us on a VM; n 4 KiB reads in
// one io_uring_enter cost 1.5 us each at n = 4 and 1.1 us at n = 16, against 2.6 us alone. Each
// environment (main thread, worker) has its own small io_uring, made on the first batch of two
// or more; where io_uring is refused (or USRBIO_INLINE_URING=0) a batch is n preadv2 calls.
// Every read carries RWF_NOWAIT, so io_uring never hands one to a kernel worker: a range the
// page cache does not hold whole comes back short or -EAGAIN, and the engine sends it to a ring.
#include <linux/io_uring.h>
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
  bool done = false;
  if (n > 1 && state->reader_state > 0) {
    done = state->reader->run(n, fds, offs, lens, dst, res) == 0;
    if (!done) {  // a broken ring: drop it (and what it holds), preadv2 from now on
      delete state->reader;
      state->reader = nullptr;
      state->reader_state = -1;
    }
  }
  if (!done)
    for (int k = 0; k < n; k++) res[k] = double(read_now(fds[k], dst[k], lens[k], off_t(offs[k])));
  for (int k = 0; k < n; k++) q[4 * n + k] = res[k];
  return Napi::Number::New(env, 0);
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
}

}  // namespace usrbio_addon
