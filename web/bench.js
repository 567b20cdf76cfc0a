// The browser benchmark, in the page: per shape, one ONNX GRU file run by wgpu-gru (WebGPU and
// its CPU path) and by onnxruntime-web (its WebGPU and wasm execution providers), each timed as
// a forward from a Float32Array to the outputs back in JS: warm-up runs, then the median.
import init, { GruModel } from "./pkg/wgpu_gru.js";
import * as ort from "./node_modules/onnxruntime-web/dist/ort.webgpu.bundle.min.mjs";

const log = (s) => { document.getElementById("log").textContent += s + "\n"; };
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function time(run, reps, warmup) {
  for (let i = 0; i < warmup; i++) await run();
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return { median_ms: median(ms), runs_ms: ms };
}

window.runBench = async ({ shapes, reps = 5, warmup = 2, engines }) => {
  await init();
  ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", location.href).href;
  ort.env.wasm.numThreads = 1;  // as wgpu-gru's CPU path, and without cross-origin isolation
  ort.env.logLevel = "verbose";
  const results = [];
  for (const s of shapes) {
    const bytes = new Uint8Array(await (await fetch(s.url)).arrayBuffer());
    const x = new Float32Array(s.t * s.b * s.i).map((_, k) => Math.sin(k) * 0.5);
    const n = s.reps ?? reps;
    const record = (engine, r, extra = {}) => {
      const row = { shape: s.name, b: s.b, t: s.t, i: s.i, h: s.h, engine, reps: n, ...r, ...extra };
      results.push(row);
      log(`${s.name} ${engine}: ${r.median_ms.toFixed(2)} ms`);
    };
    for (const backend of ["webgpu", "cpu"]) {
      if (!engines.includes(`wgpu-gru ${backend}`)) continue;
      const t0 = performance.now();
      const m = await GruModel.load(bytes, { backend });
      const load = performance.now() - t0;
      record(`wgpu-gru ${backend}`, await time(() => m.forward(x, s.t, s.b, {}), n, warmup),
             { load_ms: load, adapter: m.adapter });
    }
    for (const ep of ["webgpu", "wasm"]) {
      if (!engines.includes(`onnxruntime-web ${ep}`)) continue;
      const t0 = performance.now();
      const sess = await ort.InferenceSession.create(bytes, {
        executionProviders: [ep], logSeverityLevel: 0, logVerbosityLevel: 0,
      });
      const load = performance.now() - t0;
      const feeds = { X: new ort.Tensor("float32", x, [s.t, s.b, s.i]) };
      record(`onnxruntime-web ${ep}`, await time(async () => {
        const out = await sess.run(feeds);
        await out.Y.getData();
      }, n, warmup), { load_ms: load });
      await sess.release();
    }
  }
  return { results, ort: ort.env.versions?.web ?? "?" };
};
window.benchReady = true;
