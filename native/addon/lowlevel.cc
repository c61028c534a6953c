// lowlevel.cc - the rest of the C API one-to-one, for src/lowlevel.ts: the calls that take an Iov
// or Ior object (unwrapped by type tag, so no other object is ever read as one; a destroyed one
// reaches the C function as NULL, which answers -EINVAL as it does in C), iovs over a
// SharedArrayBuffer (hf3fs_iovwrap), and the file and mount-point functions. Arguments are
// positional primitives already validated by TypeScript; results are the C return values, which
// TypeScript turns into UsrbioErrors.
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "addon.h"
#include "hf3fs_usrbio.h"
#include "usrbio_ext.h"

namespace usrbio_addon {

int ior_create(int variant, hf3fs_ior *ior, const char *mp, int entries, bool for_read, int io_depth, int priority,
               int timeout, int numa, uint64_t flags, const char **fn) {
  switch (variant) {
    case 1:
      *fn = "hf3fs_iorcreate";
      return hf3fs_iorcreate(ior, mp, entries, for_read, io_depth, numa);
    case 2:
      *fn = "hf3fs_iorcreate2";
      return hf3fs_iorcreate2(ior, mp, entries, for_read, io_depth, priority, numa);
    case 3:
      *fn = "hf3fs_iorcreate3";
      return hf3fs_iorcreate3(ior, mp, entries, for_read, io_depth, priority, timeout, numa);
    default:
      *fn = "hf3fs_iorcreate4";
      return hf3fs_iorcreate4(ior, mp, entries, for_read, io_depth, timeout, numa, flags);
  }
}

namespace {

// Marks WrapIov objects (see any_iov).
constexpr napi_type_tag kWrapIovTag = {0x75737262696f2d77ull, 0x7261702d696f7631ull};

int32_t i32(const Napi::Value &v) { return v.As<Napi::Number>().Int32Value(); }
int64_t i64(const Napi::Value &v) { return v.As<Napi::Number>().Int64Value(); }

// An iov over the memory of a SharedArrayBuffer (hf3fs_iovwrap). The wrapper holds a strong
// reference to the buffer until hf3fs_iovdestroy has returned, and that waits until no I/O uses
// the memory any more, so the agent never writes to freed memory. Only a SharedArrayBuffer is
// accepted: its memory cannot be detached (an ArrayBuffer's can, by transfer, which would free
// it under the agent).
class WrapIov : public Napi::ObjectWrap<WrapIov>, public IovMethods<WrapIov>, public Owned {
 public:
  static Napi::Function Define(Napi::Env env, EnvState *state) { return DefineIov(env, "WrapIov", state); }
  // new WrapIov(buf: Uint8Array over a SharedArrayBuffer, id: Buffer(16), mount, size, blockSize, numa)
  WrapIov(const Napi::CallbackInfo &info) : Napi::ObjectWrap<WrapIov>(info) {
    state_ = static_cast<EnvState *>(info.Data());
    info.This().As<Napi::Object>().TypeTag(&kWrapIovTag);
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "buf must be a Uint8Array").ThrowAsJavaScriptException();
      return;
    }
    auto buf = info[0].As<Napi::Uint8Array>();
    bool plain = true;  // napi_is_arraybuffer is false for a SharedArrayBuffer
    if (napi_is_arraybuffer(env, buf.ArrayBuffer(), &plain) != napi_ok || plain) {
      Napi::TypeError::New(env, "buf must be over a SharedArrayBuffer").ThrowAsJavaScriptException();
      return;
    }
    if (!info[1].IsBuffer() || info[1].As<Napi::Buffer<uint8_t>>().Length() != 16) {
      Napi::TypeError::New(env, "id must be 16 bytes").ThrowAsJavaScriptException();
      return;
    }
    auto id = info[1].As<Napi::Buffer<uint8_t>>();
    std::string mount = info[2].As<Napi::String>();
    auto size = size_t(i64(info[3]));
    auto bs = size_t(i64(info[4]));
    int numa = i32(info[5]);
    if (size > buf.ByteLength()) {
      Napi::RangeError::New(env, "size exceeds the buffer").ThrowAsJavaScriptException();
      return;
    }
    int r = hf3fs_iovwrap(&iov_, buf.Data(), id.Data(), mount.c_str(), size, bs, numa);
    if (r < 0) {
      errno_error(env, -r, "hf3fs_iovwrap").ThrowAsJavaScriptException();
      return;
    }
    keep_ = Napi::Persistent(buf);
    live_ = true;
    state_->owned.insert(this);
  }
  ~WrapIov() override { release(); }

