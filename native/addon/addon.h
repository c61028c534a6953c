// addon.h - what the files of the Node addon share: the per-environment state and errno errors.
#pragma once
#include <napi.h>

#include <set>

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

}  // namespace usrbio_addon
