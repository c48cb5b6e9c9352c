// Key management through @aws-sdk/client-kms: CreateKey/DescribeKey (the metadata as the SDK
// deserializes it: Dates, enums), aliases and keys listed page by page with the SDK's
// paginators, tags, key deletion scheduling, and NotFoundException as the SDK's typed error.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  KMSServiceException,
  ListResourceTagsCommand,
  NotFoundException,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UntagResourceCommand,
  paginateListAliases,
  paginateListKeys,
} from "@aws-sdk/client-kms";
import { account, assertDateNear, assertServiceError, failure, kms, region, uuidPattern } from "./common.mjs";

const client = kms();

test("CreateKey and DescribeKey return the metadata with Dates and AWS's enum values", async () => {
  const before = Date.now();
  const created = await client.send(new CreateKeyCommand({ Description: "js sdk key" }));
  assert.equal(created.$metadata.httpStatusCode, 200);
  assert.match(created.$metadata.requestId, uuidPattern);
  const m = created.KeyMetadata;
  assert.match(m.KeyId, uuidPattern);
  assert.equal(m.Arn, `arn:aws:kms:${region}:${account}:key/${m.KeyId}`);
  assert.equal(m.AWSAccountId, account);
  assertDateNear(m.CreationDate, before);
  assert.equal(m.Description, "js sdk key");
  assert.equal(m.Enabled, true);
  assert.equal(m.KeyState, "Enabled");
  assert.equal(m.KeyUsage, "ENCRYPT_DECRYPT");
  assert.equal(m.KeySpec, "SYMMETRIC_DEFAULT");
  assert.equal(m.CustomerMasterKeySpec, "SYMMETRIC_DEFAULT");
  assert.equal(m.Origin, "AWS_KMS");
  assert.equal(m.KeyManager, "CUSTOMER");
  assert.equal(m.MultiRegion, false);
  assert.deepEqual(m.EncryptionAlgorithms, ["SYMMETRIC_DEFAULT"]);

  const described = (await client.send(new DescribeKeyCommand({ KeyId: m.Arn }))).KeyMetadata;
  assert.equal(described.KeyId, m.KeyId);
  assert.equal(described.CreationDate.getTime(), m.CreationDate.getTime());
  assert.equal(described.DeletionDate, undefined);
});

test("aliases and keys are listed page by page with the SDK paginators", async () => {
  const suffix = Date.now().toString(36);
  const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
  const names = ["a", "b", "c"].map((n) => `alias/js-page-${suffix}-${n}`);
  for (const AliasName of names) {
    await client.send(new CreateAliasCommand({ AliasName, TargetKeyId: keyId }));
  }
  const described = await client.send(new DescribeKeyCommand({ KeyId: names[1] }));
  assert.equal(described.KeyMetadata.KeyId, keyId);

  const pages = [];
  for await (const page of paginateListAliases({ client, pageSize: 2 }, { KeyId: keyId })) {
    pages.push(page);
  }
  assert.equal(pages.length, 2, "three aliases, two per page");
  assert.equal(pages[0].Aliases.length, 2);
  assert.equal(pages[0].Truncated, true);
  assert.ok(pages[0].NextMarker, "a truncated page has a NextMarker");
  assert.equal(pages[1].Truncated, false);
  const aliases = pages.flatMap((p) => p.Aliases);
  assert.deepEqual(aliases.map((a) => a.AliasName).sort(), names);
  for (const a of aliases) {
    assert.equal(a.TargetKeyId, keyId);
    assert.equal(a.AliasArn, `arn:aws:kms:${region}:${account}:${a.AliasName}`);
    assertDateNear(a.CreationDate, Date.now());
  }

  // Enough keys for three pages of two, whatever the other test files create meanwhile.
  const created = [keyId];
  for (let i = 0; i < 4; i++) created.push((await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId);
  let pageCount = 0;
  const listed = [];
  for await (const page of paginateListKeys({ client, pageSize: 2 }, {})) {
    pageCount++;
    assert.ok(page.Keys.length <= 2, `a page of ${page.Keys.length} keys with Limit 2`);
    listed.push(...page.Keys);
  }
  assert.ok(pageCount >= 3, `${pageCount} pages`);
  const ids = listed.map((k) => k.KeyId);
  assert.equal(new Set(ids).size, ids.length, "no key listed twice across pages");
  for (const id of created) assert.ok(ids.includes(id), `key ${id} listed`);
  for (const k of listed) assert.equal(k.KeyArn, `arn:aws:kms:${region}:${account}:key/${k.KeyId}`);
});

test("TagResource, ListResourceTags and UntagResource", async () => {
  const keyId = (
    await client.send(new CreateKeyCommand({ Tags: [{ TagKey: "team", TagValue: "payments" }] }))
  ).KeyMetadata.KeyId;
  await client.send(
    new TagResourceCommand({
      KeyId: keyId,
      Tags: [
        { TagKey: "env", TagValue: "test" },
        { TagKey: "team", TagValue: "platform" },
      ],
    }),
  );
  const tags = async () =>
    (await client.send(new ListResourceTagsCommand({ KeyId: keyId }))).Tags.sort((a, b) => a.TagKey.localeCompare(b.TagKey));
  assert.deepEqual(await tags(), [
    { TagKey: "env", TagValue: "test" },
    { TagKey: "team", TagValue: "platform" },
  ]);
  await client.send(new UntagResourceCommand({ KeyId: keyId, TagKeys: ["env"] }));
  assert.deepEqual(await tags(), [{ TagKey: "team", TagValue: "platform" }]);
});

test("ScheduleKeyDeletion returns the deletion Date and DescribeKey shows it", async () => {
  const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata.KeyId;
  const scheduled = await client.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
  const sevenDays = Date.now() + 7 * 24 * 3600 * 1000;
  assertDateNear(scheduled.DeletionDate, sevenDays);
  assert.equal(scheduled.KeyState, "PendingDeletion");
  assert.equal(scheduled.PendingWindowInDays, 7);
  const m = (await client.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata;
  assert.equal(m.KeyState, "PendingDeletion");
  assert.equal(m.Enabled, false);
  assert.equal(m.DeletionDate.getTime(), scheduled.DeletionDate.getTime());
});

test("an unknown key is NotFoundException with AWS's message", async () => {
  const keyId = "1234abcd-12ab-34cd-56ef-1234567890ab";
  const err = await failure(client.send(new DescribeKeyCommand({ KeyId: keyId })));
  assertServiceError(err, NotFoundException);
  assert.ok(err instanceof KMSServiceException);
  assert.equal(err.message, `Key 'arn:aws:kms:${region}:${account}:key/${keyId}' does not exist`);

  const alias = await failure(client.send(new DescribeKeyCommand({ KeyId: "alias/js-no-such-alias" })));
  assertServiceError(alias, NotFoundException);
  assert.equal(alias.message, `Alias arn:aws:kms:${region}:${account}:alias/js-no-such-alias is not found.`);
});
