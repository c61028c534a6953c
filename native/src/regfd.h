// regfd.h - the registered file table of hf3fs_reg_fd / hf3fs_dereg_fd.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace usrbio {

class Agent;
class ServiceConn;

// One registration. Holds its own duplicate of the fd, so it survives close of the original.
struct RegFd {
  int fd = -1;        // the fd that was registered
  int dupfd = -1;     // our duplicate (its negation is the handle reg_fd returned)
  int accmode = 0;    // O_RDONLY / O_WRONLY / O_RDWR at registration
  uint64_t ino = 0;   // st_ino (3FS inode id on a 3FS mount)
  uint64_t dev = 0;   // st_dev
  bool on_3fs = false;
  uint64_t serial = 0;  // unique per registration in this process (never reused)

  // The agent this file is registered with (lazily, on first prep_io) and its handle there.
  std::mutex mu;
  std::weak_ptr<Agent> agent;
  uint64_t agent_handle = 0;
  std::atomic<uint32_t> moves{0};  // bumped whenever agent/agent_handle or svc/svc_handle change (under mu)
  // The service connection this file was passed to (service_client.cc) and its handle there.
  std::weak_ptr<ServiceConn> svc;
  uint64_t svc_handle = 0;

  ~RegFd();
};

// Register fd; returns -dupfd (<= 0) or a positive errno.
int regfd_register(int fd, uint64_t flags);
// Deregister by original fd or by handle; no-op if unknown.
void regfd_deregister(int fd);
// Find a registration by original fd or by handle (<= 0). nullptr if unknown.
std::shared_ptr<RegFd> regfd_lookup(int fd);

}  // namespace usrbio
