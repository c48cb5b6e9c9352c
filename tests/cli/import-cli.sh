#!/usr/bin/env bash
# Bring your own key through the real AWS CLI, as AWS's documentation shows it, against a
# spawned kms server on one root:
#   tests/cli/import-cli.sh software     # the development root (default)
#   tests/cli/import-cli.sh pkcs11       # the PKCS#11 root on a throwaway SoftHSMv2 token
# create-key --origin EXTERNAL, get-parameters-for-import, the material wrapped with
# `openssl pkeyutl` (RSAES_OAEP_SHA_1) or `openssl enc -id-aes256-wrap-pad` + `openssl pkeyutl`
# (RSA_AES_KEY_WRAP_SHA_1), import-key-material, then encrypt/decrypt and sign (verified with
# OpenSSL against the imported key's own public key), delete-imported-key-material and a
# re-import of the same material. SHA-1 variants: the PKCS#11 root on SoftHSM 2.6.1 has no
# OAEP with SHA-256 (docs/key-types.md). Loopback only; the server is stopped by its PID.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:-software}
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
# Request quotas off: the script's pace is not a client's (AWS's CreateKey rate is 5/s).
export KMS_LIMITS__REQUEST_QUOTAS=false
for tool in aws openssl od base64 "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

case "$kind" in
  software) config="" ;;
  pkcs11)
    # The debug kms-cluster-key the test build made (make-token.sh would otherwise build a
    # release one: minutes of CI for one provisioning call).
    KMS_CLUSTER_KEY_BIN=${KMS_CLUSTER_KEY_BIN:-$(dirname "$bin")/kms-cluster-key} \
      bash "$root/softhsm/make-token.sh" "$work/softhsm" >"$work/make-token.log" 2>&1 ||
      { cat "$work/make-token.log" >&2; exit 1; }
    export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
    cat >"$work/kms.toml" <<TOML
[root]
kind = "pkcs11"
token_label = "kms-root"
pin_file = "$work/softhsm/user.pin"
TOML
    config="--config $work/kms.toml"
    ;;
  *) echo "usage: $0 [software|pkcs11]" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
KMS_SERVER__LISTEN=127.0.0.1:0 KMS_SERVER__DATA_DIR="$work/data" KMS_LOG=warn \
  "$bin" $config >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
endpoint=""
wait_for_server "$work"
echo "kms ($kind root) at $endpoint"

