#!/usr/bin/env bash
# A/B benchmark of the metadata read path: DescribeKey (and Encrypt, as a control) on two kms
# binaries, same run, alternating (docs/benchmarks.md, "DescribeKey").
#   softhsm/bench-describe-ab.sh OLD_KMS NEW_KMS
#   AB_ROUNDS=2 AB_DURATION=3 softhsm/bench-describe-ab.sh OLD_KMS NEW_KMS   # a short run
# OLD_KMS and NEW_KMS are release `kms` binaries built beforehand (e.g. the base commit's,
# copied aside, and the working tree's); the loadgen is this tree's release build. Each side is
# a kms with the software root and SQLite, request quotas off (bench-lib.sh; DescribeKey's quota,
# 2,000/s per account, would throttle the run); AB_ROUNDS rounds of A then B, each `loadgen kms` with the
# bare route (baseline), DescribeKey and Encrypt at AB_CONCURRENCY connections for AB_WARMUP +
# AB_DURATION seconds each, with the server's CPU per request; last, `loadgen compare` prints
# A and B side by side. Loopback only; every process started here is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
old_kms=${1:?usage: $0 OLD_KMS NEW_KMS}
new_kms=${2:?usage: $0 OLD_KMS NEW_KMS}
rounds=${AB_ROUNDS:-3}
duration=${AB_DURATION:-10}
warmup=${AB_WARMUP:-2}
concurrency=${AB_CONCURRENCY:-32}
target=${CARGO_TARGET_DIR:-$root/target}
bench_need curl jq python3

work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT
cargo build --release --quiet --locked -p loadgen
loadgen=$work/loadgen
cp "$target/release/loadgen" "$loadgen"

declare -A endpoint pid
for side in a b; do
  bin=$old_kms
  [ "$side" = b ] && bin=$new_kms
  start_kms_software "$bin" "$work/sw-$side"
  endpoint[$side]=$KMS_ENDPOINT
  pid[$side]=$KMS_PID
done

echo "== A = $old_kms, B = $new_kms: $rounds rounds of A, B; baseline, describe, encrypt, $concurrency connections, ${warmup}s warm-up + ${duration}s each ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)) =="
specs=()
for round in $(seq "$rounds"); do
  for side in a b; do
    report="$work/$side-$round.json"
    status=0
    "$loadgen" kms --endpoint "${endpoint[$side]}" --server-pid "${pid[$side]}" \
      --ops describe,encrypt --concurrency "$concurrency" --duration "$duration" \
      --warmup "$warmup" --report "$report" >"$work/$side-$round.out" 2>"$work/$side-$round.err" ||
      status=$?
    if [ ! -s "$report" ]; then
      echo "FAIL: loadgen ${side^^} round $round (status $status)" >&2
      cat "$work/$side-$round.err" >&2
      exit 1
    fi
    echo "round $round ${side^^}: $(jq -r '[.scenarios[] | "\(.scenario) \(.requests_per_second | floor)/s p50 \(.p50_ms * 1000 | floor / 1000) p99 \(.p99_ms * 1000 | floor / 1000) ms, \(.server_cpu_us_per_request * 10 | floor / 10) µs/req, \(.errors) errors"] | join("; ")' "$report")"
    specs+=("--${side}" "sw=$report")
  done
done

echo
echo "== A/B (load now $(cut -d' ' -f1-3 /proc/loadavg)) =="
"$loadgen" compare --name-a "$(basename "$old_kms")" --name-b "$(basename "$new_kms")" "${specs[@]}"
