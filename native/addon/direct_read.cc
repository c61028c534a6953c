// direct_read.cc - reads of O_DIRECT files on the JS thread's own io_uring, reaped by its event
// loop (the engine's direct path: src/engine/direct.ts).
//
// A ring read goes agent -> pump worker -> JS thread: two cross-thread wakes per completion
// batch, about 110 us on a 2-vCPU VM, which at a device latency of about 125 us caps O_DIRECT
// 4 KiB reads at depth 64 near 60k/s where fio reaches 105k. Here the JS thread submits the
// reads itself (one io_uring_enter per flush) and libuv's epoll watches the ring's fd, so a
// completion batch costs one wake of the JS thread, as fs.promises with UV_USE_IO_URING=1 does.
// The data still lands in the engine's iov, so results are made exactly as for ring reads.
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "addon.h"

namespace usrbio_addon {
namespace {

constexpr int kReqFields = 5;  // [id, fd, fileOffset, length, bufOffset]
constexpr int kCqeFields = 2;  // [id, result]
// Completions per onComplete call. The reads their callers issue in reaction are submitted
// (the engine's flush microtask) before the next chunk is handed over, so the device gets work
// back while this thread is still busy: O_DIRECT 4 KiB reads at depth 64 on a virtio disk
// ran 72k/s handing over whole batches (all 64 came back together, every time), 83k in chunks of
// 32, 89k of 16, 86k of 8, 78k of 4 (one run each, 2 s; fio 101k).
constexpr unsigned kDeliverChunk = 16;

class DirectRing : public Napi::ObjectWrap<DirectRing>, public Owned {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) {
    return DefineClass(env, "DirectRing",
                       {InstanceMethod("submit", &DirectRing::Submit), InstanceMethod("destroy", &DirectRing::Destroy),
                        InstanceAccessor("inflight", &DirectRing::Inflight, nullptr)},
                       state);
  }

