// The USRBIO API reference's example program, scaled to a small machine and made to check
// what it reads. Build and run:
//
//   g++ -O2 -std=c++17 $(npx usrbio config --cflags) seed_example.cpp $(npx usrbio config --libs)
//   ./a.out <mount point> [num_ios] [block_size]
//
// On a local directory the embedded agent serves the rings; on a 3FS mount, 3FS does.
#include <fcntl.h>
#include <hf3fs_usrbio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static uint8_t pattern(uint64_t off) { return uint8_t((off * 2654435761u) >> 13) ^ uint8_t(off >> 20); }

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <mount point> [num_ios=1024] [block_size=1048576]\n", argv[0]);
    return 2;
  }
  const char *mount = argv[1];
  const uint64_t NUM_IOS = argc > 2 ? strtoull(argv[2], nullptr, 0) : 1024;
  const uint64_t BLOCK_SIZE = argc > 3 ? strtoull(argv[3], nullptr, 0) : (1 << 20);
  std::string path = std::string(mount) + "/example.bin";

  // Generate the data file (the seed example assumes it exists).
  {
    int wfd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    std::vector<uint8_t> buf(BLOCK_SIZE);
    for (uint64_t b = 0; b < NUM_IOS; b++) {
      for (uint64_t i = 0; i < BLOCK_SIZE; i++) buf[i] = pattern(b * BLOCK_SIZE + i);
      if (write(wfd, buf.data(), BLOCK_SIZE) != ssize_t(BLOCK_SIZE)) return perror("write"), 2;
    }
    close(wfd);
  }

  struct hf3fs_ior ior;
  int r = hf3fs_iorcreate4(&ior, mount, NUM_IOS, true, 0, 0, -1, 0);
  if (r < 0) return fprintf(stderr, "hf3fs_iorcreate4: %s\n", strerror(-r)), 1;

  struct hf3fs_iov iov;
  r = hf3fs_iovcreate(&iov, mount, NUM_IOS * BLOCK_SIZE, 0, -1);
  if (r < 0) return fprintf(stderr, "hf3fs_iovcreate: %s\n", strerror(-r)), 1;

  int fd = open(path.c_str(), O_RDONLY);
  r = hf3fs_reg_fd(fd, 0);
  if (r > 0) return fprintf(stderr, "hf3fs_reg_fd: %s\n", strerror(r)), 1;

  for (uint64_t i = 0; i < NUM_IOS; i++) {
    r = hf3fs_prep_io(&ior, &iov, true, iov.base + i * BLOCK_SIZE, fd, i * BLOCK_SIZE, BLOCK_SIZE, (void *)(i + 1));
    if (r < 0) return fprintf(stderr, "hf3fs_prep_io #%llu: %s\n", (unsigned long long)i, strerror(-r)), 1;
  }
  hf3fs_submit_ios(&ior);

  std::vector<hf3fs_cqe> cqes(NUM_IOS);
  int n = hf3fs_wait_for_ios(&ior, cqes.data(), NUM_IOS, NUM_IOS, nullptr);

  // Check: every I/O completed in full, and every byte is what the file holds.
  uint64_t bad_results = 0, bad_bytes = 0;
  std::vector<bool> seen(NUM_IOS);
  for (int i = 0; i < n; i++) {
    uint64_t k = uint64_t(uintptr_t(cqes[i].userdata)) - 1;
    if (cqes[i].result != int64_t(BLOCK_SIZE) || k >= NUM_IOS || seen[k]) bad_results++;
    else seen[k] = true;
  }
  for (uint64_t off = 0; off < NUM_IOS * BLOCK_SIZE; off++) bad_bytes += iov.base[off] != pattern(off);

  hf3fs_dereg_fd(fd);
  close(fd);
  hf3fs_iovdestroy(&iov);
  hf3fs_iordestroy(&ior);
  unlink(path.c_str());

  printf("completed=%d\nbad_results=%llu\nbad_bytes=%llu\n", n, (unsigned long long)bad_results,
         (unsigned long long)bad_bytes);
  return (n == int(NUM_IOS) && !bad_results && !bad_bytes) ? 0 : 1;
}
