// addon.cc - the Node binding of the USRBIO C API: one small class per concept (Iov, Ior),
// positional arguments already validated by TypeScript (src/native.ts), and one per-environment
// state whose cleanup hook destroys whatever JS left open.
#include <napi.h>
#include <sys/mman.h>
#include <v8.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "addon.h"
#include "hf3fs_usrbio.h"
#include "usrbio_ext.h"

namespace usrbio_addon {

// Marks objects made by the Iov constructor, so that Ior.prep never treats another object as one.
constexpr napi_type_tag kIovTag = {0x75737262696f2d69ull, 0x6f762d7461672d31ull};
// Marks objects made by the Ior constructor (see unwrap_ior).
constexpr napi_type_tag kIorTag = {0x75737262696f2d69ull, 0x6f722d7461672d31ull};

Napi::Error errno_error(Napi::Env env, int e, const char *fn) {
  Napi::Error err = Napi::Error::New(env, std::string(fn) + ": " + strerror(e));
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("syscall", Napi::String::New(env, fn));
  return err;
}

// An iov's memory, shared by its wrapper and the external ArrayBuffers over it: the iov is
// destroyed (unregistered, unmapped) when the last of them lets go, so a view a caller still
// holds never points at unmapped memory.
struct IovHold {
  hf3fs_iov iov{};
  // What the garbage collector gave back: (start, units, gen) of each collected slice, in the
  // order collected, until Iov.reap takes them. Finalizers push on the JS thread; the lock
  // covers a runtime that runs them elsewhere.
  std::mutex freed_mu;
  std::vector<int32_t> freed;
  IovHold() = default;
  IovHold(const IovHold &) = delete;
  ~IovHold() { hf3fs_iovdestroy(&iov); }
};

// One Iov.slice ArrayBuffer not yet collected. The ArrayBuffer is not reported to V8 as external
// memory (its backing store has the empty deleter: the iov owns the memory), so dropped views
// never force mark-compacts; a weak handle tells us when the collector frees it, which a
// young-generation collection does for a view that died young. Linked into its env's list, so
// the env's cleanup frees those still alive when the env goes away.
struct SliceRef {
  v8::Global<v8::ArrayBuffer> ab;
  std::shared_ptr<IovHold> hold;  // keeps the iov mapped while the ArrayBuffer can be reached
  int32_t start, units, gen;
  EnvState *state;
  SliceRef *prev = nullptr, *next = nullptr;
  void link() {
    next = state->slices;
    if (next) next->prev = this;
    state->slices = this;
  }
  ~SliceRef() {
    if (prev) prev->next = next;
    else state->slices = next;
    if (next) next->prev = prev;
  }
};

// The weak callback of a SliceRef: its ArrayBuffer was collected (runs inside the collection).
void slice_collected(const v8::WeakCallbackInfo<SliceRef> &info) {
  SliceRef *r = info.GetParameter();
  r->ab.Reset();
  {
    std::lock_guard<std::mutex> lock(r->hold->freed_mu);
    r->hold->freed.insert(r->hold->freed.end(), {r->start, r->units, r->gen});
  }
  delete r;
}

class Iov : public Napi::ObjectWrap<Iov>, public IovMethods<Iov> {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) {
    return DefineIov(env, "Iov", state, {InstanceMethod("slice", &Iov::Slice), InstanceMethod("reap", &Iov::Reap)});
  }
  // new Iov(mount, size, blockSize, numa[, id]): arguments validated by the caller. With `id`
  // (a 16-byte Buffer) the iov is opened (hf3fs_iovopen), else created.
  Iov(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Iov>(info) {
    state_ = static_cast<EnvState *>(info.Data());
    info.This().As<Napi::Object>().TypeTag(&kIovTag);
    std::string mount = info[0].As<Napi::String>();
    auto size = size_t(info[1].As<Napi::Number>().Int64Value());
    auto bs = size_t(info[2].As<Napi::Number>().Int64Value());
    int numa = info[3].As<Napi::Number>().Int32Value();
    auto hold = std::make_shared<IovHold>();
    int r;
    const char *fn;
    if (info.Length() > 4 && info[4].IsBuffer()) {
      auto id = info[4].As<Napi::Buffer<uint8_t>>();
      if (id.Length() != 16) {
        Napi::TypeError::New(info.Env(), "id must be 16 bytes").ThrowAsJavaScriptException();
        return;
      }
      fn = "hf3fs_iovopen";
      r = hf3fs_iovopen(&hold->iov, id.Data(), mount.c_str(), size, bs, numa);
    } else {
      fn = "hf3fs_iovcreate";
      r = hf3fs_iovcreate(&hold->iov, mount.c_str(), size, bs, numa);
    }
    if (r < 0) {
      hold->iov.iovh = nullptr;  // nothing to destroy
      hold->iov.base = nullptr;
      errno_error(info.Env(), -r, fn).ThrowAsJavaScriptException();
      return;
    }
    hold_ = std::move(hold);
    state_->iovs.insert(this);
  }
  ~Iov() override { release(); }
  hf3fs_iov *get() const { return hold_ ? &hold_->iov : nullptr; }

 public:
  // Drop the wrapper's share of the iov (destroyed once no view holds it either). After this the
  // wrapper never touches the env state again.
  void release() {
    if (!hold_) return;
    state_->iovs.erase(this);
    hold_.reset();
  }
  // view() -> an ArrayBuffer over the whole iov, without a copy. It keeps the iov's memory mapped
  // until it is garbage collected, even after destroy(). One per thread: never transfer it.
  Napi::Value View(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    auto *keep = new std::shared_ptr<IovHold>(hold_);
    return Napi::ArrayBuffer::New(info.Env(), hold_->iov.base, hold_->iov.size,
                                  [](Napi::Env, void *, std::shared_ptr<IovHold> *k) { delete k; }, keep);
  }
  // slice(byteOffset, length, start, units, gen) -> an ArrayBuffer over `length` bytes of the iov
  // at byteOffset (no copy) that keeps the iov's memory mapped while it lives. When the garbage
  // collector frees it, (start, units, gen) is queued for reap(). The numbers are the caller's
  // (validated by it; the range is checked here); gen lets it tell a stale entry from a live one.
  Napi::Value Slice(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    auto off = size_t(info[0].As<Napi::Number>().Int64Value());
    auto len = size_t(info[1].As<Napi::Number>().Int64Value());
    if (off > hold_->iov.size || len > hold_->iov.size - off) return outside(info);
    v8::Isolate *isolate = v8::Isolate::GetCurrent();
    auto store = v8::ArrayBuffer::NewBackingStore(hold_->iov.base + off, len, v8::BackingStore::EmptyDeleter, nullptr);
    v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, std::move(store));
    auto *r = new SliceRef{v8::Global<v8::ArrayBuffer>(isolate, ab), hold_, info[2].As<Napi::Number>().Int32Value(),
                           info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::Number>().Int32Value(), state_};
    r->link();
    r->ab.SetWeak(r, slice_collected, v8::WeakCallbackType::kParameter);
    return Napi::Value(info.Env(), to_napi(ab));
  }
  // reap(out: Int32Array) -> how many (start, units, gen) triples of collected slices were moved
  // into `out` (at most out.length / 3; the rest wait for the next call), oldest first.
  Napi::Value Reap(const Napi::CallbackInfo &info) {
    auto out = info[0].As<Napi::Int32Array>();
    size_t n = 0;
    if (hold_) {
      std::lock_guard<std::mutex> lock(hold_->freed_mu);
      auto &f = hold_->freed;
      n = std::min(f.size() / 3, out.ElementLength() / 3);
      std::copy(f.begin(), f.begin() + n * 3, out.Data());
      f.erase(f.begin(), f.begin() + n * 3);
    }
    return Napi::Number::New(info.Env(), double(n));
  }

