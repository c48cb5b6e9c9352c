#!/usr/bin/env bash
# Real AWS clients against a spawned kms server: the AWS CLI (create-key, encrypt/decrypt with
# encryption context, a tampered context failing) and the AWS Encryption SDK CLI (encrypt then
# decrypt a file with a KMS keyring). Fails loudly when a tool is missing.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
for tool in aws aws-encryption-cli "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

KMS_SERVER__LISTEN=127.0.0.1:0 KMS_SERVER__DATA_DIR="$work/data" KMS_LOG=warn \
  "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for_server "$work"
echo "kms at $endpoint"

export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL_KMS=$endpoint
unset AWS_PROFILE AWS_SESSION_TOKEN || true
kms() { aws kms --endpoint-url "$endpoint" "$@"; }

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

key_arn=$(kms create-key --description "cli test" --query KeyMetadata.Arn --output text)
check "aws kms create-key returns a key ARN" grep -qE '^arn:aws:kms:us-east-1:111122223333:key/[0-9a-f-]{36}$' <<<"$key_arn"
check "aws kms describe-key says Enabled" test "$(kms describe-key --key-id "$key_arn" --query KeyMetadata.KeyState --output text)" = Enabled
kms create-alias --alias-name alias/cli-test --target-key-id "$key_arn"

printf 'attack at dawn' >"$work/plain.txt"
kms encrypt --key-id alias/cli-test --plaintext "fileb://$work/plain.txt" \
  --encryption-context purpose=cli,team=kms --query CiphertextBlob --output text | base64 -d >"$work/blob"
kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context team=kms,purpose=cli \
  --query Plaintext --output text | base64 -d >"$work/decrypted.txt"
check "aws kms encrypt/decrypt round trip with encryption context" cmp -s "$work/plain.txt" "$work/decrypted.txt"
if kms decrypt --ciphertext-blob "fileb://$work/blob" --encryption-context purpose=other \
    >/dev/null 2>"$work/err"; then
  check "decrypt with another encryption context fails" false
else
  check "decrypt with another encryption context fails with InvalidCiphertextException" grep -q InvalidCiphertextException "$work/err"
fi

head -c 100000 /dev/urandom >"$work/file.bin"
aws-encryption-cli --encrypt --input "$work/file.bin" --output "$work/file.enc" \
  --wrapping-keys "key=$key_arn" --encryption-context purpose=esdk \
  --metadata-output "$work/enc-metadata.json" --commitment-policy require-encrypt-require-decrypt
aws-encryption-cli --decrypt --input "$work/file.enc" --output "$work/file.out" \
  --wrapping-keys "key=$key_arn" --encryption-context purpose=esdk \
  --metadata-output "$work/dec-metadata.json" --commitment-policy require-encrypt-require-decrypt
check "aws-encryption-cli encrypt/decrypt round trip of a file" cmp -s "$work/file.bin" "$work/file.out"
check "the encrypted file differs from the plaintext" bash -c "! cmp -s '$work/file.bin' '$work/file.enc'"

echo "aws-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
