// The browser benchmark: wgpu-gru (WebGPU, CPU) against onnxruntime-web (WebGPU EP, wasm EP) in
// one headless Chromium with WebGPU on SwiftShader, on the latency, seed and long shapes.
//
//   python3 bench/web_models.py target/web-bench    # the ONNX files
//   node web/bench/run.mjs OUT_DIR [--reps N]       # OUT_DIR/results.json, ort-gru.log, a table
//   node web/bench/run.mjs OUT_DIR --profile "wgpu-gru cpu" --shape latency
//                                    # a V8 CPU profile of one engine on one shape: the functions
//                                    # with the most self time, into OUT_DIR/profile-*.txt
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
  const profiled = arg("--profile", null);
  if (profiled) {
    const shape = shapes.filter((s) => s.name === arg("--shape", "latency"));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
    await cdp.send("Profiler.start");
    await page.evaluate((cfg) => window.runBench(cfg), { shapes: shape, reps, engines: [profiled] });
    const { profile } = await cdp.send("Profiler.stop");
    // Self time per function: samples whose top frame it is.
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map();
    const dt = (profile.endTime - profile.startTime) / profile.samples.length / 1000;
    for (const id of profile.samples) {
      const f = byId.get(id).callFrame;
      const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}`;
      self.set(key, (self.get(key) || 0) + dt);
    }
    const total = [...self.values()].reduce((a, b) => a + b, 0);
    const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
    const text = [`V8 CPU profile of ${profiled} on ${shape[0].name}: ${total.toFixed(0)} ms sampled`,
      ...top.map(([k, ms]) => `${(100 * ms / total).toFixed(1).padStart(5)} %  ${ms.toFixed(1).padStart(8)} ms  ${k}`)].join("\n");
    await mkdir(out, { recursive: true });
    const file = join(out, `profile-${profiled.replace(/ /g, "-")}-${shape[0].name}.txt`);
    await writeFile(file, text + "\n");
    console.log(text);
    process.exit(0);
  }
  const { results, ort } = await page.evaluate((cfg) => window.runBench(cfg), { shapes, reps, engines });
  await mkdir(out, { recursive: true });
  const meta = { date: new Date().toISOString(), browser: browser.version(), onnxruntime_web: ort,
                 machine: "2-core shared VM, no GPU; WebGPU on Chromium's SwiftShader", reps };
  await writeFile(join(out, "results.json"), JSON.stringify({ meta, results }, null, 1));
  // onnxruntime-web's verbose log, kept to what says where the GRU ran (its programs' names).
  const gru = logs.filter((l) => /Gru|GRU|placed|Placement|fallback/.test(l) && !/Shader code/.test(l));
  await writeFile(join(out, "ort-gru.log"), [`${gru.length} of ${logs.length} log lines`, ...gru.slice(0, 40)].join("\n"));
  console.log(`Chromium ${meta.browser}, onnxruntime-web ${ort}; medians in ms (load in parentheses)`);
  for (const s of shapes) {
    const rows = results.filter((r) => r.shape === s.name);
    console.log(`${s.name.padEnd(8)} ` + rows.map((r) => `${r.engine}: ${r.median_ms.toFixed(2)} (${r.load_ms.toFixed(0)})`).join("  "));
  }
  const programs = new Set(gru.map((l) => (l.match(/Starting program "([A-Za-z]+)/) || [])[1]).filter(Boolean));
  console.log(`onnxruntime-web's WebGPU programs for the GRU: ${[...programs].join(", ") || "none (it ran elsewhere)"}`);
} finally {
  await browser.close();
  server.close();
}
