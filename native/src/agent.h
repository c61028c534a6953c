// agent.h - the USRBIO agent: executes the I/O rings of its clients on local files.
//
// The agent plays the part of 3FS's FUSE process. It knows nothing of its host: the embedded
// host (backend_local.cc) calls it in-process; a service host can feed it memory and fds it
// received from other processes. All shared memory it is given is treated as untrusted: every
// ring field is read once into private memory and validated; a bad entry completes with a
// negative errno and disturbs nothing else.
//
// Threads: one dispatcher thread claims batches from the rings (io_depth semantics), starts
// them on the executor and, for io_uring, also reaps; the pread executor adds a pool of worker
// threads. Completion of a batch writes its cqes in order, advances sqeTail in claim order and
// posts the ring's semaphore once.
#pragma once
#include <semaphore.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "memreg.h"
#include "ring_layout.h"

namespace usrbio {

enum class ExecKind { Auto = 0, IoUring = 1, Pool = 2 };

struct AgentOptions {
  ExecKind exec = ExecKind::Auto;    // env USRBIO_EXECUTOR=io_uring|pread
  int pool_threads = 0;              // pread workers; 0 = env USRBIO_POOL_THREADS or 2 * cores (4..64)
  unsigned uring_entries = 1024;     // io_uring submission queue size
  int spin_us = -1;                  // busy-poll before sleeping; -1 = env USRBIO_AGENT_SPIN_US or 50
  size_t max_inflight = 4096;        // I/Os claimed and not completed, across all rings
  size_t max_rings = 4096;
  size_t max_iovs = 65536;
  size_t max_files = 65536;
  uint64_t chunk_bytes = 8ull << 20; // large I/Os execute as chunks of this size
  int chunks_per_io = 8;             // chunks of one I/O in flight at once (64 MiB by default)
  int scan_interval_ms = 50;         // rings are rescanned at least this often without a submit
  // Where the dispatcher announces that it sleeps (Doorbell::sleeping). nullptr: inside the
  // agent. A service host points it into a page its clients map read-only, so that a client
  // rings the eventfd only when the dispatcher sleeps. Must outlive the agent.
  std::atomic<uint32_t> *sleeping_word = nullptr;
};

// Limits the agent enforces, as documented in docs/architecture.md.
constexpr int kMaxIoRetries = 16;  // attempts of one chunk that made no progress (EAGAIN, EINTR, 0-byte write)

// The wake-up channel from clients to the dispatcher. A client rings only when the dispatcher
// announced it is about to sleep, so a busy agent costs clients no syscall.
struct Doorbell {
  explicit Doorbell(std::atomic<uint32_t> *word) : sleeping(word ? *word : own) {}
  std::atomic<uint32_t> own{0};
  std::atomic<uint32_t> &sleeping;  // `own`, or AgentOptions::sleeping_word
  int efd = -1;  // eventfd, owned by the agent
  // Call after publishing new sqes or freeing cqe space.
  void ring() {
    if (sleeping.load(std::memory_order_seq_cst)) kick();
  }
  void kick();
};

struct AgentStats {
  uint64_t rings, iovs, files;
  uint64_t batches, ios, bytes, errors, inflight;
  const char *executor;

