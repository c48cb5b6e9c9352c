#!/usr/bin/env bash
# The XKS proxy benchmark in one command (docs/benchmarks.md, "XKS proxy"):
#   softhsm/bench-xks-proxy.sh        # 3 interleaved rounds of 2 s warm-up + 5 s, 16 connections,
#                                     # then Encrypt and Decrypt at 1,800 req/s for 10 s
# Builds release binaries; makes a throwaway SoftHSM token with an AES-256 token key (as
# `xks-proxy create-key` makes them); starts the xks-proxy binary on a free loopback port (plain
# HTTP, the benchmark routes on, request logs at warn) with 2 PKCS#11 sessions; then runs
# `loadgen xks`: the raw in-process C_Encrypt rate on a token key with 1 and 2 threads, the
# proxy's bare route (baseline), its work floor, Encrypt and Decrypt (closed loop), and the
# open-loop scenarios, with the proxy's CPU and context switches per request. Exit status 3
# when a target is missed (loadgen --strict). Everything it starts is stopped by PID.
# Knobs (the proxy's settings): XKS_BENCH_SESSIONS (2), XKS_BENCH_THREADS ([pool] threads, 0:
# the sessions), XKS_BENCH_MAX_IN_FLIGHT (0: 4 x threads), XKS_BENCH_ASYNC_THREADS (unset: the
# proxy's default). Extra arguments go to loadgen (e.g. --duration 10, --json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
target=${CARGO_TARGET_DIR:-$root/target}
bash softhsm/install.sh >/dev/null
bench_need curl python3 pkcs11-tool softhsm2-util
cargo build --release --quiet -p xks-proxy --bin xks-proxy -p loadgen --bin loadgen

work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT
make_xks_token "$work/softhsm"
port=$(free_port)
akid=AKIAXKSBENCHMARK2345
secret=$(head -c 32 /dev/urandom | base64)
async_threads=""
[ -n "${XKS_BENCH_ASYNC_THREADS:-}" ] && async_threads="async_threads = $XKS_BENCH_ASYNC_THREADS"
cat >"$work/xks-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
baseline_route = true
$async_threads
[pool]
threads = ${XKS_BENCH_THREADS:-0}
max_in_flight = ${XKS_BENCH_MAX_IN_FLIGHT:-0}
[[hsms]]
name = "softhsm"
profile = "softhsm2"
token_label = "xks-keys"
pin_file = "$XKS_PIN_FILE"
max_sessions = ${XKS_BENCH_SESSIONS:-2}
[[keys]]
id = "bench-key"
label = "bench-key"
[[keystores]]
prefix = "bench"
[[keystores.credentials]]
access_key_id = "$akid"
secret_access_key = "$secret"
CONF
export SOFTHSM2_CONF=$XKS_SOFTHSM_CONF
RUST_LOG=warn XKS_LOG=warn "$target/release/xks-proxy" --config "$work/xks-proxy.toml" \
  >"$work/proxy.log" 2>&1 &
pids+=($!)
proxy_pid=$!
wait_http "http://127.0.0.1:$port/__baseline" "$work/proxy.log"
echo "== loadgen xks: xks-proxy on SoftHSMv2 $(softhsm2-util --version), $(nproc) cores =="
XKS_ACCESS_KEY_ID=$akid XKS_SECRET_ACCESS_KEY=$secret "$target/release/loadgen" xks \
  --endpoint "http://127.0.0.1:$port" --server-pid "$proxy_pid" --uri-prefix bench --key-id bench-key \
  --rounds 3 --duration 5 --warmup 2 --concurrency 16 --rate 1800 --rate-duration 10 --floor \
  --raw-pkcs11 token --raw-threads 1,2 --pkcs11-token xks-keys --pkcs11-pin-file "$XKS_PIN_FILE" \
  --strict "$@"
