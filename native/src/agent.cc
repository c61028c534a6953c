#include "agent.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <future>

#include "util.h"

namespace usrbio {

// A registered ring. The dispatcher is the only thread that claims, so proc_tail is written
// only by it; mu_ orders claims against completions (which may run on pool threads).
struct Ring {
  uint64_t id = 0;
  RingView v;
  int entries = 0;
  bool for_read = true;
  int io_depth = 0;
  int timeout_ms = 0;
  int priority = 0;
  uint64_t flags = 0;
  std::shared_ptr<void> keep;

  std::mutex mu;
  int32_t proc_tail = 0;  // next sqe position to claim (private cursor)
  int32_t sqe_tail = 0;   // private copy of the published sqeTail
  int32_t cqe_head = 0;   // private copy of the published cqeHead
  int processing = 0;     // claimed, not completed
  std::deque<int32_t> claim_ends;  // batch ends in claim order
  std::set<int32_t> done_ends;     // completed out of order, not yet retired
  uint64_t partial_since = 0;      // io_depth < 0: when a partial batch was first seen
  bool fenced = false;             // broken by its client; no longer served
  bool removed = false;
  uint64_t starved_since = 0;      // io_depth > 0: a full batch waited for in-flight budget
  std::condition_variable idle_cv; // signalled when a removed ring's last batch completes
  // What the client's waits report: 0 served, -EIO fenced, -EPIPE agent stopped.
  std::shared_ptr<std::atomic<int>> health = std::make_shared<std::atomic<int>>(0);
  int32_t *health_word = nullptr;  // a copy of health in the ring's shared memory (service rings)
  uint64_t owner = 0;              // iovs and files this ring may use
  // Set the health (and its shared copy).
  void set_health(int v) {
    health->store(v);
    if (health_word) std::atomic_ref<int32_t>(*health_word).store(v);
  }
};

namespace {
// Blocks every signal in the calling thread while alive, so threads it creates start with all
// signals blocked: process-directed signals must reach the application's threads, never an
// agent thread (a handler calling exit() there would join the thread from itself).
struct BlockSignals {
  sigset_t old;
  BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
  }
  ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};
}  // namespace

constexpr uint64_t kStarveNs = 10'000'000;  // 10 ms

void Doorbell::kick() {
  uint64_t one = 1;
  ssize_t r = write(efd, &one, sizeof one);
  (void)r;  // EAGAIN means the counter is already non-zero: the agent will wake anyway
}


FileReg::~FileReg() {
  if (fd >= 0) close(fd);
}

Agent::Key16 Agent::key_of(const uint8_t id[16], uint64_t owner) {
  Key16 k;
  memcpy(&k.a, id, 8);
  memcpy(&k.b, id + 8, 8);
  k.owner = owner;
  return k;
}

int Agent::create(const AgentOptions &opts_in, std::shared_ptr<Agent> *out) {
  AgentOptions opts = opts_in;
  if (opts.spin_us < 0) opts.spin_us = int(std::clamp(env_long("USRBIO_AGENT_SPIN_US", 50), 0L, 10000L));
  if (opts.exec == ExecKind::Auto) {
    const char *e = getenv("USRBIO_EXECUTOR");
    if (e && !strcmp(e, "io_uring")) opts.exec = ExecKind::IoUring;
    else if (e && (!strcmp(e, "pread") || !strcmp(e, "pool"))) opts.exec = ExecKind::Pool;
  }
  std::shared_ptr<Agent> a(new Agent(opts));
  a->doorbell_.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (a->doorbell_.efd < 0) return -errno;
  BlockSignals no_signals;  // for every thread created below
  if (opts.exec != ExecKind::Pool) {
    int r = create_uring_executor(a.get(), &a->exec_);
    if (r == 0) r = a->start_dispatcher();
    if (r < 0) {
      a->exec_.reset();
      if (opts.exec == ExecKind::IoUring) {
        ULOG_ERR("io_uring executor forced but unavailable: %s", strerror(-r));
        return r;
      }
      ULOG_INFO("io_uring unavailable (%s); using the preadv/pwritev thread pool", strerror(-r));
    }
  }
  if (!a->exec_) {
    try {
      a->exec_ = create_pool_executor(a.get());
    } catch (...) {
      return -EAGAIN;
    }
    int r = a->start_dispatcher();
    if (r < 0) return r;
  }
  *out = std::move(a);
  return 0;
}