 private:
  EnvState *state_ = nullptr;
  std::shared_ptr<IovHold> hold_;  // null once released
};


class Ior : public Napi::ObjectWrap<Ior> {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) {
    return DefineClass(env, "Ior",
                       {InstanceMethod("destroy", &Ior::Destroy), InstanceMethod("prep", &Ior::Prep),
                        InstanceMethod("submit", &Ior::Submit), InstanceMethod("wait", &Ior::Wait),
                        InstanceAccessor("entries", &Ior::Entries, nullptr)},
                       state);
  }
  // new Ior(mount, entries, forRead, ioDepth, timeoutMs, numa, flags[, priority, variant]): variant
  // 1, 2 or 3 creates the ring with hf3fs_iorcreate, 2 or 3, anything else (the default) with
  // hf3fs_iorcreate4 (see ior_create).
  Ior(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Ior>(info) {
    state_ = static_cast<EnvState *>(info.Data());
    info.This().As<Napi::Object>().TypeTag(&kIorTag);
    std::string mount = info[0].As<Napi::String>();
    int entries = info[1].As<Napi::Number>().Int32Value();
    bool for_read = info[2].As<Napi::Boolean>();
    int depth = info[3].As<Napi::Number>().Int32Value();
    int timeout = info[4].As<Napi::Number>().Int32Value();
    int numa = info[5].As<Napi::Number>().Int32Value();
    auto flags = uint64_t(info[6].As<Napi::Number>().Int64Value());
    int priority = info.Length() > 7 ? info[7].As<Napi::Number>().Int32Value() : 0;
    int variant = info.Length() > 8 ? info[8].As<Napi::Number>().Int32Value() : 4;
    auto *ior = new hf3fs_ior();
    const char *fn = "hf3fs_iorcreate4";
    int r = ior_create(variant, ior, mount.c_str(), entries, for_read, depth, priority, timeout, numa, flags, &fn);
    if (r < 0) {
      delete ior;
      errno_error(info.Env(), -r, fn).ThrowAsJavaScriptException();
      return;
    }
    ior_ = ior;
    state_->iors.insert(this);
  }
  ~Ior() override { release(); }
  hf3fs_ior *get() const { return ior_; }

 public:
  // Destroy the ring. After this the wrapper never touches the env state again.
  void release() {
    if (!ior_) return;
    state_->iors.erase(this);
    hf3fs_iordestroy(ior_);
    delete ior_;
    ior_ = nullptr;
  }
 private:
  bool live(const Napi::CallbackInfo &info) {
    if (ior_) return true;
    Napi::Error::New(info.Env(), "the ior was destroyed").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Value Destroy(const Napi::CallbackInfo &info) {
    release();
    return info.Env().Undefined();
  }
  // prep(iov, read, fd, iovOffset, fileOffset, length, tag) -> slot index or -errno
  Napi::Value Prep(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    // TypeScript checks the argument; this guards against anything else reaching here.
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().CheckTypeTag(&kIovTag))
      return Napi::Number::New(info.Env(), -EINVAL);
    Iov *iov = Napi::ObjectWrap<Iov>::Unwrap(info[0].As<Napi::Object>());
    if (!iov || !iov->get()) return Napi::Number::New(info.Env(), -EINVAL);
    bool read = info[1].As<Napi::Boolean>();
    int fd = info[2].As<Napi::Number>().Int32Value();
    auto iov_off = uint64_t(info[3].As<Napi::Number>().Int64Value());
    auto file_off = uint64_t(info[4].As<Napi::Number>().Int64Value());
    auto len = uint64_t(info[5].As<Napi::Number>().Int64Value());
    auto tag = uintptr_t(info[6].As<Napi::Number>().Int64Value());
    if (iov_off > iov->get()->size) return Napi::Number::New(info.Env(), -EINVAL);
    int r = hf3fs_prep_io(ior_, iov->get(), read, iov->get()->base + iov_off, fd, file_off, len,
                          reinterpret_cast<const void *>(tag));
    return Napi::Number::New(info.Env(), r);
  }
  Napi::Value Submit(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), hf3fs_submit_ios(ior_));
  }
  // wait(results: Float64Array, tags: Float64Array, minResults, timeoutMs) -> count or -errno.
  // Blocks the calling thread; timeoutMs < 0 waits without limit.
  Napi::Value Wait(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      return Napi::Number::New(info.Env(), -EINVAL);
    auto results = info[0].As<Napi::Float64Array>();
    auto tags = info[1].As<Napi::Float64Array>();
    int min = info[2].As<Napi::Number>().Int32Value();
    double timeout_ms = info[3].As<Napi::Number>().DoubleValue();
    int cap = int(std::min(results.ElementLength(), tags.ElementLength()));
    if (cap <= 0) return Napi::Number::New(info.Env(), -EINVAL);
    cqes_.resize(size_t(cap));
    timespec ts;
    timespec *deadline = deadline_in(timeout_ms, &ts);
    int n = hf3fs_wait_for_ios(ior_, cqes_.data(), cap, min, deadline);
    for (int i = 0; i < n; i++) {
      results[size_t(i)] = double(cqes_[size_t(i)].result);
      tags[size_t(i)] = double(reinterpret_cast<uintptr_t>(cqes_[size_t(i)].userdata));
    }
    return Napi::Number::New(info.Env(), n);
  }
  Napi::Value Entries(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), ior_ ? hf3fs_io_entries(ior_) : 0);
  }

  EnvState *state_ = nullptr;
  hf3fs_ior *ior_ = nullptr;
  std::vector<hf3fs_cqe> cqes_;
};

