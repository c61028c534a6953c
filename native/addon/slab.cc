// slab.cc - recycled memory for the engine's small copied results (allocSlab, slabStats).
//
// The engine carves small results (at most 8 KiB each) from 256 KiB slabs, a new slab every 64
// results of 4 KiB: over 2 GB/s of slabs at 600k reads a second. From malloc, a slab is a
// mapping of its own or heap that free() trims, so the collector's bulk frees gave the pages
// back to the kernel and the next slabs faulted them in again (40-60k page faults a second on
// a 2-vCPU VM, and then throughput halved). Here a slab whose ArrayBuffer the collector frees
// goes back to a process-wide free list instead, up to a cap, and is handed out again as it is.
#include <sys/mman.h>
#include <v8.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "addon.h"

namespace usrbio_addon {
namespace {

constexpr size_t kSlabBytes = 256 * 1024;
// Free slabs kept for reuse at most (32 MiB); a slab freed beyond this is unmapped. 16
// concurrent 4 KiB readers at 600k reads a second kept at most 80 slabs mapped, live and free.
constexpr size_t kCachedMax = 128;

// Invariant: every mapped slab is either in `free` or the backing store of exactly one live
// ArrayBuffer; `mapped` counts both. Process-wide and never destroyed: a backing store may be
// freed on a V8 helper thread, and after its environment has gone.
struct SlabPool {
  std::mutex mu;
  std::vector<void *> free;
  std::atomic<size_t> mapped{0}, live{0}, reused{0};
};

SlabPool &pool() {
  static SlabPool *p = new SlabPool;  // never destroyed (see above)
  return *p;
}

// The backing store's deleter: back to the free list, or unmapped when the list is full.
// Runs on whatever thread V8 frees the backing store on.
void give_back(void *data, size_t, void *) {
  SlabPool &p = pool();
  p.live--;
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (p.free.size() < kCachedMax) {
      p.free.push_back(data);
      return;
    }
  }
  munmap(data, kSlabBytes);
  p.mapped--;
}

// allocSlab() -> an ArrayBuffer of 256 KiB (uninitialised: a recycled slab holds old results),
// or null when no memory can be mapped. The memory goes back to the pool when the collector
// frees the ArrayBuffer; V8 counts it as the ArrayBuffer's own, as it does an allocUnsafeSlow's.
Napi::Value AllocSlab(const Napi::CallbackInfo &info) {
  SlabPool &p = pool();
  void *data = nullptr;
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (!p.free.empty()) {
      data = p.free.back();  // the most recently freed: the likeliest still in the caches
      p.free.pop_back();
    }
  }
  if (data) {
    p.reused++;
  } else {
    data = mmap(nullptr, kSlabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* a failed mmap: the caller falls back to Buffer.allocUnsafeSlow */
    if (data == MAP_FAILED) return info.Env().Null();
    p.mapped++;
  }
  p.live++;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> bs = v8::ArrayBuffer::NewBackingStore(data, kSlabBytes, give_back, nullptr);
  return Napi::Value(info.Env(), to_napi(v8::ArrayBuffer::New(isolate, std::move(bs))));
}

// slabStats() -> { bytes, mapped, live, cached, cachedMax, reused }: the slab size, slabs mapped
// now (live + cached), those an ArrayBuffer holds, those on the free list, its cap, and how many
// allocations reused a slab. For tests and diagnostics.
Napi::Value SlabStats(const Napi::CallbackInfo &info) {
  SlabPool &p = pool();
  Napi::Object o = Napi::Object::New(info.Env());
  size_t cached;
  {
    std::lock_guard<std::mutex> g(p.mu);
    cached = p.free.size();
  }
  o.Set("bytes", double(kSlabBytes));
  o.Set("mapped", double(p.mapped.load()));
  o.Set("live", double(p.live.load()));
  o.Set("cached", double(cached));
  o.Set("cachedMax", double(kCachedMax));
  o.Set("reused", double(p.reused.load()));
  return o;
}

}  // namespace

void RegisterSlab(Napi::Env env, Napi::Object exports) {
  exports.Set("allocSlab", Napi::Function::New(env, AllocSlab, "allocSlab"));
  exports.Set("slabStats", Napi::Function::New(env, SlabStats, "slabStats"));
}

}  // namespace usrbio_addon
