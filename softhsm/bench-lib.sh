# Helpers of the benchmark scripts (bench-xks.sh, bench-xks-proxy.sh, bench-ab.sh,
# bench-describe-ab.sh, bench-key-types.sh, bench-pg.sh, bench-createkey-growth.sh); sourced, not run. Everything binds to 127.0.0.1; every process started here is recorded in `pids`
# and stopped by `bench_stop_all` (by PID, nothing else).
#
# Needs: curl (with --aws-sigv4), jq, openssl, python3 (a free port), softhsm2-util and
# pkcs11-tool (softhsm/install.sh).

pids=()

# AWS's request quotas (CreateKey 5/s, ...) are on by default; benchmarks create faster.
export KMS_LIMITS__REQUEST_QUOTAS=false

# The development credential (the kms server's default, and loadgen's).
BENCH_AKID=AKIAIOSFODNN7EXAMPLE
BENCH_SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
SOFTHSM_MODULE=${KMS_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

bench_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
  done
}

# Stops every process this script started, by PID, and waits for it; then the PostgreSQL
# cluster of bench_pg, if one was started.
bench_stop_all() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
  if [ -n "${BENCH_PG_DIR:-}" ]; then
    bash tests/pg/cluster.sh stop "$BENCH_PG_DIR" >/dev/null 2>&1 || true
    BENCH_PG_DIR=""
  fi
}

# bench_pg DIR: a throwaway PostgreSQL cluster in DIR (tests/pg/cluster.sh, which installs
# PostgreSQL if it is missing) with an empty database `kmsbench`. Exports the cluster's
# KMS_TEST_PG_* variables and sets BENCH_PG_URL (the database's URL); bench_stop_all stops it.
bench_pg() {
  BENCH_PG_DIR=$1
  chmod 755 "$(dirname "$BENCH_PG_DIR")" # the cluster runs as the postgres user when started as root
  eval "$(bash tests/pg/cluster.sh start "$BENCH_PG_DIR")"
  BENCH_PG_URL="${KMS_TEST_PG_URL%/postgres}/kmsbench"
  PGPASSWORD=$KMS_TEST_PG_PASSWORD psql -q "$KMS_TEST_PG_URL" -c "CREATE DATABASE kmsbench"
}

# start_kms_node KMS_BIN DIR [VAR=VALUE...]: a kms server with the software root and the
# baseline route on a free port, data in DIR, and the extra environment given (a store, a root
# key file, a limit). Sets KMS_ENDPOINT and KMS_PID.
start_kms_node() {
  local bin=$1 dir=$2 port
  shift 2
  port=$(free_port)
  mkdir -p "$dir"
  env KMS_SERVER__BASELINE_ROUTE=true KMS_SERVER__DATA_DIR="$dir" \
    KMS_SERVER__LISTEN="127.0.0.1:$port" KMS_LOG=warn "$@" "$bin" >"$dir.log" 2>&1 &
  pids+=($!)
  KMS_PID=$!
  KMS_ENDPOINT="http://127.0.0.1:$port"
  wait_http "$KMS_ENDPOINT/__baseline" "$dir.log"
}

