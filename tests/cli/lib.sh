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

# deployer_role_config: prints the kms.toml of a server in $work (127.0.0.1, data in $work/data)
# with the identities the STS scripts use: an administrator ($admin_akid, $admin_secret; no
# [[users]] entry, so every kms: and sts: action), a user $deployer_arn ($deployer_id;
# $deployer_akid, $deployer_secret) with no identity policy, and a role $role_arn ($role_id,
# sessions of at most $role_max_seconds) whose trust policy lets the deployer assume it. The
# caller sets those variables and $account, and may append tables of its own.
deployer_role_config() {
  cat <<TOML
[server]
listen = '127.0.0.1:0'
data_dir = '$work/data'

[[credentials]]
access_key_id = '$admin_akid'
secret_access_key = '$admin_secret'
principal = 'arn:aws:iam::$account:user/admin'

[[users]]
arn = '$deployer_arn'
unique_id = '$deployer_id'

[[credentials]]
access_key_id = '$deployer_akid'
secret_access_key = '$deployer_secret'
principal = '$deployer_arn'

[[roles]]
arn = '$role_arn'
unique_id = '$role_id'
max_session_duration_seconds = $role_max_seconds
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"$deployer_arn"},"Action":"sts:AssumeRole"}]}'
TOML
}