  // Copy the counters into a public stats struct with the same field names (the embedded
  // agent's usrbio_agent_stats, a service's usrbio_service_stats).
  template <class Out>
  void copy_counts(Out *out) const {
    out->rings = rings;
    out->iovs = iovs;
    out->files = files;
    out->batches = batches;
    out->ios = ios;
    out->bytes = bytes;
    out->errors = errors;
    out->inflight = inflight;
  }
};

struct IovReg {
  uint8_t id[16];
  uint8_t *base;
  size_t size;
  size_t block_size;
  std::shared_ptr<void> keep;  // keeps the memory mapped while I/O uses it
  std::unique_ptr<MemReg> mr;
};

struct FileReg {
  int fd = -1;  // the agent's own descriptor
  int accmode = 0;
  uint64_t owner = 0;  // only rings of this owner may use it (see Agent::add_ring)
  ~FileReg();
};

struct Ring;
struct Batch;
struct Io;

// One piece of an Io: the unit the executors run.
struct Chunk {
  Io *io = nullptr;
  uint64_t off = 0;  // file offset
  uint8_t *buf = nullptr;
  uint64_t len = 0;
  uint64_t done = 0;  // bytes transferred so far
  int retries = 0;    // attempts that made no progress
  bool heap = false;  // allocated separately (I/Os larger than one chunk)
};

// One I/O of a batch, validated. Chunks of it may run in parallel.
struct Io {
  Batch *batch = nullptr;
  // Multi-chunk I/Os hand out chunks lazily: `next` is the relative offset of the next chunk,
  // `stop` is set by EOF or an error (no more chunks are issued), `chunks_left` counts chunks
  // in flight.
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  int32_t slot = -1;
  const void *userdata = nullptr;
  bool write = false;
  int fd = -1;
  uint8_t *buf = nullptr;
  uint64_t off = 0, len = 0;
  std::atomic<int64_t> error{0};      // first negative result
  std::atomic<uint64_t> valid{0};     // bytes valid from the start (min over short chunks)
  std::atomic<int> chunks_left{0};  // chunks in flight
  int64_t result = 0;                 // set when complete
  Chunk first;                        // the only chunk of an I/O up to chunk_bytes
};

struct Batch {
  std::shared_ptr<Ring> ring;
  std::vector<std::shared_ptr<FileReg>> files;  // keep fds open while in flight
  std::vector<std::shared_ptr<IovReg>> iovs;    // keep buffers mapped while in flight
  int32_t end = 0;                              // ring position after the batch
  int n = 0;
  std::unique_ptr<Io[]> ios;
  std::atomic<int> ios_left{0};  // n + 1 while start_batch runs
};

class Agent;

class Executor {
 public:
  virtual ~Executor() = default;
  virtual const char *name() const = 0;
  // Called on the dispatcher thread before run(); 0 or -errno (the agent then falls back).
  virtual int prepare() { return 0; }
  // Run the dispatcher loop until agent.stopping() and nothing is in flight.
  virtual void run() = 0;
  // Wake run() from another thread (stop).
  virtual void wake() = 0;
};

class Agent : public std::enable_shared_from_this<Agent> {
 public:
  // Start an agent and its threads. Returns 0 or -errno (-ENOSYS/-EPERM when io_uring was
  // forced and is refused).
  static int create(const AgentOptions &opts, std::shared_ptr<Agent> *out);
  ~Agent();

  // Stop: finish in-flight I/O, join threads. Idempotent. Call before dropping the last owner.
  // Never call from an agent thread (it returns without joining then).
  void stop();
  // In a child after fork(): the agent's threads do not exist here. Mark it dead (rings report
  // -EPIPE, removals become no-ops) without touching its locks or threads. The caller must keep
  // a reference forever: the object can never be destroyed safely.
  void orphan();
  bool orphaned() const { return orphaned_.load(std::memory_order_relaxed); }

  // Owners: every iov, file and ring belongs to an owner (0 for the embedded host; one per
  // client for a service host). A ring's I/Os can name only iovs and files of its own owner;
  // iov ids are looked up as (owner, id), so owners never see each other's registrations.
  //
  // Register iov memory under (owner, id). The memory must stay mapped while `keep` lives.
  // Returns 0, -EEXIST, -EMFILE (too many iovs).
  int add_iov(const uint8_t id[16], uint8_t *base, size_t size, size_t block_size, std::shared_ptr<void> keep,
              uint64_t owner = 0);
  // Deregister. With wait_inflight, return only once no I/O uses the memory any more (required
  // when the caller frees the memory right after, as for wrapped caller memory).
  void remove_iov(const uint8_t id[16], bool wait_inflight, uint64_t owner = 0);
  // RDMA state of a registered iov: 0 unregistered, 1 registered, 2 failed; -ENOENT if unknown.
  int iov_memreg_state(const uint8_t id[16], uint64_t owner = 0);

  // Register a ring laid out in `base` (ring_bytes(entries) bytes; `keep` keeps it mapped).
  // Initialises the ring's completion semaphore. Returns 0 (and *ring_id, and *health: 0 while
  // served, -EIO once fenced, -EPIPE once the agent stopped) or -errno. `health_word`, if not
  // null, receives the same values (a service host points it into the ring's shared memory,
  // which `keep` keeps mapped). The ring serves I/Os on iovs and files of `owner` only.
  int add_ring(uint8_t *base, size_t bytes, int entries, bool for_read, int io_depth, int timeout_ms, int priority,
               uint64_t flags, std::shared_ptr<void> keep, uint64_t *ring_id,
               std::shared_ptr<std::atomic<int>> *health, uint64_t owner = 0, int32_t *health_word = nullptr);
  // Stop claiming from a ring. In-flight batches finish; their memory stays mapped until then.
  // With wait_inflight, return only after they have completed.
  void remove_ring(uint64_t ring_id, bool wait_inflight);

  // Register a file; the agent duplicates fd. accmode is O_RDONLY/O_WRONLY/O_RDWR.
  // Returns 0 (and *handle) or -errno.
  int add_file(int fd, uint64_t *handle, uint64_t owner = 0);
  void remove_file(uint64_t handle);

  Doorbell &doorbell() { return doorbell_; }
  const char *executor_name() const { return exec_name_; }
  void stats(AgentStats *out);

