/*
 * hf3fs_usrbio.h - the USRBIO C API (User Space Ring Based IO), as defined by 3FS.
 *
 * Struct layouts and constants are byte-identical to 3FS on x86-64 Linux/glibc, so a program
 * written for 3FS compiles against this header unchanged. The same library serves two kinds of
 * mount point:
 *   - a real 3FS FUSE mount: the 3FS protocol (symlinks under <mount>/3fs-virt/iovs, named
 *     submit semaphores, inode ids);
 *   - any other local directory: the usrbio agent (an embedded one started on first use, or a
 *     shared service) executes the rings with io_uring or a preadv/pwritev thread pool.
 *
 * Threading: per ring, one thread may prepare and submit and one thread may wait (they may be
 * different threads). Distinct rings are independent. reg_fd/dereg_fd are thread-safe.
 *
 * Return conventions follow 3FS: most functions return 0 or -errno; hf3fs_reg_fd, hf3fs_hardlink
 * and hf3fs_punchhole return a positive errno on failure.
 */
#ifndef HF3FS_USRBIO_H
#define HF3FS_USRBIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HF3FS_SUPER_MAGIC 0x8f3f5fff

/* Ring flags (hf3fs_iorcreate4 `flags`). */
#define HF3FS_IOR_ALLOW_READ_UNCOMMITTED 1 /* accept uncommitted chunk data (no-op locally) */
#define HF3FS_IOR_FORBID_READ_HOLES 2      /* an interior hole in a read completes with -ENODATA */

typedef void *hf3fs_iov_handle;

/* A shared-memory data buffer. 312 bytes. The caller owns the struct; create/open/wrap fill it. */
struct hf3fs_iov {
  uint8_t *base;            /* start of the mapped buffer */
  hf3fs_iov_handle iovh;    /* library-private; NULL for wrapped iovs */
  char id[16];              /* iov id (random UUID bytes) */
  char mount_point[256];    /* NUL-terminated */
  size_t size;
  size_t block_size;        /* 0 = one block; else no I/O may cross a block margin */
  int numa;                 /* -1 = no binding */
};

typedef void *hf3fs_ior_handle;

/* A submission/completion ring. 600 bytes. The caller owns the struct. */
struct hf3fs_ior {
  struct hf3fs_iov iov;     /* the ring's own shared memory */
  hf3fs_ior_handle iorh;    /* library-private */
  char mount_point[256];
  bool for_read;
  int io_depth;             /* >0 batches of exactly io_depth; 0 all pending; <0 at most -io_depth */
  int priority;             /* <0 high, 0 normal, >0 low */
  int timeout;              /* ms; flushes a partial batch when io_depth < 0 */
  uint64_t flags;           /* HF3FS_IOR_* */
};

/* A completion. 24 bytes; byte-identical to the in-ring completion entry. */
struct hf3fs_cqe {
  int32_t index;            /* slot index returned by hf3fs_prep_io */
  int32_t reserved;
  int64_t result;           /* bytes transferred, or -errno */
  const void *userdata;     /* as given to hf3fs_prep_io */
};

/* True iff fd is on a 3FS FUSE mount (answers the 3FS magic ioctl). */
bool hf3fs_is_hf3fs(int fd);

/* Find the 3FS mount point that contains `path`. Writes it to buf when it fits in `size`
 * bytes and returns strlen(mount point) + 1; returns -1 when path is not on a 3FS mount.
 * Env HF3FS_USRBIO_DONT_CHECKFS_FOR_MP=yes accepts any mount that has a 3fs-virt directory. */
int hf3fs_extract_mount_point(char *hf3fs_mount_point, int size, const char *path);

/* Create an iov of `size` bytes for the mount point. block_size 0 = one block, else
 * 0 < block_size <= size. numa >= 0 binds the memory to that node. Returns 0 or -errno.
 * Release with hf3fs_iovdestroy. */
int hf3fs_iovcreate(struct hf3fs_iov *iov, const char *hf3fs_mount_point, size_t size, size_t block_size,
                    int numa);

/* Map an iov that another holder created, by id. `size` and `block_size` must match the
 * creator's. Release with hf3fs_iovdestroy (which releases only this mapping). */
int hf3fs_iovopen(struct hf3fs_iov *iov, const uint8_t id[16], const char *hf3fs_mount_point, size_t size,
                  size_t block_size, int numa);

/* Drop the iov's shared-memory name (if it has one) while keeping the mapping. */
void hf3fs_iovunlink(struct hf3fs_iov *iov);

/* Describe caller-owned memory as an iov under `id`. On a 3FS mount this fills the struct only
 * (the caller has registered the memory itself, as on 3FS) and hf3fs_iovdestroy does nothing.
 * On a local directory the memory is registered with the agent, and hf3fs_iovdestroy
 * deregisters it (never unmapping it). With numa >= 0, buf must be page-aligned. */