// Start the dispatcher thread: it runs the executor's prepare() and reports the result, then
// runs the executor. Returns prepare()'s result; on failure the thread has exited.
int Agent::start_dispatcher() {
  std::promise<int> ready;
  std::future<int> result = ready.get_future();
  Agent *raw = this;
  try {
    dispatcher_ = std::thread([raw, &ready] {
      int r = raw->exec_->prepare();
      ready.set_value(r);
      if (r == 0) raw->exec_->run();
    });
  } catch (...) {
    return -EAGAIN;
  }
  int r = result.get();
  if (r < 0) dispatcher_.join();
  else exec_name_ = exec_->name();
  return r;
}

Agent::~Agent() {
  stop();
  if (doorbell_.efd >= 0) close(doorbell_.efd);
}

void Agent::set_health_all(int v) {
  std::lock_guard<std::mutex> g(rings_mu_);
  for (auto &r : rings_) r->set_health(v);
}

void Agent::stop() {
  if (orphaned()) return;  // a forked child: these threads are not ours to join
  if (dispatcher_.joinable() && dispatcher_.get_id() == std::this_thread::get_id()) return;
  std::lock_guard<std::mutex> g(stop_mu_);
  if (stopped_) return;
  stopping_.store(true, std::memory_order_release);
  if (exec_) exec_->wake();
  if (dispatcher_.joinable()) dispatcher_.join();
  exec_.reset();
  set_health_all(-EPIPE);
  stopped_ = true;
}

void Agent::orphan() {
  orphaned_.store(true);
  stopping_.store(true);
  // Only the health words, through pointers the child owns copies of (no agent locks: a parent
  // thread may have held them at fork time).
}

void Agent::stats(AgentStats *out) {
  {
    std::shared_lock<std::shared_mutex> g(reg_mu_);
    out->iovs = iovs_.size();
    out->files = files_.size();
  }
  {
    std::lock_guard<std::mutex> g(rings_mu_);
    out->rings = rings_.size();
  }
  out->batches = st_batches_.load();
  out->ios = st_ios_.load();
  out->bytes = st_bytes_.load();
  out->errors = st_errors_.load();
  out->inflight = inflight_.load();
  out->executor = executor_name();
}

int Agent::add_iov(const uint8_t id[16], uint8_t *base, size_t size, size_t block_size, std::shared_ptr<void> keep,
                   uint64_t owner) {
  if (!base || size == 0 || block_size > size) return -EINVAL;
  auto reg = std::make_shared<IovReg>();
  memcpy(reg->id, id, 16);
  reg->base = base;
  reg->size = size;
  reg->block_size = block_size;
  reg->keep = std::move(keep);
  std::unique_lock<std::shared_mutex> g(reg_mu_);
  if (iovs_.size() >= opts_.max_iovs) return -EMFILE;
  auto k = key_of(id, owner);
  if (iovs_.count(k)) return -EEXIST;
  g.unlock();
  // Registration can take long for big buffers: do it outside the lock.
  reg->mr = memreg_register(base, size, block_size);
  g.lock();
  if (iovs_.size() >= opts_.max_iovs) return -EMFILE;
  if (iovs_.count(k)) return -EEXIST;
  iovs_.emplace(k, std::move(reg));
  return 0;
}

