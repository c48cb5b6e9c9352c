#!/usr/bin/env bash
# Every non-symmetric key type through the real AWS CLI, checked independently with OpenSSL and
# Python `cryptography` (tests/cli/interop.py), against a spawned kms server on one root:
#   tests/cli/key-types-cli.sh software     # the development root (default)
#   tests/cli/key-types-cli.sh pkcs11       # the PKCS#11 root on a throwaway SoftHSMv2 token
# Checks: Sign (every algorithm, RAW and DIGEST) verifies with OpenSSL, with cryptography and with
# our Verify, and a tampered signature gives KMSInvalidSignatureException; RSA-OAEP ciphertexts
# made by OpenSSL and by cryptography with the GetPublicKey key decrypt through our Decrypt;
# DeriveSharedSecret equals the secret OpenSSL and cryptography derive; GenerateDataKeyPair
# private keys match their public keys and their ciphertext decrypts (only) under the same
# encryption context; HMAC keys' MACs verify and a flipped bit gives KMSInvalidMacException.
# ML-DSA (software root only; OpenSSL 3.0 has no ML-DSA) is checked with cryptography.
# Loopback only; the server it starts is stopped by PID. Fails loudly when a tool is missing.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
# AWS's request quotas (CreateKey 5/s, ...) are on by default; this run creates faster.
export KMS_LIMITS__REQUEST_QUOTAS=false

root=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:-software}
bin=${KMS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/kms}
for tool in aws openssl python3 od "$bin"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done
python3 -c 'import cryptography.hazmat.primitives.asymmetric.mldsa' ||
  { echo "FAIL: Python cryptography with ML-DSA (>= 47, OpenSSL >= 3.5 inside) is required" >&2; exit 1; }
interop() { python3 "$root/tests/cli/interop.py" "$@"; }
hex() { od -An -v -tx1 | tr -d ' \n'; }

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
  software)
    config=""
    ;;
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

passed=0
failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name"; fi
}
fails_with() { # exception, then an aws command that must fail with it
  local exception=$1; shift
  if "$@" >/dev/null 2>"$work/err"; then return 1; fi
  grep -q "$exception" "$work/err"
}
new_key() { # spec usage -> key id
  kms create-key --key-spec "$1" --key-usage "$2" --query KeyMetadata.KeyId --output text
}
public_der() { # key id -> $work/pub.der
  kms get-public-key --key-id "$1" --query PublicKey --output text | base64 -d >"$work/pub.der"
}
public_key() { # key id -> $work/pub.der and $work/pub.pem
  public_der "$1"
  openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
}

# ---- Sign / Verify -------------------------------------------------------------------------
head -c 3000 /dev/urandom >"$work/msg.bin"
sign_specs="RSA_2048 RSA_3072 RSA_4096 ECC_NIST_P256 ECC_NIST_P384 ECC_NIST_P521 ECC_SECG_P256K1"
rsa_specs="RSA_2048 RSA_3072 RSA_4096"
pair_specs="RSA_2048 RSA_3072 RSA_4096 ECC_NIST_P256 ECC_NIST_P384 ECC_NIST_P521 ECC_SECG_P256K1"
if [ "$kind" = pkcs11 ]; then
  # The token's paths are the same for every RSA size, and data key pairs are made on the host
  # whatever the root: the PKCS#11 pass keeps CI short (each larger RSA key takes SoftHSM seconds).
  sign_specs="RSA_2048 ECC_NIST_P256 ECC_NIST_P384 ECC_NIST_P521 ECC_SECG_P256K1"
  rsa_specs="RSA_2048"
  pair_specs="RSA_2048 ECC_NIST_P256"
