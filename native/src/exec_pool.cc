// exec_pool.cc - the preadv/pwritev thread-pool executor, for where io_uring is refused, and the
// ChunkPool it runs on (the io_uring executor uses one for large chunks too).
#include <sched.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "agent.h"
#include "util.h"

namespace usrbio {
namespace {

class PoolExecutor final : public Executor {
 public:
  explicit PoolExecutor(Agent *a) : a_(a), pool_(a, pool_threads(a)) {}

  const char *name() const override { return "pread"; }

  void wake() override { a_->doorbell().kick(); }

  void run() override {
    Doorbell &db = a_->doorbell();
    std::vector<Batch *> batches;
    std::deque<Chunk *> chunks;
    const uint64_t spin_ns = uint64_t(a_->options().spin_us) * 1000;
    uint64_t idle_since = 0;
    for (;;) {
      batches.clear();
      if (a_->claim(batches)) {
        start(batches, chunks);
        idle_since = 0;
        continue;
      }
      if (a_->stopping() && a_->inflight() == 0) break;
      uint64_t now = now_ns();
      if (!idle_since) idle_since = now;
      if (!a_->stopping() && now - idle_since < spin_ns) {
        sched_yield();  // not a bare pause: on a small machine the client threads need this CPU
        continue;
      }
      // Announce sleep, then look once more (a client that published before seeing the flag).
      db.sleeping.store(1, std::memory_order_seq_cst);
      batches.clear();
      if (a_->claim(batches)) {
        db.sleeping.store(0, std::memory_order_relaxed);
        start(batches, chunks);
        idle_since = 0;
        continue;
      }
      int timeout = a_->options().scan_interval_ms;
      if (uint64_t d = a_->next_deadline()) {
        uint64_t n2 = now_ns();
        timeout = d <= n2 ? 0 : int(std::min<uint64_t>((d - n2 + 999999) / 1000000, uint64_t(timeout)));
      }
      if (a_->stopping()) timeout = std::min(timeout, 1);
      pollfd p{db.efd, POLLIN, 0};
      poll(&p, 1, timeout);
      uint64_t v;
      ssize_t r = read(db.efd, &v, sizeof v);
      (void)r;
      db.sleeping.store(0, std::memory_order_relaxed);
      idle_since = 0;
    }
  }

 private:
  void start(std::vector<Batch *> &batches, std::deque<Chunk *> &chunks) {
    chunks.clear();
    for (Batch *b : batches) a_->start_batch_q(b, chunks);
    pool_.push(chunks);
  }

  Agent *a_;
  ChunkPool pool_;
};

}  // namespace

// The pool executor's thread count: AgentOptions::pool_threads, else USRBIO_POOL_THREADS, else
// clamp(2 * cores, 4, 64); always 1..256.
int pool_threads(Agent *a) {
  int n = a->options().pool_threads;
  if (n <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = int(env_long("USRBIO_POOL_THREADS", std::clamp<long>(2 * cores, 4, 64)));
  }
  return std::clamp(n, 1, 256);
}

ChunkPool::ChunkPool(Agent *a, int threads) : a_(a) {
  for (int i = 0; i < threads; i++) workers_.emplace_back([this] { work(); });
}

ChunkPool::~ChunkPool() {
  {
    std::lock_guard<std::mutex> g(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  for (auto &t : workers_) t.join();
}

void ChunkPool::push(std::deque<Chunk *> &chunks) {
  if (chunks.empty()) return;
  size_t n = chunks.size();
  {
    std::lock_guard<std::mutex> g(mu_);
    for (Chunk *c : chunks) q_.push_back(c);
  }
  chunks.clear();
  if (n >= workers_.size()) cv_.notify_all();
  else
    for (size_t i = 0; i < n; i++) cv_.notify_one();
}

// Transfer one chunk completely: short transfers continue, EOF ends a read, EINTR/EAGAIN and
// zero-progress writes are retried at most kMaxIoRetries times.
int64_t ChunkPool::transfer(Chunk *c) {
  Io &io = *c->io;
  while (c->done < c->len) {
    iovec v{c->buf + c->done, size_t(std::min<uint64_t>(c->len - c->done, 1ull << 30))};
    ssize_t r = io.write ? pwritev(io.fd, &v, 1, off_t(c->off + c->done)) : preadv(io.fd, &v, 1, off_t(c->off + c->done));
    if (r < 0) {
      if ((errno == EINTR || errno == EAGAIN) && ++c->retries < kMaxIoRetries) continue;
      return -errno;
    }
    if (r == 0) {
      if (!io.write) break;  // EOF
      if (++c->retries >= kMaxIoRetries) return -EIO;
      continue;
    }
    c->done += uint64_t(r);
  }
  return int64_t(c->done);
}

void ChunkPool::work() {
  for (;;) {
    Chunk *c;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [this] { return quit_ || !q_.empty(); });
      if (q_.empty()) return;  // quit_ and drained
      c = q_.front();
      q_.pop_front();
    }
    // The same worker continues with the I/O's next piece, if any.
    while (c) c = a_->chunk_done(c, transfer(c));
  }
}

std::unique_ptr<Executor> create_pool_executor(Agent *agent) { return std::make_unique<PoolExecutor>(agent); }

}  // namespace usrbio
