// service_proto.h - the wire protocol between clients and a usrbio service (`usrbio serve`).
//
// Transport: a unix-domain SOCK_SEQPACKET socket (message boundaries kept, EOF = the peer is
// gone). Every request is one SvcReq message, optionally carrying one fd (SCM_RIGHTS); every
// reply is one SvcRep message, optionally carrying up to two fds. A client sends one request
// at a time and waits for its reply (requests only happen at create/destroy/first-use time,
// never per I/O). Anything else (wrong size, unknown op, extra fds) gets -EINVAL.
#pragma once
#include <cstdint>
#include <string>

#include "ring_layout.h"
#include "usrbio_ext.h"

namespace usrbio {

constexpr uint32_t kSvcMagic = 0x55534256;  // "USBV"
constexpr uint32_t kSvcVersion = 1;

enum SvcOp : uint32_t {
  kOpHello = 1,       // -> client id; fds: doorbell eventfd, doorbell page (read-only memfd)
  kOpAddIov = 2,      // fd: memfd; id, a[0] size, a[1] block_size
  kOpRemoveIov = 3,   // id
  kOpOpenIov = 4,     // id, a[0] size, a[1] block_size -> fd: the iov's memfd
  kOpAddRing = 5,     // fd: memfd; a[0] entries, a[1] for_read, a[2] io_depth, a[3] timeout,
                      //   a[4] priority, a[5] flags -> v[0] ring handle
  kOpRemoveRing = 6,  // a[0] ring handle
  kOpAddFile = 7,     // fd: the file -> v[0] file handle (the fileIid)
  kOpRemoveFile = 8,  // a[0] file handle
  kOpStats = 9,       // -> SvcStats in the reply (needs no hello)
  kOpKick = 10,       // wake the dispatcher (sent only while it sleeps); no reply
};

struct SvcReq {
  uint32_t magic;
  uint32_t op;
  uint8_t id[16];
  int64_t a[6];
};
static_assert(sizeof(SvcReq) == 72, "the request size is part of the protocol (docs/architecture.md section 7)");

using SvcStats = struct ::usrbio_service_stats;

struct SvcRep {
  uint32_t magic;
  uint32_t op;
  int64_t result;  // 0 / value, or -errno
  int64_t v[4];
  SvcStats stats;  // kOpStats only
};

// Per-client limits a service enforces (documented in docs/architecture.md).
constexpr size_t kSvcMaxRingsPerClient = 1024;
constexpr size_t kSvcMaxIovsPerClient = 4096;
constexpr size_t kSvcMaxFilesPerClient = 65536;

// Where the service for `dir` listens: <run dir>/<16 hex digits of FNV-1a-64(realpath(dir))>.sock
// with run dir = $USRBIO_RUN_DIR or /tmp/usrbio. `canonical` must be a realpath. Returns "" if
// the path would not fit a sockaddr_un.
std::string svc_socket_path(const std::string &canonical);
std::string svc_run_dir();

// The doorbell page a service shares with its clients (read-only for them).
struct SvcDoorbellPage {
  uint32_t magic;
  uint32_t sleeping;  // the dispatcher's Doorbell::sleeping word
};

// Offset of the service health word in a ring's memory (first word of the spare area).
constexpr size_t svc_health_offset(int entries) {
  return kMarkerBytes + sizeof(sem_t) + kEntryBytes * size_t(entries + 1);
}

}  // namespace usrbio

namespace usrbio {

// Send one message with up to 2 fds (not closed). 0 or -errno. MSG_NOSIGNAL: a dead peer is
// -EPIPE, never SIGPIPE.
int svc_send(int sock, const void *msg, size_t len, const int *fds, int nfds);
// Receive one message of at most `len` bytes and up to `maxfds` fds (CLOEXEC); fds beyond
// maxfds are closed. Returns the byte count (0 = the peer closed), -EMSGSIZE when the message
// or its fds were truncated (any fds received are closed), or -errno.
long svc_recv(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds, int flags);

}  // namespace usrbio
