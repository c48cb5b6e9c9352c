"""Independent checks of the kms's asymmetric results with Python `cryptography` (the second
library beside OpenSSL in tests/cli/key-types-cli.sh). Every command exits 0 when the check
holds and 1 (with a reason on stderr) when it does not.

  interop.py verify PUB_DER ALGORITHM MESSAGE_TYPE MESSAGE_FILE SIGNATURE_FILE
  interop.py oaep-encrypt PUB_DER ALGORITHM PLAINTEXT_FILE OUT_FILE
  interop.py ecdh PEER_PRIVATE_PEM PUB_DER          (prints the shared secret, hex)
  interop.py pair PRIVATE_DER PUB_DER               (the PKCS#8 key matches the SPKI)
"""

import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def spki(key):
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify(pub_der, algorithm, message_type, message, signature):
    pub = serialization.load_der_public_key(pub_der)
    if algorithm == "ML_DSA_SHAKE_256":
        if message_type != "RAW":
            raise SystemExit("ML-DSA is checked on RAW messages only")
        pub.verify(signature, message)
        return
    if algorithm == "ED25519_SHA_512":
        pub.verify(signature, message)
        return
    digest = HASHES[algorithm[-3:]]()
    algo = utils.Prehashed(digest) if message_type == "DIGEST" else digest
    if algorithm.startswith("RSASSA_PSS_"):
        pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        pub.verify(signature, message, pad, algo)
    elif algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        pub.verify(signature, message, padding.PKCS1v15(), algo)
    elif algorithm.startswith("ECDSA_"):
        pub.verify(signature, message, ec.ECDSA(algo))
    else:
        raise SystemExit(f"unknown algorithm {algorithm}")


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "verify":
        pub, algorithm, message_type, message, signature = args
        try:
            verify(read(pub), algorithm, message_type, read(message), read(signature))
        except InvalidSignature:
            print(f"{algorithm} {message_type}: signature does not verify", file=sys.stderr)
            return 1
        return 0
    if command == "oaep-encrypt":
        pub, algorithm, plaintext, out = args
        digest = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256}[algorithm]()
        key = serialization.load_der_public_key(read(pub))
        ciphertext = key.encrypt(
            read(plaintext), padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
        )
        with open(out, "wb") as f:
            f.write(ciphertext)
        return 0
    if command == "ecdh":
        peer_pem, pub = args
        peer = serialization.load_pem_private_key(read(peer_pem), None)
        print(peer.exchange(ec.ECDH(), serialization.load_der_public_key(read(pub))).hex())
        return 0
    if command == "pair":
        private, pub = args
        key = serialization.load_der_private_key(read(private), None)
        if spki(key.public_key()) != read(pub):
            print("the private key's public key differs from PublicKey", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