void Agent::remove_iov(const uint8_t id[16], bool wait_inflight, uint64_t owner) {
  if (orphaned()) return;
  std::shared_ptr<IovReg> dead;  // released outside the lock
  {
    std::unique_lock<std::shared_mutex> g(reg_mu_);
    auto it = iovs_.find(key_of(id, owner));
    if (it == iovs_.end()) return;
    dead = std::move(it->second);
    iovs_.erase(it);
  }
  if (!wait_inflight) return;
  // Every in-flight batch using the iov holds a reference; complete_batch signals done_cv_
  // after dropping its references.
  done_waiters_.fetch_add(1);
  {
    std::unique_lock<std::mutex> g(done_mu_);
    done_cv_.wait(g, [&] { return dead.use_count() == 1; });
  }
  done_waiters_.fetch_sub(1);
}

int Agent::iov_memreg_state(const uint8_t id[16], uint64_t owner) {
  std::shared_lock<std::shared_mutex> g(reg_mu_);
  auto it = iovs_.find(key_of(id, owner));
  if (it == iovs_.end()) return -ENOENT;
  return int(it->second->mr ? it->second->mr->state() : MemRegState::Unregistered);
}

int Agent::add_ring(uint8_t *base, size_t bytes, int entries, bool for_read, int io_depth, int timeout_ms,
                    int priority, uint64_t flags, std::shared_ptr<void> keep, uint64_t *ring_id,
                    std::shared_ptr<std::atomic<int>> *health, uint64_t owner, int32_t *health_word) {
  if (!base || entries <= 0 || entries > kMaxRingEntries || bytes < ring_bytes(size_t(entries))) return -EINVAL;
  if (io_depth > entries || timeout_ms < 0) return -EINVAL;
  auto r = std::make_shared<Ring>();
  r->v = RingView(base, entries);
  r->entries = entries;
  r->for_read = for_read;
  r->io_depth = io_depth < -entries ? -entries : io_depth;  // "at most -io_depth" never exceeds the ring
  r->timeout_ms = timeout_ms;
  r->priority = priority < 0 ? -1 : (priority > 0 ? 1 : 0);
  r->flags = flags;
  r->keep = std::move(keep);
  r->owner = owner;
  r->health_word = health_word;
  if (health_word) std::atomic_ref<int32_t>(*health_word).store(0);
  r->v.sqeTail().store(0);
  r->v.cqeHead().store(0);
  if (sem_init(r->v.sem(), 1, 0) != 0) return -errno;
  {
    std::lock_guard<std::mutex> g(rings_mu_);
    if (rings_.size() >= opts_.max_rings) return -EMFILE;
    r->id = next_ring_++;
    rings_.push_back(r);
    rings_gen_.fetch_add(1);
  }
  *ring_id = r->id;
  *health = r->health;
  doorbell_.kick();  // let the dispatcher pick up the new ring (it may hold sqes already)
  return 0;
}

void Agent::remove_ring(uint64_t ring_id, bool wait_inflight) {
  if (orphaned()) return;
  std::shared_ptr<Ring> dead;
  {
    std::lock_guard<std::mutex> g(rings_mu_);
    for (size_t i = 0; i < rings_.size(); i++) {
      if (rings_[i]->id == ring_id) {
        dead = rings_[i];
        rings_.erase(rings_.begin() + long(i));
        rings_gen_.fetch_add(1);
        break;
      }
    }
  }
  if (!dead) return;
  std::unique_lock<std::mutex> g(dead->mu);
  dead->removed = true;
  // complete_batch posts the semaphore and signals under dead->mu, so once processing is 0 no
  // agent thread touches the ring's memory again.
  if (wait_inflight) dead->idle_cv.wait(g, [&] { return dead->processing == 0; });
}

