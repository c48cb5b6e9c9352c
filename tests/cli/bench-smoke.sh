#!/usr/bin/env bash
# Keeps the benchmark runnable: starts a debug server with the baseline route on a free
# loopback port, runs kms-bench for one second per scenario, and fails if any request failed.
# (Numbers from a debug build mean nothing; docs/benchmarks.md has the release measurements.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --quiet --bin kms --bin kms-bench
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
KMS_SERVER__LISTEN=127.0.0.1:0 KMS_SERVER__DATA_DIR="$work/data" KMS_SERVER__BASELINE_ROUTE=true \
  KMS_LOG=warn "$target/debug/kms" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 100); do
  endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/stdout" 2>/dev/null | head -n1 || true)
  [ -n "$endpoint" ] && break
  sleep 0.1
done
[ -n "${endpoint:-}" ] || { echo "FAIL: server did not start" >&2; cat "$work/stderr" >&2; exit 1; }
"$target/debug/kms-bench" --endpoint "$endpoint" --duration 1 --warmup 0 --rounds 2 --concurrency 8 \
  --server-pid "$server_pid" --floor --json | tee "$work/report"
# The server's CPU per request is reported for every scenario (and is a plausible number).
tail -n1 "$work/report" | python3 -c '
import json, sys
report = json.load(sys.stdin)
names = [s["scenario"] for s in report["scenarios"]]
assert "floor-encrypt" in names and "handoff-encrypt" in names, names
for s in report["scenarios"]:
    us = s["server_cpu_us_per_request"]
    assert us is not None and 1 < us < 100000, (s["scenario"], us)
print("server CPU per request:", ", ".join("%s %.0f us" % (s["scenario"], s["server_cpu_us_per_request"]) for s in report["scenarios"]))
'

