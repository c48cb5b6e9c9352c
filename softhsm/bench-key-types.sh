#!/usr/bin/env bash
# The key-type benchmark in one command, both roots (docs/benchmarks.md, "Key types: Sign,
# Verify, GenerateMac"):
#   softhsm/bench-key-types.sh [--strict] [--debug] [LOADGEN ARGS...]
#   KMS_BENCH_ROUNDS=3 KMS_BENCH_DURATION=5 KMS_BENCH_WARMUP=2 KMS_BENCH_CONCURRENCY=32
#   KMS_BENCH_ROOTS=software,pkcs11 (the default: both; one of them for a partial run)
#
# Builds release binaries (debug ones with --debug: seconds-long checks only, the numbers mean
# nothing), makes a throwaway SoftHSM token directory with softhsm/make-token.sh, starts two kms
# servers on free 127.0.0.1 ports with the baseline route: one on the software root, one on the
# PKCS#11 root (token kms-root). Then one `loadgen kms` run per root, each in interleaved
# rounds (every scenario once per round) with the server's CPU per request:
#   baseline (the bare HTTP route), encrypt (for reference: the symmetric request path),
#   sign-p256 (Sign, ECC_NIST_P256, ECDSA_SHA_256),
#   sign-rsa2048 (Sign, RSA_2048, RSASSA_PKCS1_V1_5_SHA_256), mac-hmac256 (GenerateMac,
#   HMAC_256), verify-p256 (Verify, ECC_NIST_P256), all with a RAW 256-byte message, and the raw
#   in-process ceilings of the same library or token at the same thread count:
#   - software root: raw-lib-sign-p256, raw-lib-sign-rsa2048, raw-lib-hmac256,
#     raw-lib-verify-p256 (aws-lc-rs, the software root's crate and calls);
#   - PKCS#11 root: raw-token-sign-p256, raw-token-sign-rsa2048, raw-token-hmac256 (SoftHSM
#     C_Sign on session keys, as the root signs) and raw-lib-verify-p256 (Verify runs on the
#     host on both roots).
# Last, a summary per root (req/s, p50/p99, server µs/req, each op against min(bare route, its
# raw rate)) and the verdict "P-256 Sign >= 50% of min(bare route, raw rate)" per root.
#
# Loopback only and bounded in time; the servers it started are stopped by PID and the tokens
# deleted. Exit status: 0; 1 when a request failed or setup failed; 3 with --strict when a root
# missed the target. Extra arguments go to both loadgen runs (after the script's own).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
target=${CARGO_TARGET_DIR:-$root/target}
duration=${KMS_BENCH_DURATION:-5}
warmup=${KMS_BENCH_WARMUP:-2}
rounds=${KMS_BENCH_ROUNDS:-3}
concurrency=${KMS_BENCH_CONCURRENCY:-32}
profile=${KMS_BENCH_PROFILE:-softhsm2}
roots=,${KMS_BENCH_ROOTS:-software,pkcs11},

strict=0
build=release
extra=()
for arg in "$@"; do
  case $arg in
    --strict) strict=1 ;;
    --debug) build=debug ;;
    *) extra+=("$arg") ;;
  esac
done

bash softhsm/install.sh >/dev/null
bench_need curl python3 softhsm2-util openssl
if [ "$build" = release ]; then
  cargo build --release --quiet -p kms --bin kms --bin kms-cluster-key -p loadgen --bin loadgen
else
  cargo build --quiet -p kms --bin kms --bin kms-cluster-key -p loadgen --bin loadgen
fi
bin=$target/$build

work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT

KMS_CLUSTER_KEY_BIN=$bin/kms-cluster-key bash softhsm/make-token.sh "$work/softhsm" \
  >"$work/make-token.log" 2>&1 || { cat "$work/make-token.log" >&2; exit 1; }
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf

reports=()
if [[ $roots == *,software,* ]]; then
  start_kms_software "$bin/kms" "$work/software"
  software_endpoint=$KMS_ENDPOINT software_pid=$KMS_PID
fi
if [[ $roots == *,pkcs11,* ]]; then
  start_kms_pkcs11 "$bin/kms" "$work/pkcs11" "$work/softhsm" "$profile"
  pkcs11_endpoint=$KMS_ENDPOINT pkcs11_pid=$KMS_PID
fi

