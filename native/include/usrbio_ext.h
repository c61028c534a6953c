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

/* Health of a ring: 0 while it is served, -EIO once fenced for a corrupted marker, -EPIPE when
 * the agent or service executing it has stopped or died (its I/Os will not complete), -EINVAL
 * for a bad ring. Cheap (an atomic load; on a service ring also a poll of the connection). */
int usrbio_ior_health(const struct hf3fs_ior *ior);

/* ---- the shared agent service (`usrbio serve`, docs/architecture.md section 11) ----
 *
 * Which agent serves a local directory: for each create/open call, the first of
 *   1. usrbio_service_override(mount_point, spec) for that exact mount point string,
 *   2. the environment variable USRBIO_SERVICE,
 *   3. "auto",
 * where spec is "off" (the embedded agent), "auto" (a service running for the directory or one
 * of its ancestors, else the embedded agent), or the path of a service socket (that service;
 * if it cannot be reached the call fails with its -errno). */

/* Counters of a service (usrbio_service_get_stats / usrbio_service_query). */
struct usrbio_service_stats {
  uint64_t clients, rings, iovs, files;   /* connected / registered now */
  uint64_t batches, ios, bytes, errors;   /* completed since start */
  uint64_t inflight;                      /* I/Os claimed and not completed */
  uint64_t iops, bytes_per_sec;           /* over the last full second */
  uint64_t uptime_ms, pid, max_clients;
  char executor[16];                      /* "io_uring" or "pread" */
  char dir[256];                          /* the served directory (realpath) */
};

/* Log sink of a service: level 0 error, 1 warn, 2 info, 3 debug; `json` is one JSON object with
 * at least "event" and "msg". Called from the service's thread. */
typedef void (*usrbio_service_log_fn)(void *ctx, int level, const char *json);

struct usrbio_service_options {
  const char *dir;          /* directory to serve (must exist) */
  int threads;              /* pread workers, 0 = default */
  const char *executor;     /* "io_uring", "pread" or NULL/"auto" */
  int max_clients;          /* 1..65536, 0 = 256 */
  usrbio_service_log_fn log;/* may be NULL */
  void *log_ctx;
};

/* Start serving dir in this process: an agent plus a thread accepting clients on the socket
 * usrbio_service_socket(dir). 0 and *handle, or -errno (-EADDRINUSE when a service already runs
 * for dir). */
int usrbio_service_start(const struct usrbio_service_options *opts, void **handle);
/* Stop: refuse new clients, finish in-flight I/O, disconnect every client (their waits then
 * return -EPIPE), free everything. The handle is invalid afterwards. */
int usrbio_service_stop(void *handle);
int usrbio_service_get_stats(void *handle, struct usrbio_service_stats *out);
/* Ask the service that serves `path` (a directory, found as clients find it, or a socket path)
 * for its counters. 0, -ESRCH when none runs (no socket, or a stale one), or -errno (-ENOENT:
 * path does not exist). */
int usrbio_service_query(const char *path, struct usrbio_service_stats *out);
/* The socket a service for dir listens on, NUL-terminated in out. 0 or -errno. */
int usrbio_service_socket(const char *dir, char *out, size_t out_size);
/* Per-mount-point override of the service choice (see above); spec NULL removes it. At most
 * 64 mount points. 0, -EINVAL, -ENOSPC. */
int usrbio_service_override(const char *mount_point, const char *spec);

#ifdef __cplusplus
}
#endif

#endif /* USRBIO_EXT_H */
