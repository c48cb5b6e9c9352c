#!/usr/bin/env bash
# CreateKey as the key set grows, on SQLite and on PostgreSQL (issue 16: the key quota's count).
# Starts a throwaway PostgreSQL cluster (tests/pg/cluster.sh) and two release kms servers on the
# software root (one on SQLite, one on PostgreSQL; request quotas off, key quota 1,000,000),
# then for each store, one after the other:
#   1. "first": CreateKey for KMS_BENCH_DURATION seconds (default 3) on the empty store;
#   2. fills the store with CreateKey (32 connections) up to KMS_BENCH_KEYS keys (default 20000);
#   3. "after N": CreateKey again for KMS_BENCH_DURATION seconds.
# Each measured step prints loadgen's row (req/s, latency, server CPU per request) and the key
# count before it. KMS_BIN (default ./target/release/kms, built when it is the default) runs an
# older build for a before/after comparison; loadgen is ./target/release/loadgen.
# Servers stopped by PID, cluster and data removed. Loopback only.
set -euo pipefail
export KMS_LIMITS__REQUEST_QUOTAS=false
cd "$(dirname "$0")/.."
keys=${KMS_BENCH_KEYS:-20000}
duration=${KMS_BENCH_DURATION:-3}
conc=${KMS_BENCH_CONCURRENCY:-8}
kms=${KMS_BIN:-./target/release/kms}
if [ -z "${KMS_BIN:-}" ]; then
  cargo build --release --locked -q -p kms --bin kms -p loadgen --bin loadgen
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-ck.XXXXXX")
chmod 755 "$work"   # the cluster runs as the postgres user when started as root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash tests/pg/cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(bash tests/pg/cluster.sh start "$work/pg")"
base=${KMS_TEST_PG_URL%/postgres}
PGPASSWORD=$KMS_TEST_PG_PASSWORD psql -q "$KMS_TEST_PG_URL" -c "CREATE DATABASE kmsbench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # name, port, extra env...
  local name=$1 port=$2; shift 2
  env KMS_SERVER__BASELINE_ROUTE=true KMS_SERVER__DATA_DIR="$work/$name" \
    KMS_SERVER__LISTEN="127.0.0.1:$port" KMS_LOG=warn KMS_LIMITS__KEYS_PER_ACCOUNT=1000000 \
    "$@" "$kms" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.2
  done
  echo "FAIL: the $name server did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
count() { # store
  case $1 in
  sqlite) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM keys").fetchone()[0])' "$work/sqlite/kms.sqlite3" ;;
  postgres) PGPASSWORD=$KMS_TEST_PG_PASSWORD psql -qAt "$base/kmsbench" -c "SELECT count(*) FROM keys" ;;
  esac
}
sq_port=$(free_port); start sqlite "$sq_port"; sq_pid=${pids[-1]}
pg_port=$(free_port)
start postgres "$pg_port" KMS_STORE__KIND=postgres KMS_STORE__URL="$base/kmsbench" \
  KMS_STORE__PASSWORD_ENV=KMS_TEST_PG_PASSWORD KMS_STORE__TLS=disable
pg_pid=${pids[-1]}
measure() { # label endpoint pid
  ./target/release/loadgen kms --endpoint "$2" --server-pid "$3" --ops create-key \
    --duration "$duration" --warmup 0 --concurrency "$conc" | grep -E "^\| create-key " |
    sed "s/^| create-key /| $1 /"
}
echo "kms: $kms ($(stat -c %y "$kms" | cut -d. -f1)); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| store: keys before | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | vs base | srv µs/req | srv cs/req | cli µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for store in sqlite postgres; do
  if [ $store = sqlite ]; then ep=http://127.0.0.1:$sq_port pid=$sq_pid; else ep=http://127.0.0.1:$pg_port pid=$pg_pid; fi
  measure "$store: $(count $store)" "$ep" "$pid"
  while [ "$(count $store)" -lt "$keys" ]; do
    ./target/release/loadgen kms --endpoint "$ep" --ops create-key --duration 5 --warmup 0 \
      --concurrency 32 >/dev/null
  done
  measure "$store: $(count $store)" "$ep" "$pid"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