int Agent::add_file(int fd, uint64_t *handle, uint64_t owner) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return -EINVAL;
  auto f = std::make_shared<FileReg>();
  f->accmode = fl & O_ACCMODE;
  f->owner = owner;
  // A private open file description: the agent's lseeks (hole checks) must not move the
  // application's offset, and O_APPEND/O_NONBLOCK set on the application's fd must not change
  // what positional I/O does. Reopen through /proc (works for unlinked files too); where that is
  // refused, share the description unless that would make writes append.
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int keep = fl & (O_ACCMODE | O_DIRECT | O_SYNC | O_DSYNC | O_NOATIME);
  int own = open(path, keep | O_CLOEXEC);
  if (own < 0 && (keep & O_NOATIME)) own = open(path, (keep & ~O_NOATIME) | O_CLOEXEC);
  if (own >= 0) {
    struct stat st2;
    if (fstat(own, &st2) != 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
      close(own);
      own = -1;
    }
  }
  if (own < 0) {
    if ((fl & O_APPEND) && f->accmode != O_RDONLY) return -EINVAL;
    own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return -errno;
  }
  f->fd = own;  // ~FileReg closes it on every path below
  std::unique_lock<std::shared_mutex> g(reg_mu_);
  if (files_.size() >= opts_.max_files) return -EMFILE;
  uint64_t h = next_file_++;
  files_.emplace(h, std::move(f));
  *handle = h;
  return 0;
}

void Agent::remove_file(uint64_t handle) {
  std::shared_ptr<FileReg> dead;
  std::unique_lock<std::shared_mutex> g(reg_mu_);
  auto it = files_.find(handle);
  if (it == files_.end()) return;
  dead = std::move(it->second);
  files_.erase(it);
}

// ---------------------------------------------------------------- claiming

size_t Agent::claim(std::vector<Batch *> &out) {
  if (stopping()) return 0;
  if (rings_gen_.load(std::memory_order_acquire) != snapshot_gen_) {
    std::lock_guard<std::mutex> g(rings_mu_);
    snapshot_ = rings_;
    snapshot_gen_ = rings_gen_.load();
    std::stable_sort(snapshot_.begin(), snapshot_.end(),
                     [](const std::shared_ptr<Ring> &a, const std::shared_ptr<Ring> &b) { return a->priority < b->priority; });
  }
  uint64_t inflight = inflight_.load(std::memory_order_acquire);
  size_t budget = inflight >= opts_.max_inflight ? 0 : opts_.max_inflight - inflight;
  next_deadline_ = 0;
  size_t claimed = 0;
  uint64_t now = 0;
  for (auto &sp : snapshot_) {
    Ring &r = *sp;
    // Cheap check without the lock: proc_tail is written only by this thread. seq_cst pairs
    // with the client's seq_cst store of sqeHead and load of Doorbell::sleeping.
    int32_t head = r.v.sqeHead().load(std::memory_order_seq_cst);
    if (head == r.proc_tail) continue;
    if (!now) now = now_ns();
    size_t n = claim_ring(r, sp, now, budget - std::min(budget, claimed), out);
    claimed += n;
  }
  return claimed;
}

