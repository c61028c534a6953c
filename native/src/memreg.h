// memreg.h - RDMA memory registration of iov memory through libibverbs, loaded with dlopen.
//
// One process-wide verbs context (first RDMA device, one protection domain) is opened on first
// use and shared by every thread; each iov is registered once, one memory region per block.
// Where libibverbs or an RDMA device is missing, registration reports "unregistered" and iovs
// keep working.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace usrbio {

enum class MemRegState { Unregistered = 0, Registered = 1, Failed = 2 };

// The registration of one iov. Deregisters its memory regions on destruction.
class MemReg {
 public:
  virtual ~MemReg() = default;
  virtual MemRegState state() const = 0;
  // Block `i` is registered (true for every block when state() == Registered).
  virtual bool block_ok(size_t i) const = 0;
};

// Register [base, base+size) in blocks of block_size (0 = one block). Never fails: the result
// says Unregistered (no RDMA here) or Failed (a device exists but a block could not be registered).
std::unique_ptr<MemReg> memreg_register(void *base, size_t size, size_t block_size);

// Whether RDMA registration is available in this process, and why not.
bool memreg_available(std::string *reason);

}  // namespace usrbio