# encrypt (AES-256-GCM, 256 bytes, a SYMMETRIC_DEFAULT key): the per-request cost of the KMS
# request path in the same run, for reference.
ops=encrypt,sign-p256,sign-rsa2048,mac-hmac256,verify-p256
common=(--ops "$ops" --message-size 256 --duration "$duration" --warmup "$warmup"
  --rounds "$rounds" --concurrency "$concurrency")
echo "== key types: $concurrency connections/threads, $rounds interleaved rounds of ${warmup}s warm-up + ${duration}s per scenario ($(nproc) cores, $build build, load average $(cut -d' ' -f1-3 /proc/loadavg)) =="

status=0
if [[ $roots == *,software,* ]]; then
  echo "== software root (aws-lc-rs) =="
  "$bin/loadgen" kms --endpoint "$software_endpoint" --server-pid "$software_pid" "${common[@]}" \
    --raw-lib sign-p256,sign-rsa2048,hmac256,verify-p256 \
    --report "$work/software.json" ${extra[@]+"${extra[@]}"} || status=$?
  [ "$status" -eq 0 ] || { echo "FAIL: loadgen on the software root exited with $status" >&2; cat "$work/software/kms.log" >&2; exit 1; }
  reports+=("software root=$work/software.json")
fi

if [[ $roots == *,pkcs11,* ]]; then
  echo "== PKCS#11 root (SoftHSMv2 token kms-root, profile $profile) =="
  "$bin/loadgen" kms --endpoint "$pkcs11_endpoint" --server-pid "$pkcs11_pid" "${common[@]}" \
    --raw-pkcs11 sign-p256,sign-rsa2048,hmac256 --raw-lib verify-p256 \
    --pkcs11-token kms-root --pkcs11-pin-file "$work/softhsm/user.pin" --pkcs11-profile "$profile" \
    --report "$work/pkcs11.json" ${extra[@]+"${extra[@]}"} || status=$?
  [ "$status" -eq 0 ] || { echo "FAIL: loadgen on the PKCS#11 root exited with $status" >&2; cat "$work/pkcs11/kms.log" >&2; exit 1; }
  reports+=("PKCS#11 root=$work/pkcs11.json")
fi

[ "${#reports[@]}" -gt 0 ] || { echo "FAIL: KMS_BENCH_ROOTS names no root (software, pkcs11)" >&2; exit 1; }
echo "== load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) =="
missed=0
python3 - "${reports[@]}" <<'PY' || missed=$?
import json, sys

def load(path):
    return json.load(open(path))

missed = False
for spec in sys.argv[1:]:
    label, path = spec.split("=", 1)
    report = load(path)
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    checks = {}
    for c in report["checks"]:
        if c.get("check") == "ceiling":
            checks[c["scenario"]] = c
    print(f"\n### {label}\n")
    print("| scenario | req/s | p50 ms | p99 ms | server µs/req | ratio to min(bare, raw) | raw scenario |")
    print("|---|---:|---:|---:|---:|---|---|")
    for s in report["scenarios"]:
        name = s["scenario"]
        if "@" in name:
            continue
        us = s["server_cpu_us_per_request"]
        c = checks.get(name)
        ratio = ""
        raw = ""
        if c:
            rounds = ", ".join("%.3f" % r for r in (c.get("round_ratios") or []))
            ratio = "%.3f" % c["ratio"] + (f" (rounds {rounds})" if rounds else "")
            raw = c["raw_scenario"]
        print("| %s | %.0f | %.3f | %.3f | %s | %s | %s |" % (
            name, s["requests_per_second"], s["p50_ms"], s["p99_ms"],
            "-" if us is None else "%.1f" % us, ratio, raw))
    sign = checks.get("sign-p256")
    if sign is None:
        print(f"\n{label}: P-256 Sign: no verdict (a scenario is missing)")
        missed = True
        continue
    verdict = "met" if sign["met"] else "MISSED"
    print("\n%s: P-256 Sign = %.3f of min(bare route, %s) = %.0f req/s (median of rounds %.3f): "
          "target >= 0.5 %s" % (label, sign["ratio"], sign["raw_scenario"],
                                 sign["ceiling_requests_per_second"],
                                 sign["round_median"] or sign["ratio"], verdict))
    missed = missed or not sign["met"]
sys.exit(3 if missed else 0)
PY
case $missed in
  0) ;;
  3) [ "$strict" -eq 0 ] || exit 3 ;;
  *) echo "FAIL: the summary could not be made from the reports" >&2; exit 1 ;;
esac
