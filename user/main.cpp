// tcptrail: shows what the kernel's TCP stack does, socket by socket.
#include <cstdio>
#include <exception>

#include "cli.h"
#include "error.h"

int main(int argc, char **argv) {
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
