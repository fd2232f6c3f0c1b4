#!/usr/bin/env bash
# Quick start: install what is missing, build, and run tcptrail.
#   sudo scripts/run.sh                 # tcptrail trace
#   sudo scripts/run.sh history -f json # any subcommand and options
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" >&2
(($# == 0)) && set -- trace
exec "$root/build/tcptrail" "$@"