fi
for spec in $sign_specs; do
  key=$(new_key "$spec" SIGN_VERIFY)
  public_key "$key"
  algorithms=$(kms describe-key --key-id "$key" --query 'KeyMetadata.SigningAlgorithms' --output text)
  # Every algorithm on RSA_2048; two on the larger keys (the SDK suite covers every combination,
  # and each AWS CLI call costs about a second here).
  case "$spec" in RSA_3072 | RSA_4096) algorithms="RSASSA_PSS_SHA_384 RSASSA_PKCS1_V1_5_SHA_512" ;; esac
  for alg in $algorithms; do
    bits=${alg: -3}
    openssl dgst "-sha$bits" -binary "$work/msg.bin" >"$work/digest.bin"
    opts=(-pkeyopt "digest:sha$bits")
    case "$alg" in
      RSASSA_PSS_*) opts+=(-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -pkeyopt "rsa_mgf1_md:sha$bits") ;;
    esac
    for type in RAW DIGEST; do
      input=$work/msg.bin
      [ "$type" = DIGEST ] && input=$work/digest.bin
      kms sign --key-id "$key" --message "fileb://$input" --message-type "$type" \
        --signing-algorithm "$alg" --query Signature --output text | base64 -d >"$work/sig.bin"
      check "$spec $alg $type: OpenSSL verifies" \
        openssl pkeyutl -verify -pubin -keyform DER -inkey "$work/pub.der" -in "$work/digest.bin" \
        -sigfile "$work/sig.bin" "${opts[@]}" >/dev/null
      check "$spec $alg $type: cryptography verifies" \
        interop verify "$work/pub.der" "$alg" "$type" "$input" "$work/sig.bin"
      # Verify with the other message type than the one signed (AWS allows it).
      other=RAW; other_input=$work/msg.bin
      [ "$type" = RAW ] && other=DIGEST && other_input=$work/digest.bin
      check "$spec $alg $type: our Verify (as $other)" test "$(kms verify --key-id "$key" \
        --message "fileb://$other_input" --message-type "$other" --signing-algorithm "$alg" \
        --signature "fileb://$work/sig.bin" --query SignatureValid --output text)" = True
    done
    # A tampered signature: flip the last byte.
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
      "$work/sig.bin" "$work/bad.bin"
    check "$spec $alg: OpenSSL rejects a tampered signature" bash -c "! openssl pkeyutl -verify -pubin \
      -keyform DER -inkey '$work/pub.der' -in '$work/digest.bin' -sigfile '$work/bad.bin' ${opts[*]} >/dev/null 2>&1"
    check "$spec $alg: our Verify rejects a tampered signature" fails_with KMSInvalidSignatureException \
      kms verify --key-id "$key" --message "fileb://$work/msg.bin" --signing-algorithm "$alg" \
      --signature "fileb://$work/bad.bin"
  done
done

if [ "$kind" = software ]; then
  for spec in ML_DSA_44 ML_DSA_65 ML_DSA_87; do
    key=$(new_key "$spec" SIGN_VERIFY)
    public_der "$key" # OpenSSL 3.0 cannot read ML-DSA keys
    kms sign --key-id "$key" --message "fileb://$work/msg.bin" --message-type RAW \
      --signing-algorithm ML_DSA_SHAKE_256 --query Signature --output text | base64 -d >"$work/sig.bin"
    check "$spec: cryptography verifies" \
      interop verify "$work/pub.der" ML_DSA_SHAKE_256 RAW "$work/msg.bin" "$work/sig.bin"
  done
else
  check "ML_DSA_65 on the PKCS#11 root: UnsupportedOperationException" \
    fails_with UnsupportedOperationException kms create-key --key-spec ML_DSA_65 --key-usage SIGN_VERIFY
fi

