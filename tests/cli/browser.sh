#!/usr/bin/env bash
# The AWS SDK for JavaScript v3 in a real browser: tests/js/browser/page.mjs is bundled for the
# browser with esbuild (a devDependency pinned by tests/js/package-lock.json), served from one
# loopback origin (tests/js/browser/serve.mjs) and pointed at a kms server on another port --
# another origin, so headless Chromium really does CORS (preflight, then the call). The page
# runs CreateKey, Encrypt, Decrypt, a Decrypt of garbage (InvalidCiphertextException) and STS
# GetCallerIdentity and writes the results into the DOM; `chromium-headless-shell --dump-dom`
# prints it and tests/js/browser/check.mjs asserts. Run twice: with
# server.cors_allowed_origins = [the page's origin] every call works; with CORS off (the
# default) the browser refuses every call, and the server never sees one.
# Needs node >= 20, npm and chromium-headless-shell (Debian/Ubuntu: apt-get install
# chromium-headless-shell; .ci/run installs it); fails loudly when one is missing.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
chromium=${CHROMIUM:-chromium-headless-shell}
for tool in node npm "$chromium" "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done
"$chromium" --version

# tests/js/node_modules as package-lock.json pins it: kept when tests/cli/js-sdk.sh (which CI
# runs just before) has installed it and it is intact, else `npm ci` (the npm registry or its
# cache). Nothing below leaves 127.0.0.1.
(
  cd "$root/tests/js"
  if [ node_modules/.package-lock.json -nt package-lock.json ] && npm ls --all >/dev/null 2>&1; then
    echo "tests/js/node_modules is current"
  else
    npm ci --no-audit --no-fund --loglevel=error
  fi
)

work=$(mktemp -d)
server_pid="" page_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$page_pid" ] && kill "$page_pid" 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/site"
cp "$root/tests/js/browser/index.html" "$work/site/"
"$root/tests/js/node_modules/.bin/esbuild" "$root/tests/js/browser/page.mjs" --bundle \
  --format=esm --platform=browser --target=chrome120 --log-level=warning \
  --outfile="$work/site/bundle.js"

# The page's origin.
node "$root/tests/js/browser/serve.mjs" "$work/site" >"$work/page.out" 2>&1 &
page_pid=$!
page=""
for _ in $(seq 100); do
  page=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/page.out" 2>/dev/null | head -n1 || true)
  [ -n "$page" ] && break
  sleep 0.1
done
[ -n "$page" ] || { echo "FAIL: the page server did not start" >&2; cat "$work/page.out" >&2; exit 1; }

account=111122223333
akid=AKIAIOSFODNN7EXAMPLE secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY

# run_browser MODE CORS: a fresh kms server (CORS: the value of server.cors_allowed_origins,
# or empty for the default), the page opened in a fresh headless Chromium, its DOM checked.
run_browser() {
  local mode=$1 cors=$2 dir="$work/$1"
  mkdir -p "$dir"
  cat >"$dir/kms.toml" <<TOML
[server]
listen = '127.0.0.1:0'
data_dir = '$dir/data'
${cors:+cors_allowed_origins = $cors}

[[credentials]]
access_key_id = '$akid'
secret_access_key = '$secret'
principal = 'arn:aws:iam::$account:user/admin'
TOML
  KMS_CONFIG="$dir/kms.toml" KMS_LOG=warn "$bin" >"$dir/stdout" 2>"$dir/stderr" &
  server_pid=$!
  wait_for_server "$dir"
  echo "== browser ($mode): page at $page, kms at $endpoint =="

  # What keeps the browser on loopback:
  #   --host-resolver-rules: every host name but 127.0.0.1 fails to resolve (no DNS at all);
  #   --proxy-server to a closed loopback port: anything not loopback (IP literals included)
  #     would go to that proxy and fail; loopback bypasses proxies, so the test's traffic
  #     goes direct;
  #   --disable-background-networking, --disable-component-update, --disable-sync,
  #   --disable-default-apps, --no-pings, --no-first-run, --disable-domain-reliability,
  #   --disable-breakpad: none of Chromium's own background requests are started;
  #   --user-data-dir: a throwaway profile (no state in or out).
  # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start; the page is ours.
  # --dump-dom prints the DOM at the load event, which the page holds until it has written
  # its results (tests/js/browser/serve.mjs: at most 30 s).
  timeout 60 "$chromium" --headless --no-sandbox --disable-gpu \
    --user-data-dir="$dir/chromium" \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --no-pings --disable-domain-reliability --disable-breakpad \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
    --proxy-server="http://127.0.0.1:9" \
    --dump-dom "$page/index.html#endpoint=$endpoint&akid=$akid&secret=$secret" \
    >"$dir/dom.html" 2>"$dir/chromium.log" || {
    echo "FAIL: chromium exited with $?" >&2
    cat "$dir/chromium.log" >&2
    exit 1
  }
  node "$root/tests/js/browser/check.mjs" "$mode" "$dir/dom.html" "$account" || {
    echo "FAIL: browser ($mode); chromium's log:" >&2
    cat "$dir/chromium.log" >&2
    exit 1
  }
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

run_browser cors "['$page']"
run_browser blocked ""
# CORS off: the browser did send its preflights (OPTIONS: UnknownOperationException, in the
# audit log as "Unknown" from HeadlessChrome), and no call after them reached the server.
audit=$work/blocked/data/audit.log
preflights=$(grep -c '"eventName":"Unknown".*HeadlessChrome.*"errorCode":"UnknownOperationException"' "$audit" || true)
records=$(grep -c . "$audit" || true)
if [ "$preflights" -lt 1 ] || [ "$preflights" -ne "$records" ]; then
  echo "FAIL: with CORS off the audit log should hold only refused preflights, found:" >&2
  cat "$audit" >&2
  exit 1
fi
grep -q '"eventName":"CreateKey"' "$work/cors/data/audit.log" || {
  echo "FAIL: with CORS on no CreateKey is in the audit log" >&2
  exit 1
}
echo "browser: passed"
