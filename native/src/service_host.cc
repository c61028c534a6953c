// service_host.cc - a usrbio service: one agent shared by the processes of the machine
// (`usrbio serve <dir>`), the counterpart of 3FS's FUSE process.
//
// One thread (the loop) owns the listening socket, every client connection and all per-client
// state; it handles one request at a time with epoll. Clients pass their shared memory (sealed
// memfds) and their files (fds) as descriptors, so the service touches only memory a client
// gave it and files a client opened itself. Each client is an agent owner: its rings can name
// only its own iovs and files. A client's socket EOF (exit, crash, kill -9) removes all it had;
// I/O in flight finishes into memory the service keeps mapped until then.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstdarg>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "agent.h"
#include "service_proto.h"
#include "shm.h"
#include "usrbio_ext.h"
#include "util.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace usrbio {

// ---------------------------------------------------------------- shared helpers

std::string svc_run_dir() {
  const char *d = getenv("USRBIO_RUN_DIR");
  return d && *d ? std::string(d) : std::string("/tmp/usrbio");
}

std::string svc_socket_path(const std::string &canonical) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char name[32];
  snprintf(name, sizeof name, "/%016llx.sock", (unsigned long long)h);
  std::string p = svc_run_dir() + name;
  if (p.size() >= sizeof(sockaddr_un::sun_path)) return "";
  return p;
}

int svc_send(int sock, const void *msg, size_t len, const int *fds, int nfds) {
  iovec io{const_cast<void *>(msg), len};
  msghdr mh{};
  mh.msg_iov = &io;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(2 * sizeof(int))];
  if (nfds > 0) {
    memset(ctl, 0, sizeof ctl);
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(size_t(nfds) * sizeof(int));
    cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(size_t(nfds) * sizeof(int));
    memcpy(CMSG_DATA(c), fds, size_t(nfds) * sizeof(int));
  }
  for (;;) {
    ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (r >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

long svc_recv(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds, int flags) {
  iovec io{msg, len};
  msghdr mh{};
  mh.msg_iov = &io;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))];
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  *nfds = 0;
  ssize_t r;
  do r = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  bool bad = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int n = int((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int tmp[4];
    memcpy(tmp, CMSG_DATA(c), size_t(std::min(n, 4)) * sizeof(int));
    for (int i = 0; i < n && i < 4; i++) {
      if (!bad && *nfds < maxfds) fds[(*nfds)++] = tmp[i];
      else close(tmp[i]);
    }
  }
  if (bad) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return -EMSGSIZE;
  }
  return long(r);
}

namespace {

// Map `size` bytes of a client's memfd read-write. The memfd must be sealed against shrinking
// (F_SEAL_SHRINK), so the client cannot truncate it under the service (SIGBUS), and hold at
// least `size` bytes. Takes ownership of fd on success (the Mapping closes it).
int map_client_memfd(int fd, size_t size, std::shared_ptr<Mapping> *out) {
  if (size == 0) return -EINVAL;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) return -EINVAL;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 || uint64_t(st.st_size) < size) return -EINVAL;
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  auto m = std::make_shared<Mapping>();
  m->base = static_cast<uint8_t *>(p);
  m->size = size;
  m->fd = fd;
  *out = std::move(m);
  return 0;
}

// The doorbell page: a 4 KiB memfd the host maps read-write and then seals so that nobody
// can map it writable again (F_SEAL_FUTURE_WRITE), resize it or change its seals: clients map it
// read-only and cannot stop each other's wake-ups by writing the "sleeping" word.
int make_bell_page(std::shared_ptr<Mapping> *out) {
  int fd = memfd_create("usrbio-svc-bell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  if (ftruncate(fd, 4096) != 0) return -errno;
  void *p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -errno;
  m->base = static_cast<uint8_t *>(p);
  m->size = 4096;
  reinterpret_cast<SvcDoorbellPage *>(m->base)->magic = kSvcMagic;
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) return -errno;
  *out = std::move(m);
  return 0;
}