  // new DirectRing(buf: ArrayBuffer, entries, reqs: Float64Array, cqes: Float64Array, onComplete)
  // Reads land in `buf` (the engine's iov view), which this object keeps alive until destroy().
  // `entries` (a power of two, 2..4096) bounds the reads in flight; reqs holds `entries` records
  // [id, fd, fileOffset, length, bufOffset] that submit(n) takes the first n of; onComplete(n) is
  // called on this thread, from the event loop, after n completions [id, result] (bytes read or
  // -errno) were written to cqes (entries x 2). Throws an Error with .errno when io_uring is
  // unavailable (the engine then uses its rings).
  DirectRing(const Napi::CallbackInfo &info) : Napi::ObjectWrap<DirectRing>(info) {
    Napi::Env env = info.Env();
    state_ = static_cast<EnvState *>(info.Data());
    const unsigned entries = info[1].As<Napi::Number>().Uint32Value();
    if (!info[0].IsArrayBuffer() || entries < 2 || entries > 4096 || (entries & (entries - 1)) ||
        !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[2].As<Napi::Float64Array>().ElementLength() < size_t(entries) * kReqFields || !info[3].IsTypedArray() ||
        info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[3].As<Napi::Float64Array>().ElementLength() < size_t(entries) * kCqeFields || !info[4].IsFunction()) {
      Napi::TypeError::New(env, "DirectRing(buf, entries, reqs, cqes, onComplete): malformed arguments")
          .ThrowAsJavaScriptException();
      return;
    }
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    base_ = static_cast<uint8_t *>(ab.Data());
    size_ = ab.ByteLength();
    entries_ = entries;
    int e = setup(entries);
    if (e) {
      unmap();
      errno_error(env, e, "io_uring_setup").ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t *loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      unmap();
      Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      return;
    }
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      unmap();
      errno_error(env, EINVAL, "uv_poll_init").ThrowAsJavaScriptException();
      return;
    }
    poll_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t *>(poll_));  // the engine's keep-alive handle holds the loop
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    buf_ref_ = Napi::Persistent(ab.As<Napi::Object>());
    reqs_ = info[2].As<Napi::Float64Array>().Data();
    reqs_ref_ = Napi::Persistent(info[2].As<Napi::Object>());
    cqes_ = info[3].As<Napi::Float64Array>().Data();
    cqes_ref_ = Napi::Persistent(info[3].As<Napi::Object>());
    on_complete_ = Napi::Persistent(info[4].As<Napi::Function>());
    live_ = true;
    state_->owned.insert(this);
  }
  ~DirectRing() override { release(); }

  // Stop: close the poll handle and the ring. Reads still in flight are cancelled by the kernel
  // as the ring goes (their pages stay pinned until then); their completions are never reported,
  // so call it with nothing in flight (the engine does) or at environment teardown. Idempotent.
  void release() override {
    if (!live_) return;
    live_ = false;
    state_->owned.erase(this);
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
    poll_ = nullptr;
    unmap();
    if (!on_complete_.IsEmpty()) {
      on_complete_.Reset();
      buf_ref_.Reset();
      reqs_ref_.Reset();
      cqes_ref_.Reset();
    }
  }

 private:
  // Make the ring; 0 or errno.
  int setup(unsigned entries) {
    io_uring_params p;
    int fd = -1;
    // SUBMIT_ALL: an SQE refused at submission does not stop the ones after it (it completes
    // with its error). SINGLE_ISSUER: only this thread submits. No COOP/DEFER_TASKRUN: a
    // completion must wake this thread's epoll without it entering the ring.
    const unsigned tries[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_SUBMIT_ALL, 0};
    for (unsigned flags : tries) {
      memset(&p, 0, sizeof p);
      p.flags = flags | IORING_SETUP_CQSIZE;
      p.cq_entries = entries * 2;
      fd = int(syscall(__NR_io_uring_setup, entries, &p));
      if (fd >= 0 || errno != EINVAL) break;
    }
    if (fd < 0) return errno;
    fd_ = fd;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || p.sq_entries < entries) return ENOSYS;
    map_bytes_ = std::max<size_t>(p.sq_off.array + p.sq_entries * sizeof(uint32_t),
                                  p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
    void *m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (m == MAP_FAILED) return errno;
    map_ = static_cast<uint8_t *>(m);
    sqes_bytes_ = p.sq_entries * sizeof(io_uring_sqe);
    void *s = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (s == MAP_FAILED) return errno;
    sqes_ = static_cast<io_uring_sqe *>(s);
    sq_head_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned *>(map_ + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned *>(map_ + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned *>(map_ + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned *>(map_ + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned *>(map_ + p.cq_off.ring_mask);
    cqes_ring_ = reinterpret_cast<io_uring_cqe *>(map_ + p.cq_off.cqes);
    return 0;
  }

  void unmap() {
    if (sqes_) munmap(sqes_, sqes_bytes_);
    if (map_) munmap(map_, map_bytes_);
    if (fd_ >= 0) close(fd_);
    sqes_ = nullptr;
    map_ = nullptr;
    fd_ = -1;
  }

  // submit(n) -> how many of reqs' first n records the kernel took (0..n; the first k), or
  // -EINVAL (nothing submitted) when n or a record is malformed or n more would exceed `entries`
  // in flight. Records the kernel did not take (a submission refused with EAGAIN, say) are not
  // in the ring: the caller fails them. Each taken read completes through onComplete, also
  // when it fails (-errno) or when the ring was destroyed before it.
  Napi::Value Submit(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!live_) return Napi::Number::New(env, -EBADF);
    const double nd = info[0].As<Napi::Number>().DoubleValue();
    if (!(nd >= 1 && nd <= double(entries_)) || inflight_ + unsigned(nd) > entries_)
      return Napi::Number::New(env, -EINVAL);
    const unsigned n = unsigned(nd);
    for (unsigned k = 0; k < n; k++) {
      const double *e = reqs_ + size_t(k) * kReqFields;
      // (negated comparisons: NaN fails them; a double converts to an integer only in range)
      if (!(e[0] >= 0 && e[0] <= 9007199254740991.0 && e[1] >= 0 && e[1] <= 2147483647 && e[2] >= 0 &&
            e[2] <= 9007199254740991.0 && e[3] >= 1 && e[3] <= 0x7fffffff && e[4] >= 0 && e[4] + e[3] <= double(size_)))
        return Napi::Number::New(env, -EINVAL);
    }
    const unsigned tail = *sq_tail_;
    for (unsigned k = 0; k < n; k++) {
      const double *e = reqs_ + size_t(k) * kReqFields;
      unsigned i = (tail + k) & sq_mask_;
      io_uring_sqe *s = &sqes_[i];
      memset(s, 0, sizeof *s);
      s->opcode = IORING_OP_READ;
      s->fd = int(e[1]);
      s->off = uint64_t(e[2]);
      s->addr = reinterpret_cast<uint64_t>(base_ + size_t(e[4]));
      s->len = uint32_t(e[3]);
      s->user_data = uint64_t(e[0]);
      sq_array_[i] = i;
    }
    std::atomic_ref<unsigned>(*sq_tail_).store(tail + n, std::memory_order_release);
    unsigned taken = 0;
    for (int tries = 0; taken < n && tries < 16; tries++) {
      int r = int(syscall(__NR_io_uring_enter, fd_, n - taken, 0, 0, nullptr, 0));
      taken = std::atomic_ref<unsigned>(*sq_head_).load(std::memory_order_acquire) - tail;
      if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) break;
    }
    // Without SQPOLL the kernel reads SQEs only inside io_uring_enter: those it did not take can
    // be withdrawn by moving the tail back.
    if (taken < n) std::atomic_ref<unsigned>(*sq_tail_).store(tail + taken, std::memory_order_release);
    inflight_ += taken;
    return Napi::Number::New(env, double(taken));
  }

  // The ring's fd is readable: completions are posted. Hand them to onComplete kDeliverChunk at a
  // time, at most `entries` per call (epoll is level-triggered: the rest come next turn); an exception it throws is reported as uncaught (as a callback's would be).
  static void OnReadable(uv_poll_t *h, int status, int events) {
    auto *self = static_cast<DirectRing *>(h->data);
    if (self && self->live_) self->deliver();
  }

  void deliver() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (unsigned given = 0; given < entries_ && live_;) {
      unsigned head = *cq_head_;
      const unsigned ct = std::atomic_ref<unsigned>(*cq_tail_).load(std::memory_order_acquire);
      unsigned n = 0;
      for (; head != ct && n < kDeliverChunk; head++, n++) {
        const io_uring_cqe &c = cqes_ring_[head & cq_mask_];
        cqes_[size_t(n) * kCqeFields] = double(c.user_data);
        cqes_[size_t(n) * kCqeFields + 1] = double(c.res);
      }
      std::atomic_ref<unsigned>(*cq_head_).store(head, std::memory_order_release);
      if (n == 0) return;
      inflight_ -= std::min(inflight_, n);
      given += n;
      on_complete_.MakeCallback(Value(), {Napi::Number::New(env, double(n))});

      if (env.IsExceptionPending()) {
        napi_value e = env.GetAndClearPendingException().Value();
        napi_fatal_exception(env, e);
        return;
      }
    }
  }

  Napi::Value Destroy(const Napi::CallbackInfo &info) {
    release();
    return info.Env().Undefined();
  }

  // Reads submitted and not yet handed to onComplete.
  Napi::Value Inflight(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), double(inflight_)); }

  EnvState *state_ = nullptr;
  bool live_ = false;
  uint8_t *base_ = nullptr;  // buf's memory: reads land in [base_, base_ + size_)
  size_t size_ = 0;
  unsigned entries_ = 0;
  unsigned inflight_ = 0;  // submitted, not yet delivered; at most entries_
  double *reqs_ = nullptr, *cqes_ = nullptr;
  Napi::ObjectReference buf_ref_, reqs_ref_, cqes_ref_;  // keep the memory above alive
  Napi::FunctionReference on_complete_;
  uv_poll_t *poll_ = nullptr;  // watches fd_; closed (and freed by its close callback) by release()
  int fd_ = -1;
  uint8_t *map_ = nullptr;
  size_t map_bytes_ = 0;
  io_uring_sqe *sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr, *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0;
  io_uring_cqe *cqes_ring_ = nullptr;
};

}  // namespace

void RegisterDirectRead(Napi::Env env, Napi::Object exports, EnvState *state) {
  exports.Set("DirectRing", DirectRing::Define(env, state));
}

}  // namespace usrbio_addon
