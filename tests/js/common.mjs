// Shared by the tests: the spawned server (from tests/cli/js-sdk.sh's environment), clients
// built the way an application points the SDK at a local KMS, and small assertions.
import assert from "node:assert/strict";
import { KMSClient } from "@aws-sdk/client-kms";
import { STSClient } from "@aws-sdk/client-sts";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through tests/cli/js-sdk.sh`);
  return value;
}

export const endpoint = env("KMS_JS_ENDPOINT");
export const account = env("KMS_JS_ACCOUNT");
export const region = "us-east-1";
export const admin = { accessKeyId: env("KMS_JS_ADMIN_KEY"), secretAccessKey: env("KMS_JS_ADMIN_SECRET") };
export const deployer = {
  accessKeyId: env("KMS_JS_DEPLOYER_KEY"),
  secretAccessKey: env("KMS_JS_DEPLOYER_SECRET"),
  arn: env("KMS_JS_DEPLOYER_ARN"),
  userId: env("KMS_JS_DEPLOYER_ID"),
};
export const role = { arn: env("KMS_JS_ROLE_ARN"), roleId: env("KMS_JS_ROLE_ID") };

// A KMS client. `maxAttempts: 1` unless overridden: an error the server sends must reach the
// test as sent, not be retried away.
export function kms(credentials = admin, options = {}) {
  return new KMSClient({ endpoint, region, credentials, maxAttempts: 1, ...options });
}

// An STS client on the same endpoint (the server answers STS's query protocol there too).
export function sts(credentials = admin, options = {}) {
  return new STSClient({ endpoint, region, credentials, maxAttempts: 1, ...options });
}

// The error `promise` rejects with; fails the test if it resolves.
export async function failure(promise) {
  try {
    const value = await promise;
    assert.fail(`expected an error, got ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

// Asserts an SDK service error: its class, name, fault, HTTP status, request id and attempts.
// An exception the service model does not list (ThrottlingException, AccessDeniedException, ...)
// is the client's base class (`KMSServiceException`) with the server's `__type` as `name`.
export function assertServiceError(err, ErrorClass, { name = ErrorClass.name, status = 400, fault = "client", attempts = 1 } = {}) {
  assert.ok(err instanceof ErrorClass, `expected ${name} (${ErrorClass.name}), got ${err?.name}: ${err?.message}`);
  assert.equal(err.name, name);
  assert.equal(err.$fault, fault);
  assert.equal(err.$metadata.httpStatusCode, status);
  assert.match(err.$metadata.requestId ?? "", /^[0-9a-f-]{36}$/);
  assert.equal(err.$metadata.attempts, attempts);
}

export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Asserts `value` is a valid Date within `slackMs` of `expectedMs` (epoch milliseconds).
export function assertDateNear(value, expectedMs, slackMs = 5 * 60 * 1000) {
  assert.ok(value instanceof Date, `expected a Date, got ${typeof value}: ${value}`);
  assert.ok(!Number.isNaN(value.getTime()), "the Date is invalid");
  assert.ok(Math.abs(value.getTime() - expectedMs) <= slackMs, `${value.toISOString()} is not near ${new Date(expectedMs).toISOString()}`);
}
