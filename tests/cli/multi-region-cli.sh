#!/usr/bin/env bash
# The AWS CLI against one kms server serving two regions (us-east-1, us-west-2) with a seed
# file: create-key --multi-region, replicate-key, describe-key's MultiRegionConfiguration in
# both regions, encrypt in one region and decrypt in the other, update-primary-region, and a
# seeded key found by its fixed id and alias. Fails loudly when a tool is missing.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
# Request quotas off: the script's pace is not a client's (AWS's CreateKey rate is 5/s).
export KMS_LIMITS__REQUEST_QUOTAS=false
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

cat >"$work/seed.toml" <<'SEED'
[[keys]]
id = "11111111-2222-3333-4444-555555555555"
aliases = ["alias/seeded"]

[[keys]]
id = "mrk-0123456789abcdef0123456789abcdef"
replica_regions = ["us-west-2"]
SEED

KMS_SERVER__LISTEN=127.0.0.1:0 KMS_SERVER__DATA_DIR="$work/data" KMS_LOG=warn \
  KMS_SERVER__REGIONS='["us-east-1", "us-west-2"]' KMS_SERVER__SEED_FILE="$work/seed.toml" \
  "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for_server "$work"
echo "kms at $endpoint"

export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION || true
east() { aws kms --endpoint-url "$endpoint" --region us-east-1 "$@"; }
west() { aws kms --endpoint-url "$endpoint" --region us-west-2 "$@"; }

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

key_id=$(east create-key --multi-region --description "cli mrk" --query KeyMetadata.KeyId --output text)
check "create-key --multi-region returns an mrk- id" grep -qE '^mrk-[0-9a-f]{32}$' <<<"$key_id"
replica_arn=$(east replicate-key --key-id "$key_id" --replica-region us-west-2 \
  --description "cli replica" --query ReplicaKeyMetadata.Arn --output text)
check "replicate-key returns the replica's ARN in us-west-2" \
  test "$replica_arn" = "arn:aws:kms:us-west-2:111122223333:key/$key_id"
check "describe-key in us-west-2 says REPLICA" \
  test "$(west describe-key --key-id "$key_id" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = REPLICA
check "describe-key in us-east-1 lists the replica" \
  test "$(east describe-key --key-id "$key_id" --query 'KeyMetadata.MultiRegionConfiguration.ReplicaKeys[0].Region' --output text)" = us-west-2
if east replicate-key --key-id "$key_id" --replica-region us-west-2 >/dev/null 2>"$work/err"; then
  check "replicate-key to a region holding a replica fails" false
else
  check "replicate-key to a region holding a replica fails with AlreadyExistsException" grep -q AlreadyExistsException "$work/err"
fi

printf 'across regions' >"$work/plain.txt"
east encrypt --key-id "$key_id" --plaintext "fileb://$work/plain.txt" --encryption-context purpose=mrk \
  --query CiphertextBlob --output text | base64 -d >"$work/blob"
west decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context purpose=mrk \
  --query Plaintext --output text | base64 -d >"$work/decrypted.txt"
check "encrypt in us-east-1, decrypt with the replica in us-west-2" cmp -s "$work/plain.txt" "$work/decrypted.txt"

east update-primary-region --key-id "$key_id" --primary-region us-west-2
check "update-primary-region makes the us-west-2 key the primary" \
  test "$(west describe-key --key-id "$key_id" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = PRIMARY

check "the seeded key answers to its fixed id through its alias" \
  test "$(east describe-key --key-id alias/seeded --query KeyMetadata.KeyId --output text)" = 11111111-2222-3333-4444-555555555555
check "the seeded multi-Region key has its replica" \
  test "$(west describe-key --key-id mrk-0123456789abcdef0123456789abcdef --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = REPLICA

if aws kms --endpoint-url "$endpoint" --region eu-central-1 list-keys >/dev/null 2>"$work/err"; then
  check "a region the server does not serve is refused" false
else
  check "a region the server does not serve is refused (InvalidSignatureException)" grep -q InvalidSignatureException "$work/err"
fi

echo "multi-region-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
