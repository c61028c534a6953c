// shm.h - shared memory regions: anonymous sealed memfds (local agent) and named POSIX shm (3FS).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace usrbio {

// One mapping of shared memory. Unmaps (and closes its fd) when the last owner drops it.
// Invariant: base != nullptr and size > 0 for the whole lifetime.
struct Mapping {
  uint8_t *base = nullptr;
  size_t size = 0;
  int fd = -1;             // memfd (kept so a service can receive it); -1 for named shm
  std::string shm_name;    // "/hf3fs-iov-<uuid>" for named shm, else empty
  bool owns_name = false;  // shm_unlink the name on destruction
  bool external = false;   // caller memory (iovwrap): never unmapped
  ~Mapping();
};

// Create `size` bytes of zeroed shared memory backed by a memfd, sealed against shrinking and
// growing. numa >= 0 binds it to that node. Returns 0 or -errno.
int shm_create_memfd(const char *label, size_t size, int numa, std::shared_ptr<Mapping> *out);

// Create named POSIX shm `name` ("/..."), O_EXCL, mode 0666 & ~umask. Returns 0 or -errno.
int shm_create_named(const std::string &name, size_t size, int numa, std::shared_ptr<Mapping> *out);

// Map an existing /dev/shm file by absolute path (not the owner: never unlinks). Returns 0 or -errno.
int shm_open_path(const std::string &path, size_t size, int numa, std::shared_ptr<Mapping> *out);

// Bind [base, base+size) to NUMA node `node` (mbind MPOL_BIND). node -1 = no binding.
// Returns 0 or -errno (-EINVAL for a node that does not exist).
int numa_bind(void *base, size_t size, int node);

// Number of the highest online NUMA node + 1 (1 on a machine without NUMA information).
int numa_node_count();

}  // namespace usrbio