size_t Agent::claim_ring(Ring &r, std::shared_ptr<Ring> &sp, uint64_t now, size_t budget, std::vector<Batch *> &out) {
  std::lock_guard<std::mutex> g(r.mu);
  if (r.fenced || r.removed) return 0;
  const int E = r.v.E;
  int32_t head = r.v.sqeHead().load();
  int32_t ctail = r.v.cqeTail().load();
  if (head < 0 || head >= E || ctail < 0 || ctail >= E) {
    r.fenced = true;
    r.set_health(-EIO);
    ULOG_WARN("ring %llu fenced: its client wrote an out-of-range marker (sqeHead %d, cqeTail %d, entries %d)",
              (unsigned long long)r.id, head, ctail, r.entries);
    return 0;
  }
  int sqes = (head + E - r.proc_tail) % E;
  int retiring = (r.proc_tail + E - r.sqe_tail) % E;  // claimed, sqeTail not yet past them
  if (sqes > E - 1 - retiring) {
    r.fenced = true;
    r.set_health(-EIO);
    ULOG_WARN("ring %llu fenced: sqeHead %d overruns sqes still in flight", (unsigned long long)r.id, head);
    return 0;
  }
  int cqe_count = (r.cqe_head + E - ctail) % E;
  int cqe_avail = E - 1 - r.processing - cqe_count;
  if (cqe_avail < 0) cqe_avail = 0;  // a client that corrupts cqeTail stalls only itself
  size_t claimed = 0;
  bool idle = inflight_.load(std::memory_order_relaxed) == 0;
  while (sqes > 0) {
    int k;
    if (r.io_depth > 0) {
      if (sqes < r.io_depth) break;  // waits for its client
      if (cqe_avail < r.io_depth) {  // waits for its client to reap (its wait rings the doorbell)
        claim_blocked_.store(true);
        break;
      }
      k = r.io_depth;
      if (size_t(k) > budget && !(idle && claimed == 0)) {
        // A batch larger than the free budget goes when the agent is idle, or after waiting
        // kStarveNs, so that busy rings cannot starve it (exceeding the budget by < io_depth).
        if (!r.starved_since) r.starved_since = now;
        if (now - r.starved_since < kStarveNs) {
          claim_blocked_.store(true);
          if (!next_deadline_ || r.starved_since + kStarveNs < next_deadline_) next_deadline_ = r.starved_since + kStarveNs;
          break;
        }
      }
      r.starved_since = 0;
    } else {
      k = std::min(sqes, cqe_avail);
      if (size_t(k) > budget) k = int(budget);
      if (k < sqes) claim_blocked_.store(true);
      if (k <= 0) break;
      if (r.io_depth < 0) {
        int d = -r.io_depth;
        if (k > d) k = d;
        if (k < d && r.timeout_ms > 0) {
          if (!r.partial_since) r.partial_since = now;
          uint64_t due = r.partial_since + uint64_t(r.timeout_ms) * 1000000ull;
          if (now < due) {
            if (!next_deadline_ || due < next_deadline_) next_deadline_ = due;
            break;
          }
        }
      }
    }
    build_batch(r, sp, r.proc_tail, k, out);
    r.proc_tail = (r.proc_tail + k) % E;
    r.processing += k;
    r.claim_ends.push_back(r.proc_tail);
    r.partial_since = 0;
    sqes -= k;
    cqe_avail -= k;
    budget = size_t(k) > budget ? 0 : budget - size_t(k);
    claimed += size_t(k);
    inflight_.fetch_add(uint64_t(k), std::memory_order_acq_rel);
  }
  if (sqes == 0) r.partial_since = 0;
  return claimed;
}

