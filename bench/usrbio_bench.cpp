// usrbio_bench.cpp - drive the USRBIO C API against a local file and print one JSON line.
//
//   usrbio_bench --file F [--mode pipe|batch] [--rw randread|read] [--bs N] [--qd N]
//                [--seconds S] [--warmup S] [--touch 0|1] [--passes N] [--direct 0|1]
//
// mode pipe:  keep `qd` I/Os in flight; every reaped completion is re-prepared at once and the
//             ring is submitted after each reap (what an async application does).
// mode batch: fio-usrbio-engine style: prepare `qd` I/Os, submit, wait for all `qd`, repeat.
// rw randread: uniformly random bs-aligned offsets; read: sequential, wrapping at EOF.
// touch 1 (default) writes the iov once before measuring, so the first pass does not pay for
// page faults on fresh shared memory; touch 0 measures a fresh iov. passes > 1 reports every
// pass (each `seconds` long) so a first pass can be compared with a second.
// direct 1 opens the file with O_DIRECT (reads from the device, bs and offsets must be aligned).
// The mount point given to the API is the file's directory (the embedded agent serves it).
#include <fcntl.h>
#include <hf3fs_usrbio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Rng {  // xorshift64*
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
};

static void die(const char *what, int err) {
  fprintf(stderr, "usrbio_bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
  exit(1);
}

int main(int argc, char **argv) {
  std::string file, mode = "pipe", rw = "randread";
  uint64_t bs = 4096;
  int qd = 64, passes = 1, touch = 1, direct = 0;
  double seconds = 5, warmup = 0.5;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char * {
      if (i + 1 >= argc) {
        fprintf(stderr, "usrbio_bench: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--file") file = val();
    else if (a == "--mode") mode = val();
    else if (a == "--rw") rw = val();
    else if (a == "--bs") bs = strtoull(val(), nullptr, 0);
    else if (a == "--qd") qd = atoi(val());
    else if (a == "--seconds") seconds = atof(val());
    else if (a == "--warmup") warmup = atof(val());
    else if (a == "--touch") touch = atoi(val());
    else if (a == "--passes") passes = atoi(val());
    else if (a == "--direct") direct = atoi(val());
    else {
      fprintf(stderr, "usrbio_bench: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (file.empty() || bs == 0 || qd <= 0 || passes <= 0 || (mode != "pipe" && mode != "batch") ||
      (rw != "randread" && rw != "read") || (touch != 0 && touch != 1) || (direct != 0 && direct != 1)) {
    fprintf(stderr, "usage: usrbio_bench --file F [--mode pipe|batch] [--rw randread|read] [--bs N] [--qd N] "
                    "[--seconds S] [--warmup S] [--touch 0|1] [--passes N] [--direct 0|1]\n");
    return 2;
  }
  if (direct && bs % 512) {
    fprintf(stderr, "usrbio_bench: --direct 1 needs --bs to be a multiple of 512, got %llu\n", (unsigned long long)bs);
    return 2;
  }
  size_t slash = file.rfind('/');
  std::string mount = slash == std::string::npos ? "." : slash == 0 ? "/" : file.substr(0, slash);

  int fd = open(file.c_str(), O_RDONLY | (direct ? O_DIRECT : 0));
  if (fd < 0) die("open", errno);
  struct stat st;
  fstat(fd, &st);
  const uint64_t blocks = uint64_t(st.st_size) / bs;
  if (blocks == 0) die("file smaller than one block", EINVAL);

  hf3fs_ior ior;
  int r = hf3fs_iorcreate4(&ior, mount.c_str(), qd, true, 0, 0, -1, 0);
  if (r < 0) die("hf3fs_iorcreate4", r);
  hf3fs_iov iov;
  double tc = now_s();
  r = hf3fs_iovcreate(&iov, mount.c_str(), size_t(qd) * bs, 0, -1);
  double iov_create_ms = (now_s() - tc) * 1e3;
  if (r < 0) die("hf3fs_iovcreate", r);
  if (touch) memset(iov.base, 0, iov.size);
  r = hf3fs_reg_fd(fd, 0);
  if (r > 0) die("hf3fs_reg_fd", r);

  Rng rng{0x9e3779b97f4a7c15ull ^ uint64_t(getpid())};
  uint64_t seq = 0;
  auto next_off = [&]() -> uint64_t {
    if (rw == "read") {
      uint64_t o = seq * bs;
      seq = (seq + 1) % blocks;
      return o;
    }
    return (rng.next() % blocks) * bs;
  };
  // userdata = buffer number + 1
  // Returns false when the ring has no free position (-EAGAIN): the pool executor retires sqe
  // positions in claim order, so a batch that completed early may still hold its positions.
  auto prep = [&](int buf) -> bool {
    int s = hf3fs_prep_io(&ior, &iov, true, iov.base + uint64_t(buf) * bs, fd, next_off(), bs,
                          reinterpret_cast<void *>(uintptr_t(buf + 1)));
    if (s == -EAGAIN) return false;
    if (s < 0) die("hf3fs_prep_io", s);
    return true;
  };
  std::vector<int> deferred;  // buffers whose re-preparation met -EAGAIN
  std::vector<hf3fs_cqe> cqes(static_cast<size_t>(qd));
  uint64_t errors = 0, short_reads = 0;
  auto check = [&](const hf3fs_cqe &c) {
    if (c.result < 0) errors++;
    else if (uint64_t(c.result) != bs) short_reads++;
  };

  // Runs for `dur` seconds; returns completed I/Os and the elapsed time.
  auto run = [&](double dur, uint64_t *ios, double *elapsed) {
    uint64_t done = 0;
    double t0 = now_s(), end = t0 + dur, t = t0;
    if (mode == "pipe") {
      deferred.clear();
      int inflight = 0;
      for (int b = 0; b < qd; b++) {
        if (prep(b)) inflight++;
        else deferred.push_back(b);
      }
      hf3fs_submit_ios(&ior);
      unsigned iter = 0;
      for (;;) {
        int n = hf3fs_wait_for_ios(&ior, cqes.data(), qd, 1, nullptr);
        if (n < 0) die("hf3fs_wait_for_ios", n);
        done += uint64_t(n);
        inflight -= n;
        bool stop = false;
        if ((++iter & 15) == 0 || n >= qd / 2) {
          t = now_s();
          stop = t >= end;
        }
        for (int i = 0; i < n; i++) check(cqes[size_t(i)]);
        if (stop) break;
        size_t k = 0;
        for (; k < deferred.size(); k++) {
          if (!prep(deferred[k])) break;
          inflight++;
        }
        deferred.erase(deferred.begin(), deferred.begin() + long(k));
        for (int i = 0; i < n; i++) {
          int b = int(uintptr_t(cqes[size_t(i)].userdata) - 1);
          if (deferred.empty() && prep(b)) inflight++;
          else deferred.push_back(b);
        }
        hf3fs_submit_ios(&ior);
      }
      while (inflight > 0) {  // drain (not counted)
        int n = hf3fs_wait_for_ios(&ior, cqes.data(), qd, 1, nullptr);
        if (n < 0) die("hf3fs_wait_for_ios", n);
        inflight -= n;
      }
    } else {
      while (t < end) {
        for (int b = 0; b < qd; b++)
          if (!prep(b)) die("hf3fs_prep_io", EAGAIN);  // every position is free between batches
        hf3fs_submit_ios(&ior);
        int got = 0;
        while (got < qd) {
          int n = hf3fs_wait_for_ios(&ior, cqes.data(), qd, qd - got, nullptr);
          if (n < 0) die("hf3fs_wait_for_ios", n);
          for (int i = 0; i < n; i++) check(cqes[size_t(i)]);
          got += n;
        }
        done += uint64_t(qd);
        t = now_s();
      }
    }
    *ios = done;
    *elapsed = t - t0;
  };

  uint64_t ios;
  double el;
  if (warmup > 0) run(warmup, &ios, &el);
  errors = short_reads = 0;
  std::string per_pass = "[";
  uint64_t tot_ios = 0;
  double tot_s = 0;
  for (int p = 0; p < passes; p++) {
    run(seconds, &ios, &el);
    tot_ios += ios;
    tot_s += el;
    char buf[128];
    snprintf(buf, sizeof buf, "%s{\"iops\":%.0f,\"gbps\":%.4f}", p ? "," : "", double(ios) / el,
             double(ios) * double(bs) / el / 1e9);
    per_pass += buf;
  }
  per_pass += "]";
  double iops = double(tot_ios) / tot_s;
  printf("{\"mode\":\"%s\",\"rw\":\"%s\",\"bs\":%llu,\"qd\":%d,\"touch\":%d,\"direct\":%d,\"seconds\":%.3f,\"ios\":%llu,"
         "\"iops\":%.0f,\"gbps\":%.4f,\"errors\":%llu,\"short\":%llu,\"iov_create_ms\":%.1f,\"passes\":%s}\n",
         mode.c_str(), rw.c_str(), (unsigned long long)bs, qd, touch, direct, tot_s, (unsigned long long)tot_ios, iops,
         iops * double(bs) / 1e9, (unsigned long long)errors, (unsigned long long)short_reads, iov_create_ms, per_pass.c_str());
  hf3fs_dereg_fd(fd);
  close(fd);
  hf3fs_iovdestroy(&iov);
  hf3fs_iordestroy(&ior);
  return errors || short_reads ? 1 : 0;
}
