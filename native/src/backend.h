// backend.h - the two ways a mount point is served. api.cc validates arguments and dispatches.
#pragma once
#include "hf3fs_usrbio.h"

#include <cstddef>
#include <cstdint>

namespace usrbio {

struct ClientIov;
class ClientRing;

struct RingParams {
  int entries;
  bool for_read;
  int io_depth;
  int priority;
  int timeout;
  int numa;
  uint64_t flags;
};

// Fill the caller's struct (zeroing it first). h/ring become iovh/iorh.
void fill_iov(hf3fs_iov *iov, uint8_t *base, ClientIov *h, const uint8_t id[16], const char *mp, size_t size,
              size_t block_size, int numa);
void fill_ior(hf3fs_ior *ior, ClientRing *ring, uint8_t *base, size_t size, const uint8_t id[16], const char *mp,
              const RingParams &p);
void random_uuid(uint8_t out[16]);

// Attach a ring the library made to the agent that executes it (R::attach) and hand it to the
// caller under a fresh id. On failure the ring is deleted and -errno returned. base/size are the
// ring's memory, which the ring keeps mapped.
template <class R>
int attach_and_fill(hf3fs_ior *ior, R *ring, uint8_t *base, size_t size, const char *mp, const RingParams &p) {
  int r = ring->attach(p);
  if (r < 0) {
    delete ring;
    return r;
  }
  uint8_t id[16];
  random_uuid(id);
  fill_ior(ior, ring, base, size, id, mp, p);
  return 0;
}

// ---- local directories: the usrbio agent (embedded in this process) ----
int local_iovcreate(hf3fs_iov *iov, const char *mp, size_t size, size_t block_size, int numa);
int local_iovopen(hf3fs_iov *iov, const uint8_t id[16], const char *mp, size_t size, size_t block_size, int numa);
int local_iovwrap(hf3fs_iov *iov, void *buf, const uint8_t id[16], const char *mp, size_t size, size_t block_size,
                  int numa);
int local_iorcreate(hf3fs_ior *ior, const char *mp, const RingParams &p);
int local_iorwrap(hf3fs_ior *ior, void *buf, const char *mp, size_t size, const RingParams &p);

// ---- real 3FS mounts: the 3FS protocol ----
// True when mp is served by a 3FS FUSE daemon (it answers <mp>/3fs-virt/iovs/submit-ios).
bool threefs_is_mount(const char *mp);
int threefs_iovcreate(hf3fs_iov *iov, const char *mp, size_t size, size_t block_size, int numa);
int threefs_iovopen(hf3fs_iov *iov, const uint8_t id[16], const char *mp, size_t size, size_t block_size, int numa);
int threefs_iorcreate(hf3fs_ior *ior, const char *mp, const RingParams &p);
int threefs_iorwrap(hf3fs_ior *ior, void *buf, const char *mp, size_t size, const RingParams &p);

}  // namespace usrbio
