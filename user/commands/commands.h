// Subcommands. Each returns the process exit code.
#pragma once

#include "cli.h"

namespace tcptrail {

int run_trace(const CommonOptions &opts);

} // namespace tcptrail
