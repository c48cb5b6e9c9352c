#!/usr/bin/env bash
# STS with the real AWS CLI against a spawned kms server: a configured user calls
# `aws sts get-caller-identity` and `aws sts assume-role` on the KMS endpoint, then uses the
# temporary credentials (AWS_SESSION_TOKEN) with `aws kms encrypt`/`decrypt` on a key whose
# policy names the role, and is denied on a key whose policy does not. Fails loudly on any
# mismatch or when a tool is missing. Everything stays on 127.0.0.1.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
for tool in aws "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

account=111122223333
admin_akid=AKIAIOSFODNN7EXAMPLE admin_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
deployer_akid=AKIADEPLOYER00000001 deployer_secret=deployerSecretKey000000000000000000000001
deployer_arn="arn:aws:iam::$account:user/deployer" deployer_id=AIDADEPLOYEREXAMPLE01
role_arn="arn:aws:iam::$account:role/app" role_id=AROAAPPROLEEXAMPLE001 role_max_seconds=7200
deployer_role_config >"$work/kms.toml"

KMS_CONFIG="$work/kms.toml" KMS_LOG=warn "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for_server "$work"
echo "kms (and sts) at $endpoint"

# Hermetic AWS CLI: no profile, no shared files, no instance metadata.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS AWS_ENDPOINT_URL_STS || true
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
as_admin() { AWS_ACCESS_KEY_ID=$admin_akid AWS_SECRET_ACCESS_KEY=$admin_secret "$@"; }
as_deployer() { AWS_ACCESS_KEY_ID=$deployer_akid AWS_SECRET_ACCESS_KEY=$deployer_secret "$@"; }
sts() { aws sts --endpoint-url "$endpoint" "$@"; }
kms() { aws kms --endpoint-url "$endpoint" "$@"; }

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
equals() { # name, expected, actual
  if [ "$2" = "$3" ]; then check "$1" true; else echo "     expected: $2" ; echo "     actual:   $3"; check "$1" false; fi
}
fails_with() { # name, expected error text, then a command that must fail
  local name=$1 expected=$2; shift 2
  if "$@" >"$work/out" 2>"$work/err"; then
    echo "     unexpectedly succeeded: $(cat "$work/out")"; check "$name" false
  elif grep -qF -- "$expected" "$work/err"; then
    check "$name" true
  else
    echo "     expected: $expected"; echo "     actual:   $(cat "$work/err")"; check "$name" false
  fi
}

# Two keys: one whose policy lets the role encrypt and decrypt, one that names only the deployer.
policy() { # principal allowed to Encrypt/Decrypt
  printf '{"Version":"2012-10-17","Statement":[{"Sid":"Admins","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"},{"Sid":"Use","Effect":"Allow","Principal":{"AWS":"%s"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}' "$account" "$1"
}
role_key=$(as_admin kms create-key --description "for the role" --policy "$(policy "$role_arn")" --query KeyMetadata.Arn --output text)
other_key=$(as_admin kms create-key --description "not for the role" --policy "$(policy "$deployer_arn")" --query KeyMetadata.Arn --output text)

equals "aws sts get-caller-identity names the user" \
  "$deployer_arn AIDADEPLOYEREXAMPLE01 $account" \
  "$(as_deployer sts get-caller-identity --query '[Arn,UserId,Account]' --output text | tr '\t' ' ')"

as_deployer sts assume-role --role-arn "$role_arn" --role-session-name cli-session \
  --duration-seconds 1800 --output json >"$work/assumed.json"
read -r session_akid session_secret session_token < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["Credentials"]
print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])' "$work/assumed.json")
session_arn="arn:aws:sts::$account:assumed-role/app/cli-session"
check "aws sts assume-role returns ASIA credentials" grep -qE '^ASIA[A-Z2-7]{16}$' <<<"$session_akid"
equals "aws sts assume-role returns a 40-character secret" 40 "${#session_secret}"
equals "aws sts assume-role returns the assumed role user" \
  "AROAAPPROLEEXAMPLE001:cli-session $session_arn" \
  "$(python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))["AssumedRoleUser"]; print(u["AssumedRoleId"], u["Arn"])' "$work/assumed.json")"
check "the expiration is about 30 minutes away" python3 -c '
import datetime, json, sys
exp = json.load(open(sys.argv[1]))["Credentials"]["Expiration"]
left = datetime.datetime.fromisoformat(exp.replace("Z", "+00:00")) - datetime.datetime.now(datetime.timezone.utc)
sys.exit(0 if 1700 <= left.total_seconds() <= 1801 else 1)' "$work/assumed.json"

fails_with "assume-role of a role that does not trust the caller is AccessDenied" \
  "An error occurred (AccessDenied) when calling the AssumeRole operation: User: $deployer_arn is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::$account:role/nobody" \
  as_deployer sts assume-role --role-arn "arn:aws:iam::$account:role/nobody" --role-session-name s1
fails_with "assume-role above the role's maximum duration is a ValidationError" \
  "The requested DurationSeconds exceeds the MaxSessionDuration set for this role." \
  as_deployer sts assume-role --role-arn "$role_arn" --role-session-name s1 --duration-seconds 7201

export AWS_ACCESS_KEY_ID=$session_akid AWS_SECRET_ACCESS_KEY=$session_secret AWS_SESSION_TOKEN=$session_token
equals "aws sts get-caller-identity with the temporary credentials names the session" \
  "$session_arn AROAAPPROLEEXAMPLE001:cli-session" \
  "$(sts get-caller-identity --query '[Arn,UserId]' --output text | tr '\t' ' ')"

printf 'attack at dawn' >"$work/plain.txt"
kms encrypt --key-id "$role_key" --plaintext "fileb://$work/plain.txt" \
  --query CiphertextBlob --output text | base64 -d >"$work/blob"
kms decrypt --ciphertext-blob "fileb://$work/blob" --query Plaintext --output text | base64 -d >"$work/decrypted.txt"
check "aws kms encrypt/decrypt with the session, allowed by the key policy naming the role" \
  cmp -s "$work/plain.txt" "$work/decrypted.txt"
fails_with "aws kms encrypt with the session on a key whose policy does not name the role is denied" \
  "An error occurred (AccessDeniedException) when calling the Encrypt operation: User: $session_arn is not authorized to perform: kms:Encrypt on resource: $other_key because no resource-based policy allows the kms:Encrypt action" \
  kms encrypt --key-id "$other_key" --plaintext "fileb://$work/plain.txt"
fails_with "a wrong session token is UnrecognizedClientException" \
  "An error occurred (UnrecognizedClientException) when calling the ListKeys operation: The security token included in the request is invalid." \
  env AWS_SESSION_TOKEN=bm90LXRoZS10b2tlbg== aws kms --endpoint-url "$endpoint" list-keys
fails_with "the session's secret without its token is UnrecognizedClientException" \
  "(UnrecognizedClientException)" \
  env -u AWS_SESSION_TOKEN aws kms --endpoint-url "$endpoint" list-keys

echo "sts-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
