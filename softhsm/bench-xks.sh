#!/usr/bin/env bash
# External key store benchmark in one command (docs/benchmarks.md, "KMS -> xks-proxy"):
#   softhsm/bench-xks.sh                      # 10 s per scenario, 32 connections
#   KMS_BENCH_DURATION=3 softhsm/bench-xks.sh
# Builds release binaries; makes a throwaway SoftHSM token with an AES-256 key; a throwaway CA
# and a TLS certificate for localhost; starts xks-proxy (TLS, SigV4) and kms (trusting the CA)
# on free loopback ports; creates and connects an EXTERNAL_KEY_STORE and a key on the external
# key with the AWS CLI; then runs kms-bench against that key (Encrypt 256 B and GenerateDataKey,
# both double encryption through the proxy) next to the bare route of the kms HTTP stack.
# Everything it starts is stopped by PID; loopback only; bounded in time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
duration=${KMS_BENCH_DURATION:-10}
concurrency=${KMS_BENCH_CONCURRENCY:-32}
command -v aws >/dev/null || { echo "FAIL: the AWS CLI is needed (pip install awscli)" >&2; exit 1; }
bash softhsm/install.sh >/dev/null
cargo build --release --quiet --bin kms --bin kms-bench -p kms
cargo build --release --quiet --bin xks-proxy -p xks-proxy

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bash softhsm/make-token.sh "$work/softhsm" >/dev/null 2>&1
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
pin=$(head -n1 "$work/softhsm/user.pin")
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label xks-keys --login --pin "$pin" \
  --keygen --key-type AES:32 --label bench-key --sensitive >/dev/null 2>&1

# TLS: a throwaway CA and a server certificate for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

proxy_port=$(free_port)
akid=BENCHXKSPROXYCREDENTIAL2
secret=$(head -c 32 /dev/urandom | base64)
cat >"$work/xks-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$proxy_port"
region = "us-east-1"
[tls]
cert_file = "$work/server.pem"
key_file = "$work/server.key"
[[hsms]]
name = "softhsm"
profile = "softhsm2"
token_label = "xks-keys"
pin_file = "$work/softhsm/user.pin"
[[keys]]
id = "bench-key"
label = "bench-key"
[[keystores]]
prefix = "bench"
[[keystores.credentials]]
access_key_id = "$akid"
secret_access_key = "$secret"
CONF
RUST_LOG=warn XKS_PROXY_LOG=warn "$target/release/xks-proxy" --config "$work/xks-proxy.toml" >"$work/proxy.log" 2>&1 &
pids+=($!)

kms_port=$(free_port)
cat >"$work/kms.toml" <<CONF
[server]
listen = "127.0.0.1:$kms_port"
data_dir = "$work/kms-data"
baseline_route = true
[xks]
ca_file = "$work/ca.pem"
# The per-store quota (AWS default 1800/s) is lifted to measure the top rate.
requests_per_second = ${KMS_BENCH_XKS_RPS:-1000000}
CONF
KMS_LOG=warn "$target/release/kms" --config "$work/kms.toml" >"$work/kms.log" 2>&1 &
pids+=($!)
sleep 1

export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_DEFAULT_REGION=us-east-1
E=(--endpoint-url "http://127.0.0.1:$kms_port")
# (JSON input: AWS CLI v1 would otherwise try to download an https:// parameter value.)
cat >"$work/cks.json" <<JSON
{"CustomKeyStoreName": "bench", "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
 "XksProxyUriEndpoint": "https://localhost:$proxy_port", "XksProxyUriPath": "/bench/kms/xks/v1",
 "XksProxyConnectivity": "PUBLIC_ENDPOINT",
 "XksProxyAuthenticationCredential": {"AccessKeyId": "$akid", "RawSecretAccessKey": "$secret"}}
JSON
store=$(aws kms create-custom-key-store "${E[@]}" --cli-input-json "file://$work/cks.json" \
  --query CustomKeyStoreId --output text)
aws kms connect-custom-key-store "${E[@]}" --custom-key-store-id "$store" >/dev/null
key=$(aws kms create-key "${E[@]}" --origin EXTERNAL_KEY_STORE --custom-key-store-id "$store" \
  --xks-key-id bench-key --query KeyMetadata.KeyId --output text)
echo "external key store $store, key $key"
"$target/release/kms-bench" --endpoint "http://127.0.0.1:$kms_port" --key-id "$key" \
  --ops encrypt,generate-data-key --concurrency "$concurrency" --duration "$duration" --warmup 2 "$@"
