#!/usr/bin/env bash
# Encrypt on a PostgreSQL-backed node against an SQLite-backed node, same run (issue "Beyond one
# machine"). Starts a throwaway PostgreSQL cluster (tests/pg/cluster.sh), two release kms servers
# on the software root with the baseline route (one per store, free loopback ports), and runs
# `loadgen kms --ops encrypt` against each in turn for KMS_BENCH_ROUNDS rounds (default 3) of
# KMS_BENCH_DURATION seconds (default 5), with the server's CPU per request. Prints both and the
# ratio of the rates. Servers stopped by PID, cluster and data removed. Loopback only.
set -euo pipefail
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false
cd "$(dirname "$0")/.."
rounds=${KMS_BENCH_ROUNDS:-3}
duration=${KMS_BENCH_DURATION:-5}
conc=${KMS_BENCH_CONCURRENCY:-32}
cargo build --release --locked -q -p kms --bin kms -p loadgen --bin loadgen
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-pg.XXXXXX")
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
    KMS_SERVER__LISTEN="127.0.0.1:$port" KMS_LOG=warn "$@" ./target/release/kms \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.2
  done
  echo "FAIL: the $name server did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
sq_port=$(free_port); start sqlite "$sq_port"; sq_pid=${pids[-1]}
pg_port=$(free_port)
start postgres "$pg_port" KMS_STORE__KIND=postgres KMS_STORE__URL="$base/kmsbench" \
  KMS_STORE__PASSWORD_ENV=KMS_TEST_PG_PASSWORD KMS_STORE__TLS=disable
pg_pid=${pids[-1]}
run() { # name port pid
  ./target/release/loadgen kms --endpoint "http://127.0.0.1:$2" --server-pid "$3" --ops encrypt \
    --duration "$duration" --warmup 2 --concurrency "$conc" | grep -E '^\| encrypt ' | sed "s/^| encrypt /| $1/"
}
echo "| store (round) | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | vs base | srv µs/req | srv cs/req | cli µs/req |"
for r in $(seq "$rounds"); do
  run "sqlite ($r)" "$sq_port" "$sq_pid" | tee -a "$work/sq.txt"
  run "postgres ($r)" "$pg_port" "$pg_pid" | tee -a "$work/pg.txt"
done
python3 - "$work/sq.txt" "$work/pg.txt" <<'PY'
import sys
def col(f, i):
    return [float(l.split('|')[i].strip()) for l in open(f) if l.strip()]
sq, pg = col(sys.argv[1], 4), col(sys.argv[2], 4)
print(f"Encrypt req/s, SQLite {sum(sq)/len(sq):.0f}, PostgreSQL {sum(pg)/len(pg):.0f}: "
      f"PostgreSQL = {sum(pg)/sum(sq):.3f} of SQLite (rounds: "
      + ", ".join(f"{p/s:.3f}" for s, p in zip(sq, pg)) + "; target >= 0.9)")
PY
