#!/usr/bin/env bash
# The ladders of real scenes through the binary: a saved `trace -f json` of
# scripts/scenario.sh (normal passive refused reset ipv6, Linux 6.18) drawn
# with --input. The SVG must be valid XML (xmllint) and render with a real
# SVG renderer (rsvg-convert) to a PNG of the size the SVG declares; JSON and
# Mermaid must hold one ladder per connection.
#   tests/ladder_render_check.sh BINARY TRACE.jsonl
set -euo pipefail
bin=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "ladder_render_check: $*" >&2; exit 1; }

"$bin" ladder --input "$data" -f svg >"$tmp/l.svg"
xmllint --noout "$tmp/l.svg" || fail "SVG is not well-formed XML"
rsvg-convert -o "$tmp/l.png" "$tmp/l.svg" || fail "rsvg-convert refused the SVG"
python3 - "$tmp/l.svg" "$tmp/l.png" <<'PY' || fail "PNG does not match the SVG"
import re, struct, sys
svg = open(sys.argv[1]).read()
w, h = map(int, re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', svg).groups())
png = open(sys.argv[2], "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pw, ph = struct.unpack(">II", png[16:24])
assert (pw, ph) == (w, h), (pw, ph, w, h)
# one arrow per drawn segment, plus the legend's four
assert svg.count("marker-end=") >= 4 + 5 * 2, svg.count("marker-end=")
PY
n=$("$bin" ladder --input "$data" -f json | wc -l)
[[ $n == 5 ]] || fail "json: $n ladders, want 5"
m=$("$bin" ladder --input "$data" -f mermaid | grep -c '^sequenceDiagram$')
[[ $m == 5 ]] || fail "mermaid: $m diagrams, want 5"
"$bin" ladder --input "$data" --ascii | LC_ALL=C grep -q '[^ -~]' &&
  fail "--ascii printed a non-ASCII byte"
echo "ladder_render_check: ok"
