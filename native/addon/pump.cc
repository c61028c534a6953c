// pump.cc - the engine's native half on a worker thread: a Pump owns that worker's read ring and
// write ring and moves requests between a channel (SharedArrayBuffer queues the main thread
// fills and drains, layout in src/engine/channel.ts) and the rings, many per call.
//
// Channel: header Int32Array (SQ tail/head, CQ tail/head, state, each on its own 64-byte line),
// SQ Float64Array of cap x [id, op, fd, fileOffset, length, iovOffset], CQ Float64Array of
// cap x [id, result], cancel Int32Array of cap flags (one per SQ slot). Positions run free as
// int32 and wrap; cap is a power of two. The main thread never has more than cap requests of a
// channel outstanding, so neither queue overflows.
//
// Who prepares: the main thread, right after publishing (pull(channelId), one call per flush),
// while a pump is attached and running; the pump itself when it attaches and after a full ring
// has room again. The pump thread alone reaps (hf3fs allows one thread to prep and another to
// wait on a ring). Pump::mu_ serialises the SQ side and CQ writes between the two.
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "hf3fs_usrbio.h"
#include "usrbio_ext.h"

namespace usrbio_addon {
namespace {

// Header word indices (Int32), mirrored in src/engine/channel.ts.
enum : int { kSqTail = 0, kSqHead = 16, kCqTail = 32, kCqHead = 48, kState = 64, kHeaderWords = 128 };
// Pump states in the header, mirrored in src/engine/channel.ts.
enum : int32_t { kDetached = 0, kRunning = 1, kSleepRead = 2, kSleepWrite = 3, kExiting = 4, kDead = 5 };
enum : int { kSqFields = 6, kCqFields = 2 };
// The largest batch after which a pump polls for the caller's next request (see Step).
constexpr int kIdleSpinBatch = 2;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// A microsecond setting from the environment: 0..10000, else (unset, malformed) `def`.
long env_us(const char *name, long def) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end = nullptr;
  long r = strtol(v, &end, 10);
  return (end && *end == 0 && r >= 0 && r <= 10000) ? r : def;
}

class Pump;
// Attached pumps by channel id, so that the main thread can prepare their requests (pull). A pump leaves the map, under the lock, before its rings are destroyed; the
// main thread holds the lock for the whole of a pull.
std::mutex g_mu;
std::unordered_map<int32_t, Pump *> g_pumps;

class Pump : public Napi::ObjectWrap<Pump>, public Owned {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) {
    return DefineClass(env, "Pump",
                       {InstanceMethod("attach", &Pump::Attach), InstanceMethod("step", &Pump::Step),
                        InstanceMethod("detach", &Pump::Detach), InstanceMethod("destroy", &Pump::Destroy)},
                       state);
  }