  // Deregister the memory (waiting for I/O that uses it), then let go of the buffer. Idempotent;
  // the env cleanup hook calls it for wrappers JS did not destroy.
  void release() override {
    if (!live_) return;
    live_ = false;
    state_->owned.erase(this);
    hf3fs_iovdestroy(&iov_);
    keep_.Reset();
  }
  hf3fs_iov *get() { return live_ ? &iov_ : nullptr; }

  // view() -> the SharedArrayBuffer itself.
  Napi::Value View(const Napi::CallbackInfo &info) {
    if (!live(info)) return info.Env().Undefined();
    return keep_.Value().ArrayBuffer();
  }

 private:
  EnvState *state_ = nullptr;
  hf3fs_iov iov_{};
  bool live_ = false;
  Napi::Reference<Napi::Uint8Array> keep_;  // the wrapped memory's buffer, while live
};

// An Iov or a WrapIov, still alive; else nullptr.
hf3fs_iov *any_iov(const Napi::Value &v) {
  if (hf3fs_iov *iov = unwrap_iov(v)) return iov;
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kWrapIovTag)) return nullptr;
  WrapIov *w = Napi::ObjectWrap<WrapIov>::Unwrap(v.As<Napi::Object>());
  return w ? w->get() : nullptr;
}

Napi::Number num(const Napi::CallbackInfo &info, double v) { return Napi::Number::New(info.Env(), v); }

// ioEntries(ior) -> hf3fs_io_entries
Napi::Value IoEntries(const Napi::CallbackInfo &info) { return num(info, hf3fs_io_entries(unwrap_ior(info[0]))); }

// submitIos(ior) -> hf3fs_submit_ios
Napi::Value SubmitIos(const Napi::CallbackInfo &info) { return num(info, hf3fs_submit_ios(unwrap_ior(info[0]))); }

// iovUnlink(iov): hf3fs_iovunlink (nothing for a destroyed iov)
Napi::Value IovUnlink(const Napi::CallbackInfo &info) {
  hf3fs_iovunlink(any_iov(info[0]));
  return info.Env().Undefined();
}

// prepIo(ior, iov, read, iovOffset, fd, fileOffset, length, userdata) -> slot index or -errno
Napi::Value PrepIo(const Napi::CallbackInfo &info) {
  hf3fs_ior *ior = unwrap_ior(info[0]);
  hf3fs_iov *iov = any_iov(info[1]);
  bool read = info[2].As<Napi::Boolean>();
  auto iov_off = uint64_t(i64(info[3]));
  int fd = i32(info[4]);
  auto off = uint64_t(i64(info[5]));
  auto len = uint64_t(i64(info[6]));
  auto userdata = uintptr_t(i64(info[7]));
  // An offset past the iov gives a pointer outside it, which hf3fs_prep_io refuses (-EINVAL).
  uint8_t *ptr = iov && iov_off <= iov->size ? iov->base + iov_off : nullptr;
  return num(info, hf3fs_prep_io(ior, iov, read, ptr, fd, off, len, reinterpret_cast<const void *>(userdata)));
}

// A Float64Array's elements (*data may be NULL when it is empty); false for anything else.
bool f64(const Napi::Value &v, double **data, size_t *len) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) return false;
  auto a = v.As<Napi::Float64Array>();
  *len = a.ElementLength();
  *data = a.Data();
  return true;
}

// waitForIosInto(ior, indices, results, userdata, minResults, timeoutMs) -> count or -errno: reaps
// up to indices.length completions (the three arrays are Float64Arrays of that length) and
// stores them in order. timeoutMs < 0 waits without limit. Blocks the calling thread.
Napi::Value WaitForIosInto(const Napi::CallbackInfo &info) {
  hf3fs_ior *ior = unwrap_ior(info[0]);
  size_t ni = 0, nr = 0, nu = 0;
  double *indices = nullptr, *results = nullptr, *userdata = nullptr;
  if (!f64(info[1], &indices, &ni) || !f64(info[2], &results, &nr) || !f64(info[3], &userdata, &nu))
    return num(info, -EINVAL);
  int min = i32(info[4]);
  double timeout_ms = info[5].As<Napi::Number>().DoubleValue();
  size_t cap = std::min(ni, std::min(nr, nu));
  if (cap == 0 || cap > size_t(INT32_MAX)) return num(info, -EINVAL);
  thread_local std::vector<hf3fs_cqe> cqes;
  if (cqes.size() < cap) cqes.resize(cap);
  timespec ts;
  timespec *deadline = deadline_in(timeout_ms, &ts);
  int n = hf3fs_wait_for_ios(ior, cqes.data(), int(cap), min, deadline);
  for (int i = 0; i < n; i++) {
    const hf3fs_cqe &c = cqes[size_t(i)];
    indices[i] = c.index;
    results[i] = double(c.result);
    userdata[i] = double(reinterpret_cast<uintptr_t>(c.userdata));
  }
  return num(info, n);
}