export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN || true
kms() { aws kms --endpoint-url "$endpoint" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
hex() { od -An -v -tx1 | tr -d ' \n'; }

# get-parameters-for-import -> $work/WrappingPublicKey.bin and $work/ImportToken.bin
parameters() { # key id, algorithm
  kms get-parameters-for-import --key-id "$1" --wrapping-algorithm "$2" \
    --wrapping-key-spec RSA_2048 --query '[ImportToken,PublicKey]' --output text >"$work/params"
  cut -f1 "$work/params" | base64 -d >"$work/ImportToken.bin"
  cut -f2 "$work/params" | base64 -d >"$work/WrappingPublicKey.bin"
}
oaep() { # in, out
  openssl pkeyutl -encrypt -in "$1" -out "$2" -inkey "$work/WrappingPublicKey.bin" -keyform DER \
    -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
}
import() { # key id -> key material id (EncryptedKeyMaterial.bin already made)
  kms import-key-material --key-id "$1" --import-token "fileb://$work/ImportToken.bin" \
    --encrypted-key-material "fileb://$work/EncryptedKeyMaterial.bin" \
    --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE --query KeyMaterialId --output text
}
state() { kms describe-key --key-id "$1" --query KeyMetadata.KeyState --output text; }

# ---- symmetric key, RSAES_OAEP_SHA_1 --------------------------------------------------------
key=$(kms create-key --origin EXTERNAL --query KeyMetadata.KeyId --output text)
[ "$(state "$key")" = PendingImport ] || fail "a new EXTERNAL key is not PendingImport"
openssl rand -out "$work/PlaintextKeyMaterial.bin" 32
parameters "$key" RSAES_OAEP_SHA_1
oaep "$work/PlaintextKeyMaterial.bin" "$work/EncryptedKeyMaterial.bin"
id=$(import "$key")
[ "${#id}" = 64 ] || fail "KeyMaterialId $id"
[ "$(kms describe-key --key-id "$key" \
  --query '[KeyMetadata.KeyState,KeyMetadata.CurrentKeyMaterialId]' --output text)" = "Enabled	$id" ] ||
  fail "after the import the key is not Enabled with CurrentKeyMaterialId $id"
echo -n "bring your own key" >"$work/pt"
kms encrypt --key-id "$key" --plaintext "fileb://$work/pt" --query CiphertextBlob --output text |
  base64 -d >"$work/ct"
kms decrypt --ciphertext-blob "fileb://$work/ct" --query Plaintext --output text | base64 -d >"$work/back"
cmp -s "$work/pt" "$work/back" || fail "decrypt after import"
# Delete, then re-import the same material with a fresh pair: the old ciphertext decrypts again.
kms delete-imported-key-material --key-id "$key" >/dev/null
if kms decrypt --ciphertext-blob "fileb://$work/ct" >/dev/null 2>"$work/err"; then
  fail "decrypt without material"
fi
grep -q KMSInvalidStateException "$work/err" || fail "decrypt without material: $(cat "$work/err")"
parameters "$key" RSAES_OAEP_SHA_1
oaep "$work/PlaintextKeyMaterial.bin" "$work/EncryptedKeyMaterial.bin"
[ "$(import "$key")" = "$id" ] || fail "re-import gave another KeyMaterialId"
kms decrypt --ciphertext-blob "fileb://$work/ct" --query Plaintext --output text | base64 -d >"$work/back"
cmp -s "$work/pt" "$work/back" || fail "decrypt after re-import"
# Other material is refused.
openssl rand -out "$work/Other.bin" 32
parameters "$key" RSAES_OAEP_SHA_1
oaep "$work/Other.bin" "$work/EncryptedKeyMaterial.bin"
if import "$key" >/dev/null 2>"$work/err"; then fail "other material imported"; fi
grep -q IncorrectKeyMaterialException "$work/err" || fail "other material: $(cat "$work/err")"
echo "ok: symmetric import, encrypt/decrypt, delete and re-import, wrong material refused"

# ---- ECC_NIST_P256 signing key, RSA_AES_KEY_WRAP_SHA_1 --------------------------------------
key=$(kms create-key --origin EXTERNAL --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY \
  --query KeyMetadata.KeyId --output text)
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 |
  openssl pkcs8 -topk8 -outform der -nocrypt >"$work/PrivateKey.der"
openssl pkey -inform DER -in "$work/PrivateKey.der" -pubout -outform DER -out "$work/own.der"
parameters "$key" RSA_AES_KEY_WRAP_SHA_1
openssl rand -out "$work/aes-key.bin" 32
openssl enc -id-aes256-wrap-pad -K "$(hex <"$work/aes-key.bin")" -iv A65959A6 \
  -in "$work/PrivateKey.der" -out "$work/key-material-wrapped.bin"
oaep "$work/aes-key.bin" "$work/aes-key-wrapped.bin"
cat "$work/aes-key-wrapped.bin" "$work/key-material-wrapped.bin" >"$work/EncryptedKeyMaterial.bin"
import "$key" >/dev/null
kms get-public-key --key-id "$key" --query PublicKey --output text | base64 -d >"$work/pub.der"
cmp -s "$work/pub.der" "$work/own.der" || fail "GetPublicKey is not the imported key's public key"
echo -n "signed with an imported key" >"$work/msg"
kms sign --key-id "$key" --message "fileb://$work/msg" --message-type RAW \
  --signing-algorithm ECDSA_SHA_256 --query Signature --output text | base64 -d >"$work/sig"
openssl dgst -sha256 -verify "$work/own.der" -keyform DER -signature "$work/sig" "$work/msg" >/dev/null ||
  fail "OpenSSL does not verify the signature with the imported key"
echo "ok: EC key import (RSA_AES_KEY_WRAP_SHA_1), signature verified by OpenSSL"
echo "import-cli ($kind): all checks passed"
