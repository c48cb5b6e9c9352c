// The page's origin for tests/cli/browser.sh: serves index.html and bundle.js from the
// directory given as the first argument, on 127.0.0.1 and a free port, which it prints.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const files = {
  "/": ["index.html", "text/html"],
  "/index.html": ["index.html", "text/html"],
  "/bundle.js": ["bundle.js", "text/javascript"],
};
const server = http.createServer((req, res) => {
  const file = files[new URL(req.url, "http://127.0.0.1").pathname];
  if (!file || req.method !== "GET") {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": `${file[1]}; charset=utf-8`, "cache-control": "no-store" });
  fs.createReadStream(path.join(dir, file[0])).pipe(res);
});
server.listen(0, "127.0.0.1", () => console.log(`http://127.0.0.1:${server.address().port}`));
