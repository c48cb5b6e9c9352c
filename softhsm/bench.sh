#!/usr/bin/env bash
# The PKCS#11 benchmark in one command (docs/benchmarks.md):
#   softhsm/bench.sh                  # 4 interleaved rounds of 2 s warm-up + 5 s per scenario, 32 connections/threads
#   KMS_BENCH_DURATION=3 KMS_BENCH_CONCURRENCY=8 softhsm/bench.sh
# Builds release binaries, makes throwaway SoftHSM tokens with softhsm/make-token.sh (kms-root,
# and kms-cluster-a + kms-cluster-b sharing a cluster key), starts one kms server on 127.0.0.1
# with the PKCS#11 root on kms-root and a two-member cluster, creates and connects a custom key
# store (signed with curl --aws-sigv4), then runs `loadgen kms` once: the bare HTTP route
# (baseline), Encrypt of 256 bytes with a key of the PKCS#11 root (encrypt) and with a key of
# the custom key store (encrypt-cks), their work floors (floor-encrypt, floor-encrypt-cks), and
# the raw in-process SoftHSM C_Encrypt rates with a session object (raw-session) and a token
# object (raw-token) at the same concurrency, with the server's CPU per request.
# Everything is loopback-only and bounded in time; the server it started is stopped by PID and
# the tokens are deleted. Extra arguments are passed to loadgen (e.g. --json).
# KMS_BENCH_PROFILE=FILE uses another HSM profile (a copy of softhsm2.toml with other settings).
set -euo pipefail
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
duration=${KMS_BENCH_DURATION:-5}
warmup=${KMS_BENCH_WARMUP:-2}
rounds=${KMS_BENCH_ROUNDS:-4}
concurrency=${KMS_BENCH_CONCURRENCY:-32}
profile=${KMS_BENCH_PROFILE:-softhsm2}

bash softhsm/install.sh >/dev/null
for tool in curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
cargo build --release --quiet -p kms --bin kms -p loadgen --bin loadgen

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

bash softhsm/make-token.sh "$work/softhsm" >"$work/make-token.log" 2>&1 ||
  { cat "$work/make-token.log" >&2; exit 1; }
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
cluster=cluster-1a23b4cdefg
cat >"$work/kms.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$work/data"
baseline_route = true

[root]
kind = "pkcs11"
profile = "$profile"
token_label = "kms-root"
pin_file = "$work/softhsm/user.pin"

[[clusters]]
id = "$cluster"
account = "111122223333"
profile = "$profile"
trust_anchor_file = "$work/softhsm/customerCA.crt"
# Not AWS's 1800/s store quota: the benchmark measures the store, not the quota.
requests_per_second = 1000000

[[clusters.members]]
name = "hsm-a"
token_label = "kms-cluster-a"

[[clusters.members]]
name = "hsm-b"
token_label = "kms-cluster-b"
TOML

KMS_LOG=warn "$target/release/kms" --config "$work/kms.toml" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
endpoint=""
for _ in $(seq 100); do
  endpoint=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/stdout" 2>/dev/null | head -n1 || true)
  [ -n "$endpoint" ] && break
  sleep 0.1
done
[ -n "$endpoint" ] || { echo "FAIL: server did not start" >&2; cat "$work/stderr" >&2; exit 1; }

# The development credential (the server's default, and loadgen's).
kms() {
  curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:kms" \
    --user "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" \
    -H "X-Amz-Target: TrentService.$1" -H "Content-Type: application/x-amz-json-1.1" \
    --data-binary "$2" "$endpoint/"
}
store=$(kms CreateCustomKeyStore "$(jq -n --arg c "$cluster" \
  --rawfile ta "$work/softhsm/customerCA.crt" --rawfile pw "$work/softhsm/user.pin" \
  '{CustomKeyStoreName: "bench", CloudHsmClusterId: $c, TrustAnchorCertificate: $ta,
    KeyStorePassword: ($pw | rtrimstr("\n"))}')" | jq -r .CustomKeyStoreId)
kms ConnectCustomKeyStore "{\"CustomKeyStoreId\": \"$store\"}" >/dev/null
state=""
for _ in $(seq 100); do
  state=$(kms DescribeCustomKeyStores "{\"CustomKeyStoreId\": \"$store\"}" |
    jq -r '.CustomKeyStores[0].ConnectionState')
  [ "$state" = CONNECTING ] || break
  sleep 0.1
done
[ "$state" = CONNECTED ] || { echo "FAIL: custom key store is $state" >&2; cat "$work/stderr" >&2; exit 1; }

echo "== loadgen kms: $concurrency connections/threads, $rounds interleaved rounds of ${warmup}s warm-up + ${duration}s per scenario ($(nproc) cores) =="
"$target/release/loadgen" kms --endpoint "$endpoint" --server-pid "$server_pid" --ops encrypt \
  --duration "$duration" --warmup "$warmup" --rounds "$rounds" --concurrency "$concurrency" \
  --custom-key-store "$store" --floor \
  --raw-pkcs11 session,token --pkcs11-token kms-root --pkcs11-pin-file "$work/softhsm/user.pin" \
  --pkcs11-profile "$profile" "$@"
