#!/usr/bin/env bash
# Several nodes on PostgreSQL against one node on SQLite, same run (issue "Beyond one machine").
# Starts a throwaway PostgreSQL cluster (tests/pg/cluster.sh), release kms servers on the
# software root with the baseline route (free loopback ports): one on SQLite, two on one
# PostgreSQL database sharing one root key file. Then, for KMS_BENCH_ROUNDS rounds (default 3)
# of KMS_BENCH_DURATION seconds (default 5) each, with the servers' CPU per request:
#   1. Encrypt (cached keys): SQLite node vs PostgreSQL node, and the ratio (target >= 0.9);
#   2. CreateKey (a committed write per request): SQLite node vs PostgreSQL node;
#   3. Encrypt and CreateKey on the two PostgreSQL nodes behind loadgen's round-robin client
#      (`--endpoint A,B`: connections alternate between the nodes) vs one of them alone.
# Request quotas are off (KMS_LIMITS__REQUEST_QUOTAS=false below). Servers stopped by PID,
# cluster and data removed. Loopback only.
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
run() { # label op endpoint pids
  ./target/release/loadgen kms --endpoint "$3" --server-pid "$4" --ops "$2" \
    --duration "$duration" --warmup 2 --concurrency "$conc" | grep -E "^\| $2 " | sed "s/^| $2 /| $1/"
}
header() {
  echo "| $1 | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | vs base | srv µs/req | srv cs/req | cli µs/req |"
}
sq=http://127.0.0.1:$sq_port pg=http://127.0.0.1:$pg_port
echo "## Encrypt (cached keys)"
header "store (round)"
for r in $(seq "$rounds"); do
  run "sqlite ($r)" encrypt "$sq" "$sq_pid" | tee -a "$work/sq.txt"
  run "postgres ($r)" encrypt "$pg" "$pg_pid" | tee -a "$work/pg.txt"
done
echo "## CreateKey"
header "store (round)"
for r in $(seq "$rounds"); do
  run "sqlite ($r)" create-key "$sq" "$sq_pid" | tee -a "$work/sq-ck.txt"
  run "postgres ($r)" create-key "$pg" "$pg_pid" | tee -a "$work/pg-ck.txt"
done
# A second PostgreSQL node: same database, same root key file.
pg2_port=$(free_port)
start postgres2 "$pg2_port" KMS_STORE__KIND=postgres KMS_STORE__URL="$base/kmsbench" \
  KMS_STORE__PASSWORD_ENV=KMS_TEST_PG_PASSWORD KMS_STORE__TLS=disable \
  KMS_ROOT__KEY_FILE="$work/postgres/root.key"
pg2_pid=${pids[-1]}
both="$pg,http://127.0.0.1:$pg2_port"
for op in encrypt create-key; do
  echo "## $op: two PostgreSQL nodes (round-robin) vs one"
  header "nodes (round)"
  for r in $(seq "$rounds"); do
    run "one node ($r)" "$op" "$pg" "$pg_pid" | tee -a "$work/one-$op.txt"
    run "two nodes ($r)" "$op" "$both" "$pg_pid,$pg2_pid" | tee -a "$work/two-$op.txt"
  done
done
echo "## Summary"
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
def col(f, i):
    return [float(l.split('|')[i].strip()) for l in open(f"{w}/{f}") if l.strip()]
def mean(xs):
    return sum(xs) / len(xs)
sq, pg = col("sq.txt", 4), col("pg.txt", 4)
print(f"Encrypt req/s, SQLite {mean(sq):.0f}, PostgreSQL {mean(pg):.0f}: "
      f"PostgreSQL = {sum(pg)/sum(sq):.3f} of SQLite (rounds: "
      + ", ".join(f"{p/s:.3f}" for s, p in zip(sq, pg)) + "; target >= 0.9)")
sq, pg = col("sq-ck.txt", 4), col("pg-ck.txt", 4)
print(f"CreateKey req/s, SQLite {mean(sq):.0f}, PostgreSQL {mean(pg):.0f} "
      f"(p99 ms: SQLite {mean(col('sq-ck.txt', 6)):.1f}, PostgreSQL {mean(col('pg-ck.txt', 6)):.1f})")
for op in ("encrypt", "create-key"):
    one, two = col(f"one-{op}.txt", 4), col(f"two-{op}.txt", 4)
    print(f"{op} req/s, one PostgreSQL node {mean(one):.0f}, two nodes round-robin "
          f"{mean(two):.0f}: x{sum(two)/sum(one):.2f} (p99 ms: one "
          f"{mean(col(f'one-{op}.txt', 6)):.1f}, two {mean(col(f'two-{op}.txt', 6)):.1f})")
PY
