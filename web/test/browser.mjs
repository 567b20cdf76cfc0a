// What the browser test and the browser benchmark share: a static server over the repository
// on localhost, and Debian's headless Chromium with or without WebGPU (SwiftShader).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/// The repository's root.
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".json": "application/json", ".png": "image/png" };

/// Serves `root` on 127.0.0.1 (a free port); resolves to `{ base, close }`.
export async function serve() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname))
      .replace(/^(\.\.[/\\])+/, "");
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { "content-type": types[extname(path)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

// Without the networking flags Chromium keeps trying hosts this network refuses.
const flags = ["--no-sandbox", "--disable-gpu-sandbox", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/// Debian's Chromium, headless; `webgpu` adds --enable-unsafe-webgpu (SwiftShader's adapter).
export function launch(webgpu) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
    args: webgpu ? [...flags, "--enable-unsafe-webgpu"] : flags,
  });
}
