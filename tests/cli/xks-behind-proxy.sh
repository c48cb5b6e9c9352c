#!/usr/bin/env bash
# The XKS proxy behind a TLS-terminating reverse proxy (HAProxy): the deployment recipe of
# xks-proxy/README.md ("Behind a load balancer or reverse proxy"), run on loopback.
#
#   AWS CLI -> kms (external key store, https://localhost:LB) -> HAProxy (TLS from a throwaway
#   CA, 127.0.0.1:LB) -> xks-proxy (TLS again, verified; 127.0.0.1, SoftHSM) -> SoftHSM
#
# HAProxy connects to the proxy from 127.0.0.2 (`source`), the one address in the proxy's
# `[server] trusted_proxies`, so the proxy's request log can tell the balancer (`peer`) from the
# client it names in X-Forwarded-For (`client`). Checks: CreateCustomKeyStore, Connect,
# CreateKey (EXTERNAL_KEY_STORE), Encrypt, Decrypt and a tampered Decrypt through the balancer;
# then, with curl's SigV4: the Host header and a path prefix survive the balancer, `//` and
# `%2F` reach the proxy unnormalised, a balancer that rewrites Host gets the spec's
# AuthenticationFailedException, the ping answers through the balancer and HAProxy's own health
# check of it passes, spec cipher suites only, and the client address the proxy logs (spoofed
# X-Forwarded-For ignored). Installs HAProxy (Debian package) when it is missing. Every process
# it starts is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=tests/cli/lib.sh
. tests/cli/lib.sh
# make_xks_token, make_tls, free_port, wait_http, pids and bench_stop_all.
# shellcheck source=softhsm/bench-lib.sh
. softhsm/bench-lib.sh

haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ ! -x "$haproxy" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends haproxy
fi
bench_need aws curl jq openssl python3 softhsm2-util pkcs11-tool "$haproxy"
# The test suite's feature set, so this reuses its binaries (see .ci/run).
cargo build --quiet --workspace --bins --tests --locked
bin=${CARGO_TARGET_DIR:-$root/target}/debug

work=$(mktemp -d)
trap 'bench_stop_all; rm -rf "$work"' EXIT

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# A token with the AES-256 key `bench-key`; a CA with a certificate for localhost, which both
# the balancer (to KMS) and the proxy (to the balancer) present here.
make_xks_token "$work/softhsm"
export SOFTHSM2_CONF=$XKS_SOFTHSM_CONF
make_tls "$work"
cat "$work/server.pem" "$work/server.key" >"$work/lb.pem"

lb_port=$(free_port)
rewrite_port=$(free_port)
stats_port=$(free_port)
proxy_port=$(free_port)
prefix=tenant-a/xks
akid=XKSBEHINDPROXYTEST234
secret=$(head -c 32 /dev/urandom | base64)
xks_key=bench-key

cat >"$work/xks-proxy.toml" <<CONF
[server]
listen = "127.0.0.1:$proxy_port"
log_format = "json"
# X-Forwarded-For is believed from the balancer only.
trusted_proxies = ["127.0.0.2"]
[tls]
cert_file = "$work/server.pem"
key_file = "$work/server.key"
[[hsms]]
name = "softhsm"
profile = "softhsm2"
token_label = "xks-keys"
pin_file = "$XKS_PIN_FILE"
[[keys]]
id = "$xks_key"
[[keystores]]
prefix = "$prefix"
[[keystores.credentials]]
access_key_id = "$akid"
secret_access_key = "$secret"
CONF
XKS_LOG=info "$bin/xks-proxy" --config "$work/xks-proxy.toml" >"$work/proxy.out" 2>"$work/proxy.log" &
pids+=($!)
wait_http "https://127.0.0.1:$proxy_port/" "$work/proxy.log"

# The recipe's configuration (xks-proxy/README.md), with this run's paths and ports, plus two
# frontends only the test has: one that rewrites Host (the mistake the recipe warns about) and
# HAProxy's statistics (to read its health check of the proxy).
cat >"$work/haproxy.cfg" <<CONF
global
    log stdout format raw local0 info
    maxconn 4096
    # The XKS spec's suites only (TLS 1.3 and TLS 1.2 with AES-256-GCM).
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
    ssl-default-bind-ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384

defaults
    mode http
    log global
    option httplog
    timeout connect 200ms
    timeout client 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    # Longer than the proxy's own deadlines (queue_timeout_ms + hsm_timeout_ms), so a slow HSM
    # is answered by the proxy's JSON 429/503, never by a bare 504 from here.
    timeout server 2s
    retries 1
    option redispatch

frontend xks
    bind 127.0.0.1:$lb_port ssl crt $work/lb.pem alpn http/1.1
    default_backend xks_proxies

backend xks_proxies
    # HTTP/1.1 to the proxies, connections kept alive and reused (the default "safe" mode).
    http-reuse safe
    # The client's address for the proxies' logs; the proxies trust it from this host only.
    option forwardfor
    option httpchk
    http-check send meth GET uri /ping ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter 1s fall 2 rise 1 ssl verify required ca-file $work/ca.pem verifyhost localhost sni str(localhost) alpn http/1.1 source 127.0.0.2
    server xks1 127.0.0.1:$proxy_port

