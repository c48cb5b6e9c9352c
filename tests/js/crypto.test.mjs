// Cryptography through @aws-sdk/client-kms, checked outside the server where possible: symmetric
// Encrypt/Decrypt with an encryption context (a mismatched one is the SDK's typed
// InvalidCiphertextException), GenerateDataKey, ReEncrypt, ECDSA P-256 signatures verified with
// Node's crypto using the GetPublicKey DER, RSA OAEP-SHA-256 encryption done in Node and
// decrypted by the server, and HMAC GenerateMac/VerifyMac.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import {
  CreateKeyCommand,
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateMacCommand,
  GenerateRandomCommand,
  GetPublicKeyCommand,
  InvalidCiphertextException,
  KMSInvalidMacException,
  KMSInvalidSignatureException,
  ReEncryptCommand,
  SignCommand,
  VerifyCommand,
  VerifyMacCommand,
} from "@aws-sdk/client-kms";
import { assertServiceError, failure, kms } from "./common.mjs";

const client = kms();
const createKey = async (input = {}) => (await client.send(new CreateKeyCommand(input))).KeyMetadata;
const bytes = (text) => new TextEncoder().encode(text);

test("Encrypt/Decrypt with an encryption context; another context is InvalidCiphertextException", async () => {
  const key = await createKey();
  const plaintext = bytes("attack at dawn");
  const context = { purpose: "js-sdk", team: "kms" };
  const encrypted = await client.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: plaintext, EncryptionContext: context }));
  assert.equal(encrypted.KeyId, key.Arn);
  assert.equal(encrypted.EncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  assert.ok(encrypted.CiphertextBlob instanceof Uint8Array);
  assert.ok(encrypted.CiphertextBlob.length > plaintext.length);

  // The context's order does not matter; the key is found from the blob.
  const decrypted = await client.send(
    new DecryptCommand({ CiphertextBlob: encrypted.CiphertextBlob, EncryptionContext: { team: "kms", purpose: "js-sdk" } }),
  );
  assert.deepEqual(Buffer.from(decrypted.Plaintext), Buffer.from(plaintext));
  assert.equal(decrypted.KeyId, key.Arn);
  assert.equal(decrypted.EncryptionAlgorithm, "SYMMETRIC_DEFAULT");

  for (const EncryptionContext of [{ purpose: "other", team: "kms" }, { purpose: "js-sdk" }, undefined]) {
    const err = await failure(client.send(new DecryptCommand({ CiphertextBlob: encrypted.CiphertextBlob, EncryptionContext })));
    assertServiceError(err, InvalidCiphertextException);
  }
  // Non-ASCII and JSON-escaped characters in the context survive the SDK's JSON and signing.
  const unicode = { "名前": "値 ✓ é", "emoji🙂": 'quote" backslash\\ newline\n' };
  const sealed = await client.send(new EncryptCommand({ KeyId: key.Arn, Plaintext: plaintext, EncryptionContext: unicode }));
  const opened = await client.send(new DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: { ...unicode } }));
  assert.deepEqual(Buffer.from(opened.Plaintext), Buffer.from(plaintext));
  assertServiceError(
    await failure(client.send(new DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: { ...unicode, "名前": "値" } }))),
    InvalidCiphertextException,
  );

  const tampered = Uint8Array.from(encrypted.CiphertextBlob);
  tampered[tampered.length - 1] ^= 1;
  assertServiceError(
    await failure(client.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context }))),
    InvalidCiphertextException,
  );
});

test("GenerateDataKey returns a plaintext key that Decrypt recovers from its blob", async () => {
  const key = await createKey();
  const context = { bucket: "js" };
  const dataKey = await client.send(new GenerateDataKeyCommand({ KeyId: key.Arn, KeySpec: "AES_256", EncryptionContext: context }));
  assert.equal(dataKey.KeyId, key.Arn);
  assert.equal(dataKey.Plaintext.length, 32);
  const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: dataKey.CiphertextBlob, EncryptionContext: context, KeyId: key.KeyId }));
  assert.deepEqual(Buffer.from(decrypted.Plaintext), Buffer.from(dataKey.Plaintext));

  const other = await client.send(new GenerateDataKeyCommand({ KeyId: key.Arn, NumberOfBytes: 16 }));
  assert.equal(other.Plaintext.length, 16);
  const random = await client.send(new GenerateRandomCommand({ NumberOfBytes: 32 }));
  assert.equal(random.Plaintext.length, 32);
});

test("ReEncrypt moves a ciphertext to another key and context", async () => {
  const [source, destination] = [await createKey(), await createKey()];
  const plaintext = bytes("re-encrypt me");
  const { CiphertextBlob } = await client.send(new EncryptCommand({ KeyId: source.KeyId, Plaintext: plaintext, EncryptionContext: { v: "1" } }));
  const re = await client.send(
    new ReEncryptCommand({
      CiphertextBlob,
      SourceEncryptionContext: { v: "1" },
      DestinationKeyId: destination.KeyId,
      DestinationEncryptionContext: { v: "2" },
    }),
  );
  assert.equal(re.SourceKeyId, source.Arn);
  assert.equal(re.KeyId, destination.Arn);
  assert.equal(re.SourceEncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  assert.equal(re.DestinationEncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { v: "2" } }));
  assert.equal(decrypted.KeyId, destination.Arn);
  assert.deepEqual(Buffer.from(decrypted.Plaintext), Buffer.from(plaintext));
  assertServiceError(
    await failure(client.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { v: "1" } }))),
    InvalidCiphertextException,
  );
});

