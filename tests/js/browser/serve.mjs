// The page's origin for tests/cli/browser.sh: serves index.html and bundle.js from the
// directory given as the first argument, on 127.0.0.1 and a free port, which it prints.
// GET /hold (an image of index.html) is answered only once the page has asked for
// GET /release, or after 30 s: it holds the page's load event, when Chromium's --dump-dom
// prints the DOM, until the page has written its results.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const files = {
  "/": ["index.html", "text/html"],
  "/index.html": ["index.html", "text/html"],
  "/bundle.js": ["bundle.js", "text/javascript"],
};
// Whether the page loaded last has asked for /release, and the /hold requests waiting for it.
let released = false;
const held = new Set();
function answer(res) {
  if (held.delete(res)) res.writeHead(204).end();
}

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url, "http://127.0.0.1").pathname;
  if (req.method !== "GET") {
    res.writeHead(405).end();
  } else if (pathname === "/hold") {
    held.add(res);
    if (released) answer(res);
    else setTimeout(() => answer(res), 30_000).unref();
  } else if (pathname === "/release") {
    released = true;
    res.writeHead(204).end();
    for (const waiting of [...held]) answer(waiting);
  } else if (files[pathname]) {
    // A new page load: its /hold waits for its own /release.
    if (files[pathname][0] === "index.html") released = false;
    const [file, type] = files[pathname];
    res.writeHead(200, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" });
    fs.createReadStream(path.join(dir, file)).pipe(res);
  } else {
    res.writeHead(404).end();
  }
});
server.listen(0, "127.0.0.1", () => console.log(`http://127.0.0.1:${server.address().port}`));
