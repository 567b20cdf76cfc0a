// The browser tests: serves the repository over HTTP on localhost, then drives Debian's headless
// Chromium with Playwright twice:
//   1. with --enable-unsafe-webgpu (WebGPU on SwiftShader): every test of web/test.js on
//      backend "webgpu", which fails where no adapter is offered (REQUIRE_GPU-style), and the
//      demo page: a stroke drawn with the mouse gets a prediction; a screenshot is saved;
//   2. without it (no adapter): the same tests on the CPU fallback, and the demo says "CPU".
// Exit status 1 on any failure.
//
//   node web/test/run.mjs [--screenshot web/screenshot.png]
import { readFile, readdir, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { root, serve, launch } from "./browser.mjs";

const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const screenshot = arg("--screenshot", join(root, "web/test-results/demo.png"));

for (const need of ["web/pkg/wgpu_gru.js", "web/data/digits_gru.safetensors"])
  if (!existsSync(join(root, need))) { console.error(`${need} is missing: run web/build.sh first`); process.exit(1); }

const server = await serve();
const base = server.base;

const golden = (await readdir(join(root, "tests/data/golden")))
  .filter((f) => f.endsWith(".safetensors")).map((f) => f.replace(/\.safetensors$/, "")).sort();
// Whole-model cases whose file stands alone (an .onnx with external data needs its .data file,
// which Model.load(bytes) does not take).
const modelDir = join(root, "tests/data/models");
const models = [];
for (const f of (await readdir(modelDir)).sort()) {
  if (!f.endsWith(".case.safetensors")) continue;
  const bytes = await readFile(join(modelDir, f));
  const n = Number(bytes.readBigUInt64LE(0));
  const meta = JSON.parse(bytes.subarray(8, 8 + n).toString()).__metadata__;
  if (!existsSync(join(modelDir, `${meta.model}.data`))) models.push(f.replace(/\.case\.safetensors$/, ""));
}

let failures = 0;
const fail = (msg) => { failures++; console.log(`FAIL ${msg}`); };

async function session(label, webgpu) {
  const browser = await launch(webgpu);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 600 } });
    page.on("console", (m) => { if (m.type() === "error") console.log(`[${label} console] ${m.text()}`); });
    page.on("pageerror", (e) => console.log(`[${label} page error] ${e}`));
    await page.goto(`${base}/web/test.html`);
    await page.waitForFunction(() => window.testsReady === true);
    const backend = webgpu ? "webgpu" : "auto";
    const t0 = Date.now();
    const results = await page.evaluate((cfg) => window.runTests(cfg), { golden, models, backend });
    const want = webgpu ? "webgpu" : "cpu";
    for (const r of results) {
      const where = r.backend ? ` on ${r.backend}` : "";
      const detail = r.error ? r.error : r.accuracy !== undefined
        ? `accuracy ${(100 * r.accuracy).toFixed(2)} %, ${r.same}/${r.n} as the native reference`
        : `error ${r.err.toExponential(2)}`;
      const ms = r.ms !== undefined ? ` (${(r.ms / 1000).toFixed(1)} s)` : "";
      console.log(`[${label}] ${r.ok ? "ok  " : "FAIL"} ${r.name}${where}: ${detail}${ms}`);
      if (!r.ok) failures++;
      else if (r.backend !== want) fail(`[${label}] ${r.name} ran on ${r.backend}, expected ${want}`);
    }
    const adapter = results.find((r) => r.adapter)?.adapter;
    console.log(`[${label}] ${results.length} tests in ${((Date.now() - t0) / 1000).toFixed(1)} s; adapter: ${adapter}`);
    if (results.length !== golden.length + models.length + 2) fail(`[${label}] ${results.length} results`);

    // The demo: draw a "0" with the mouse, and a prediction appears.
    await page.goto(`${base}/web/index.html`);
    await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 120000 });
    const ready = await page.evaluate(() => document.body.dataset.ready);
    if (ready !== want) fail(`[${label}] the demo started on ${ready}, expected ${want}`);
    const device = await page.textContent("#device");
    console.log(`[${label}] demo: ${device}`);
    if (!webgpu && !/CPU/.test(device)) fail(`[${label}] the demo does not say CPU: ${device}`);
    if (webgpu && !/WebGPU/.test(device)) fail(`[${label}] the demo does not say WebGPU: ${device}`);
    const box = await page.locator("#pad").boundingBox();
    const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
    await page.mouse.move(cx, cy - 95);
    await page.mouse.down();
    for (let i = 1; i <= 36; i++) {
      const a = (i / 36) * 2 * Math.PI;
      await page.mouse.move(cx + 62 * Math.sin(a), cy - 95 * Math.cos(a));
    }
    await page.mouse.up();
    await page.waitForFunction(() => /Prediction: \d/.test(document.getElementById("prediction").textContent));
    console.log(`[${label}] demo after a stroke: ${await page.textContent("#prediction")}; ${await page.textContent("#timing")}`);
    // The second panel: a model file chosen by the user runs on zeros of the shape given.
    await page.setInputFiles("#file", join(root, "tests/data/models/own_k_founding.keras"));
    await page.waitForFunction(() => /output \[/.test(document.getElementById("own").textContent)
      || document.querySelector("#own .warn"), null, { timeout: 120000 });
    const own = await page.textContent("#own");
    console.log(`[${label}] own model panel: ${own}`);
    if (!/output \[1, 10\]/.test(own)) fail(`[${label}] the own-model panel says: ${own}`);
    if (webgpu) {
      await mkdir(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot });
      console.log(`[${label}] screenshot: ${screenshot}`);
    }
  } finally {
    await browser.close();
  }
}

try {
  await session("webgpu", true);
  await session("cpu fallback", false);
} catch (e) {
  fail(String(e));
} finally {
  server.close();
}
console.log(failures ? `browser tests: ${failures} failure(s)` : "browser tests: all passed");
process.exit(failures ? 1 : 0);