frontend wrong_host
    bind 127.0.0.1:$rewrite_port ssl crt $work/lb.pem alpn http/1.1
    http-request set-header Host xks-internal.example
    default_backend xks_proxies

frontend stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /stats
CONF
"$haproxy" -c -q -f "$work/haproxy.cfg"
"$haproxy" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
lb=https://localhost:$lb_port
wait_http "$lb/ping" "$work/haproxy.log"

# The kms server, trusting the throwaway CA for proxies and allowing a proxy on loopback.
mkdir -p "$work/kms"
cat >"$work/kms/kms.toml" <<CONF
[server]
listen = "127.0.0.1:0"
data_dir = "$work/kms/data"
[xks]
ca_file = "$work/ca.pem"
allowed_proxy_networks = ["127.0.0.1", "::1"]
CONF
KMS_LOG=warn "$bin/kms" --config "$work/kms/kms.toml" >"$work/kms/stdout" 2>"$work/kms/stderr" &
pids+=($!)
wait_for_server "$work/kms"

export AWS_ACCESS_KEY_ID=$BENCH_AKID AWS_SECRET_ACCESS_KEY=$BENCH_SECRET AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN || true
kms() { aws kms --endpoint-url "$endpoint" "$@"; }

# --- AWS CLI through the balancer ---
# As JSON input: the CLI would fetch an https:// parameter value (cli_follow_urlparam).
store=$(kms create-custom-key-store --query CustomKeyStoreId --output text --cli-input-json \
  "$(jq -nc --arg uri "$lb" --arg path "/$prefix/kms/xks/v1" --arg a "$akid" --arg s "$secret" \
    '{CustomKeyStoreName: "behind-lb", CustomKeyStoreType: "EXTERNAL_KEY_STORE",
      XksProxyUriEndpoint: $uri, XksProxyUriPath: $path, XksProxyConnectivity: "PUBLIC_ENDPOINT",
      XksProxyAuthenticationCredential: {AccessKeyId: $a, RawSecretAccessKey: $s}}')")
check "create-custom-key-store through the balancer" grep -qE '^cks-[0-9a-f]+$' <<<"$store"
kms connect-custom-key-store --custom-key-store-id "$store" >/dev/null
state=""
for _ in $(seq 100); do
  state=$(kms describe-custom-key-stores --custom-key-store-id "$store" \
    --query 'CustomKeyStores[0].ConnectionState' --output text)
  [ "$state" = CONNECTING ] || break
  sleep 0.1
done
check "connect-custom-key-store: CONNECTED" test "$state" = CONNECTED
key=$(kms create-key --origin EXTERNAL_KEY_STORE --custom-key-store-id "$store" \
  --xks-key-id "$xks_key" --query KeyMetadata.KeyId --output text)
check "create-key with Origin EXTERNAL_KEY_STORE" grep -qE '^[0-9a-f-]{36}$' <<<"$key"
printf 'through the balancer to the HSM' >"$work/plain"
kms encrypt --key-id "$key" --plaintext "fileb://$work/plain" --encryption-context app=lb \
  --query CiphertextBlob --output text | base64 -d >"$work/blob"
kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context app=lb \
  --query Plaintext --output text | base64 -d >"$work/back"
check "encrypt/decrypt round trip" cmp -s "$work/plain" "$work/back"
# The last byte is in the proxy's (outer) ciphertext: the proxy refuses it as
# InvalidCiphertextException, and KMS reports that as KMSInvalidStateException.
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
  "$work/blob" "$work/tampered"
if kms decrypt --ciphertext-blob "fileb://$work/tampered" --encryption-context app=lb \
  >/dev/null 2>"$work/err"; then
  check "a tampered ciphertext does not decrypt" false
else
  check "a tampered ciphertext is refused (KMSInvalidStateException)" grep -q KMSInvalidStateException "$work/err"
fi

# --- what the proxy saw and logged ---
# log_line FIELD VALUE: the proxy's last request log line with FIELD = VALUE (JSON), or nothing.
log_line() {
  python3 - "$work/proxy.log" "$1" "$2" <<'PY'
import json, sys
found = None
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("message") == "xks request" and str(rec.get(sys.argv[2])) == sys.argv[3]:
        found = rec
if found:
    print(json.dumps(found))
PY
}
field() { jq -r ".$1" <<<"$2"; }
# Polls for a request log line (the proxy writes it once the answer is on its way).
wait_log() {
  local line="" _
  for _ in $(seq 50); do
    line=$(log_line "$1" "$2")
    [ -n "$line" ] && break
    sleep 0.1
  done
  printf '%s' "$line"
}
line=$(wait_log kms_operation Decrypt)
check "the proxy answered Decrypt with InvalidCiphertextException for the tampered blob" \
  test "$(log_line outcome InvalidCiphertextException | jq -r .kms_operation)" = Decrypt
check "the prefix reached the proxy unchanged" test "$(field prefix "$line")" = "$prefix"
check "the proxy's peer is the balancer (127.0.0.2)" grep -q '^127\.0\.0\.2:' <<<"$(field peer "$line")"
check "the proxy logs the client the balancer names (the kms, 127.0.0.1)" \
  test "$(field client "$line")" = 127.0.0.1