# The environment of a node on bench_pg's database (append to start_kms_node's arguments).
bench_pg_node_env() {
  echo KMS_STORE__KIND=postgres KMS_STORE__URL="$BENCH_PG_URL" \
    KMS_STORE__PASSWORD_ENV=KMS_TEST_PG_PASSWORD KMS_STORE__TLS=disable
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL LOG: until URL answers any HTTP status (10 s at most); shows LOG on failure.
wait_http() {
  local url=$1 log=$2 _
  for _ in $(seq 100); do
    if curl -s -o /dev/null -k -X POST "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: nothing answers at $url" >&2
  cat "$log" >&2
  exit 1
}

# kms_call ENDPOINT OPERATION JSON: one signed KMS call (development credential); prints the
# response body, fails on an error status.
kms_call() {
  curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:kms" \
    --user "$BENCH_AKID:$BENCH_SECRET" \
    -H "X-Amz-Target: TrentService.$2" -H "Content-Type: application/x-amz-json-1.1" \
    --data-binary "$3" "$1/"
}

# start_kms_software KMS_BIN DIR: a kms server with the software root and the baseline route on
# a free port. Sets KMS_ENDPOINT and KMS_PID.
start_kms_software() {
  local bin=$1 dir=$2 port
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/kms.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
baseline_route = true
CONF
  KMS_LOG=warn "$bin" --config "$dir/kms.toml" >"$dir/kms.log" 2>&1 &
  pids+=($!)
  KMS_PID=$!
  KMS_ENDPOINT="http://127.0.0.1:$port"
  wait_http "$KMS_ENDPOINT/__baseline" "$dir/kms.log"
}

# start_kms_pkcs11 KMS_BIN DIR TOKEN_DIR [PROFILE]: a kms server with the PKCS#11 root on token
# `kms-root` of TOKEN_DIR (made by softhsm/make-token.sh; SOFTHSM2_CONF must point at it) and
# the baseline route on a free port. Sets KMS_ENDPOINT and KMS_PID.
start_kms_pkcs11() {
  local bin=$1 dir=$2 tokens=$3 profile=${4:-softhsm2} port
  port=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/kms.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
baseline_route = true

[root]
kind = "pkcs11"
profile = "$profile"
token_label = "kms-root"
pin_file = "$tokens/user.pin"
CONF
  KMS_LOG=warn "$bin" --config "$dir/kms.toml" >"$dir/kms.log" 2>&1 &
  pids+=($!)
  KMS_PID=$!
  KMS_ENDPOINT="http://127.0.0.1:$port"
  wait_http "$KMS_ENDPOINT/__baseline" "$dir/kms.log"
}

# make_xks_token DIR: a throwaway SoftHSM token `xks-keys` with an AES-256 key `bench-key` (as
# `xks-proxy create-key` makes it: private, sensitive, non-extractable). Sets XKS_SOFTHSM_CONF
# and XKS_PIN_FILE.
make_xks_token() {
  local dir=$1 pin
  mkdir -p "$dir/tokens"
  dir=$(cd "$dir" && pwd)
  cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  pin=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  (umask 077 && printf '%s\n' "$pin" >"$dir/user.pin")
  SOFTHSM2_CONF=$dir/softhsm2.conf softhsm2-util --init-token --free --label xks-keys \
    --so-pin 12345678 --pin "$pin" >/dev/null
  SOFTHSM2_CONF=$dir/softhsm2.conf pkcs11-tool --module "$SOFTHSM_MODULE" --token-label xks-keys \
    --login --pin "$pin" --keygen --key-type AES:32 --label bench-key --sensitive \
    --private >/dev/null 2>&1
  XKS_SOFTHSM_CONF=$dir/softhsm2.conf
  XKS_PIN_FILE=$dir/user.pin
}

# make_tls DIR: a throwaway CA (DIR/ca.pem) and a server certificate for localhost
# (DIR/server.pem, DIR/server.key).
make_tls() {
  local dir=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}

# start_xks_stack KMS_BIN PROXY_BIN DIR: the KMS -> xks-proxy -> SoftHSM stack: a token with a
# key, xks-proxy (TLS, SigV4) and kms trusting its CA on free ports, an EXTERNAL_KEY_STORE
# created and connected, and a KMS key on the external key. The store's request quota (AWS
# default 1800/s) is lifted (KMS_BENCH_XKS_RPS) so that the top rate is measured, not the quota.
# Sets KMS_ENDPOINT, KMS_PID, PROXY_PID and XKS_KMS_KEY.
start_xks_stack() {
  local kms_bin=$1 proxy_bin=$2 dir=$3 proxy_port kms_port akid secret store state _
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  make_xks_token "$dir/softhsm"
  make_tls "$dir"
  proxy_port=$(free_port)
  akid=BENCHXKSPROXYCREDENTIAL2
  secret=$(head -c 32 /dev/urandom | base64)
  cat >"$dir/xks-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$proxy_port"
region = "us-east-1"
[tls]
cert_file = "$dir/server.pem"
key_file = "$dir/server.key"
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
access_key_id = "$akid"
secret_access_key = "$secret"
CONF
  SOFTHSM2_CONF=$XKS_SOFTHSM_CONF RUST_LOG=warn XKS_LOG=warn \
    "$proxy_bin" --config "$dir/xks-proxy.toml" >"$dir/proxy.log" 2>&1 &
  pids+=($!)
  PROXY_PID=$!
  wait_http "https://127.0.0.1:$proxy_port/" "$dir/proxy.log"

  kms_port=$(free_port)
  cat >"$dir/kms.toml" <<CONF
[server]
listen = "127.0.0.1:$kms_port"
data_dir = "$dir/kms-data"
baseline_route = true
[xks]
ca_file = "$dir/ca.pem"
# The benchmark proxy runs on this host: loopback is refused unless allowed.
allowed_proxy_networks = ["127.0.0.1", "::1"]
requests_per_second = ${KMS_BENCH_XKS_RPS:-1000000}
CONF
  KMS_LOG=warn "$kms_bin" --config "$dir/kms.toml" >"$dir/kms.log" 2>&1 &
  pids+=($!)
  KMS_PID=$!
  KMS_ENDPOINT="http://127.0.0.1:$kms_port"
  wait_http "$KMS_ENDPOINT/__baseline" "$dir/kms.log"

  store=$(kms_call "$KMS_ENDPOINT" CreateCustomKeyStore "$(jq -n --arg uri "https://localhost:$proxy_port" \
    --arg akid "$akid" --arg secret "$secret" \
    '{CustomKeyStoreName: "bench", CustomKeyStoreType: "EXTERNAL_KEY_STORE",
      XksProxyUriEndpoint: $uri, XksProxyUriPath: "/bench/kms/xks/v1",
      XksProxyConnectivity: "PUBLIC_ENDPOINT",
      XksProxyAuthenticationCredential: {AccessKeyId: $akid, RawSecretAccessKey: $secret}}')" |
    jq -r .CustomKeyStoreId)
  kms_call "$KMS_ENDPOINT" ConnectCustomKeyStore "{\"CustomKeyStoreId\": \"$store\"}" >/dev/null
  state=""
  for _ in $(seq 100); do
    state=$(kms_call "$KMS_ENDPOINT" DescribeCustomKeyStores "{\"CustomKeyStoreId\": \"$store\"}" |
      jq -r '.CustomKeyStores[0].ConnectionState')
    [ "$state" = CONNECTING ] || break
    sleep 0.1
  done
  [ "$state" = CONNECTED ] || {
    echo "FAIL: external key store is $state" >&2
    cat "$dir/kms.log" "$dir/proxy.log" >&2
    exit 1
  }
  XKS_KMS_KEY=$(kms_call "$KMS_ENDPOINT" CreateKey "{\"Origin\": \"EXTERNAL_KEY_STORE\",
    \"CustomKeyStoreId\": \"$store\", \"XksKeyId\": \"bench-key\"}" | jq -r .KeyMetadata.KeyId)
  [ -n "$XKS_KMS_KEY" ] && [ "$XKS_KMS_KEY" != null ] || { echo "FAIL: CreateKey on the external key store" >&2; exit 1; }
}
