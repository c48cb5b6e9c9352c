#!/usr/bin/env bash
# Soak run of the kms server on the PKCS#11 root (SoftHSMv2 behind the fault-injection module,
# softhsm/fault-module/): mixed operations from several clients while the HSM fails, vanishes
# and slows down on a schedule; the server's resident memory sampled over time; then the server
# is killed (SIGKILL), restarted, and every acknowledged write is checked. Loopback only; stops
# by itself. The last run's numbers: docs/abuse.md.
#
#   softhsm/soak.sh                      # 30 minutes (the documented run)
#   SOAK_SECONDS=300 softhsm/soak.sh     # 5 minutes
#
# Environment: SOAK_SECONDS (1800), SOAK_CLIENTS (4), SOAK_FAULT_PERIOD (60 s between fault
# episodes), SOAK_DIR (a new temporary directory; kept when set), SOAK_PORT (4611),
# SOAK_KEYS_PER_CLIENT (25 active keys per client), SOAK_RSS_GROWTH_MB (fail when resident memory grows more than this many MiB, 48) beyond the
# first sample after warm-up (10% of the run).
# Needs: cargo, python3 with botocore (pip install awscli), SoftHSMv2 (softhsm/install.sh).
set -euo pipefail
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SOAK_SECONDS:-1800}
port=${SOAK_PORT:-4611}
dir=${SOAK_DIR:-$(mktemp -d /tmp/kms-soak.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

python3 -c 'import botocore' 2>/dev/null || {
  echo "FAIL: python3 botocore is missing (python3 -m pip install awscli)" >&2
  exit 1
}
bash softhsm/install.sh >/dev/null
echo "== building the kms server (release) and the fault module =="
cargo build --release --locked --quiet --bin kms --bin kms-cluster-key
target=${CARGO_TARGET_DIR:-$root/target}
bash softhsm/fault-module/build.sh "$dir/libkmsfault.so"
bash softhsm/make-token.sh "$dir/softhsm" >/dev/null
mkdir -p "$dir/faults" "$dir/data"

cat >"$dir/kms.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
region = "us-east-1"
data_dir = "$dir/data"

[root]
kind = "pkcs11"
profile = "softhsm2"
module = "$dir/libkmsfault.so"
token_label = "kms-root"
pin_file = "$dir/softhsm/user.pin"
domain_key_label = "kms-domain-key"
sessions = 8
session_wait_ms = 200

[[credentials]]
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
principal = "arn:aws:iam::111122223333:user/soak"
TOML

export SOFTHSM2_CONF=$dir/softhsm/softhsm2.conf
export KMS_FAULT_DIR=$dir/faults
export KMS_FAULT_TARGET=/usr/lib/softhsm/libsofthsm2.so
export RUST_LOG=${RUST_LOG:-warn}
echo "== soak: ${secs} s, state in $dir =="
python3 softhsm/soak.py \
  --server "$target/release/kms" --config "$dir/kms.toml" --port "$port" \
  --faults "$dir/faults" --token kms-root --seconds "$secs" \
  --clients "${SOAK_CLIENTS:-4}" --fault-period "${SOAK_FAULT_PERIOD:-60}" \
  --rss-growth-mb "${SOAK_RSS_GROWTH_MB:-48}" --keys-per-client "${SOAK_KEYS_PER_CLIENT:-25}" --log "$dir/server.log" \
  --report "$dir/report.json"
status=$?
[ -n "${SOAK_DIR:-}" ] || rm -rf "$dir"
exit $status