test("ECC_NIST_P256 Sign is verified by Node's crypto with the GetPublicKey DER, and by Verify", async () => {
  const key = await createKey({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" });
  assert.deepEqual(key.SigningAlgorithms, ["ECDSA_SHA_256"]);
  const pub = await client.send(new GetPublicKeyCommand({ KeyId: key.KeyId }));
  assert.equal(pub.KeySpec, "ECC_NIST_P256");
  assert.equal(pub.KeyUsage, "SIGN_VERIFY");
  assert.deepEqual(pub.SigningAlgorithms, ["ECDSA_SHA_256"]);
  const publicKey = crypto.createPublicKey({ key: Buffer.from(pub.PublicKey), format: "der", type: "spki" });
  assert.equal(publicKey.asymmetricKeyType, "ec");
  assert.equal(publicKey.asymmetricKeyDetails.namedCurve, "prime256v1");

  const message = bytes("signed by the server, checked by node");
  const signed = await client.send(new SignCommand({ KeyId: key.KeyId, Message: message, MessageType: "RAW", SigningAlgorithm: "ECDSA_SHA_256" }));
  assert.equal(signed.KeyId, key.Arn);
  assert.equal(signed.SigningAlgorithm, "ECDSA_SHA_256");
  assert.equal(crypto.verify("sha256", message, publicKey, Buffer.from(signed.Signature)), true);
  assert.equal(crypto.verify("sha256", bytes("another message"), publicKey, Buffer.from(signed.Signature)), false);

  // A digest signed by the server verifies as a signature of its message.
  const digest = crypto.createHash("sha256").update(message).digest();
  const signedDigest = await client.send(new SignCommand({ KeyId: key.KeyId, Message: digest, MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" }));
  assert.equal(crypto.verify("sha256", message, publicKey, Buffer.from(signedDigest.Signature)), true);

  const verified = await client.send(
    new VerifyCommand({ KeyId: key.KeyId, Message: message, Signature: signed.Signature, SigningAlgorithm: "ECDSA_SHA_256" }),
  );
  assert.equal(verified.SignatureValid, true);
  // A signature made in Node with another key is not one of the KMS key's.
  const { privateKey: stranger } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  const foreign = crypto.sign("sha256", message, stranger);
  const err = await failure(client.send(new VerifyCommand({ KeyId: key.KeyId, Message: message, Signature: foreign, SigningAlgorithm: "ECDSA_SHA_256" })));
  assertServiceError(err, KMSInvalidSignatureException);
});

test("RSA OAEP-SHA-256: encrypted in Node with the public key, decrypted by the server", async () => {
  const key = await createKey({ KeySpec: "RSA_2048", KeyUsage: "ENCRYPT_DECRYPT" });
  assert.deepEqual(key.EncryptionAlgorithms, ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
  const pub = await client.send(new GetPublicKeyCommand({ KeyId: key.Arn }));
  const publicKey = crypto.createPublicKey({ key: Buffer.from(pub.PublicKey), format: "der", type: "spki" });
  assert.equal(publicKey.asymmetricKeyDetails.modulusLength, 2048);
  const plaintext = bytes("encrypted in node");
  const ciphertext = crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, plaintext);
  const decrypted = await client.send(new DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: ciphertext, EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
  assert.deepEqual(Buffer.from(decrypted.Plaintext), Buffer.from(plaintext));
  assert.equal(decrypted.EncryptionAlgorithm, "RSAES_OAEP_SHA_256");
  // The same ciphertext under the other OAEP hash does not decrypt.
  assertServiceError(
    await failure(client.send(new DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: ciphertext, EncryptionAlgorithm: "RSAES_OAEP_SHA_1" }))),
    InvalidCiphertextException,
  );
});

test("GenerateMac and VerifyMac with an HMAC_256 key", async () => {
  const key = await createKey({ KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC" });
  assert.deepEqual(key.MacAlgorithms, ["HMAC_SHA_256"]);
  const message = bytes("authenticate me");
  const mac = await client.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_256" }));
  assert.equal(mac.KeyId, key.Arn);
  assert.equal(mac.MacAlgorithm, "HMAC_SHA_256");
  assert.equal(mac.Mac.length, 32);
  const again = await client.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_256" }));
  assert.deepEqual(Buffer.from(again.Mac), Buffer.from(mac.Mac), "HMAC is deterministic");
  const ok = await client.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: message, Mac: mac.Mac, MacAlgorithm: "HMAC_SHA_256" }));
  assert.equal(ok.MacValid, true);
  const wrong = Uint8Array.from(mac.Mac);
  wrong[0] ^= 0x80;
  const err = await failure(client.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: message, Mac: wrong, MacAlgorithm: "HMAC_SHA_256" })));
  assertServiceError(err, KMSInvalidMacException);
});