# ---- RSA encryption ------------------------------------------------------------------------
for spec in $rsa_specs; do
  key=$(new_key "$spec" ENCRYPT_DECRYPT)
  public_key "$key"
  bits=${spec#RSA_}
  for alg in RSAES_OAEP_SHA_1 RSAES_OAEP_SHA_256; do
    md=sha256; hlen=32
    [ "$alg" = RSAES_OAEP_SHA_1 ] && md=sha1 && hlen=20
    head -c $((bits / 8 - 2 * hlen - 2)) /dev/urandom >"$work/pt.bin" # the largest plaintext
    openssl pkeyutl -encrypt -pubin -keyform DER -inkey "$work/pub.der" -in "$work/pt.bin" \
      -out "$work/ct.bin" -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md"
    kms decrypt --key-id "$key" --encryption-algorithm "$alg" --ciphertext-blob "fileb://$work/ct.bin" \
      --query Plaintext --output text | base64 -d >"$work/out.bin"
    check "$spec $alg: OpenSSL's ciphertext decrypts" cmp -s "$work/pt.bin" "$work/out.bin"
    interop oaep-encrypt "$work/pub.der" "$alg" "$work/pt.bin" "$work/ct2.bin"
    kms decrypt --key-id "$key" --encryption-algorithm "$alg" --ciphertext-blob "fileb://$work/ct2.bin" \
      --query Plaintext --output text | base64 -d >"$work/out2.bin"
    check "$spec $alg: cryptography's ciphertext decrypts" cmp -s "$work/pt.bin" "$work/out2.bin"
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[5] ^= 1; open(sys.argv[2], "wb").write(b)' \
      "$work/ct.bin" "$work/bad.bin"
    check "$spec $alg: a corrupted ciphertext gives InvalidCiphertextException" \
      fails_with InvalidCiphertextException kms decrypt --key-id "$key" --encryption-algorithm "$alg" \
      --ciphertext-blob "fileb://$work/bad.bin"
  done
done

# ---- DeriveSharedSecret --------------------------------------------------------------------
for pair in ECC_NIST_P256:P-256 ECC_NIST_P384:P-384 ECC_NIST_P521:P-521; do
  spec=${pair%%:*}; curve=${pair#*:}
  key=$(new_key "$spec" KEY_AGREEMENT)
  public_key "$key"
  openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$curve" -out "$work/peer.pem"
  openssl pkey -in "$work/peer.pem" -pubout -outform DER -out "$work/peer.der"
  ours=$(kms derive-shared-secret --key-id "$key" --key-agreement-algorithm ECDH \
    --public-key "fileb://$work/peer.der" --query SharedSecret --output text | base64 -d | hex)
  theirs=$(openssl pkeyutl -derive -inkey "$work/peer.pem" -peerkey "$work/pub.pem" | hex)
  check "$spec: DeriveSharedSecret equals OpenSSL's secret" test -n "$ours" -a "$ours" = "$theirs"
  check "$spec: DeriveSharedSecret equals cryptography's secret" \
    test "$ours" = "$(interop ecdh "$work/peer.pem" "$work/pub.der")"
done

# ---- GenerateDataKeyPair -------------------------------------------------------------------
sym=$(kms create-key --query KeyMetadata.KeyId --output text)
for spec in $pair_specs; do
  kms generate-data-key-pair --key-id "$sym" --key-pair-spec "$spec" --encryption-context purpose=interop \
    --query '[PrivateKeyPlaintext, PublicKey, PrivateKeyCiphertextBlob]' --output text >"$work/gdkp.txt"
  read -r priv pub blob <"$work/gdkp.txt"
  base64 -d <<<"$priv" >"$work/priv.der"
  base64 -d <<<"$pub" >"$work/pub.der"
  base64 -d <<<"$blob" >"$work/blob.bin"
  check "$spec: OpenSSL accepts the private key" openssl pkey -inform DER -in "$work/priv.der" -check -noout -out /dev/null
  check "$spec: the private key's public key is PublicKey (OpenSSL)" bash -c \
    "openssl pkey -inform DER -in '$work/priv.der' -pubout -outform DER | cmp -s - '$work/pub.der'"
  check "$spec: the private key's public key is PublicKey (cryptography)" \
    interop pair "$work/priv.der" "$work/pub.der"
  kms decrypt --ciphertext-blob "fileb://$work/blob.bin" --encryption-context purpose=interop \
    --query Plaintext --output text | base64 -d >"$work/priv2.der"
  check "$spec: PrivateKeyCiphertextBlob decrypts to the private key" cmp -s "$work/priv.der" "$work/priv2.der"
  check "$spec: another encryption context gives InvalidCiphertextException" \
    fails_with InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$work/blob.bin" \
    --encryption-context purpose=other
done

# ---- HMAC ----------------------------------------------------------------------------------
for bits in 224 256 384 512; do
  key=$(new_key "HMAC_$bits" GENERATE_VERIFY_MAC)
  kms generate-mac --key-id "$key" --message "fileb://$work/msg.bin" --mac-algorithm "HMAC_SHA_$bits" \
    --query Mac --output text | base64 -d >"$work/mac.bin"
  check "HMAC_$bits: the MAC has $((bits / 8)) bytes" test "$(stat -c %s "$work/mac.bin")" -eq $((bits / 8))
  check "HMAC_$bits: VerifyMac accepts it" test "$(kms verify-mac --key-id "$key" \
    --message "fileb://$work/msg.bin" --mac-algorithm "HMAC_SHA_$bits" --mac "fileb://$work/mac.bin" \
    --query MacValid --output text)" = True
  python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[0] ^= 0x80; open(sys.argv[2], "wb").write(b)' \
    "$work/mac.bin" "$work/bad.bin"
  check "HMAC_$bits: a flipped bit gives KMSInvalidMacException" fails_with KMSInvalidMacException \
    kms verify-mac --key-id "$key" --message "fileb://$work/msg.bin" --mac-algorithm "HMAC_SHA_$bits" \
    --mac "fileb://$work/bad.bin"
done

echo "key-types-cli ($kind root): $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
