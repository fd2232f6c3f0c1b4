#!/usr/bin/env bash
# Checks packaging/: the systemd unit with `systemd-analyze verify` (its
# ExecStart pointed at the built binary, which must exist for verify) and the
# Kubernetes DaemonSet as YAML with the fields Kubernetes requires and the
# security settings README promises. Prints "packaging: N passed, M failed".
#   scripts/check-packaging.sh [BUILD_DIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || { echo "packaging: 0 passed, 1 failed (no build directory)"; exit 1; }
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

unit=$root/packaging/tcptrail-serve.service
if command -v systemd-analyze >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  sed "s|/usr/sbin/tcptrail|$build/tcptrail|" "$unit" >"$tmp/tcptrail-serve.service"
  # --man=no: Documentation= names the man page, not installed by a build.
  if out=$(systemd-analyze verify --man=no "$tmp/tcptrail-serve.service" 2>&1) &&
    ! grep -q "tcptrail-serve.service" <<<"$out"; then
    ok "systemd-analyze verify tcptrail-serve.service"
  else
    bad "systemd-analyze verify tcptrail-serve.service: $out"
  fi
else
  echo "skip: systemd-analyze not installed"
fi
# The hardening the README documents, whatever systemd-analyze says.
for want in 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'MemoryMax=' \
  'Restart=on-failure' \
  'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE'; do
  if grep -q "^$want" "$unit"; then ok "unit has $want"; else bad "unit lacks $want"; fi
done

if python3 -c 'import yaml' 2>/dev/null; then
  if out=$(python3 - "$root/packaging/kubernetes/daemonset.yaml" 2>&1 <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
errors = []
def need(cond, what):
    if not cond:
        errors.append(what)
for d in docs:
    for f in ("apiVersion", "kind", "metadata"):
        need(f in d, f"{d.get('kind')}: no {f}")
    need("name" in d.get("metadata", {}), f"{d.get('kind')}: no metadata.name")
ds = [d for d in docs if d.get("kind") == "DaemonSet"]
need(len(ds) == 1, "exactly one DaemonSet")
if ds:
    d = ds[0]
    need(d["apiVersion"] == "apps/v1", "DaemonSet apiVersion apps/v1")
    spec = d.get("spec", {})
    sel = spec.get("selector", {}).get("matchLabels", {})
    tmpl = spec.get("template", {})
    labels = tmpl.get("metadata", {}).get("labels", {})
    need(sel and all(labels.get(k) == v for k, v in sel.items()),
         "selector.matchLabels must match template labels")
    ann = tmpl.get("metadata", {}).get("annotations", {})
    need(ann.get("prometheus.io/scrape") == "true", "scrape annotation")
    pod = tmpl.get("spec", {})
    need(pod.get("hostPID") is True, "hostPID: true")
    cs = pod.get("containers", [])
    need(len(cs) >= 1, "a container")
    for c in cs:
        need("name" in c and "image" in c, "container name and image")
        sc = c.get("securityContext", {})
        need(sc.get("privileged") is not True, "not privileged")
        caps = sc.get("capabilities", {})
        need(caps.get("drop") == ["ALL"], "drops ALL capabilities")
        need(set(caps.get("add", [])) == {"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE"},
             "adds exactly BPF, PERFMON, SYS_ADMIN, SYS_PTRACE")
        need(str(ann.get("prometheus.io/port")) in
             [str(p.get("containerPort")) for p in c.get("ports", [])],
             "annotated port is a container port")
    mounts = {m["name"] for c in cs for m in c.get("volumeMounts", [])}
    vols = {v["name"] for v in pod.get("volumes", [])}
    need(mounts <= vols, "every volumeMount has a volume")
if errors:
    print("\n".join(errors))
    sys.exit(1)
PY
  ); then
    ok "daemonset.yaml: valid YAML with the required fields"
  else
    bad "daemonset.yaml: $out"
  fi
else
  echo "skip: python3-yaml not installed"
fi

echo "packaging: $passed passed, $failed failed"
((failed == 0))
