/*
 * usrbio_ext.h - usrbio's additions to the USRBIO C API (not part of 3FS).
 */
#ifndef USRBIO_EXT_H
#define USRBIO_EXT_H

#include "hf3fs_usrbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Library version, e.g. "0.1.0". */
const char *usrbio_version(void);

/* Counters of this process's embedded agent (all zero and executor "none" when not running). */
struct usrbio_agent_stats {
  uint64_t rings, iovs, files;     /* registered now */
  uint64_t batches, ios, bytes;    /* completed since start (bytes of successful I/Os) */
  uint64_t errors, inflight;       /* I/Os that completed with -errno; claimed and not completed */
  char executor[16];               /* "io_uring", "pread" or "none" */
};
int usrbio_get_agent_stats(struct usrbio_agent_stats *out);

/* RDMA registration state of an iov created or opened by this process:
 * 0 unregistered (no RDMA device or libibverbs), 1 registered, 2 registration failed,
 * -EINVAL for an iov this library does not manage. `reason`, if not NULL, receives why RDMA is
 * unavailable (empty when available), NUL-terminated within reason_size bytes. */
int usrbio_iov_memreg_state(const struct hf3fs_iov *iov, char *reason, size_t reason_size);

/* Which backend serves a mount point: 1 real 3FS mount, 0 local directory (usrbio agent),
 * -errno when it is neither (e.g. -ENOENT). */
int usrbio_mount_kind(const char *mount_point);

/* Completion wake-ups of a ring, for a client that reaps without blocking (hf3fs_wait_for_ios
 * with min_results 0) and sleeps on its own terms. The ring's semaphore is posted once per
 * completed batch by whoever executes the ring, and by usrbio_ior_wake.
 *
 * usrbio_ior_drain consumes pending posts without blocking and returns how many it took; call it
 * before reaping, so that a later usrbio_ior_sleep waits only for what comes after the reap.
 * usrbio_ior_sleep waits until the semaphore is posted or timeout_us passes: 0 when woken,
 * -ETIMEDOUT, -EINTR, -EINVAL. usrbio_ior_wake posts it (thread-safe; any thread of the process):
 * 0 or -EINVAL. All three take a ring made by hf3fs_iorcreate* or hf3fs_iorwrap, still alive. */
int usrbio_ior_drain(const struct hf3fs_ior *ior);
int usrbio_ior_sleep(const struct hf3fs_ior *ior, long timeout_us);
int usrbio_ior_wake(const struct hf3fs_ior *ior);

#ifdef __cplusplus
}
#endif

#endif /* USRBIO_EXT_H */
