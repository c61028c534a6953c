// ring_layout.h - the 3FS ring memory layout (x86-64), shared by the client library and the agent.
//
//   0   int32 sqeHead   (client-written)      4  int32 sqeTail (agent-written)
//   8   int32 cqeHead   (agent-written)       12 int32 cqeTail (client-written)
//   16          IoArgs[E]  56 B each, indexed by slot
//   16 + 56E    IoCqe[E]   24 B each, indexed by ring position
//   16 + 80E    IoSqe[E]   16 B each, indexed by ring position
//   16 + 96E    sem_t      completion semaphore (process-shared, initialised by the agent)
//   48 + 96E    4096 bytes spare
// E = entries + 1 (one position is wasted to tell full from empty). Markers are seq_cst atomics.
#pragma once
#include <semaphore.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace usrbio {

struct IoArgs {
  uint8_t bufId[16];
  uint64_t bufOff;
  uint64_t fileIid;
  uint64_t fileOff;
  uint64_t ioLen;
  const void *userdata;
};
static_assert(sizeof(IoArgs) == 56);

struct IoCqe {
  int32_t index;
  int32_t reserved;
  int64_t result;
  const void *userdata;
};
static_assert(sizeof(IoCqe) == 24);

struct IoSqe {
  int32_t index;
  int32_t pad;
  const void *userdata;
};
static_assert(sizeof(IoSqe) == 16);
static_assert(sizeof(sem_t) == 32, "the 3FS ring layout is defined for x86-64 glibc");

constexpr size_t kMarkerBytes = 16;
constexpr size_t kEntryBytes = sizeof(IoArgs) + sizeof(IoCqe) + sizeof(IoSqe);  // 96
constexpr size_t kSpareBytes = 4096;
constexpr int kMaxRingEntries = (1 << 24);  // our limit: 16 Mi slots (1.5 GiB of ring)

// Bytes needed for a ring of `entries` usable slots.
constexpr size_t ring_bytes(size_t entries) { return kMarkerBytes + sizeof(sem_t) + kEntryBytes * (entries + 1) + kSpareBytes; }

// Usable slots that fit in `bytes` (0 when too small; never underflows).
inline size_t ring_entries_for(size_t bytes) {
  size_t fixed = kMarkerBytes + sizeof(sem_t) + kSpareBytes + kEntryBytes;  // entries + 1 with entries = 0
  if (bytes < fixed + kEntryBytes) return 0;
  size_t n = (bytes - fixed) / kEntryBytes;
  return n > size_t(kMaxRingEntries) ? size_t(kMaxRingEntries) : n;
}

// Typed view of a ring's memory. Holds no ownership.
struct RingView {
  uint8_t *base = nullptr;
  int E = 0;  // entries + 1

  RingView() = default;
  RingView(uint8_t *b, int entries) : base(b), E(entries + 1) {}

  std::atomic_ref<int32_t> sqeHead() const { return std::atomic_ref<int32_t>(*reinterpret_cast<int32_t *>(base + 0)); }
  std::atomic_ref<int32_t> sqeTail() const { return std::atomic_ref<int32_t>(*reinterpret_cast<int32_t *>(base + 4)); }
  std::atomic_ref<int32_t> cqeHead() const { return std::atomic_ref<int32_t>(*reinterpret_cast<int32_t *>(base + 8)); }
  std::atomic_ref<int32_t> cqeTail() const { return std::atomic_ref<int32_t>(*reinterpret_cast<int32_t *>(base + 12)); }
  IoArgs *args() const { return reinterpret_cast<IoArgs *>(base + kMarkerBytes); }
  IoCqe *cqes() const { return reinterpret_cast<IoCqe *>(base + kMarkerBytes + sizeof(IoArgs) * size_t(E)); }
  IoSqe *sqes() const {
    return reinterpret_cast<IoSqe *>(base + kMarkerBytes + (sizeof(IoArgs) + sizeof(IoCqe)) * size_t(E));
  }
  sem_t *sem() const { return reinterpret_cast<sem_t *>(base + kMarkerBytes + kEntryBytes * size_t(E)); }
};

}  // namespace usrbio