hf3fs_iov *unwrap_iov(const Napi::Value &v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kIovTag)) return nullptr;
  Iov *iov = Napi::ObjectWrap<Iov>::Unwrap(v.As<Napi::Object>());
  return iov ? iov->get() : nullptr;
}

hf3fs_ior *unwrap_ior(const Napi::Value &v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kIorTag)) return nullptr;
  Ior *ior = Napi::ObjectWrap<Ior>::Unwrap(v.As<Napi::Object>());
  return ior ? ior->get() : nullptr;
}

void EnvState::Cleanup(void *p) {
  auto *s = static_cast<EnvState *>(p);
  while (s->slices) delete s->slices;  // ArrayBuffers that outlive the env never reach JS again
  // Pumps and rings first: their I/O may target the iovs.
  for (Owned *o : std::set<Owned *>(s->owned)) o->release();
  for (Ior *r : std::set<Ior *>(s->iors)) r->release();
  for (Iov *v : std::set<Iov *>(s->iovs)) v->release();
  destroy_batch_helper(s->helper);  // joined before anything it could read goes
  destroy_inline_reader(s->reader);
  delete s;
}

// regFd(fd) -> handle (<= 0) or positive errno
Napi::Value RegFd(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), hf3fs_reg_fd(info[0].As<Napi::Number>().Int32Value(), 0));
}

