// The browser benchmark: wgpu-gru (WebGPU, CPU) against onnxruntime-web (WebGPU EP, wasm EP) in
// one headless Chromium with WebGPU on SwiftShader, on the latency, seed and long shapes.
//
//   python3 bench/web_models.py target/web-bench    # the ONNX files
//   node web/bench/run.mjs OUT_DIR [--reps N]       # OUT_DIR/results.json, ort.log, a table
//
// SwiftShader is a software WebGPU on this machine's CPU: its times say how the two compare on
// it, not what a GPU does.
import { writeFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { root, serve, launch } from "../test/browser.mjs";

const out = process.argv[2] || join(root, "bench/results/web-swiftshader");
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const reps = Number(arg("--reps", 5));
const shapes = [
  { name: "latency", b: 1, t: 256, i: 256, h: 256 },
  { name: "seed", b: 32, t: 64, i: 64, h: 128 },
  { name: "long", b: 1, t: 4096, i: 32, h: 128, reps: 3 },
].map((s) => ({ ...s, url: `/target/web-bench/${s.name}.onnx` }));
for (const s of shapes)
  if (!existsSync(join(root, s.url))) { console.error(`${s.url} missing: python3 bench/web_models.py target/web-bench`); process.exit(1); }
const engines = (arg("--engines", "wgpu-gru webgpu,wgpu-gru cpu,onnxruntime-web webgpu,onnxruntime-web wasm")).split(",");

const server = await serve();
const browser = await launch(true);
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`[page error] ${e}`));
  await page.goto(`${server.base}/web/bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  page.setDefaultTimeout(0);
  const { results, ort } = await page.evaluate((cfg) => window.runBench(cfg), { shapes, reps, engines });
  await mkdir(out, { recursive: true });
  const meta = { date: new Date().toISOString(), browser: browser.version(), onnxruntime_web: ort,
                 machine: "2-core shared VM, no GPU; WebGPU on Chromium's SwiftShader", reps };
  await writeFile(join(out, "results.json"), JSON.stringify({ meta, results }, null, 1));
  await writeFile(join(out, "ort.log"), logs.join("\n"));
  console.log(`Chromium ${meta.browser}, onnxruntime-web ${ort}; medians in ms (load in parentheses)`);
  for (const s of shapes) {
    const rows = results.filter((r) => r.shape === s.name);
    console.log(`${s.name.padEnd(8)} ` + rows.map((r) => `${r.engine}: ${r.median_ms.toFixed(2)} (${r.load_ms.toFixed(0)})`).join("  "));
  }
  const placed = logs.filter((l) => /GRU/.test(l) && /(placed|assign|provider|fallback|Fallback|EP)/i.test(l));
  console.log(`onnxruntime-web log lines about the GRU node: ${placed.length}`);
  for (const l of placed.slice(0, 12)) console.log("  " + l.slice(0, 240));
} finally {
  await browser.close();
  server.close();
}
