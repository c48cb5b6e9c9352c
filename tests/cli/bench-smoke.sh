#!/usr/bin/env bash
# Keeps the benchmarks runnable (seconds, debug builds): starts a kms server with the baseline
# route and an xks-proxy on a throwaway SoftHSM token, each on a free loopback port, runs
# `loadgen kms` and `loadgen xks` for one second per scenario (two rounds, the floors, the open
# loop, a raw PKCS#11 scenario), the key-type operations with their raw library and token
# ceilings, runs `loadgen compare` on the kms report, and fails
# if any request failed or a report lacks what the docs describe. Every process it starts is
# stopped by PID. (Numbers from a debug build mean nothing; docs/benchmarks.md has the release
# measurements.)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh
target=${CARGO_TARGET_DIR:-$root/target}
bench_need curl python3 pkcs11-tool softhsm2-util
# `--workspace --tests`: the feature set the test suite built with (dev-dependencies' features
# unified too), so after it only loadgen's binary is built; plain `--bins` rebuilt the
# dependencies and the kms crate (~60 s of CI).
cargo build --quiet --workspace --bins --tests --locked
loadgen=$target/debug/loadgen
work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT

start_kms_software "$target/debug/kms" "$work/kms"
"$loadgen" kms --endpoint "$KMS_ENDPOINT" --duration 1 --warmup 0 --rounds 2 --concurrency 8 \
  --server-pid "$KMS_PID" --floor --ops encrypt,decrypt,describe --rate 50 --rate-duration 1 \
  --report "$work/kms.json"
python3 - "$work/kms.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
names = [s["scenario"] for s in report["scenarios"]]
assert names == ["baseline", "floor-encrypt", "encrypt", "decrypt", "describe", "encrypt@50", "decrypt@50",
                 "describe@50"], names
for s in report["scenarios"]:
    assert s["errors"] == 0, s
    us = s["server_cpu_us_per_request"]
    assert us is not None and 1 < us < 100000, (s["scenario"], us)
    assert len(s["round_requests_per_second"]) == (1 if "@" in s["scenario"] else 2), s
print("kms: server CPU per request:", ", ".join("%s %.0f us" % (s["scenario"], s["server_cpu_us_per_request"]) for s in report["scenarios"]))
PY
# The report against itself: the A/B table and a check that must hold.
"$loadgen" compare --a "sw=$work/kms.json" --b "sw=$work/kms.json" --check ratio-kept:sw/encrypt=0.99

make_xks_token "$work/softhsm"
export SOFTHSM2_CONF=$XKS_SOFTHSM_CONF
# Key types (softhsm/bench-key-types.sh in miniature): Sign P-256, Verify P-256 and GenerateMac on
# the software root, with the library's raw rate and the token's (SoftHSM C_Sign CKM_ECDSA).
"$loadgen" kms --endpoint "$KMS_ENDPOINT" --duration 1 --warmup 0 --rounds 1 --concurrency 4 \
  --server-pid "$KMS_PID" --ops sign-p256,verify-p256,mac-hmac256 --raw-lib sign-p256 \
  --raw-pkcs11 sign-p256 --raw-threads 2 --pkcs11-token xks-keys --pkcs11-pin-file "$XKS_PIN_FILE" \
  --report "$work/key-types.json"
python3 - "$work/key-types.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
names = [s["scenario"] for s in report["scenarios"]]
assert names == ["baseline", "sign-p256", "verify-p256", "mac-hmac256", "raw-token-sign-p256",
                 "raw-lib-sign-p256"], names
for s in report["scenarios"]:
    assert s["errors"] == 0 and s["requests"] > 0, s
checks = {(c["scenario"], c["raw_scenario"]): c for c in report["checks"] if c["check"] == "ceiling"}
for raw in ("raw-lib-sign-p256", "raw-token-sign-p256"):
    c = checks[("sign-p256", raw)]
    assert c["target"] == 0.5 and c["ratio"] > 0, c
print("key types: ok")
PY

port=$(free_port)
secret=$(head -c 32 /dev/urandom | base64)
cat >"$work/xks-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
baseline_route = true
[[hsms]]
name = "softhsm"
profile = "softhsm2"
token_label = "xks-keys"
pin_file = "$XKS_PIN_FILE"
[[keys]]
id = "bench-key"
label = "bench-key"
[[keystores]]
prefix = "bench"
[[keystores.credentials]]
access_key_id = "AKIAXKSBENCHSMOKE234"
secret_access_key = "$secret"
CONF
RUST_LOG=warn XKS_LOG=warn "$target/debug/xks-proxy" --config "$work/xks-proxy.toml" >"$work/proxy.log" 2>&1 &
pids+=($!)
proxy_pid=$!
wait_http "http://127.0.0.1:$port/__baseline" "$work/proxy.log"
XKS_ACCESS_KEY_ID=AKIAXKSBENCHSMOKE234 XKS_SECRET_ACCESS_KEY=$secret \
  "$loadgen" xks --endpoint "http://127.0.0.1:$port" --server-pid "$proxy_pid" --uri-prefix bench \
  --key-id bench-key --duration 1 --warmup 0 --concurrency 4 --floor --rate 50 --rate-duration 1 \
  --raw-pkcs11 token --raw-threads 1,2 --pkcs11-token xks-keys --pkcs11-pin-file "$XKS_PIN_FILE" \
  --json >"$work/xks.out"
head -n -1 "$work/xks.out"
tail -n1 "$work/xks.out" | python3 -c '
import json, sys
report = json.load(sys.stdin)
names = [s["scenario"] for s in report["scenarios"]]
assert names == ["baseline", "floor-encrypt", "encrypt", "decrypt", "raw-token-1t", "raw-token-2t",
                 "encrypt@50", "decrypt@50"], names
assert all(s["errors"] == 0 for s in report["scenarios"]), report["scenarios"]
checks = {c["scenario"]: c for c in report["checks"]}
assert "ratio" in checks["encrypt"] and checks["encrypt@50"]["check"] == "sustained", checks
print("xks: ok")
'