Napi::Value DeregFd(const Napi::CallbackInfo &info) {
  hf3fs_dereg_fd(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value IorSize(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), double(hf3fs_ior_size(info[0].As<Napi::Number>().Int32Value())));
}

Napi::Value AgentStats(const Napi::CallbackInfo &info) {
  usrbio_agent_stats s;
  usrbio_get_agent_stats(&s);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("executor", s.executor);
  set_agent_counts(o, s);
  return o;
}

constexpr size_t kHugePage = size_t(2) << 20;

void FreeResultBuffer(Napi::Env env, uint8_t *data, size_t *mapped) {
  munmap(data, *mapped);
  Napi::MemoryManagement::AdjustExternalMemory(env, -int64_t(*mapped));
  delete mapped;
}

// allocBuffer(length) -> a Buffer of `length` (>= 1) uninitialised bytes in private anonymous
// memory backed by transparent huge pages where the kernel allows (MADV_HUGEPAGE), or null when
// the mapping fails. For large results: their first touch then costs one fault per 2 MiB instead
// of per 4 KiB. The memory is reported to V8 and unmapped when the Buffer is collected.
Napi::Value AllocBuffer(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const size_t len = size_t(info[0].As<Napi::Number>().Int64Value());
  const size_t mapped = (len + kHugePage - 1) & ~(kHugePage - 1);
  void *p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return env.Null();
  madvise(p, mapped, MADV_HUGEPAGE);  // best effort: THP off or unsupported leaves 4 KiB pages
  Napi::MemoryManagement::AdjustExternalMemory(env, int64_t(mapped));
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t *>(p), len, FreeResultBuffer, new size_t(mapped));
}

