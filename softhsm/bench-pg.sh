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
# Request quotas are off (softhsm/bench-lib.sh). Servers stopped by PID,
# cluster and data removed. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
bench_need curl psql python3
rounds=${KMS_BENCH_ROUNDS:-3}
duration=${KMS_BENCH_DURATION:-5}
conc=${KMS_BENCH_CONCURRENCY:-32}
cargo build --release --locked -q -p kms --bin kms -p loadgen --bin loadgen
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-pg.XXXXXX")
trap 'bench_stop_all; rm -rf "$work"' EXIT
bench_pg "$work/pg"
pg_env=$(bench_pg_node_env)
start_kms_node ./target/release/kms "$work/sqlite"
sq=$KMS_ENDPOINT sq_pid=$KMS_PID
# shellcheck disable=SC2086 # bench_pg_node_env prints one word per variable
start_kms_node ./target/release/kms "$work/postgres" $pg_env
pg=$KMS_ENDPOINT pg_pid=$KMS_PID
run() { # label op endpoint pids
  ./target/release/loadgen kms --endpoint "$3" --server-pid "$4" --ops "$2" \
    --duration "$duration" --warmup 2 --concurrency "$conc" | grep -E "^\| $2 " | sed "s/^| $2 /| $1/"
}
header() {
  echo "| $1 | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | vs base | srv µs/req | srv cs/req | cli µs/req |"
}
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
# shellcheck disable=SC2086 # bench_pg_node_env prints one word per variable
start_kms_node ./target/release/kms "$work/postgres2" $pg_env \
  KMS_ROOT__KEY_FILE="$work/postgres/root.key"
pg2_pid=$KMS_PID
both="$pg,$KMS_ENDPOINT"
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
