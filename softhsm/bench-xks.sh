#!/usr/bin/env bash
# External key store benchmark in one command (docs/benchmarks.md, "KMS -> xks-proxy"):
#   softhsm/bench-xks.sh                      # 10 s per scenario, 32 connections
#   KMS_BENCH_DURATION=3 softhsm/bench-xks.sh
# Builds release binaries; makes a throwaway SoftHSM token with an AES-256 key; a throwaway CA
# and a TLS certificate for localhost; starts xks-proxy (TLS, SigV4) and kms (trusting the CA)
# on free loopback ports; creates and connects an EXTERNAL_KEY_STORE and a key on the external
# key (softhsm/bench-lib.sh); then runs `loadgen kms` against that key (Encrypt 256 B and
# GenerateDataKey, both double encryption through the proxy) next to the bare route of the kms
# HTTP stack, with the CPU per request of the kms and the proxy together. Everything it starts
# is stopped by PID; loopback only; bounded in time. Extra arguments go to loadgen (e.g. --rounds 3, --json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
target=${CARGO_TARGET_DIR:-$root/target}
duration=${KMS_BENCH_DURATION:-10}
warmup=${KMS_BENCH_WARMUP:-2}
concurrency=${KMS_BENCH_CONCURRENCY:-32}
bash softhsm/install.sh >/dev/null
bench_need curl jq openssl python3 pkcs11-tool softhsm2-util
cargo build --release --quiet -p kms --bin kms -p xks-proxy --bin xks-proxy -p loadgen --bin loadgen

work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT
start_xks_stack "$target/release/kms" "$target/release/xks-proxy" "$work"
echo "== loadgen kms: key $XKS_KMS_KEY on an external key store, $concurrency connections, ${warmup}s warm-up + ${duration}s per scenario ($(nproc) cores) =="
"$target/release/loadgen" kms --endpoint "$KMS_ENDPOINT" --server-pid "$KMS_PID,$PROXY_PID" --key-id "$XKS_KMS_KEY" \
  --ops encrypt,generate-data-key --concurrency "$concurrency" --duration "$duration" --warmup "$warmup" "$@"