int hf3fs_iovwrap(struct hf3fs_iov *iov, void *buf, const uint8_t id[16], const char *hf3fs_mount_point,
                  size_t size, size_t block_size, int numa);

/* Unregister and unmap an iov made by iovcreate or iovopen. Call after every I/O using it has
 * completed and been reaped. Safe on a zeroed or already destroyed struct. */
void hf3fs_iovdestroy(struct hf3fs_iov *iov);

/* Bytes of shared memory a ring of `entries` entries needs: 48 + 96 * (entries + 1) + 4096. */
size_t hf3fs_ior_size(int entries);

/* Build a ring over caller memory of `size` bytes (at least hf3fs_ior_size(1)); its entries are
 * the most that fit. On a 3FS mount the caller has registered the memory; on a local directory
 * it is registered with the agent here. Returns 0 or -errno. */
int hf3fs_iorwrap(struct hf3fs_ior *ior, void *buf, const char *hf3fs_mount_point, size_t size, bool for_read,
                  int io_depth, int priority, int timeout, uint64_t flags);

/* Create a ring of `entries` (> 0) slots. io_depth must be <= entries; timeout >= 0 ms.
 * Returns 0 or -errno. Release with hf3fs_iordestroy. */
int hf3fs_iorcreate(struct hf3fs_ior *ior, const char *hf3fs_mount_point, int entries, bool for_read,
                    int io_depth, int numa);
int hf3fs_iorcreate2(struct hf3fs_ior *ior, const char *hf3fs_mount_point, int entries, bool for_read,
                     int io_depth, int priority, int numa);
int hf3fs_iorcreate3(struct hf3fs_ior *ior, const char *hf3fs_mount_point, int entries, bool for_read,
                     int io_depth, int priority, int timeout, int numa);
int hf3fs_iorcreate4(struct hf3fs_ior *ior, const char *hf3fs_mount_point, int entries, bool for_read,
                     int io_depth, int timeout, int numa, uint64_t flags);

/* Destroy a ring. Call after reaping every prepared I/O (an I/O still in flight finishes
 * before the memory is released). Safe on a zeroed or already destroyed struct. */
void hf3fs_iordestroy(struct hf3fs_ior *ior);

/* Usable slots of a ring (the `entries` it was created with). */
int hf3fs_io_entries(const struct hf3fs_ior *ior);

/* Register fd for USRBIO. Returns a handle <= 0 that hf3fs_prep_io accepts as well as fd itself,
 * or a positive errno (EBADF: not an open fd; EINVAL: already registered or not a regular file
 * or block device). The registration holds its own descriptor, so it survives close(fd).
 * flags must be 0. */
int hf3fs_reg_fd(int fd, uint64_t flags);

/* Deregister fd (the original fd or the handle). I/Os already prepared complete normally (the
 * ring keeps the registration until their slots are reaped). Deregister before close(fd): a
 * later file that reuses the fd number cannot be registered while the old one is. */
void hf3fs_dereg_fd(int fd);

/* Queue one I/O. [ptr, ptr + len) must lie in the iov, len > 0, `read` must match the ring.
 * Returns the slot index (>= 0), or -EINVAL (bad argument), -EBADF (fd not registered, or on a
 * 3FS ring a file not on that mount), -EACCES (direction not allowed by the fd's open mode),
 * -EAGAIN (ring full), -EMFILE (the agent's file table is full). An I/O that crosses a block
 * margin of the iov (block_size != 0) is accepted and completes with -EINVAL.
 * Not thread-safe per ring. The I/O may start before hf3fs_submit_ios. */
int hf3fs_prep_io(const struct hf3fs_ior *ior, const struct hf3fs_iov *iov, bool read, void *ptr, int fd,
                  size_t off, uint64_t len, const void *userdata);

/* Tell the executor that I/Os were prepared. Returns 0 or -EINVAL. */
int hf3fs_submit_ios(const struct hf3fs_ior *ior);

/* Reap up to cqec completions, waiting until min_results are available or abs_timeout
 * (CLOCK_REALTIME; NULL = no limit) passes. min_results 0 polls. Returns the number reaped
 * (possibly short on timeout) or, when nothing was reaped, -errno: -EINVAL for bad arguments,
 * -EPIPE when the agent serving the ring has stopped (process exit), -EIO when the ring was
 * fenced because its memory was corrupted. */
int hf3fs_wait_for_ios(const struct hf3fs_ior *ior, struct hf3fs_cqe *cqes, int cqec, int min_results,
                       const struct timespec *abs_timeout);

/* Create hard link `link_name` to `target`. Returns 0 or a positive errno. */
int hf3fs_hardlink(const char *target, const char *link_name);

/* Deallocate n (<= 1000) byte ranges [start[i], end[i]) of fd's file, keeping its size.
 * Returns 0 or a positive errno. */
int hf3fs_punchhole(int fd, int n, const size_t *start, const size_t *end, size_t flags);

#ifdef __cplusplus
}
#endif

#endif /* HF3FS_USRBIO_H */
