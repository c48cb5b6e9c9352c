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
cd "$(dirname "$0")/.."
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
bench_need curl psql python3
keys=${KMS_BENCH_KEYS:-20000}
duration=${KMS_BENCH_DURATION:-3}
conc=${KMS_BENCH_CONCURRENCY:-8}
kms=${KMS_BIN:-./target/release/kms}
if [ -z "${KMS_BIN:-}" ]; then
  cargo build --release --locked -q -p kms --bin kms -p loadgen --bin loadgen
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-ck.XXXXXX")
trap 'bench_stop_all; rm -rf "$work"' EXIT
bench_pg "$work/pg"
count() { # store
  case $1 in
  sqlite) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM keys").fetchone()[0])' "$work/sqlite/kms.sqlite3" ;;
  postgres) PGPASSWORD=$KMS_TEST_PG_PASSWORD psql -qAt "$BENCH_PG_URL" -c "SELECT count(*) FROM keys" ;;
  esac
}
start_kms_node "$kms" "$work/sqlite" KMS_LIMITS__KEYS_PER_ACCOUNT=1000000
sq_ep=$KMS_ENDPOINT sq_pid=$KMS_PID
# shellcheck disable=SC2046 # bench_pg_node_env prints one word per variable
start_kms_node "$kms" "$work/postgres" KMS_LIMITS__KEYS_PER_ACCOUNT=1000000 $(bench_pg_node_env)
pg_ep=$KMS_ENDPOINT pg_pid=$KMS_PID
measure() { # label endpoint pid
  ./target/release/loadgen kms --endpoint "$2" --server-pid "$3" --ops create-key \
    --duration "$duration" --warmup 0 --concurrency "$conc" | grep -E "^\| create-key " |
    sed "s/^| create-key /| $1 /"
}
echo "kms: $kms ($(stat -c %y "$kms" | cut -d. -f1)); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| store: keys before | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | vs base | srv µs/req | srv cs/req | cli µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for store in sqlite postgres; do
  if [ $store = sqlite ]; then ep=$sq_ep pid=$sq_pid; else ep=$pg_ep pid=$pg_pid; fi
  measure "$store: $(count $store)" "$ep" "$pid"
  while [ "$(count $store)" -lt "$keys" ]; do
    ./target/release/loadgen kms --endpoint "$ep" --ops create-key --duration 5 --warmup 0 \
      --concurrency 32 >/dev/null
  done
  measure "$store: $(count $store)" "$ep" "$pid"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
