#!/usr/bin/env bash
# A/B benchmark: an old build against a new one, same run, alternating (docs/benchmarks.md, "A/B").
#   softhsm/bench-ab.sh [OLD_REV [NEW_REV]]
#     OLD_REV: default 3464b5a (the last commit before the workspace/async/authorization refactor)
#     NEW_REV: default the working tree as it is (uncommitted changes included)
#   AB_ROUNDS=2 AB_DURATION=3 softhsm/bench-ab.sh       # a short smoke run
# Builds the `kms` and `xks-proxy` release binaries of OLD_REV (and NEW_REV if given) in a
# temporary `git worktree` (removed afterwards; the builds share this tree's target directory,
# so dependencies are compiled once), and those of the working tree, and the loadgen of the
# working tree, which drives both sides. It then starts, for each side, (1) a kms with the
# software root and (2) the KMS -> xks-proxy -> SoftHSM stack (each side with its own kms and its
# own proxy, token, certificates and external key store; softhsm/bench-lib.sh), and runs
# AB_ROUNDS rounds, each: sw A, sw B, xks A, xks B. Every run is `loadgen kms` with the bare
# route (baseline) and Encrypt of 256 bytes at AB_CONCURRENCY connections for AB_WARMUP +
# AB_DURATION seconds each, with the server's CPU per request (for xks: the kms's and the
# proxy's together). Last, `loadgen compare` prints one table with A and B side by side and the
# verdicts against the targets:
#   - sw: B's Encrypt-to-baseline ratio within 5% of A's, or better;
#   - xks: B's Encrypt throughput >= 1.2x A's, and B's p99 < 20 ms.
# The old kms has no authorization and accepts the same development credential. Everything is
# loopback only; every process started here is stopped by PID. Exit status 3 when a target is
# missed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
old_rev=${1:-3464b5a}
new_rev=${2:-}
rounds=${AB_ROUNDS:-4}
duration=${AB_DURATION:-10}
warmup=${AB_WARMUP:-2}
concurrency=${AB_CONCURRENCY:-32}
target=${CARGO_TARGET_DIR:-$root/target}
bash softhsm/install.sh >/dev/null
bench_need git curl jq openssl python3 pkcs11-tool softhsm2-util

work=$(mktemp -d)
worktrees=()
cleanup() {
  bench_stop_all
  local w
  for w in "${worktrees[@]}"; do
    git -C "$root" worktree remove --force "$w" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# build_into DIR SRC: the release kms and xks-proxy of the tree at SRC, copied into DIR.
build_into() {
  local dest=$1 src=$2
  mkdir -p "$dest"
  (cd "$src" && CARGO_TARGET_DIR=$target cargo build --release --quiet -p kms --bin kms -p xks-proxy --bin xks-proxy)
  cp "$target/release/kms" "$target/release/xks-proxy" "$dest/"
}

# build_rev DIR REV: build_into DIR for revision REV, in a temporary worktree.
build_rev() {
  local dest=$1 rev=$2 tree
  tree="$work/src-$(git -C "$root" rev-parse --short "$rev^{commit}")"
  git -C "$root" worktree add --quiet --detach "$tree" "$rev"
  worktrees+=("$tree")
  build_into "$dest" "$tree"
  git -C "$root" worktree remove --force "$tree"
}

# "REV" when it is a commit hash already, "REV (hash)" for a branch or tag.
rev_name() {
  local short
  short=$(git rev-parse --short "$1^{commit}")
  case "$short" in "$1"*) echo "$1" ;; *) echo "$1 ($short)" ;; esac
}
old_name=$(rev_name "$old_rev")
echo "== building A = $old_name =="
build_rev "$work/bin-a" "$old_rev"
if [ -n "$new_rev" ]; then
  new_name=$(rev_name "$new_rev")
  echo "== building B = $new_name =="
  build_rev "$work/bin-b" "$new_rev"
else
  new_name="working tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'))"
  echo "== building B = $new_name =="
  build_into "$work/bin-b" "$root"
fi
# The load generator: this tree's, for both sides.
cargo build --release --quiet -p loadgen
loadgen=$work/loadgen
cp "$target/release/loadgen" "$loadgen"

declare -A endpoint pid key
for side in a b; do
  start_kms_software "$work/bin-$side/kms" "$work/sw-$side"
  endpoint[sw-$side]=$KMS_ENDPOINT
  pid[sw-$side]=$KMS_PID
  start_xks_stack "$work/bin-$side/kms" "$work/bin-$side/xks-proxy" "$work/xks-$side"
  endpoint[xks-$side]=$KMS_ENDPOINT
  # The whole stack's CPU: the kms and its proxy.
  pid[xks-$side]=$KMS_PID,$PROXY_PID
  key[xks-$side]=$XKS_KMS_KEY
done

echo "== A = $old_name, B = $new_name: $rounds rounds of sw A, sw B, xks A, xks B; baseline and Encrypt, $concurrency connections, ${warmup}s warm-up + ${duration}s each ($(nproc) cores) =="
specs=()
for round in $(seq "$rounds"); do
  for bench in sw xks; do
    for side in a b; do
      report="$work/$bench-$side-$round.json"
      args=(kms --endpoint "${endpoint[$bench-$side]}" --server-pid "${pid[$bench-$side]}" --ops encrypt
        --concurrency "$concurrency" --duration "$duration" --warmup "$warmup" --report "$report")
      [ "$bench" = xks ] && args+=(--key-id "${key[$bench-$side]}")
      status=0
      "$loadgen" "${args[@]}" >"$work/$bench-$side-$round.out" 2>"$work/$bench-$side-$round.err" || status=$?
      if [ ! -s "$report" ]; then
        echo "FAIL: loadgen $bench ${side^^} round $round (status $status)" >&2
        cat "$work/$bench-$side-$round.err" >&2
        exit 1
      fi
      echo "round $round $bench ${side^^}: $(jq -r '[.scenarios[] | "\(.scenario) \(.requests_per_second | floor)/s p99 \(.p99_ms * 1000 | floor / 1000) ms, \(.server_cpu_us_per_request * 10 | floor / 10) µs/req, \(.errors) errors"] | join("; ")' "$report")"
      specs+=("--${side}" "$bench=$report")
    done
  done
done

echo
echo "== A/B: A = $old_name, B = $new_name =="
"$loadgen" compare --name-a "$old_name" --name-b "$new_name" "${specs[@]}" \
  --check ratio-kept:sw/encrypt=0.95 --check rate-gain:xks/encrypt=1.2 --check max-p99-ms:xks/encrypt=20