void Agent::build_batch(Ring &r, std::shared_ptr<Ring> &sp, int32_t start, int n, std::vector<Batch *> &out) {
  auto *b = new Batch;
  b->ring = sp;
  b->n = n;
  b->ios.reset(new Io[size_t(n)]);
  b->ios_left.store(n + 1);
  b->end = (start + n) % r.v.E;
  IoSqe *sqes = r.v.sqes();
  IoArgs *args = r.v.args();
  IovReg *last_iov = nullptr;
  Key16 last_key{0, 0, 0};
  FileReg *last_file = nullptr;
  uint64_t last_handle = 0;
  std::shared_lock<std::shared_mutex> g(reg_mu_);
  for (int j = 0; j < n; j++) {
    Io &io = b->ios[size_t(j)];
    io.batch = b;
    io.write = !r.for_read;
    // Single fetch: copy the client's entries once, then use only the copies.
    IoSqe s;
    memcpy(&s, &sqes[(start + j) % r.v.E], sizeof s);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    io.slot = s.index;
    io.userdata = s.userdata;
    if (s.index < 0 || s.index >= r.entries) {
      io.error.store(-EINVAL);
      continue;
    }
    IoArgs a;
    memcpy(&a, &args[s.index], sizeof a);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    Key16 k = key_of(a.bufId, r.owner);
    if (!last_iov || !(k == last_key)) {
      auto it = iovs_.find(k);
      if (it == iovs_.end()) {
        io.error.store(-EINVAL);
        continue;
      }
      last_iov = it->second.get();
      last_key = k;
      b->iovs.push_back(it->second);
    }
    IovReg &iov = *last_iov;
    if (a.ioLen == 0 || a.bufOff > iov.size || a.ioLen > iov.size - a.bufOff || a.fileOff > uint64_t(INT64_MAX) ||
        a.ioLen > uint64_t(INT64_MAX) - a.fileOff) {
      io.error.store(-EINVAL);
      continue;
    }
    if (iov.block_size && a.bufOff / iov.block_size != (a.bufOff + a.ioLen - 1) / iov.block_size) {
      io.error.store(-EINVAL);  // spans a block margin
      continue;
    }
    if (iov.mr && iov.mr->state() == MemRegState::Failed && !iov.mr->block_ok(iov.block_size ? a.bufOff / iov.block_size : 0)) {
      io.error.store(-EACCES);
      continue;
    }
    if (!last_file || a.fileIid != last_handle) {
      auto it = files_.find(a.fileIid);
      if (it == files_.end() || it->second->owner != r.owner) {
        io.error.store(-EBADF);
        continue;
      }
      last_file = it->second.get();
      last_handle = a.fileIid;
      b->files.push_back(it->second);
    }
    FileReg &f = *last_file;
    if ((io.write && f.accmode == O_RDONLY) || (!io.write && f.accmode == O_WRONLY)) {
      io.error.store(-EACCES);
      continue;
    }
    io.fd = f.fd;
    io.buf = iov.base + a.bufOff;
    io.off = a.fileOff;
    io.len = a.ioLen;
  }
  out.push_back(b);
}

// ---------------------------------------------------------------- execution

int Agent::check_holes(int fd, uint64_t off, uint64_t len, uint64_t *readable) {
  *readable = len;
  off_t hole = lseek(fd, off_t(off), SEEK_HOLE);
  if (hole < 0) return 0;  // past EOF (ENXIO) or no hole support: plain read semantics
  if (uint64_t(hole) >= off + len) return 0;
  off_t data = lseek(fd, hole, SEEK_DATA);
  if (data >= 0 && uint64_t(data) < off + len) return -ENODATA;  // data after a hole: interior hole
  *readable = uint64_t(hole) - off;  // a trailing hole reads short, like EOF
  return 0;
}

void Agent::start_batch(Batch *b, std::vector<Chunk *> &out) {
  const Ring &r = *b->ring;
  bool forbid_holes = r.for_read && (r.flags & 2 /* HF3FS_IOR_FORBID_READ_HOLES */);
  const uint64_t cb = opts_.chunk_bytes;
  for (int j = 0; j < b->n; j++) {
    Io &io = b->ios[size_t(j)];
    if (io.error.load(std::memory_order_relaxed) != 0) {
      io_finished(io);
      continue;
    }
    uint64_t len = io.len;
    if (forbid_holes) {
      uint64_t readable;
      int e = check_holes(io.fd, io.off, io.len, &readable);
      if (e < 0) {
        io.error.store(e);
        io_finished(io);
        continue;
      }
      len = readable;
      if (len == 0) {
        io.valid.store(0);
        io_finished(io);
        continue;
      }
      io.len = len;
    }
    io.valid.store(len);
    // Chunks are handed out lazily (chunk_done gives the next piece), at most chunks_per_io at
    // once, so a huge I/O costs bounded memory and stops issuing reads at EOF.
    uint64_t nchunks = (len + cb - 1) / cb;
    int first = int(std::min<uint64_t>(nchunks, uint64_t(std::max(1, opts_.chunks_per_io))));
    io.next.store(uint64_t(first) * cb);
    io.chunks_left.store(first);
    for (int i = 0; i < first; i++) {
      Chunk *c = i == 0 ? &io.first : new Chunk;
      c->heap = i != 0;
      c->io = &io;
      c->off = io.off + uint64_t(i) * cb;
      c->buf = io.buf + uint64_t(i) * cb;
      c->len = std::min(cb, len - uint64_t(i) * cb);
      c->done = 0;
      c->retries = 0;
      out.push_back(c);
    }
  }
  if (b->ios_left.fetch_sub(1, std::memory_order_acq_rel) == 1) complete_batch(b);
}

