#!/usr/bin/env bash
# Runs the AWS XKS conformance client (aws-samples/aws-kms-xksproxy-test-client) against
# xks-proxy on 127.0.0.1, in three modes:
#   basic      TLS, ./test-xks-proxy           (proxy.toml, port 18443)
#   restricted TLS, ./test-xks-proxy -a        (proxy.toml, port 18443)
#   mtls       mTLS, ./test-xks-proxy -a with MTLS set, which adds the negative mTLS tests
#              (proxy-mtls.toml, port 18444)
#
# Usage: CLIENT_DIR=/path/to/aws-kms-xksproxy-test-client xks-proxy/conformance/run.sh [mode...]
#
# It creates xks-proxy/conformance/work/ (a private SoftHSM token with the client's four
# keys, a test CA, server and client certificates), builds the release binary if needed,
# starts the proxy for each mode, runs the client, stops the proxy, and prints the client's
# summary per mode. Logs: work/<mode>.log (client), work/proxy-<mode>.log (proxy).
# Exit status: 0 when every mode reports "All N tests PASSED".
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLIENT_DIR="${CLIENT_DIR:?set CLIENT_DIR to a checkout of aws-kms-xksproxy-test-client}"
CLIENT_DIR="$(cd "$CLIENT_DIR" && pwd)"
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(basic restricted mtls)
WORK="$HERE/work"
MODULE=/usr/lib/softhsm/libsofthsm2.so

for tool in curl jq uuidgen xxd openssl softhsm2-util; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "FAIL: SoftHSMv2 is not installed (softhsm/install.sh)" >&2; exit 1; }
[ -x "$CLIENT_DIR/test-xks-proxy" ] || { echo "FAIL: $CLIENT_DIR/test-xks-proxy not found" >&2; exit 1; }

BIN="${XKS_PROXY_BIN:-$ROOT/target/release/xks-proxy}"
if [ -z "${XKS_PROXY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p xks-proxy --bin xks-proxy)
fi

# --- a private SoftHSM token -------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK/tokens" "$WORK/tls"
cat > "$WORK/softhsm2.conf" <<EOF
directories.tokendir = $WORK/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
export XKS_CONFORMANCE_PIN=4321
softhsm2-util --init-token --free --label xks-conformance --so-pin 87654321 \
  --pin "$XKS_CONFORMANCE_PIN" >/dev/null

# --- TLS: a server CA and certificate for 127.0.0.1, a client CA and a KMS-like client ----
cd "$WORK/tls"
ca() { # name cn
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}
leaf() { # name cn ca extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 7 \
    -out "$1.pem" -extfile "$1.ext" 2>/dev/null
}
ca ca "xks-proxy conformance server CA"
leaf server localhost ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
ca client-ca "xks-proxy conformance client CA"
leaf client cks.kms.us-east-1.amazonaws.com client-ca "extendedKeyUsage=clientAuth"
cd "$HERE"

# The client's keys: foo (encrypt+decrypt) and the three restricted keys of -a mode.
"$BIN" create-key --config "$HERE/proxy.toml" --label foo --usage encrypt,decrypt
"$BIN" create-key --config "$HERE/proxy.toml" --label encrypt_only_key --usage encrypt
"$BIN" create-key --config "$HERE/proxy.toml" --label decrypt_only_key --usage decrypt
"$BIN" create-key --config "$HERE/proxy.toml" --label impotent_key --usage ""

# --- one mode ------------------------------------------------------------------------------
status=0
summary=()
run_mode() { # mode config port client-args...
  local mode=$1 config=$2 port=$3
  shift 3
  XKS_LOG=warn,cryptoki=off "$BIN" --config "$config" >"$WORK/proxy-$mode.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening" "$WORK/proxy-$mode.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "listening" "$WORK/proxy-$mode.log"; then
    echo "FAIL: the proxy did not start ($WORK/proxy-$mode.log):" >&2
    cat "$WORK/proxy-$mode.log" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  # The client never looks at keySpec/keyUsage (the AWS sample proxy's release build reports
  # RSA_0 and [] there): check them ourselves, against this (release) binary.
  if [ "$mode" = basic ]; then
    local md
    md="$(curl -s --cacert "$WORK/tls/ca.pem" --aws-sigv4 "aws:amz:us-east-1:kms-xks-proxy" \
      --user "BETWEEN2TENAND3TENCHARACTERS:PleaseReplaceThisWithSomeSecretOfLength43To64" \
      -H "Content-Type: application/json" \
      --data '{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice","kmsOperation":"CreateKey","kmsRequestId":"run-sh-metadata-check"}}' \
      "https://127.0.0.1:$port/example/uri/path/prefix/kms/xks/v1/keys/foo/metadata")"
    if jq -e '.keySpec == "AES_256" and (.keyUsage | index("ENCRYPT") and index("DECRYPT")) and .keyStatus == "ENABLED"' \
        <<<"$md" >/dev/null; then
      summary+=("metadata check: $md")
    else
      summary+=("metadata check FAILED: $md")
      status=1
    fi
  fi
  # The client writes headers to /dev/stderr: pipe, never redirect stderr to a file.
  (cd "$CLIENT_DIR" && env ANSI_ESCAPE=0 XKS_PROXY_HOST="127.0.0.1:$port" SCHEME=https:// \
      SECURE="--cacert $WORK/tls/ca.pem" "$@" 2>&1 | cat >"$WORK/$mode.log") || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local line
  line="$(grep -E "tests PASSED|tests FAILED" "$WORK/$mode.log" | tail -1 | sed 's/^[^A-Za-z]*//')"
  summary+=("$mode: ${line:-no summary (see $WORK/$mode.log)}")
  grep -q "All [0-9]* tests PASSED" "$WORK/$mode.log" || status=1
}

for mode in "${MODES[@]}"; do
  case "$mode" in
    basic) run_mode basic "$HERE/proxy.toml" 18443 ./test-xks-proxy ;;
    restricted) run_mode restricted "$HERE/proxy.toml" 18443 ./test-xks-proxy -a ;;
    mtls) run_mode mtls "$HERE/proxy-mtls.toml" 18444 \
            env MTLS="--key $WORK/tls/client.key --cert $WORK/tls/client.pem" ./test-xks-proxy -a ;;
    *) echo "unknown mode '$mode' (basic, restricted, mtls)" >&2; exit 64 ;;
  esac
done

printf '%s\n' "${summary[@]}"
exit $status