  // new Pump(mount, entries, ioDepth, timeoutMs, numa, iovId, iovSize): creates this worker's read
  // and write rings and opens the engine's iov by id. Arguments validated by the caller.
  Pump(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Pump>(info) {
    state_ = static_cast<EnvState *>(info.Data());
    std::string mount = info[0].As<Napi::String>();
    int entries = info[1].As<Napi::Number>().Int32Value();
    int depth = info[2].As<Napi::Number>().Int32Value();
    int timeout = info[3].As<Napi::Number>().Int32Value();
    int numa = info[4].As<Napi::Number>().Int32Value();
    auto id = info[5].As<Napi::Buffer<uint8_t>>();
    auto iov_size = size_t(info[6].As<Napi::Number>().Int64Value());
    if (id.Length() != 16) {
      Napi::TypeError::New(info.Env(), "iovId must be 16 bytes").ThrowAsJavaScriptException();
      return;
    }
    int r = hf3fs_iovopen(&iov_, id.Data(), mount.c_str(), iov_size, 0, numa);
    if (r < 0) {
      errno_error(info.Env(), -r, "hf3fs_iovopen").ThrowAsJavaScriptException();
      return;
    }
    r = hf3fs_iorcreate4(&rings_[0], mount.c_str(), entries, true, depth, timeout, numa, 0);
    if (r == 0) {
      r = hf3fs_iorcreate4(&rings_[1], mount.c_str(), entries, false, depth, timeout, numa, 0);
      if (r < 0) hf3fs_iordestroy(&rings_[0]);
    }
    if (r < 0) {
      hf3fs_iovdestroy(&iov_);
      errno_error(info.Env(), -r, "hf3fs_iorcreate4").ThrowAsJavaScriptException();
      return;
    }
    cqes_.resize(size_t(entries));
    live_ = true;
    state_->owned.insert(this);
  }
  ~Pump() override { release(); }

  // Stop serving: leave the pump map, destroy the rings (which waits for their in-flight I/O),
  // close the iov; an attached channel is marked dead, as its outstanding requests never
  // complete. Idempotent; the env cleanup hook calls it when a worker dies.
  void release() override {
    if (!live_) return;
    live_ = false;
    state_->owned.erase(this);
    unregister();
    hf3fs_iordestroy(&rings_[0]);
    hf3fs_iordestroy(&rings_[1]);
    hf3fs_iovdestroy(&iov_);
    if (hdr_) store(kState, kDead);
    hdr_ = nullptr;
  }

  // Called by pull(channelId) on the main thread under g_mu: prepare and submit the channel's new
  // requests now, unless the pump is not serving (attaching, exiting, detached): then -1 and the
  // pump takes them itself. Returns the completions published (requests that failed to prepare or
  // were cancelled), which the caller must drain itself: nobody notifies it of those.
  int pull_from_main() {
    std::lock_guard<std::mutex> l(mu_);
    if (!hdr_) return -1;
    int32_t s = load(kState);
    if (s != kRunning && s != kSleepRead && s != kSleepWrite) return -1;
    bool prepped[2] = {false, false};
    int published = pull(prepped);
    // A pump asleep on the other ring would not see these complete (see the re-check in Step).
    s = load(kState);
    if ((s == kSleepRead && prepped[1]) || (s == kSleepWrite && prepped[0])) wake();
    return published;
  }

  // Wake the ring this pump sleeps on, if any. Under mu_.
  void wake() {
    int32_t s = load(kState);
    if (s == kSleepRead) usrbio_ior_wake(&rings_[0]);
    else if (s == kSleepWrite) usrbio_ior_wake(&rings_[1]);
  }

 private:
  int32_t load(int i) { return std::atomic_ref<int32_t>(hdr_[i]).load(); }
  void store(int i, int32_t v) { std::atomic_ref<int32_t>(hdr_[i]).store(v); }

  void unregister() {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_pumps.find(channel_);
    if (it != g_pumps.end() && it->second == this) g_pumps.erase(it);
  }

  bool live(const Napi::CallbackInfo &info) {
    if (live_) return true;
    Napi::Error::New(info.Env(), "the pump was destroyed").ThrowAsJavaScriptException();
    return false;
  }

  template <class T>
  static bool typed(const Napi::Value &v, napi_typedarray_type type, T **data, size_t *len) {
    if (!v.IsTypedArray()) return false;
    auto a = v.As<Napi::TypedArray>();
    if (a.TypedArrayType() != type) return false;
    void *p = nullptr;
    size_t n = 0;
    napi_typedarray_type t;
    if (napi_get_typedarray_info(v.Env(), a, &t, &n, &p, nullptr, nullptr) != napi_ok || !p) return false;
    *data = static_cast<T *>(p);
    *len = n;
    return true;
  }

  // attach(header, sq, cq, cancel, channelId): serve this channel until detach. The arrays must
  // stay alive (the main thread's engine keeps them) until detach or destroy. Throws when already
  // attached, on a malformed channel, or when another live pump serves channelId.
  Napi::Value Attach(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    Napi::Env env = info.Env();
    if (hdr_) {
      Napi::Error::New(env, "the pump is already attached").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int32_t *hdr, *cancel;
    double *sq, *cq;
    size_t nh, nsq, ncq, nc;
    if (!typed(info[0], napi_int32_array, &hdr, &nh) || !typed(info[1], napi_float64_array, &sq, &nsq) ||
        !typed(info[2], napi_float64_array, &cq, &ncq) || !typed(info[3], napi_int32_array, &cancel, &nc) ||
        nh < kHeaderWords || nc == 0 || (nc & (nc - 1)) || nc > (1u << 20) || nsq != nc * kSqFields ||
        ncq != nc * kCqFields) {
      Napi::TypeError::New(env, "malformed channel").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int32_t id = info[4].As<Napi::Number>().Int32Value();
    std::lock_guard<std::mutex> g(g_mu);  // the main thread may pull as soon as we are in the map
    if (g_pumps.count(id)) {
      Napi::Error::New(env, "channel already served").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::lock_guard<std::mutex> l(mu_);
    hdr_ = hdr;
    sq_ = sq;
    cq_ = cq;
    cancel_ = cancel;
    cap_ = uint32_t(nc);
    channel_ = id;
    head_ = load(kSqHead);
    cq_tail_ = load(kCqTail);
    idle_since_ = 0;
    blocked_ = false;
    store(kState, kRunning);
    g_pumps[id] = this;
    return env.Undefined();
  }

  // detach(): finish the I/O in flight (its completions are published), stop serving the
  // channel and mark it detached. Unsubmitted requests stay in the SQ for the next pump.
  Napi::Value Detach(const Napi::CallbackInfo &info) {
    if (!live_ || !hdr_) return info.Env().Undefined();  // also after the env cleanup released it
    {
      std::lock_guard<std::mutex> l(mu_);
      store(kState, kExiting);  // the main thread prepares no more
    }
    while (inflight_[0] || inflight_[1]) {
      if (reap(0) || reap(1)) continue;
      // I/O on a ring whose agent is gone (a dead service) never completes: give it up (the
      // engine fails those requests as the worker's).
      for (int k = 0; k < 2; k++)
        if (inflight_[k] && usrbio_ior_health(&rings_[k]) < 0) inflight_[k] = 0;
      if (inflight_[0] || inflight_[1]) usrbio_ior_sleep(inflight_[0] ? &rings_[0] : &rings_[1], 1000);
    }
    unregister();
    store(kState, kDetached);
    hdr_ = nullptr;
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo &info) {
    release();
    return info.Env().Undefined();
  }

  bool sq_new() {
    std::lock_guard<std::mutex> l(mu_);
    return !blocked_ && load(kSqTail) != head_;
  }

  // Publish one completion to the CQ (the caller holds mu_ and stores the tail).
  void publish(double id, double result) {
    uint32_t i = uint32_t(cq_tail_) & (cap_ - 1);
    cq_[i * kCqFields] = id;
    cq_[i * kCqFields + 1] = result;
    cq_tail_ = int32_t(uint32_t(cq_tail_) + 1);
  }

  // Move SQ entries into the rings and submit them; requests that fail to prepare (or were
  // cancelled) complete at once. Returns how many completions it published; prepped[w] tells
  // which rings got requests. The caller holds mu_ (either thread).
  int pull(bool prepped[2]) {
    int32_t tail = load(kSqTail);
    if (blocked_ || tail == head_) return 0;
    int published = 0;
    while (head_ != tail) {
      uint32_t i = uint32_t(head_) & (cap_ - 1);
      const double *e = sq_ + i * kSqFields;
      double id = e[0];
      int op = int(e[1]);
      if (std::atomic_ref<int32_t>(cancel_[i]).load()) {
        publish(id, -ECANCELED);
        published++;
      } else {
        int w = op == 1 ? 1 : 0;
        double fd = e[2], off = e[3], len = e[4], ioff = e[5];
        int r;
        if (!(off >= 0 && len > 0 && ioff >= 0 && ioff + len <= double(iov_.size) && fd >= INT_MIN + 1.0 &&
              fd <= INT_MAX && id >= 0)) {
          r = -EINVAL;  // the engine validated it; this keeps a scribbled entry harmless
        } else {
          r = hf3fs_prep_io(&rings_[w], &iov_, w == 0, iov_.base + uint64_t(ioff), int(fd), uint64_t(off),
                            uint64_t(len), reinterpret_cast<const void *>(uintptr_t(id)));
        }
        if (r == -EAGAIN) {
          blocked_ = true;  // ring full: retry after a reap
          break;
        }
        if (r < 0) {
          publish(id, r);
          published++;
        } else {
          inflight_[w]++;
          prepped[w] = true;
        }
      }
      head_ = int32_t(uint32_t(head_) + 1);
    }
    store(kSqHead, head_);
    if (published) store(kCqTail, cq_tail_);
    for (int w = 0; w < 2; w++)
      if (prepped[w]) hf3fs_submit_ios(&rings_[w]);
    return published;
  }

  // Reap ring w without blocking into the CQ. Returns how many completions it published. Pump
  // thread only.
  int reap(int w) {
    if (!inflight_[w]) return 0;
    int n = hf3fs_wait_for_ios(&rings_[w], cqes_.data(), int(cqes_.size()), 0, nullptr);
    if (n <= 0) return 0;
    std::lock_guard<std::mutex> l(mu_);
    for (int k = 0; k < n; k++)
      publish(double(reinterpret_cast<uintptr_t>(cqes_[size_t(k)].userdata)), double(cqes_[size_t(k)].result));
    store(kCqTail, cq_tail_);
    inflight_[w] -= n;
    blocked_ = false;
    return n;
  }

  // step(maxMs, idleMs) -> completions published (> 0), 0 when maxMs passed without any, or -1
  // when the channel has been idle (nothing queued or in flight) for idleMs: the state is then
  // "exiting" and the caller detaches. Also -1 when not attached or released. Blocks the calling thread at most about maxMs.
  Napi::Value Step(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!live_ || !hdr_) return Napi::Number::New(env, -1);  // released (thread exiting) or detached
    const uint64_t t0 = now_ns();
    const uint64_t deadline = t0 + uint64_t(info[0].As<Napi::Number>().Int64Value()) * 1000000ull;
    const uint64_t idle_ns = uint64_t(info[1].As<Napi::Number>().Int64Value()) * 1000000ull;
    bool spun = false;
    for (;;) {
      usrbio_ior_drain(&rings_[0]);
      usrbio_ior_drain(&rings_[1]);
      int published;
      {
        std::lock_guard<std::mutex> l(mu_);
        bool prepped[2] = {false, false};
        published = pull(prepped);
      }
      published += reap(0);
      published += reap(1);
      if (published) {
        idle_since_ = 0;
        last_batch_ = published;
        return Napi::Number::New(env, published);
      }
      uint64_t now = now_ns();
      bool busy = inflight_[0] || inflight_[1] || load(kSqTail) != head_;
      if (busy) {
        idle_since_ = 0;
      } else {
        if (!idle_since_) idle_since_ = now;
        if (now - idle_since_ >= idle_ns) {
          std::lock_guard<std::mutex> l(mu_);  // no pull from the main thread in between
          if (load(kSqTail) != head_ || inflight_[0] || inflight_[1]) continue;
          store(kState, kExiting);
          return Napi::Number::New(env, -1);
        }
      }
      if (now >= deadline) return Napi::Number::New(env, 0);
      // Completions at low depth are microseconds away: poll (yielding) before sleeping. Also for
      // a while after the last completion when that was a small batch (a caller at low depth,
      // whose next request, prepared by the main thread straight into our rings, usually follows
      // within tens of microseconds); after large batches the main thread has work to do, and
      // polling would take its CPU.
      const uint64_t spin_until =
          busy ? now + spin_ns_ : (last_batch_ <= kIdleSpinBatch ? idle_since_ + idle_spin_ns_ : 0);
      if (!spun && spin_until > now) {
        spun = true;
        while (now_ns() < spin_until) {
          if (sq_new()) break;
          int n = reap(0) + reap(1);
          if (n) {
            idle_since_ = 0;
            last_batch_ = n;
            return Napi::Number::New(env, n);
          }
          sched_yield();
        }
        continue;
      }
      spun = false;
      // Rings in flight whose executor is gone (a service that stopped or died) never complete:
      // fail the step, so the engine fails this worker's requests (EPIPE) instead of hanging.
      for (int k = 0; k < 2; k++) {
        int h = inflight_[k] ? usrbio_ior_health(&rings_[k]) : 0;
        if (h < 0) {
          Napi::Error e = Napi::Error::New(env, std::string("usrbio: the agent serving this worker's rings stopped (") +
                                                    strerror(-h) + ")");
          e.Set("errno", Napi::Number::New(env, h));
          e.ThrowAsJavaScriptException();
          return env.Undefined();
        }
      }
      const int r0 = inflight_[0], r1 = inflight_[1];
      int w = r0 || !r1 ? 0 : 1;
      uint64_t until = deadline;
      if (r0 && r1) until = std::min<uint64_t>(until, now + 1000000ull);  // poll the write ring
      if (!busy) until = std::min<uint64_t>(until, idle_since_ + idle_ns);
      else until = std::min<uint64_t>(until, now + 100000000ull);  // re-check health every 100 ms
      store(kState, w ? kSleepWrite : kSleepRead);
      // After the state store: the main thread either saw it (and wakes us for the other ring)
      // or prepared before it, which shows here as a changed in-flight count (both seq_cst).
      if (sq_new() || bool(inflight_[0]) != bool(r0) || bool(inflight_[1]) != bool(r1)) {
        store(kState, kRunning);
        continue;
      }
      usrbio_ior_sleep(&rings_[w], long((until > now ? until - now : 0) / 1000));
      store(kState, kRunning);
    }
  }

  EnvState *state_ = nullptr;
  bool live_ = false;
  hf3fs_iov iov_{};
  hf3fs_ior rings_[2]{};  // [0] read, [1] write
  std::atomic<int> inflight_[2] = {0, 0};  // prepared (either thread), not yet reaped
  std::mutex mu_;  // SQ head, blocked_, CQ tail and entries, state changes the main thread relies on
  std::vector<hf3fs_cqe> cqes_;
  const uint64_t spin_ns_ = uint64_t(env_us("USRBIO_WAIT_SPIN_US", 20)) * 1000;  // polling with I/O in flight
  // polling after the last completion with none in flight
  const uint64_t idle_spin_ns_ = uint64_t(env_us("USRBIO_PUMP_IDLE_SPIN_US", 50)) * 1000;
  // The attached channel (null when detached).
  int32_t *hdr_ = nullptr;
  double *sq_ = nullptr, *cq_ = nullptr;
  int32_t *cancel_ = nullptr;
  uint32_t cap_ = 0;
  int32_t channel_ = -1;
  int32_t head_ = 0, cq_tail_ = 0;  // private copies of SQ head and CQ tail
  uint64_t idle_since_ = 0;
  int last_batch_ = 0;  // completions in the last published batch
  bool blocked_ = false;  // a ring was full; SQ entries wait for a reap
};

// pull(channelId) -> completions published, or -1 when no running pump serves the channel (it
// takes the requests itself when it runs). The main thread calls it once per flush, after
// storing the SQ tail.
Napi::Value Pull(const Napi::CallbackInfo &info) {
  int32_t id = info[0].As<Napi::Number>().Int32Value();
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_pumps.find(id);
  return Napi::Number::New(info.Env(), it == g_pumps.end() ? -1 : it->second->pull_from_main());
}

// fdInfo(fd, out: Float64Array(3 to 5)) -> 0 and out = [dev, ino, O_ACCMODE bits, and with 4
// elements 1 for a regular file opened without O_DIRECT (else 0), and with 5 elements 1 for a
// regular file or block device opened with O_DIRECT (else 0)], or -errno.
Napi::Value FdInfo(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto out = info[1].As<Napi::Float64Array>();
  if (out.ElementLength() < 3) return Napi::Number::New(info.Env(), -EINVAL);
  struct stat st;
  if (fstat(fd, &st) < 0) return Napi::Number::New(info.Env(), -errno);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return Napi::Number::New(info.Env(), -errno);
  out[0] = double(st.st_dev);
  out[1] = double(st.st_ino);
  out[2] = double(fl & O_ACCMODE);
  if (out.ElementLength() >= 4) out[3] = S_ISREG(st.st_mode) && !(fl & O_DIRECT) ? 1 : 0;
  if (out.ElementLength() >= 5) out[4] = (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && (fl & O_DIRECT) ? 1 : 0;
  return Napi::Number::New(info.Env(), S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? 0 : -EINVAL);
}

}  // namespace

void RegisterPump(Napi::Env env, Napi::Object exports, EnvState *state) {
  exports.Set("Pump", Pump::Define(env, state));
  exports.Set("pull", Napi::Function::New(env, Pull, "pull"));
  exports.Set("fdInfo", Napi::Function::New(env, FdInfo, "fdInfo"));
}

}  // namespace usrbio_addon