// collectGarbage(full, keepFlag, serial) -> undefined. Asks V8 for a young-generation collection
// (full: a full one), synchronously: the cheap way to get dropped views back when the view region
// runs short, since V8 does not know what they hold. V8 allows this only with --expose-gc, so the
// flag is on for the call; it is turned off again unless it was on before (keepFlag). With
// `serial` (only when the process set none of these flags itself), a young collection runs
// without V8's helper threads (--no-parallel-scavenge, --no-concurrent-array-buffer-sweeping,
// restored after the call): on a machine whose cores are busy copying, waiting for the helpers
// to be scheduled tripled the collection's wall time (1 MiB reads at concurrency 16, 2 cores).
Napi::Value CollectGarbage(const Napi::CallbackInfo &info) {
  bool full = info[0].As<Napi::Boolean>().Value();
  bool keep = info[1].As<Napi::Boolean>().Value();
  bool serial = !full && info[2].As<Napi::Boolean>().Value();
  v8::V8::SetFlagsFromString("--expose-gc");
  if (serial) v8::V8::SetFlagsFromString("--no-parallel-scavenge --no-concurrent-array-buffer-sweeping");
  v8::Isolate::GetCurrent()->RequestGarbageCollectionForTesting(full ? v8::Isolate::kFullGarbageCollection
                                                                     : v8::Isolate::kMinorGarbageCollection);
  if (serial) v8::V8::SetFlagsFromString("--parallel-scavenge --concurrent-array-buffer-sweeping");
  if (!keep) v8::V8::SetFlagsFromString("--no-expose-gc");
  return info.Env().Undefined();
}

Napi::Value Version(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), usrbio_version()); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto *state = new EnvState;
  env.AddCleanupHook(EnvState::Cleanup, state);
  exports.Set("Iov", Iov::Define(env, state));
  exports.Set("Ior", Ior::Define(env, state));
  exports.Set("regFd", Napi::Function::New(env, RegFd, "regFd"));
  exports.Set("deregFd", Napi::Function::New(env, DeregFd, "deregFd"));
  exports.Set("iorSize", Napi::Function::New(env, IorSize, "iorSize"));
  exports.Set("agentStats", Napi::Function::New(env, AgentStats, "agentStats"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("allocBuffer", Napi::Function::New(env, AllocBuffer, "allocBuffer"));
  exports.Set("collectGarbage", Napi::Function::New(env, CollectGarbage, "collectGarbage"));
  RegisterPump(env, exports, state);
  RegisterInlineRead(env, exports, state);
  RegisterDirectRead(env, exports, state);
  RegisterPool(env, exports);
  RegisterLowLevel(env, exports, state);
  RegisterService(env, exports, state);
  return exports;
}

}  // namespace usrbio_addon

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return usrbio_addon::Init(env, exports); }
NODE_API_MODULE(usrbio, InitAddon)
