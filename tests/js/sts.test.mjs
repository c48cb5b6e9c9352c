// STS through @aws-sdk/client-sts on the KMS endpoint: GetCallerIdentity, AssumeRole (the
// server's role and trust policy from tests/cli/js-sdk.sh), then KMS with the temporary
// credentials (the SDK sends X-Amz-Security-Token): allowed where the key policy names the
// role, AccessDeniedException where it does not, UnrecognizedClientException with a wrong token.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSServiceException } from "@aws-sdk/client-sts";
import {
  CreateKeyCommand,
  DecryptCommand,
  EncryptCommand,
  KMSServiceException,
  ListKeysCommand,
} from "@aws-sdk/client-kms";
import { account, assertDateNear, assertServiceError, deployer, failure, kms, role, sts } from "./common.mjs";

const admin = kms();

// A key policy: administrators manage it, `principal` may Encrypt and Decrypt.
const policy = (principal) =>
  JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      { Sid: "Admins", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: "kms:*", Resource: "*" },
      { Sid: "Use", Effect: "Allow", Principal: { AWS: principal }, Action: ["kms:Encrypt", "kms:Decrypt"], Resource: "*" },
    ],
  });

test("GetCallerIdentity names the signing user", async () => {
  const id = await sts(deployer).send(new GetCallerIdentityCommand({}));
  assert.equal(id.Arn, deployer.arn);
  assert.equal(id.UserId, deployer.userId);
  assert.equal(id.Account, account);
  assert.equal(id.$metadata.httpStatusCode, 200);
  assert.ok(id.$metadata.requestId, "a request id");
});

test("AssumeRole, then KMS with the temporary credentials", async () => {
  const roleKey = (await admin.send(new CreateKeyCommand({ Policy: policy(role.arn) }))).KeyMetadata;
  const otherKey = (await admin.send(new CreateKeyCommand({ Policy: policy(deployer.arn) }))).KeyMetadata;

  const sessionName = "js-session";
  const before = Date.now();
  const assumed = await sts(deployer).send(new AssumeRoleCommand({ RoleArn: role.arn, RoleSessionName: sessionName, DurationSeconds: 900 }));
  const c = assumed.Credentials;
  assert.match(c.AccessKeyId, /^ASIA[A-Z2-7]{16}$/);
  assert.equal(c.SecretAccessKey.length, 40);
  assert.ok(c.SessionToken.length > 0);
  assertDateNear(c.Expiration, before + 900 * 1000, 60 * 1000);
  const sessionArn = `arn:aws:sts::${account}:assumed-role/${role.arn.split("/").pop()}/${sessionName}`;
  assert.equal(assumed.AssumedRoleUser.Arn, sessionArn);
  assert.equal(assumed.AssumedRoleUser.AssumedRoleId, `${role.roleId}:${sessionName}`);

  const session = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  const me = await sts(session).send(new GetCallerIdentityCommand({}));
  assert.equal(me.Arn, sessionArn);
  assert.equal(me.UserId, `${role.roleId}:${sessionName}`);

  const asRole = kms(session);
  const plaintext = new TextEncoder().encode("with a role session");
  const { CiphertextBlob, KeyId } = await asRole.send(new EncryptCommand({ KeyId: roleKey.Arn, Plaintext: plaintext }));
  assert.equal(KeyId, roleKey.Arn);
  const decrypted = await asRole.send(new DecryptCommand({ CiphertextBlob }));
  assert.deepEqual(Buffer.from(decrypted.Plaintext), Buffer.from(plaintext));

  const denied = await failure(asRole.send(new EncryptCommand({ KeyId: otherKey.Arn, Plaintext: plaintext })));
  assertServiceError(denied, KMSServiceException, { name: "AccessDeniedException" });
  assert.equal(
    denied.message,
    `User: ${sessionArn} is not authorized to perform: kms:Encrypt on resource: ${otherKey.Arn} because no resource-based policy allows the kms:Encrypt action`,
  );

  // A token that is not the session's, and the session's keys without their token.
  for (const credentials of [
    { ...session, sessionToken: Buffer.from("not-the-token").toString("base64") },
    { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey },
  ]) {
    const err = await failure(kms(credentials).send(new ListKeysCommand({})));
    assertServiceError(err, KMSServiceException, { name: "UnrecognizedClientException" });
    assert.equal(err.message, "The security token included in the request is invalid.");
  }
});

test("AssumeRole of a role that does not trust the caller is AccessDenied (HTTP 403)", async () => {
  const roleArn = `arn:aws:iam::${account}:role/nobody`;
  const err = await failure(sts(deployer).send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: "s1" })));
  assert.ok(err instanceof STSServiceException, `${err.name}: ${err.message}`);
  assert.equal(err.name, "AccessDenied");
  assert.equal(err.$fault, "client");
  assert.equal(err.$metadata.httpStatusCode, 403);
  assert.equal(err.$metadata.attempts, 1);
  assert.ok(err.$metadata.requestId, "a request id");
  assert.equal(err.message, `User: ${deployer.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`);
});
