// addon.h - what the files of the Node addon share: the per-environment state and errno errors.
#pragma once
#include <napi.h>

#include <cstdint>
#include <set>

#include "hf3fs_usrbio.h"

namespace usrbio_addon {

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
struct EnvState {
  std::set<Owned *> owned;
  std::set<Iov *> iovs;  // wrappers still holding an iov
  std::set<Ior *> iors;  // wrappers still holding a ring
  static void Cleanup(void *p);
};

// An Error for C errno `e` raised by `fn`, with .errno (negative) and .syscall set.
Napi::Error errno_error(Napi::Env env, int e, const char *fn);

// Adds Pump, kick and fdInfo to `exports` (pump.cc).
void RegisterPump(Napi::Env env, Napi::Object exports, EnvState *state);

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

}  // namespace usrbio_addon