// regFd(fd, flags) -> handle (<= 0) or positive errno
Napi::Value RegFd(const Napi::CallbackInfo &info) {
  return num(info, hf3fs_reg_fd(i32(info[0]), uint64_t(i64(info[1]))));
}

// extractMountPoint(path) -> the mount point, or null (hf3fs_extract_mount_point returned -1)
Napi::Value ExtractMountPoint(const Napi::CallbackInfo &info) {
  std::string path = info[0].As<Napi::String>();
  std::vector<char> buf(4096);
  int r;
  // A longer answer than the buffer (r > size) is only measured; grow and ask again.
  while ((r = hf3fs_extract_mount_point(buf.data(), int(buf.size()), path.c_str())) > int(buf.size()))
    buf.resize(size_t(r));
  if (r <= 0) return info.Env().Null();
  return Napi::String::New(info.Env(), buf.data(), size_t(r - 1));
}

// isHf3fs(fd) -> boolean
Napi::Value IsHf3fs(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), hf3fs_is_hf3fs(i32(info[0])));
}

// hardlink(target, linkName) -> 0 or positive errno
Napi::Value Hardlink(const Napi::CallbackInfo &info) {
  std::string target = info[0].As<Napi::String>(), link = info[1].As<Napi::String>();
  return num(info, hf3fs_hardlink(target.c_str(), link.c_str()));
}

// punchhole(fd, starts: Float64Array, ends: Float64Array, flags) -> 0 or positive errno
Napi::Value Punchhole(const Napi::CallbackInfo &info) {
  size_t ns = 0, ne = 0;
  double *s = nullptr, *e = nullptr;
  if (!f64(info[1], &s, &ns) || !f64(info[2], &e, &ne) || ns != ne) return num(info, EINVAL);
  std::vector<size_t> start(ns), end(ns);
  for (size_t i = 0; i < ns; i++) {
    start[i] = size_t(s[i]);
    end[i] = size_t(e[i]);
  }
  return num(info, hf3fs_punchhole(i32(info[0]), int(ns), start.data(), end.data(), size_t(i64(info[3]))));
}

// mountKind(mount) -> usrbio_mount_kind
Napi::Value MountKind(const Napi::CallbackInfo &info) {
  std::string mount = info[0].As<Napi::String>();
  return num(info, usrbio_mount_kind(mount.c_str()));
}

// iovMemregState(iov) -> [usrbio_iov_memreg_state, reason]
Napi::Value IovMemregState(const Napi::CallbackInfo &info) {
  char reason[256];
  int r = usrbio_iov_memreg_state(any_iov(info[0]), reason, sizeof reason);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(uint32_t(0), double(r));
  out.Set(uint32_t(1), reason);
  return out;
}

}  // namespace

void RegisterLowLevel(Napi::Env env, Napi::Object exports, EnvState *state) {
  Napi::Object ll = Napi::Object::New(env);
  ll.Set("WrapIov", WrapIov::Define(env, state));
  ll.Set("ioEntries", Napi::Function::New(env, IoEntries, "ioEntries"));
  ll.Set("submitIos", Napi::Function::New(env, SubmitIos, "submitIos"));
  ll.Set("iovUnlink", Napi::Function::New(env, IovUnlink, "iovUnlink"));
  ll.Set("prepIo", Napi::Function::New(env, PrepIo, "prepIo"));
  ll.Set("waitForIosInto", Napi::Function::New(env, WaitForIosInto, "waitForIosInto"));
  ll.Set("regFd", Napi::Function::New(env, RegFd, "regFd"));
  ll.Set("extractMountPoint", Napi::Function::New(env, ExtractMountPoint, "extractMountPoint"));
  ll.Set("isHf3fs", Napi::Function::New(env, IsHf3fs, "isHf3fs"));
  ll.Set("hardlink", Napi::Function::New(env, Hardlink, "hardlink"));
  ll.Set("punchhole", Napi::Function::New(env, Punchhole, "punchhole"));
  ll.Set("mountKind", Napi::Function::New(env, MountKind, "mountKind"));
  ll.Set("iovMemregState", Napi::Function::New(env, IovMemregState, "iovMemregState"));
  exports.Set("lowlevel", ll);
}

}  // namespace usrbio_addon
