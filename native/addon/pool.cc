// pool.cc - recycled memory for the engine's copied results (allocPooled, poolStats).
//
// The engine carves small results (at most 8 KiB each) from 256 KiB slabs, a new slab every 64
// results of 4 KiB: over 2 GB/s of slabs at 600k reads a second; larger copied results (up to
// 1 MiB) take a buffer each. From malloc, the collector's bulk frees trimmed the heap (or
// unmapped the buffers), and the next allocations faulted their pages in again: 40-60k page
// faults a second on a 2-vCPU VM, after which 4 KiB streams ran at half speed and 64 KiB reads
// at 2.2 against 5.5 GB/s, for the rest of the process. Here a block whose ArrayBuffer the
// collector frees goes back to a process-wide free list of its size class instead, up to a cap,
// and is handed out again as it is.
#include <sys/mman.h>
#include <v8.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "addon.h"

namespace usrbio_addon {
namespace {

// Size classes: 16 KiB to 1 MiB in steps of 2^k and 1.5 x 2^k, so a result wastes at most a
// third of its block (a little over half for a result just above 16 KiB).
constexpr size_t kClasses[] = {16 << 10, 24 << 10, 32 << 10, 48 << 10, 64 << 10, 96 << 10, 128 << 10,
                               192 << 10, 256 << 10, 384 << 10, 512 << 10, 768 << 10, 1024 << 10};
constexpr int kNumClasses = sizeof kClasses / sizeof kClasses[0];
constexpr size_t kMaxBlock = kClasses[kNumClasses - 1];
// Free blocks kept for reuse at most, in bytes over all classes (64 MiB); a block freed beyond
// this is unmapped. 16 concurrent 4 KiB readers at 600k reads a second kept at most 80 slabs
// (20 MiB) mapped, live and free together.
constexpr size_t kCachedMax = size_t(64) << 20;

// The smallest class that holds `n` bytes, or -1 when `n` > kMaxBlock.
int class_of(size_t n) {
  for (int c = 0; c < kNumClasses; c++)
    if (n <= kClasses[c]) return c;
  return -1;
}

// Invariant: every mapped block is either on its class's free list or the backing store of
// exactly one live ArrayBuffer; `mapped` counts the bytes of both, `cached` those on the lists.
// Process-wide and never destroyed: a backing store may be freed on a V8 helper thread, and after
// its environment has gone.
struct Pool {
  std::mutex mu;
  std::vector<void *> free[kNumClasses];
  size_t cached = 0;  // under mu
  std::atomic<size_t> mapped{0}, live{0}, reused{0};
};

Pool &pool() {
  static Pool *p = new Pool;  // never destroyed (see above)
  return *p;
}

// The backing store's deleter: back to its class's free list, or unmapped when the lists hold
// kCachedMax. Runs on whatever thread V8 frees the backing store on.
void give_back(void *data, size_t length, void *) {
  Pool &p = pool();
  p.live -= length;
  int c = class_of(length);
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (p.cached + length <= kCachedMax) {
      p.free[c].push_back(data);
      p.cached += length;
      return;
    }
  }
  munmap(data, length);
  p.mapped -= length;
}

// allocPooled(n) -> an ArrayBuffer of the smallest size class >= n (16 KiB .. 1 MiB; so
// 1 <= n <= 1 MiB), uninitialised (a recycled block holds old results), or null when no memory
// can be mapped. The block goes back to the pool when the collector frees the ArrayBuffer; V8
// counts it as the ArrayBuffer's own memory, as it does a Buffer.allocUnsafeSlow's.
Napi::Value AllocPooled(const Napi::CallbackInfo &info) {
  const int64_t n = info[0].As<Napi::Number>().Int64Value();
  const int c = n >= 1 ? class_of(size_t(n)) : -1;
  if (c < 0) {
    Napi::RangeError::New(info.Env(), "allocPooled: n must be 1 .. 1 MiB").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const size_t size = kClasses[c];
  Pool &p = pool();
  void *data = nullptr;
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (!p.free[c].empty()) {
      data = p.free[c].back();  // the most recently freed: the likeliest still in the caches
      p.free[c].pop_back();
      p.cached -= size;
    }
  }
  if (data) {
    p.reused++;
  } else {
    data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return info.Env().Null();  // the caller falls back to Buffer.allocUnsafeSlow
    p.mapped += size;
  }
  p.live += size;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> bs = v8::ArrayBuffer::NewBackingStore(data, size, give_back, nullptr);
  return Napi::Value(info.Env(), to_napi(v8::ArrayBuffer::New(isolate, std::move(bs))));
}

// poolStats() -> { mapped, live, cached, cachedMax, reused, maxBlock }: bytes mapped now (live +
// cached), bytes ArrayBuffers hold, bytes on the free lists, their cap, how many allocations
// reused a block, and the largest class. For tests and diagnostics.
Napi::Value PoolStats(const Napi::CallbackInfo &info) {
  Pool &p = pool();
  Napi::Object o = Napi::Object::New(info.Env());
  size_t cached;
  {
    std::lock_guard<std::mutex> g(p.mu);
    cached = p.cached;
  }
  o.Set("mapped", double(p.mapped.load()));
  o.Set("live", double(p.live.load()));
  o.Set("cached", double(cached));
  o.Set("cachedMax", double(kCachedMax));
  o.Set("reused", double(p.reused.load()));
  o.Set("maxBlock", double(kMaxBlock));
  return o;
}

}  // namespace

void RegisterPool(Napi::Env env, Napi::Object exports) {
  exports.Set("allocPooled", Napi::Function::New(env, AllocPooled, "allocPooled"));
  exports.Set("poolStats", Napi::Function::New(env, PoolStats, "poolStats"));
}

}  // namespace usrbio_addon
