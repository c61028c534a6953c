// util.h - small shared helpers: logging, clocks, uuid, errno-safe syscalls.
#pragma once
#include <semaphore.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

#define USRBIO_API extern "C" __attribute__((visibility("default")))

namespace usrbio {

// Log levels: 0 error, 1 warn, 2 info, 3 debug. Env USRBIO_LOG=error|warn|info|debug (default warn).
int log_level();
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ULOG_ERR(...) ::usrbio::log_msg(0, __VA_ARGS__)
#define ULOG_WARN(...) ::usrbio::log_msg(1, __VA_ARGS__)
#define ULOG_INFO(...) ::usrbio::log_msg(2, __VA_ARGS__)
#define ULOG_DEBUG(...) \
  do { if (::usrbio::log_level() >= 3) ::usrbio::log_msg(3, __VA_ARGS__); } while (0)

// Monotonic clock in nanoseconds.
uint64_t now_ns();

// 16 random bytes shaped as a version-4 UUID.
void random_uuid(uint8_t out[16]);
// Lowercase hyphenated text form (36 chars).
std::string uuid_text(const uint8_t id[16]);

// Post a process-shared semaphore that lives in memory another process can write (a ring's
// completion semaphore, 3FS's submit semaphores). Like glibc's sem_post, but never aborts.
void sem_post_untrusted(sem_t *sem);

// Reads an integer environment variable; `def` when unset or malformed.
long env_long(const char *name, long def);

}  // namespace usrbio