// s as the inside of a JSON string (quotes, backslashes and control characters escaped).
std::string json_escape(const std::string &s) {
  std::string o;
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += char(ch);
    } else if (ch < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", ch);
      o += b;
    } else {
      o += char(ch);
    }
  }
  return o;
}

std::string hex_id(const uint8_t id[16]) { return std::string(reinterpret_cast<const char *>(id), 16); }

// An iov a client created: its memory, for iovopen by other clients of the same uid.
struct SvcIov {
  std::shared_ptr<Mapping> map;  // holds the memfd too (passed on to openers)
  size_t block_size = 0;
  uid_t uid = 0;
  uint64_t creator = 0;
};

struct Client {
  int fd = -1;
  uint64_t owner = 0;  // agent owner id, never reused
  ucred cred{};
  bool hello = false;
  std::map<uint64_t, uint64_t> rings;  // our handle -> agent ring id
  uint64_t next_ring = 1;
  // Iovs this client may use (created or opened), with how many times it holds each.
  struct IovUse {
    std::shared_ptr<SvcIov> iov;
    int refs = 0;
  };
  std::unordered_map<std::string, IovUse> iovs;
  std::set<uint64_t> files;  // agent file handles
};

}  // namespace

class ServiceHost {
 public:
  ~ServiceHost();
  // Start serving opts->dir. 0 and *out, or -errno. Logs through opts->log.
  static int start(const usrbio_service_options &o, ServiceHost **out);
  // Stop (see usrbio_service_stop) and join the loop thread. Then delete the host.
  void stop();
  void stats(SvcStats *out);