Chunk *Agent::chunk_done(Chunk *c, int64_t res) {
  Io &io = *c->io;
  if (res < 0) {
    int64_t zero = 0;
    io.error.compare_exchange_strong(zero, res);
    io.stop.store(true);
  } else if (uint64_t(res) < c->len) {
    uint64_t end = (c->off - io.off) + uint64_t(res);
    uint64_t cur = io.valid.load();
    while (end < cur && !io.valid.compare_exchange_weak(cur, end)) {
    }
    io.stop.store(true);  // EOF: later pieces would read nothing
  }
  if (!io.stop.load()) {
    const uint64_t cb = opts_.chunk_bytes;
    uint64_t rel = io.next.fetch_add(cb);
    if (rel < io.len) {  // reuse this chunk for the next piece
      c->off = io.off + rel;
      c->buf = io.buf + rel;
      c->len = std::min(cb, io.len - rel);
      c->done = 0;
      c->retries = 0;
      return c;
    }
  }
  if (c->heap) delete c;
  if (io.chunks_left.fetch_sub(1, std::memory_order_acq_rel) == 1) io_finished(io);
  return nullptr;
}

void Agent::io_finished(Io &io) {
  int64_t e = io.error.load();
  io.result = e != 0 ? e : int64_t(io.valid.load());
  if (e != 0) st_errors_.fetch_add(1, std::memory_order_relaxed);
  else st_bytes_.fetch_add(uint64_t(io.result), std::memory_order_relaxed);
  Batch *b = io.batch;
  if (b->ios_left.fetch_sub(1, std::memory_order_acq_rel) == 1) complete_batch(b);
}

void Agent::complete_batch(Batch *b) {
  Ring &r = *b->ring;
  st_batches_.fetch_add(1, std::memory_order_relaxed);
  st_ios_.fetch_add(uint64_t(b->n), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> g(r.mu);
    const int E = r.v.E;
    // sqeTail advances strictly in claim order.
    if (!r.claim_ends.empty() && r.claim_ends.front() == b->end) {
      r.sqe_tail = b->end;
      r.claim_ends.pop_front();
      while (!r.claim_ends.empty() && r.done_ends.erase(r.claim_ends.front())) {
        r.sqe_tail = r.claim_ends.front();
        r.claim_ends.pop_front();
      }
      r.v.sqeTail().store(r.sqe_tail);
    } else {
      r.done_ends.insert(b->end);
    }
    IoCqe *cqes = r.v.cqes();
    for (int j = 0; j < b->n; j++) {
      const Io &io = b->ios[size_t(j)];
      IoCqe c{io.slot, 0, io.result, io.userdata};
      memcpy(&cqes[r.cqe_head], &c, sizeof c);
      r.cqe_head = (r.cqe_head + 1) % E;
    }
    r.v.cqeHead().store(r.cqe_head);
    r.processing -= b->n;
    // One wake per batch. Posted under r.mu: remove_ring(wait) returns only after this, so the
    // ring memory may be freed as soon as it does.
    sem_post_untrusted(r.v.sem());
    if (r.removed && r.processing == 0) r.idle_cv.notify_all();
  }
  inflight_.fetch_sub(uint64_t(b->n), std::memory_order_acq_rel);
  delete b;  // drops the batch's iov and file references
  if (done_waiters_.load() > 0) {
    std::lock_guard<std::mutex> g(done_mu_);
    done_cv_.notify_all();
  }
  // Budget or cqe space was freed: rescan if a claim stopped for lack of it.
  if (claim_blocked_.exchange(false)) doorbell_.ring();
}

}  // namespace usrbio
