// The browser side of tests/cli/browser.sh: the AWS SDK for JavaScript v3, bundled for the
// browser by esbuild, calls a kms server on another origin (so the browser does CORS) and
// writes what each call returned into the page, URI-encoded JSON in #result, for the script
// to read from Chromium's --dump-dom, which prints the DOM at the load event: the page holds
// that event until it is done (serve.mjs, /hold and /release). The server's endpoint and a credential come in the
// fragment (#endpoint=...&akid=...&secret=...), which the page's own server never sees.
import { KMSClient, CreateKeyCommand, EncryptCommand, DecryptCommand } from "@aws-sdk/client-kms";
import { STSClient, GetCallerIdentityCommand } from "@aws-sdk/client-sts";

const params = new URLSearchParams(location.hash.slice(1));
const config = {
  endpoint: params.get("endpoint"),
  region: "us-east-1",
  credentials: { accessKeyId: params.get("akid"), secretAccessKey: params.get("secret") },
  // One attempt: what the browser let through (or refused) is what the page reports.
  maxAttempts: 1,
};
const kms = new KMSClient(config);
const sts = new STSClient(config);
const results = {};

// Runs one call; records its result, or the error as the SDK surfaces it to an application.
async function step(name, call) {
  try {
    results[name] = { ok: true, ...(await call()) };
  } catch (e) {
    results[name] = {
      ok: false,
      name: e.name,
      message: String(e.message),
      fault: e.$fault,
      status: e.$metadata?.httpStatusCode,
      requestId: e.$metadata?.requestId,
    };
  }
}

const plaintext = "hello from a browser";
let keyId;
let ciphertext;
await step("CreateKey", async () => {
  const out = await kms.send(new CreateKeyCommand({ Description: "browser test" }));
  keyId = out.KeyMetadata.KeyId;
  // requestId comes from x-amzn-RequestId: readable only if the server exposes it.
  return { keyId, requestId: out.$metadata.requestId };
});
await step("Encrypt", async () => {
  const out = await kms.send(
    new EncryptCommand({ KeyId: keyId ?? "alias/none", Plaintext: new TextEncoder().encode(plaintext) }),
  );
  ciphertext = out.CiphertextBlob;
  return { keyId: out.KeyId, bytes: ciphertext.length, requestId: out.$metadata.requestId };
});
await step("Decrypt", async () => {
  const out = await kms.send(new DecryptCommand({ CiphertextBlob: ciphertext ?? new Uint8Array(64) }));
  return { keyId: out.KeyId, plaintext: new TextDecoder().decode(out.Plaintext), requestId: out.$metadata.requestId };
});
await step("DecryptGarbage", async () => {
  const garbage = crypto.getRandomValues(new Uint8Array(64));
  const out = await kms.send(new DecryptCommand({ CiphertextBlob: garbage }));
  return { unexpected: out.KeyId };
});
await step("GetCallerIdentity", async () => {
  const out = await sts.send(new GetCallerIdentityCommand({}));
  return { arn: out.Arn, account: out.Account, requestId: out.$metadata.requestId };
});

results.expected = { plaintext };
document.getElementById("result").textContent = encodeURIComponent(JSON.stringify(results));
// Lets the load event happen (index.html's held image), and with it the DOM dump.
await fetch("release");