 private:
  void log(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
  void loop();
  void accept_clients();
  void serve(Client &c);
  // Handle one request; fills rep and the fds to pass back (owned by the host, not closed).
  void handle(Client &c, const SvcReq &q, int fd_in, SvcRep &rep, int *out, int *nout);
  void drop(int fd, const char *why);
  void stats_locked(SvcStats *out);

  usrbio_service_options opts_{};
  std::string dir_, sock_, lockp_;
  std::shared_ptr<Agent> agent_;
  std::shared_ptr<Mapping> bell_;  // the doorbell page; outlives agent_
  int lfd_ = -1, epfd_ = -1, stopfd_ = -1, timerfd_ = -1, lockfd_ = -1;
  std::thread thr_;
  uint64_t started_ns_ = 0;
  uint64_t next_owner_ = 1;
  int max_clients_ = 256;

  std::mutex mu_;  // guards clients_' count and the per-second rates for stats() (other threads)
  std::unordered_map<int, std::unique_ptr<Client>> clients_;  // by fd; loop thread
  std::unordered_map<std::string, std::shared_ptr<SvcIov>> created_;  // iov id -> creator's iov
  uint64_t last_ios_ = 0, last_bytes_ = 0, iops_ = 0, bps_ = 0;
  uint64_t clients_hello_ = 0;  // connections that said hello (stat queries do not)
};

// One log record: `fmt` formats the message, optionally followed by '\x1f' and JSON fields.
// Loop thread (and start()).
void ServiceHost::log(int level, const char *event, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string buf(size_t(n < 0 ? 0 : n) + 1, '\0');
  vsnprintf(buf.data(), buf.size(), fmt, ap2);  // never truncated: a cut JSON field would not parse
  va_end(ap2);
  buf.resize(size_t(n < 0 ? 0 : n));
  const char *msg = buf.c_str();
  if (!opts_.log) {
    for (char &ch : buf)
      if (ch == '\x1f') ch = ' ';
    log_msg(level, "service %s: %s", event, msg);
    return;
  }
  // msg holds the JSON fields after the message text, separated by '\x1f': "text\x1f\"k\":v,..".
  std::string text = msg, fields;
  size_t sep = text.find('\x1f');
  if (sep != std::string::npos) {
    fields = text.substr(sep + 1);
    text.resize(sep);
  }
  std::string j = "{\"event\":\"" + std::string(event) + "\",\"msg\":\"" + json_escape(text) + "\"";
  if (!fields.empty()) j += "," + fields;
  j += "}";
  opts_.log(opts_.log_ctx, level, j.c_str());
}

// Validate the options, take the directory's lock, start the agent, bind the socket and start
// the loop thread. On failure everything taken so far is released (~ServiceHost).
int ServiceHost::start(const usrbio_service_options &o, ServiceHost **out) {
  if (!o.dir || !*o.dir) return -EINVAL;
  if (o.max_clients < 0 || o.max_clients > 65536 || o.threads < 0 || o.threads > 256) return -EINVAL;
  char *rp = realpath(o.dir, nullptr);
  if (!rp) return -errno;
  std::unique_ptr<ServiceHost> h(new ServiceHost);
  h->opts_ = o;
  h->dir_ = rp;
  free(rp);
  struct stat st;
  if (stat(h->dir_.c_str(), &st) != 0) return -errno;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  h->max_clients_ = o.max_clients ? o.max_clients : 256;
  AgentOptions ao;
  if (o.executor && !strcmp(o.executor, "io_uring")) ao.exec = ExecKind::IoUring;
  else if (o.executor && (!strcmp(o.executor, "pread") || !strcmp(o.executor, "pool"))) ao.exec = ExecKind::Pool;
  else if (o.executor && *o.executor && strcmp(o.executor, "auto")) return -EINVAL;
  ao.pool_threads = o.threads;

  h->sock_ = svc_socket_path(h->dir_);
  if (h->sock_.empty()) return -ENAMETOOLONG;
  std::string run = svc_run_dir();
  if (mkdir(run.c_str(), 01777) == 0) chmod(run.c_str(), 01777);  // world-usable, sticky, like /tmp
  else if (errno != EEXIST) return -errno;
  // One service per directory: an flock held for the service's life.
  h->lockp_ = h->sock_.substr(0, h->sock_.size() - 5) + ".lock";
  h->lockfd_ = open(h->lockp_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (h->lockfd_ < 0) return -errno;
  if (flock(h->lockfd_, LOCK_EX | LOCK_NB) != 0) {
    int e = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
    close(h->lockfd_);
    h->lockfd_ = -1;
    return e;
  }

  // The doorbell page: the dispatcher's "sleeping" word, mapped read-only by clients.
  int r = make_bell_page(&h->bell_);
  if (r < 0) return r;
  auto *page = reinterpret_cast<SvcDoorbellPage *>(h->bell_->base);
  ao.sleeping_word = new (&page->sleeping) std::atomic<uint32_t>(0);
  r = Agent::create(ao, &h->agent_);
  if (r < 0) return r;

  // Raise the fd limit: every client ring, iov and file is an fd here.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  h->lfd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (h->lfd_ < 0) return -errno;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, h->sock_.c_str(), h->sock_.size() + 1);
  unlink(h->sock_.c_str());  // a stale socket of a dead service (we hold the lock)
  if (bind(h->lfd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) return -errno;
  chmod(h->sock_.c_str(), 0777);  // any user may connect; peer credentials and fds decide the rest
  if (listen(h->lfd_, 128) != 0) return -errno;
  h->epfd_ = epoll_create1(EPOLL_CLOEXEC);
  h->stopfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  h->timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (h->epfd_ < 0 || h->stopfd_ < 0 || h->timerfd_ < 0) return -EMFILE;
  itimerspec its{{1, 0}, {1, 0}};
  timerfd_settime(h->timerfd_, 0, &its, nullptr);
  for (int fd : {h->lfd_, h->stopfd_, h->timerfd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(h->epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return -errno;
  }
  h->started_ns_ = now_ns();
  ServiceHost *raw = h.get();
  {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // signals go to the application's threads
    try {
      h->thr_ = std::thread([raw] { raw->loop(); });
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return -EAGAIN;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  h->log(2, "started", "serving %s\x1f\"dir\":\"%s\",\"socket\":\"%s\",\"executor\":\"%s\",\"maxClients\":%d",
         h->dir_.c_str(), json_escape(h->dir_).c_str(), json_escape(h->sock_).c_str(), h->agent_->executor_name(),
         h->max_clients_);
  *out = h.release();
  return 0;
}

static void close_fd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Also tears down a host whose start() failed half way.
ServiceHost::~ServiceHost() {
  stop();
  if (lfd_ >= 0) {
    close_fd(lfd_);
    unlink(sock_.c_str());
  }
  agent_.reset();  // before bell_, which holds its sleeping word
}

// Wake the loop thread to stop and join it, then close what start() opened. Idempotent; not
// from the loop thread.
void ServiceHost::stop() {
  uint64_t one = 1;
  if (thr_.joinable()) {
    ssize_t w = write(stopfd_, &one, sizeof one);
    (void)w;
    thr_.join();
  }
  close_fd(epfd_);
  close_fd(stopfd_);
  close_fd(timerfd_);
  if (lockfd_ >= 0) {
    unlink(lockp_.c_str());
    close_fd(lockfd_);
  }
}

// The loop thread: accept clients, serve their requests, sample the IOPS counters each second;
// on stop, tear down in the order described at the end.
void ServiceHost::loop() {
  epoll_event evs[64];
  bool running = true;
  while (running) {
    int n = epoll_wait(epfd_, evs, 64, -1);
    if (n < 0) continue;  // EINTR
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == stopfd_) {
        running = false;
      } else if (fd == lfd_) {
        accept_clients();
      } else if (fd == timerfd_) {
        uint64_t ticks;
        ssize_t rd = read(timerfd_, &ticks, sizeof ticks);
        (void)rd;
        AgentStats s;
        agent_->stats(&s);
        std::lock_guard<std::mutex> g(mu_);
        iops_ = s.ios - last_ios_;
        bps_ = s.bytes - last_bytes_;
        last_ios_ = s.ios;
        last_bytes_ = s.bytes;
      } else {
        auto it = clients_.find(fd);
        if (it == clients_.end()) continue;
        if (evs[i].events & EPOLLIN) serve(*it->second);  // may drop it (EOF)
        else drop(fd, "hangup");
      }
    }
  }
  // Stopping: no new clients; in-flight I/O finishes and every ring reports -EPIPE (its health
  // word); waiters are woken now; then every connection closes (clients see EOF).
  epoll_ctl(epfd_, EPOLL_CTL_DEL, lfd_, nullptr);
  close_fd(lfd_);
  unlink(sock_.c_str());
  log(2, "stopping", "finishing in-flight I/O\x1f\"clients\":%zu,\"inflight\":%llu", clients_.size(),
      (unsigned long long)agent_->inflight());
  agent_->stop();
  std::vector<int> fds;
  for (auto &kv : clients_) fds.push_back(kv.first);
  for (int fd : fds) drop(fd, "service stopping");
  created_.clear();
  log(2, "stopped", "stopped");
}

// Accept every pending connection and record its peer credentials. Beyond max-clients + 64
// not-yet-hello connections the connection gets one -EUSERS reply and is closed.
void ServiceHost::accept_clients() {
  for (;;) {
    int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN, or EMFILE etc. (the client sees its connect fail or EOF)
    auto c = std::make_unique<Client>();
    c->fd = fd;
    socklen_t len = sizeof c->cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) != 0) {
      close(fd);
      continue;
    }
    // Connections that have not said hello yet (stat queries) get 64 places beyond max-clients.
    if (clients_.size() >= size_t(max_clients_) + 64) {
      SvcRep rep{};
      rep.magic = kSvcMagic;
      rep.result = -EUSERS;
      svc_send(fd, &rep, sizeof rep, nullptr, 0);  // stays readable after close
      log(1, "refused", "client refused: max-clients %d reached\x1f\"clientPid\":%d,\"uid\":%u", max_clients_,
          int(c->cred.pid), unsigned(c->cred.uid));
      close(fd);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    c->owner = next_owner_++;
    std::lock_guard<std::mutex> g(mu_);
    clients_[fd] = std::move(c);
  }
}

// Read and answer up to 64 queued requests of a client (epoll is level-triggered: the rest wait
// for the next round, so a client flooding the socket cannot starve the others); EOF or a socket
// error drops it.
void ServiceHost::serve(Client &c) {
  for (int budget = 64; budget > 0; budget--) {
    SvcReq q;
    int fds[1] = {-1};
    int nfds = 0;
    long r = svc_recv(c.fd, &q, sizeof q, fds, 1, &nfds, MSG_DONTWAIT);
    if (r == -EAGAIN || r == -EWOULDBLOCK) return;
    if (r == 0) return drop(c.fd, "disconnected");
    if (r < 0 && r != -EMSGSIZE) return drop(c.fd, "socket error");
    SvcRep rep{};
    rep.magic = kSvcMagic;
    int out[2];
    int nout = 0;
    int fd_in = nfds ? fds[0] : -1;
    if (r != long(sizeof q) || q.magic != kSvcMagic) {
      rep.result = -EINVAL;
      if (fd_in >= 0) close(fd_in);
    } else {
      rep.op = q.op;
      if (q.op == kOpKick) {
        if (fd_in >= 0) close(fd_in);
        agent_->doorbell().kick();
        continue;  // no reply
      }
      handle(c, q, fd_in, rep, out, &nout);  // consumes fd_in
    }
    int s = svc_send(c.fd, &rep, sizeof rep, out, nout);
    if (s < 0 && s != -EAGAIN) return drop(c.fd, "socket error");
  }
}

// Handle one request. fd_in (or -1) is consumed: adopted or closed. Fds in out[] stay owned by
// the host. Every failure is a -errno in rep.result; nothing a client sends can stop the loop.
void ServiceHost::handle(Client &c, const SvcReq &q, int fd_in, SvcRep &rep, int *out, int *nout) {
  struct CloseIn {
    int &fd;
    ~CloseIn() {
      if (fd >= 0) close(fd);
    }
  } close_in{fd_in};
  auto fail = [&](int64_t e) { rep.result = e; };
  if (q.op == kOpStats) return stats(&rep.stats);
  if (q.op == kOpHello) {
    if (!c.hello) {
      if (clients_hello_ >= uint64_t(max_clients_)) {
        log(1, "refused", "client refused: max-clients %d reached\x1f\"clientPid\":%d,\"uid\":%u", max_clients_,
            int(c.cred.pid), unsigned(c.cred.uid));
        return fail(-EUSERS);
      }
      std::lock_guard<std::mutex> g(mu_);
      clients_hello_++;
    }
    c.hello = true;
    rep.v[0] = int64_t(c.owner);
    out[0] = bell_->fd;
    *nout = 1;
    log(2, "client", "client connected\x1f\"client\":%llu,\"clientPid\":%d,\"uid\":%u,\"gid\":%u",
        (unsigned long long)c.owner, int(c.cred.pid), unsigned(c.cred.uid), unsigned(c.cred.gid));
    return;
  }
  if (!c.hello) return fail(-EPROTO);
  switch (q.op) {
    case kOpAddIov: {
      size_t size = size_t(q.a[0]), bs = size_t(q.a[1]);
      if (fd_in < 0 || q.a[0] <= 0 || q.a[1] < 0 || bs > size) return fail(-EINVAL);
      std::string key = hex_id(q.id);
      if (c.iovs.count(key) || created_.count(key)) return fail(-EEXIST);
      if (c.iovs.size() >= kSvcMaxIovsPerClient) return fail(-EMFILE);
      std::shared_ptr<Mapping> map;
      int r = map_client_memfd(fd_in, size, &map);
      if (r < 0) return fail(r);
      fd_in = -1;  // the mapping owns it
      r = agent_->add_iov(q.id, map->base, size, bs, map, c.owner);
      if (r < 0) return fail(r);
      auto iov = std::make_shared<SvcIov>();
      iov->map = std::move(map);
      iov->block_size = bs;
      iov->uid = c.cred.uid;
      iov->creator = c.owner;
      created_[key] = iov;
      c.iovs[key] = Client::IovUse{iov, 1};
      return;
    }
    case kOpOpenIov: {
      std::string key = hex_id(q.id);
      auto mine = c.iovs.find(key);
      std::shared_ptr<SvcIov> iov;
      if (mine != c.iovs.end()) {
        iov = mine->second.iov;
      } else {
        auto it = created_.find(key);
        if (it == created_.end()) return fail(-ENOENT);
        iov = it->second;
        if (iov->uid != c.cred.uid) {
          log(1, "denied", "iovopen denied: the iov belongs to another user\x1f\"client\":%llu,\"uid\":%u",
              (unsigned long long)c.owner, unsigned(c.cred.uid));
          return fail(-EACCES);
        }
      }
      if (q.a[0] < 0 || size_t(q.a[0]) != iov->map->size || q.a[1] < 0 || size_t(q.a[1]) != iov->block_size)
        return fail(-EINVAL);
      if (mine == c.iovs.end()) {
        if (c.iovs.size() >= kSvcMaxIovsPerClient) return fail(-EMFILE);
        int r = agent_->add_iov(q.id, iov->map->base, iov->map->size, iov->block_size, iov->map, c.owner);
        if (r < 0) return fail(r);
        c.iovs[key] = Client::IovUse{iov, 1};
      } else {
        mine->second.refs++;
      }
      out[0] = iov->map->fd;
      *nout = 1;
      return;
    }
    case kOpRemoveIov: {
      std::string key = hex_id(q.id);
      auto it = c.iovs.find(key);
      if (it == c.iovs.end()) return fail(-ENOENT);
      if (--it->second.refs > 0) return;
      agent_->remove_iov(q.id, false, c.owner);
      auto cr = created_.find(key);
      if (cr != created_.end() && cr->second->creator == c.owner) created_.erase(cr);
      c.iovs.erase(it);
      return;
    }
    case kOpAddRing: {
      int64_t entries = q.a[0];
      if (fd_in < 0 || entries <= 0 || entries > kMaxRingEntries || q.a[2] < INT_MIN || q.a[2] > INT_MAX ||
          q.a[3] < 0 || q.a[3] > INT_MAX || q.a[4] < INT_MIN || q.a[4] > INT_MAX)
        return fail(-EINVAL);
      if (c.rings.size() >= kSvcMaxRingsPerClient) return fail(-EMFILE);
      std::shared_ptr<Mapping> map;
      int r = map_client_memfd(fd_in, ring_bytes(size_t(entries)), &map);
      if (r < 0) return fail(r);
      fd_in = -1;
      uint64_t id;
      std::shared_ptr<std::atomic<int>> health;
      auto *word = reinterpret_cast<int32_t *>(map->base + svc_health_offset(int(entries)));
      r = agent_->add_ring(map->base, map->size, int(entries), q.a[1] != 0, int(q.a[2]), int(q.a[3]), int(q.a[4]),
                           uint64_t(q.a[5]), map, &id, &health, c.owner, word);
      if (r < 0) return fail(r);
      uint64_t h = c.next_ring++;
      c.rings[h] = id;
      rep.v[0] = int64_t(h);
      return;
    }
    case kOpRemoveRing: {
      auto it = c.rings.find(uint64_t(q.a[0]));
      if (it == c.rings.end()) return fail(-ENOENT);
      agent_->remove_ring(it->second, false);  // in-flight batches keep the memory mapped
      c.rings.erase(it);
      return;
    }
    case kOpAddFile: {
      if (fd_in < 0) return fail(-EBADF);
      int fl = fcntl(fd_in, F_GETFL);
      // An O_PATH fd grants no access: reopening it here would act with the service's rights.
      if (fl < 0 || (fl & O_PATH)) return fail(-EBADF);
      if (c.files.size() >= kSvcMaxFilesPerClient) return fail(-EMFILE);
      uint64_t h;
      int r = agent_->add_file(fd_in, &h, c.owner);  // the agent keeps its own descriptor
      if (r < 0) return fail(r);
      c.files.insert(h);
      rep.v[0] = int64_t(h);
      return;
    }
    case kOpRemoveFile: {
      auto it = c.files.find(uint64_t(q.a[0]));
      if (it == c.files.end()) return fail(-ENOENT);
      agent_->remove_file(*it);
      c.files.erase(it);
      return;
    }
    default:
      return fail(-EINVAL);
  }
}

// Forget a client and everything it registered. Its in-flight batches finish on their own:
// they hold the ring, iov and file references they use.
void ServiceHost::drop(int fd, const char *why) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  std::unique_ptr<Client> c = std::move(it->second);
  clients_.erase(it);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  size_t rings = c->rings.size(), iovs = c->iovs.size(), files = c->files.size();
  for (auto &kv : c->rings) agent_->remove_ring(kv.second, false);
  for (auto &kv : c->iovs) {
    uint8_t id[16];
    memcpy(id, kv.first.data(), 16);
    agent_->remove_iov(id, false, c->owner);
    auto cr = created_.find(kv.first);
    if (cr != created_.end() && cr->second->creator == c->owner) created_.erase(cr);
  }
  for (uint64_t h : c->files) agent_->remove_file(h);
  // Counted out only now, so a stats() reader that sees the client gone sees its registrations gone.
  if (c->hello) {
    std::lock_guard<std::mutex> g(mu_);
    clients_hello_--;
  }
  close(fd);
  if (c->hello)
    log(2, "client-gone", "client %s; freed its rings, iovs and files\x1f\"client\":%llu,\"clientPid\":%d,\"rings\":%zu,"
        "\"iovs\":%zu,\"files\":%zu,\"inflight\":%llu",
        why, (unsigned long long)c->owner, int(c->cred.pid), rings, iovs, files,
        (unsigned long long)agent_->inflight());
}

// Counters for usrbio stat; any thread (the agent's counters are atomics, the rest under mu_).
void ServiceHost::stats(SvcStats *out) {
  memset(out, 0, sizeof *out);
  AgentStats s;
  agent_->stats(&s);
  std::lock_guard<std::mutex> g(mu_);
  out->clients = clients_hello_;
  s.copy_counts(out);
  out->iops = iops_;
  out->bytes_per_sec = bps_;
  out->uptime_ms = (now_ns() - started_ns_) / 1000000;
  out->pid = uint64_t(getpid());
  out->max_clients = uint64_t(max_clients_);
  snprintf(out->executor, sizeof out->executor, "%s", s.executor);
  snprintf(out->dir, sizeof out->dir, "%s", dir_.c_str());
}

}  // namespace usrbio

using usrbio::ServiceHost;

USRBIO_API int usrbio_service_start(const struct usrbio_service_options *opts, void **handle) {
  if (!opts || !handle) return -EINVAL;
  ServiceHost *h = nullptr;
  int r;
  try {
    r = ServiceHost::start(*opts, &h);
  } catch (...) {
    return -ENOMEM;
  }
  if (r < 0) return r;
  *handle = h;
  return 0;
}

USRBIO_API int usrbio_service_stop(void *handle) {
  if (!handle) return -EINVAL;
  auto *h = static_cast<ServiceHost *>(handle);
  h->stop();
  delete h;
  return 0;
}

USRBIO_API int usrbio_service_get_stats(void *handle, struct usrbio_service_stats *out) {
  if (!handle || !out) return -EINVAL;
  static_cast<ServiceHost *>(handle)->stats(out);
  return 0;
}