# --- direct XKS calls with curl's SigV4 (it signs content-type;host;x-amz-date) ---
# xks URL REQUEST_ID [CURL_ARGS...]: a signed GetHealthStatus; prints "STATUS BODY".
xks() {
  local url=$1 id=$2 status
  shift 2
  status=$(curl -sS --path-as-is --cacert "$work/ca.pem" -o "$work/body" -w '%{http_code}' \
    --aws-sigv4 "aws:amz:us-east-1:kms-xks-proxy" --user "$akid:$secret" \
    -H "Content-Type: application/json" \
    --data-binary "{\"requestMetadata\":{\"kmsRequestId\":\"$id\",\"kmsOperation\":\"DescribeCustomKeyStores\"}}" \
    "$@" "$url")
  echo "$status $(cat "$work/body")"
}
out=$(xks "$lb/$prefix/kms/xks/v1/health" direct-health-1)
check "signed health through the balancer: 200" grep -q '^200 .*"xksProxyFleetSize"' <<<"$out"
out=$(xks "https://localhost:$rewrite_port/$prefix/kms/xks/v1/health" rewritten-host-1)
check "a balancer that rewrites Host: 401 AuthenticationFailedException" \
  grep -q '^401 .*"errorName":"AuthenticationFailedException"' <<<"$out"
out=$(xks "$lb/$prefix/kms//xks/v1/health" double-slash-1)
check "'//' reaches the proxy unmerged: 404 InvalidUriPathException naming it" \
  grep -qF "404 {\"errorName\":\"InvalidUriPathException\",\"errorMessage\":\"no XKS API at URI path '/$prefix/kms//xks/v1/health'\"}" <<<"$out"
out=$(xks "$lb/tenant-a%2Fxks/kms/xks/v1/health" encoded-slash-1)
check "'%2F' reaches the proxy undecoded: 404 InvalidUriPathException naming it" \
  grep -qF "404 {\"errorName\":\"InvalidUriPathException\",\"errorMessage\":\"no XKS API at URI path '/tenant-a%2Fxks/kms/xks/v1/health'\"}" <<<"$out"

# Client addresses: a spoofed X-Forwarded-For is ignored (the balancer appends what it saw,
# and the rightmost untrusted entry wins); a client on another address is named; a direct
# request (not from a trusted proxy) is its own client whatever it claims. Unsigned requests
# (401) to a key id naming the case: the log line is what counts. (A client that signed
# X-Forwarded-For would fail here anyway: the balancer appends to it. KMS signs only host and
# x-amz-date.)
# client_of KEY_ID URL_BASE [CURL_ARGS...]: "client,peer address" of that request's log line.
client_of() {
  local id=$1 base=$2 line
  shift 2
  curl -sS -o /dev/null --cacert "$work/ca.pem" -X POST "$@" "$base/$prefix/kms/xks/v1/keys/$id/metadata"
  line=$(wait_log key_id "$id")
  echo "$(field client "$line"),$(field peer "$line" | cut -d: -f1)"
}
check "a spoofed X-Forwarded-For through the balancer is ignored" \
  test "$(client_of spoofed "$lb" -H "X-Forwarded-For: 203.0.113.7")" = 127.0.0.1,127.0.0.2
check "a client on 127.0.0.3 is logged as 127.0.0.3 behind the balancer" \
  test "$(client_of other-client "$lb" --interface 127.0.0.3)" = 127.0.0.3,127.0.0.2
check "X-Forwarded-For from an untrusted peer is ignored" \
  test "$(client_of direct-spoofed "https://localhost:$proxy_port" -H "X-Forwarded-For: 203.0.113.7")" \
  = 127.0.0.1,127.0.0.1

# --- health, TLS ---
check "the proxy's ping answers through the balancer" \
  test "$(curl -sS --cacert "$work/ca.pem" "$lb/ping")" = '{"status":"ok"}'
# HAProxy's view of the proxy: "status,check_status,check_code" (its first check runs within
# `inter` of the start).
lb_health() {
  curl -sS "http://127.0.0.1:$stats_port/stats;csv" | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin.read().lstrip("# ").splitlines())
        if r["pxname"] == "xks_proxies" and r["svname"] == "xks1"]
print(",".join(rows[0][k] for k in ("status", "check_status", "check_code")) if rows else "none")'
}
health=""
for _ in $(seq 100); do
  health=$(lb_health)
  [ "$health" = UP,L7OK,200 ] && break
  sleep 0.1
done
check "HAProxy's health check of the proxy (GET /ping over verified TLS) passes ($health)" \
  test "$health" = UP,L7OK,200
check "the balancer refuses a TLS 1.2 suite outside the spec's" bash -c "! openssl s_client \
  -connect 127.0.0.1:$lb_port -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 </dev/null >/dev/null 2>&1"

echo "xks-behind-proxy: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  tail -n 20 "$work/haproxy.log" "$work/proxy.log" "$work/kms/stderr" >&2
  exit 1
fi
