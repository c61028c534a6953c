#include "util.h"

#include <linux/futex.h>
#include <semaphore.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>

#include <cstdarg>
#include <cstdlib>
#include <cstring>

namespace usrbio {

int log_level() {
  static int level = [] {
    const char *v = getenv("USRBIO_LOG");
    if (!v) return 1;
    if (!strcmp(v, "error")) return 0;
    if (!strcmp(v, "warn")) return 1;
    if (!strcmp(v, "info")) return 2;
    if (!strcmp(v, "debug")) return 3;
    return 1;
  }();
  return level;
}

void log_msg(int level, const char *fmt, ...) {
  if (level > log_level()) return;
  static const char *names[] = {"error", "warn", "info", "debug"};
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "usrbio %s: %s\n", names[level & 3], buf);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void random_uuid(uint8_t out[16]) {
  size_t got = 0;
  while (got < 16) {
    ssize_t r = getrandom(out + got, 16 - got, 0);
    if (r > 0) got += size_t(r);
    else if (errno != EINTR) {
      // getrandom cannot fail on Linux >= 3.17 with these arguments; keep a defined fallback.
      for (size_t i = got; i < 16; i++) out[i] = uint8_t(now_ns() >> ((i % 8) * 8)) ^ uint8_t(i * 37);
      got = 16;
    }
  }
  out[6] = uint8_t((out[6] & 0x0f) | 0x40);
  out[8] = uint8_t((out[8] & 0x3f) | 0x80);
}

std::string uuid_text(const uint8_t id[16]) {
  char s[37];
  snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", id[0], id[1],
           id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]);
  return s;
}

// sem_post for a semaphore in client-writable memory. glibc's sem_post calls abort() ("The
// futex facility returned an unexpected error code") when the futex wake fails, which a client
// provokes by scribbling the sem_t (its `private` word selects the futex op); the agent must not
// die of that. This is glibc's x86-64 sem_post on its "new" semaphore layout (uint64 data: value
// in the low 32 bits, waiter count in the high 32), waking as the process-shared semaphore
// add_ring initialised, and ignoring every error: a scribbled semaphore only hurts its client.
void sem_post_untrusted(sem_t *sem) {
  std::atomic_ref<uint64_t> data(*reinterpret_cast<uint64_t *>(sem));
  uint64_t d = data.load();
  do {
    if ((d & 0xffffffffu) >= uint64_t(INT_MAX)) return;  // SEM_VALUE_MAX: EOVERFLOW
  } while (!data.compare_exchange_weak(d, d + 1));
  if (d >> 32) syscall(SYS_futex, reinterpret_cast<uint32_t *>(sem), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}
static_assert(sizeof(sem_t) == 32 && alignof(sem_t) >= 8, "x86-64 glibc sem_t");

long env_long(const char *name, long def) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end = nullptr;
  long r = strtol(v, &end, 10);
  return (end && *end == 0) ? r : def;
}

}  // namespace usrbio
