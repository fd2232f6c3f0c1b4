// tcptrail: shows what the kernel's TCP stack does, socket by socket.
#include <malloc.h>

#include <cstdio>
#include <exception>

#include "cli.h"
#include "error.h"

int main(int argc, char **argv) {
  // A fixed mmap threshold: glibc otherwise raises it to the size of the
  // largest mmapped block freed (libbpf's 5.5 MB copy of the kernel BTF), and
  // a burst's big buffers (leaks enumerating 100,000 sockets, a close storm
  // in the assembler) then stay in the heap for good: 13 -> 45 MB RSS after
  // enumerating 100,000 TIME_WAIT sockets (scripts/bench/startup.sh).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // One malloc arena for every thread: start-up loads instances of the BPF
  // object on three threads (Tracer::create()), and serve's HTTP threads
  // would each keep an arena of freed scrape buffers. An arena per loader
  // thread added 0.2-0.3 MB to trace's and diagnose's RSS (6.18, 3 runs).
  mallopt(M_ARENA_MAX, 1);
  try {
    return tcptrail::run_cli(argc, argv);
  } catch (const tcptrail::Error &e) {
    std::fprintf(stderr, "tcptrail: error: %s\n", e.what());
    if (!e.hint().empty())
      std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return e.exit_code();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tcptrail: error: %s\n", e.what());
    return 1;
  }
}
