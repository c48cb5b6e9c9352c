// The SDK's client machinery against the server: a client configured only from the environment
// (AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL_STS, as the README tells SDK users), clock-skew
// correction from the server's Date header after "Signature expired", STS's 15-minute skew
// window (KMS's is 5), and many concurrent requests over the SDK's keep-alive connection pool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DecryptCommand, GenerateDataKeyCommand, KMSClient, KMSServiceException, CreateKeyCommand, ListKeysCommand } from "@aws-sdk/client-kms";
import { GetCallerIdentityCommand, STSClient, STSServiceException } from "@aws-sdk/client-sts";
import { account, admin, assertServiceError, endpoint, failure, kms, region, sts } from "./common.mjs";

test("a client configured only from the environment reaches the server", async () => {
  // This test file runs in its own process: changing its environment affects no other file.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_KMS: endpoint,
    AWS_ENDPOINT_URL_STS: endpoint,
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: admin.accessKeyId,
    AWS_SECRET_ACCESS_KEY: admin.secretAccessKey,
  });
  try {
    const keys = await new KMSClient({ maxAttempts: 1 }).send(new ListKeysCommand({ Limit: 1 }));
    assert.equal(keys.$metadata.httpStatusCode, 200);
    const id = await new STSClient({ maxAttempts: 1 }).send(new GetCallerIdentityCommand({}));
    assert.equal(id.Account, account);
  } finally {
    for (const name of ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
      delete process.env[name];
    }
  }
});

test("a client clock 20 minutes slow: Signature expired, then the SDK corrects its clock and retries", async () => {
  const slow = -20 * 60 * 1000;
  const once = kms(admin, { systemClockOffset: slow });
  const err = await failure(once.send(new ListKeysCommand({})));
  assertServiceError(err, KMSServiceException, { name: "InvalidSignatureException" });
  // The SDK retries InvalidSignatureException only when the message says "Signature expired".
  assert.match(err.message, /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - \d+ min\.\)$/);
  // It took the server's time from the error's Date header.
  assert.ok(Math.abs(once.config.systemClockOffset) < 5000, `offset ${once.config.systemClockOffset} ms`);

  const retrying = kms(admin, { systemClockOffset: slow, maxAttempts: 2 });
  const listed = await retrying.send(new ListKeysCommand({}));
  assert.equal(listed.$metadata.attempts, 2);
  assert.ok(Math.abs(retrying.config.systemClockOffset) < 5000, `offset ${retrying.config.systemClockOffset} ms`);
});

test("STS accepts a clock 10 minutes off (AWS STS's window is 15 minutes, KMS's 5)", async () => {
  const tenMinutesSlow = -10 * 60 * 1000;
  const id = await sts(admin, { systemClockOffset: tenMinutesSlow }).send(new GetCallerIdentityCommand({}));
  assert.equal(id.Account, account);
  assert.equal(id.$metadata.attempts, 1);
  const kmsErr = await failure(kms(admin, { systemClockOffset: tenMinutesSlow }).send(new ListKeysCommand({})));
  assertServiceError(kmsErr, KMSServiceException, { name: "InvalidSignatureException" });

  // Past 15 minutes: SignatureDoesNotMatch (403), which the SDK does not retry on STS.
  const stsErr = await failure(sts(admin, { systemClockOffset: -20 * 60 * 1000, maxAttempts: 3 }).send(new GetCallerIdentityCommand({})));
  assertServiceError(stsErr, STSServiceException, { name: "SignatureDoesNotMatch", status: 403 });
  assert.match(stsErr.message, /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$/);
});

test("60 concurrent GenerateDataKey and Decrypt calls on one client", async () => {
  const client = kms();
  const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
  const n = 60;
  const context = (i) => ({ request: String(i) });
  const dataKeys = await Promise.all(
    Array.from({ length: n }, (_, i) => client.send(new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 32, EncryptionContext: context(i) }))),
  );
  const requestIds = new Set(dataKeys.map((d) => d.$metadata.requestId));
  assert.equal(requestIds.size, n, "one request id per request");
  const decrypted = await Promise.all(
    dataKeys.map((d, i) => client.send(new DecryptCommand({ CiphertextBlob: d.CiphertextBlob, EncryptionContext: context(i) }))),
  );
  decrypted.forEach((d, i) => assert.deepEqual(Buffer.from(d.Plaintext), Buffer.from(dataKeys[i].Plaintext), `request ${i}`));
});
