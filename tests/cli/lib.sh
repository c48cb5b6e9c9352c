# Helpers of the tests/cli scripts; sourced, not run.

# wait_for_server WORK [SCHEME]: waits (10 s at most) for a server (kms, or xks-proxy with
# SCHEME https) started with its standard output in WORK/stdout and its standard error in
# WORK/stderr to print its loopback address, and sets `endpoint` to it. Fails the script,
# showing the server's standard error, when it does not.
wait_for_server() {
  local work=$1 scheme=${2:-http} _
  endpoint=""
  for _ in $(seq 100); do
    endpoint=$(grep -o "$scheme://127\.0\.0\.1:[0-9]*" "$work/stdout" 2>/dev/null | head -n1 || true)
    [ -n "$endpoint" ] && return 0
    sleep 0.1
  done
  echo "FAIL: server did not start" >&2
  cat "$work/stderr" >&2
  exit 1
}
