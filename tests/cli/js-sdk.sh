#!/usr/bin/env bash
# The AWS SDK for JavaScript v3 (@aws-sdk/client-kms, @aws-sdk/client-sts, pinned by
# tests/js/package-lock.json and installed with `npm ci`) against a spawned kms server: the
# tests in tests/js/*.test.mjs run under Node's built-in test runner (`node --test`). The server
# gets an administrator, a user who may assume one role, a small alias quota and a tiny rate for
# one operation, so the SDK's typed errors (LimitExceededException, ThrottlingException) and its
# retries can be checked cheaply. Fails loudly when node, npm or the server binary is missing.
# Everything stays on 127.0.0.1 (npm ci reaches the npm registry unless node_modules is current).
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
for tool in node npm "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "FAIL: Node.js >= 20 needed, found $(node --version)" >&2; exit 1; }

(cd "$root/tests/js" && npm ci --no-audit --no-fund --loglevel=error)

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

account=111122223333
admin_akid=AKIAIOSFODNN7EXAMPLE admin_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
deployer_akid=AKIADEPLOYER00000002 deployer_secret=deployerSecretKey000000000000000000000002
deployer_arn="arn:aws:iam::$account:user/deployer"
role_arn="arn:aws:iam::$account:role/js-app"
deployer_id=AIDADEPLOYEREXAMPLE02 role_id=AROAJSAPPROLEEXAMPLE1 role_max_seconds=3600
{
  deployer_role_config
  cat <<TOML

[limits]
# limits.test.mjs: the fourth alias of a key is LimitExceededException.
aliases_per_key = 3
# AWS's rates, but CreateKey/CreateAlias/TagResource fast enough for this run, and one
# operation (used only by limits.test.mjs) at one request, then none for 1000 s.
request_rates = { CreateKey = 1000, CreateAlias = 1000, TagResource = 1000, UntagResource = 1000, ListKeyRotations = 0.001 }
TOML
} >"$work/kms.toml"

KMS_CONFIG="$work/kms.toml" KMS_LOG=warn "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for_server "$work"
echo "kms (and sts) at $endpoint"

# Hermetic SDK: no profile, no shared files, no instance metadata; the tests pass endpoint,
# region and credentials to every client explicitly.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_SECURITY_TOKEN \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS AWS_ENDPOINT_URL_STS AWS_REGION AWS_DEFAULT_REGION || true
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
# The pinned SDK supports Node 20; its note that later versions will not is noise here.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
# What the tests need to know about this server (tests/js/common.mjs reads it).
export KMS_JS_ENDPOINT=$endpoint KMS_JS_ACCOUNT=$account \
  KMS_JS_ADMIN_KEY=$admin_akid KMS_JS_ADMIN_SECRET=$admin_secret \
  KMS_JS_DEPLOYER_KEY=$deployer_akid KMS_JS_DEPLOYER_SECRET=$deployer_secret \
  KMS_JS_DEPLOYER_ARN=$deployer_arn KMS_JS_DEPLOYER_ID=$deployer_id \
  KMS_JS_ROLE_ARN=$role_arn KMS_JS_ROLE_ID=$role_id

cd "$root/tests/js"
node --test --test-reporter=spec ./*.test.mjs
echo "js-sdk: passed"
