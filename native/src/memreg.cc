#include "memreg.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "util.h"

namespace usrbio {
namespace {

// The stable libibverbs ABI pieces we use (rdma-core, IBVERBS_1.1). Declared here so that the
// build needs no rdma-core headers; the library itself is loaded at run time.
struct ibv_device;
struct ibv_context;
struct ibv_pd;
struct ibv_mr_abi {
  ibv_context *context;
  ibv_pd *pd;
  void *addr;
  size_t length;
  uint32_t handle;
  uint32_t lkey;
  uint32_t rkey;
};
constexpr int kAccessLocalWrite = 1, kAccessRemoteWrite = 2, kAccessRemoteRead = 4;

struct Verbs {
  ibv_device **(*get_device_list)(int *) = nullptr;
  void (*free_device_list)(ibv_device **) = nullptr;
  const char *(*get_device_name)(ibv_device *) = nullptr;
  ibv_context *(*open_device)(ibv_device *) = nullptr;
  ibv_pd *(*alloc_pd)(ibv_context *) = nullptr;
  ibv_mr_abi *(*reg_mr)(ibv_pd *, void *, size_t, int) = nullptr;
  int (*dereg_mr)(ibv_mr_abi *) = nullptr;

  void *lib = nullptr;
  ibv_context *ctx = nullptr;
  ibv_pd *pd = nullptr;
  std::string reason;  // why unavailable; empty when available
};

// Opened once per process and kept until exit: memory regions of every iov hang off this PD.
Verbs &verbs() {
  static Verbs v;
  static std::once_flag once;
  std::call_once(once, [] {
    const char *env = getenv("USRBIO_RDMA");
    if (env && !strcmp(env, "0")) {
      v.reason = "disabled by USRBIO_RDMA=0";
      return;
    }
    v.lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!v.lib) {
      v.reason = "libibverbs.so.1 not found";
      return;
    }
#define LOAD(field, sym)                                              \
  *reinterpret_cast<void **>(&v.field) = dlsym(v.lib, sym);           \
  if (!v.field) {                                                     \
    v.reason = std::string("libibverbs lacks ") + sym;                \
    return;                                                           \
  }
    LOAD(get_device_list, "ibv_get_device_list");
    LOAD(free_device_list, "ibv_free_device_list");
    LOAD(get_device_name, "ibv_get_device_name");
    LOAD(open_device, "ibv_open_device");
    LOAD(alloc_pd, "ibv_alloc_pd");
    LOAD(reg_mr, "ibv_reg_mr");
    LOAD(dereg_mr, "ibv_dereg_mr");
#undef LOAD
    int n = 0;
    ibv_device **list = v.get_device_list(&n);
    if (!list || n <= 0) {
      if (list) v.free_device_list(list);
      v.reason = "no RDMA device";
      return;
    }
    v.ctx = v.open_device(list[0]);
    std::string name = v.get_device_name(list[0]) ? v.get_device_name(list[0]) : "?";
    v.free_device_list(list);
    if (!v.ctx) {
      v.reason = "cannot open RDMA device " + name;
      return;
    }
    v.pd = v.alloc_pd(v.ctx);
    if (!v.pd) {
      v.reason = "cannot allocate a protection domain on " + name;
      return;
    }
    ULOG_INFO("rdma: registering iovs on %s", name.c_str());
  });
  return v;
}

class Unregistered final : public MemReg {
 public:
  MemRegState state() const override { return MemRegState::Unregistered; }
  bool block_ok(size_t) const override { return true; }
};

class Registered final : public MemReg {
 public:
  std::vector<ibv_mr_abi *> mrs;  // one per block; nullptr where registration failed
  bool failed = false;
  ~Registered() override {
    for (auto *mr : mrs)
      if (mr) verbs().dereg_mr(mr);
  }
  MemRegState state() const override { return failed ? MemRegState::Failed : MemRegState::Registered; }
  bool block_ok(size_t i) const override { return i < mrs.size() && mrs[i] != nullptr; }
};

}  // namespace

bool memreg_available(std::string *reason) {
  Verbs &v = verbs();
  if (reason) *reason = v.reason;
  return v.pd != nullptr;
}

std::unique_ptr<MemReg> memreg_register(void *base, size_t size, size_t block_size) {
  Verbs &v = verbs();
  if (!v.pd) return std::make_unique<Unregistered>();
  auto r = std::make_unique<Registered>();
  size_t bs = block_size ? block_size : size;
  for (size_t off = 0; off < size; off += bs) {
    size_t len = size - off < bs ? size - off : bs;
    ibv_mr_abi *mr = v.reg_mr(v.pd, static_cast<uint8_t *>(base) + off, len,
                              kAccessLocalWrite | kAccessRemoteRead | kAccessRemoteWrite);
    if (!mr) {
      ULOG_WARN("rdma: registering %zu bytes at block %zu failed (errno %d)", len, off / bs, errno);
      r->failed = true;
    }
    r->mrs.push_back(mr);
  }
  return r;
}

}  // namespace usrbio
