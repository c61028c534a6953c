// addon.h - what the files of the Node addon share: the per-environment state and errno errors.
#pragma once
#include <napi.h>
#include <v8.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <set>
#include <vector>

#include "hf3fs_usrbio.h"

namespace usrbio_addon {

// A V8 handle as a napi_value: Node's napi_value is the Local's pointer (what its own
// v8impl::JsValueFromV8LocalValue does). Only for values made in the current handle scope.
template <class T>
napi_value to_napi(v8::Local<T> v) {
  static_assert(sizeof(v8::Local<v8::Value>) == sizeof(napi_value));
  v8::Local<v8::Value> value = v;
  napi_value out;
  memcpy(&out, &value, sizeof out);
  return out;
}

class Iov;
class Ior;

// A native object the environment's cleanup hook must release if JS did not.
struct Owned {
  virtual ~Owned() = default;
  virtual void release() = 0;
};

// Per-environment state: every live Iov/Ior/Owned of this env, released when the env goes away
// (worker exit, process exit) if JS did not do it first. Owned objects go first, then rings,
// then iovs.
struct SliceRef;
class InlineReader;
void destroy_inline_reader(InlineReader *r);
class BatchHelper;
void destroy_batch_helper(BatchHelper *h);
struct EnvState {
  SliceRef *slices = nullptr;  // Iov.slice ArrayBuffers not yet collected (a list; see addon.cc)
  InlineReader *reader = nullptr;  // readBatch's io_uring (inline_read.cc), set when reader_state is 1
  int reader_state = 0;            // 0 not tried yet, 1 made, -1 unavailable (preadv2 instead)
  BatchHelper *helper = nullptr;   // shares large readBatch calls (inline_read.cc), when helper_state is 1
  int helper_state = 0;            // 0 not tried yet, 1 running, -1 not used
  std::set<Owned *> owned;
  std::set<Iov *> iovs;  // wrappers still holding an iov
  std::set<Ior *> iors;  // wrappers still holding a ring
  static void Cleanup(void *p);
};

// An Error for C errno `e` raised by `fn`, with .errno (negative) and .syscall set.
Napi::Error errno_error(Napi::Env env, int e, const char *fn);

// The absolute CLOCK_REALTIME time timeout_ms from now, in *ts, as hf3fs_wait_for_ios takes it;
// null (no limit) when timeout_ms < 0.
inline timespec *deadline_in(double timeout_ms, timespec *ts) {
  if (timeout_ms < 0) return nullptr;
  clock_gettime(CLOCK_REALTIME, ts);
  auto ns = int64_t(timeout_ms * 1e6);
  ts->tv_sec += ns / 1000000000;
  ts->tv_nsec += ns % 1000000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
  return ts;
}

// Set an agent's counters (usrbio_agent_stats, usrbio_service_stats: the same field names) on a
// JS object, as the AgentStats type in src/native.ts names them.
template <class S>
void set_agent_counts(Napi::Object o, const S &s) {
  o.Set("rings", double(s.rings));
  o.Set("iovs", double(s.iovs));
  o.Set("files", double(s.files));
  o.Set("batches", double(s.batches));
  o.Set("ios", double(s.ios));
  o.Set("bytes", double(s.bytes));
  o.Set("errors", double(s.errors));
  o.Set("inflight", double(s.inflight));
}

// The JS methods every iov wrapper shares (Iov in addon.cc, WrapIov in lowlevel.cc). D derives
// from Napi::ObjectWrap<D> and this, and provides get() (its iov, null once released),
// release() and View().
template <class D>
class IovMethods {
 public:
  // `extra`: methods only D has, added to the shared ones.
  static Napi::Function DefineIov(Napi::Env env, const char *name, EnvState *state,
                                  std::vector<typename Napi::ObjectWrap<D>::PropertyDescriptor> extra = {}) {
    std::vector<typename Napi::ObjectWrap<D>::PropertyDescriptor> props = {
        Napi::ObjectWrap<D>::InstanceMethod("destroy", &D::Destroy),
        Napi::ObjectWrap<D>::InstanceMethod("copyOut", &D::CopyOut),
        Napi::ObjectWrap<D>::InstanceMethod("copyIn", &D::CopyIn),
        Napi::ObjectWrap<D>::InstanceMethod("view", &D::View),
        Napi::ObjectWrap<D>::InstanceMethod("unlink", &D::Unlink),
        Napi::ObjectWrap<D>::InstanceAccessor("id", &D::Id, nullptr),
        Napi::ObjectWrap<D>::InstanceAccessor("size", &D::Size, nullptr),
        Napi::ObjectWrap<D>::InstanceAccessor("blockSize", &D::BlockSize, nullptr)};
    props.insert(props.end(), extra.begin(), extra.end());
    return Napi::ObjectWrap<D>::DefineClass(env, name, props, state);
  }
  Napi::Value Destroy(const Napi::CallbackInfo &info) {
    self()->release();
    return info.Env().Undefined();
  }
  // unlink(): hf3fs_iovunlink (removes the iov's name; the memory stays usable).
  Napi::Value Unlink(const Napi::CallbackInfo &info) {
    if (hf3fs_iov *iov = live(info)) hf3fs_iovunlink(iov);
    return info.Env().Undefined();
  }
  // copyOut(offset, length) -> Buffer (a copy; bounds checked by the caller and here)
  Napi::Value CopyOut(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = live(info);
    if (!iov) return info.Env().Undefined();
    auto off = size_t(info[0].As<Napi::Number>().Int64Value());
    auto len = size_t(info[1].As<Napi::Number>().Int64Value());
    if (off > iov->size || len > iov->size - off) return outside(info);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), iov->base + off, len);
  }
  // copyIn(offset, Uint8Array)
  Napi::Value CopyIn(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = live(info);
    if (!iov) return info.Env().Undefined();
    auto off = size_t(info[0].As<Napi::Number>().Int64Value());
    auto src = info[1].As<Napi::Uint8Array>();
    if (off > iov->size || src.ByteLength() > iov->size - off) return outside(info);
    memmove(iov->base + off, src.Data(), src.ByteLength());  // the source may be this iov
    return info.Env().Undefined();
  }
  Napi::Value Id(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = live(info);
    if (!iov) return info.Env().Undefined();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<uint8_t *>(iov->id), 16);
  }
  Napi::Value Size(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = self()->get();
    return Napi::Number::New(info.Env(), iov ? double(iov->size) : 0);
  }
  Napi::Value BlockSize(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = self()->get();
    return Napi::Number::New(info.Env(), iov ? double(iov->block_size) : 0);
  }

 protected:
  D *self() { return static_cast<D *>(this); }
  // The iov, or null with a JS exception pending when it was destroyed.
  hf3fs_iov *live(const Napi::CallbackInfo &info) {
    hf3fs_iov *iov = self()->get();
    if (!iov) Napi::Error::New(info.Env(), "the iov was destroyed").ThrowAsJavaScriptException();
    return iov;
  }
  static Napi::Value outside(const Napi::CallbackInfo &info) {
    Napi::RangeError::New(info.Env(), "range outside the iov").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
};

