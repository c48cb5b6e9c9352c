// Quotas and the SDK's retries: the server's LimitExceededException and ThrottlingException come
// back as the SDK's typed errors; with retries on, the SDK retries exactly those it classifies as
// throttling and still surfaces the error, and it does not retry a client error such as
// NotFoundException. tests/cli/js-sdk.sh sets aliases_per_key = 3 and ListKeyRotations to one
// request per 1000 s (this file is the only caller).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  KMSServiceException,
  LimitExceededException,
  ListKeyRotationsCommand,
  NotFoundException,
} from "@aws-sdk/client-kms";
import { account, assertServiceError, failure, kms, region } from "./common.mjs";

const client = kms();
const throttleMessage = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";

test("the fourth alias of a key is LimitExceededException; with retries the SDK retries it and still fails", async () => {
  const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
  const prefix = `alias/js-quota-${Date.now().toString(36)}`;
  for (const n of [1, 2, 3]) await client.send(new CreateAliasCommand({ AliasName: `${prefix}-${n}`, TargetKeyId: keyId }));
  const err = await failure(client.send(new CreateAliasCommand({ AliasName: `${prefix}-4`, TargetKeyId: keyId })));
  assertServiceError(err, LimitExceededException);
  assert.equal(err.message, "Aliases per key quota for this account in this region is 3, current usage is 3.");

  // The SDK counts LimitExceededException as throttling: two attempts, then the same error.
  const retrying = kms(undefined, { maxAttempts: 2 });
  const retried = await failure(retrying.send(new CreateAliasCommand({ AliasName: `${prefix}-5`, TargetKeyId: keyId })));
  assertServiceError(retried, LimitExceededException, { attempts: 2 });
});

test("over an operation's rate is ThrottlingException; the SDK retries it and surfaces it", async () => {
  const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
  const first = await client.send(new ListKeyRotationsCommand({ KeyId: keyId }));
  assert.deepEqual(first.Rotations, []);

  const err = await failure(client.send(new ListKeyRotationsCommand({ KeyId: keyId })));
  assertServiceError(err, KMSServiceException, { name: "ThrottlingException" });
  assert.equal(err.message, throttleMessage);

  const retrying = kms(undefined, { maxAttempts: 2 });
  const retried = await failure(retrying.send(new ListKeyRotationsCommand({ KeyId: keyId })));
  assertServiceError(retried, KMSServiceException, { name: "ThrottlingException", attempts: 2 });
});

test("a client error is not retried: NotFoundException after one attempt with retries on", async () => {
  const retrying = kms(undefined, { maxAttempts: 3 });
  const keyId = "00000000-0000-0000-0000-000000000000";
  const err = await failure(retrying.send(new DescribeKeyCommand({ KeyId: keyId })));
  assertServiceError(err, NotFoundException, { attempts: 1 });
  assert.equal(err.message, `Key 'arn:aws:kms:${region}:${account}:key/${keyId}' does not exist`);
});
