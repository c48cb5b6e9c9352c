// Reads the page's results from a Chromium --dump-dom file and asserts them.
// `node check.mjs cors DOM ACCOUNT`: every call worked across origins, and the SDK saw the
// request ids and the error's name. `node check.mjs blocked DOM`: the browser refused every
// call (CORS off), so the SDK saw only network errors.
import assert from "node:assert/strict";
import fs from "node:fs";

const [mode, domFile, account] = process.argv.slice(2);
const dom = fs.readFileSync(domFile, "utf8");
const encoded = dom.match(/<pre id="result">([^<]*)<\/pre>/)?.[1];
assert.ok(encoded && encoded !== "pending", `the page did not finish: ${dom.slice(0, 2000)}`);
const r = JSON.parse(decodeURIComponent(encoded));
console.log(JSON.stringify(r, null, 2));

const requestId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const calls = ["CreateKey", "Encrypt", "Decrypt", "DecryptGarbage", "GetCallerIdentity"];
if (mode === "cors") {
  assert.equal(r.CreateKey.ok, true, "CreateKey");
  assert.match(r.CreateKey.keyId, /^[0-9a-f-]{36}$/);
  assert.equal(r.Encrypt.ok, true, "Encrypt");
  assert.ok(r.Encrypt.bytes > 20);
  assert.equal(r.Decrypt.ok, true, "Decrypt");
  assert.equal(r.Decrypt.plaintext, r.expected.plaintext);
  assert.ok(r.Decrypt.keyId.endsWith(`:key/${r.CreateKey.keyId}`), r.Decrypt.keyId);
  // The error as an application sees it: the modelled exception, from the server.
  assert.equal(r.DecryptGarbage.ok, false);
  assert.equal(r.DecryptGarbage.name, "InvalidCiphertextException");
  assert.equal(r.DecryptGarbage.fault, "client");
  assert.equal(r.DecryptGarbage.status, 400);
  assert.equal(r.GetCallerIdentity.ok, true, "GetCallerIdentity");
  assert.equal(r.GetCallerIdentity.account, account);
  // x-amzn-RequestId is exposed (Access-Control-Expose-Headers), or the SDK could not read it.
  for (const call of calls) assert.match(r[call].requestId ?? "", requestId, `${call} request id`);
} else if (mode === "blocked") {
  for (const call of calls) {
    assert.equal(r[call].ok, false, call);
    // fetch's CORS refusal; the SDK has no status and no request id to show.
    assert.equal(r[call].name, "TypeError", `${call}: ${r[call].message}`);
    assert.equal(r[call].status, undefined, call);
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
console.log(`browser (${mode}): passed`);