// Adds Pump, kick and fdInfo to `exports` (pump.cc).
void RegisterPump(Napi::Env env, Napi::Object exports, EnvState *state);
void RegisterInlineRead(Napi::Env env, Napi::Object exports, EnvState *state);
// Adds DirectRing: O_DIRECT reads on the JS thread's own io_uring (direct_read.cc).
void RegisterDirectRead(Napi::Env env, Napi::Object exports, EnvState *state);
// Adds allocPooled and poolStats: recycled memory for copied results (pool.cc).
void RegisterPool(Napi::Env env, Napi::Object exports);

// The iov or ring behind a JS Iov/Ior object (checked by type tag), or nullptr for any other
// value and for a destroyed one (addon.cc).
hf3fs_iov *unwrap_iov(const Napi::Value &v);
hf3fs_ior *unwrap_ior(const Napi::Value &v);

// hf3fs_iorcreate (variant 1), hf3fs_iorcreate2, 3 or 4 (any other variant), each given the
// arguments it takes; *fn is set to the function's name (lowlevel.cc).
int ior_create(int variant, hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int priority,
               int timeout, int numa, uint64_t flags, const char **fn);

// Adds the `lowlevel` object: the rest of the C API one-to-one (lowlevel.cc).
void RegisterLowLevel(Napi::Env env, Napi::Object exports, EnvState *state);

// Adds Service, serviceQuery, serviceSocket and serviceOverride (service.cc).
void RegisterService(Napi::Env env, Napi::Object exports, EnvState *state);

}  // namespace usrbio_addon