  // ---- used by executors (dispatcher thread unless noted) ----
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  // Claim batches from every ring, within the in-flight budget. Appends to `out`.
  size_t claim(std::vector<Batch *> &out);
  // Earliest deadline (monotonic ns) at which a partial batch must be flushed; 0 if none.
  uint64_t next_deadline() const { return next_deadline_; }
  // Start a claimed batch: append the chunks of its valid I/Os to `out`; I/Os that failed
  // validation complete at once. The batch may be freed before this returns only if it had no
  // chunks. Dispatcher thread.
  void start_batch(Batch *b, std::vector<Chunk *> &out);
  template <class Q>
  void start_batch_q(Batch *b, Q &q) {
    scratch_.clear();
    start_batch(b, scratch_);
    for (Chunk *c : scratch_) q.push_back(c);
  }
  // A chunk finished with `res` (bytes >= 0 or -errno), final. Returns the chunk again, set up
  // for the next piece of the same I/O, or nullptr when there is none. Any thread.
  Chunk *chunk_done(Chunk *c, int64_t res);
  // Complete one validated-but-not-executed Io (error result). Any thread.
  void io_finished(Io &io);
  uint64_t inflight() const { return inflight_.load(std::memory_order_acquire); }
  const AgentOptions &options() const { return opts_; }
  // Pre-read hole policy for FORBID_READ_HOLES rings: 0 and *readable, or -ENODATA.
  static int check_holes(int fd, uint64_t off, uint64_t len, uint64_t *readable);

 private:
  explicit Agent(const AgentOptions &opts) : opts_(opts), doorbell_(opts.sleeping_word) {}
  void complete_batch(Batch *b);
  int start_dispatcher();
  void set_health_all(int v);
  size_t claim_ring(Ring &r, std::shared_ptr<Ring> &sp, uint64_t now, size_t budget, std::vector<Batch *> &out);
  void build_batch(Ring &r, std::shared_ptr<Ring> &sp, int32_t start, int n, std::vector<Batch *> &out);

  AgentOptions opts_;
  Doorbell doorbell_;
  std::unique_ptr<Executor> exec_;
  std::thread dispatcher_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> orphaned_{false};
  std::atomic<bool> claim_blocked_{false};  // a claim stopped for budget or cqe space: kick on completion
  const char *exec_name_ = "none";          // set once at create; never changes
  std::mutex stop_mu_;

  // Registries. reg_mu_ guards iovs_ and files_; rings_mu_ guards rings_ and rings_gen_.
  std::shared_mutex reg_mu_;
  struct Key16 {  // (owner, iov id)
    uint64_t a, b, owner;
    bool operator==(const Key16 &o) const { return a == o.a && b == o.b && owner == o.owner; }
  };
  struct Key16Hash {
    size_t operator()(const Key16 &k) const {
      return size_t((k.a * 0x9e3779b97f4a7c15ull ^ k.b) * 0xff51afd7ed558ccdull ^ k.owner);
    }
  };
  static Key16 key_of(const uint8_t id[16], uint64_t owner);
  std::unordered_map<Key16, std::shared_ptr<IovReg>, Key16Hash> iovs_;
  std::unordered_map<uint64_t, std::shared_ptr<FileReg>> files_;
  uint64_t next_file_ = 1;

  std::mutex rings_mu_;
  std::vector<std::shared_ptr<Ring>> rings_;
  std::atomic<uint64_t> rings_gen_{0};
  uint64_t next_ring_ = 1;
  // Dispatcher-private snapshot of rings_, sorted by priority.
  std::vector<std::shared_ptr<Ring>> snapshot_;
  uint64_t snapshot_gen_ = ~0ull;
  uint64_t next_deadline_ = 0;

  std::vector<Chunk *> scratch_;
  std::atomic<uint64_t> inflight_{0};
  // Removers waiting for in-flight batches (remove_iov/remove_ring with wait_inflight).
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::atomic<int> done_waiters_{0};
  std::atomic<uint64_t> st_batches_{0}, st_ios_{0}, st_bytes_{0}, st_errors_{0};
};

// Executors (exec_uring.cc, exec_pool.cc). create_uring returns -errno when io_uring is refused.
int create_uring_executor(Agent *agent, std::unique_ptr<Executor> *out);
std::unique_ptr<Executor> create_pool_executor(Agent *agent);

// Threads that transfer chunks with preadv/pwritev, each to the end (short transfers continue),
// and report them with Agent::chunk_done (continuing with the I/O's next piece). The queue is
// bounded by the agent's in-flight budget. Destroy only after every pushed chunk is done.
class ChunkPool {
 public:
  ChunkPool(Agent *a, int threads);
  ~ChunkPool();
  // Queue the chunks (any thread) and empty `chunks`.
  void push(std::deque<Chunk *> &chunks);

 private:
  static int64_t transfer(Chunk *c);
  void work();

  Agent *a_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk *> q_;
  bool quit_ = false;
};

// The pool executor's thread count (see exec_pool.cc).
int pool_threads(Agent *a);

}  // namespace usrbio
