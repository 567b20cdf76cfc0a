// The browser tests, run in the page by web/test/run.mjs: every golden case through the JS API,
// the JS API against the native reference (h0 and lengths), the whole-model cases, and the 360
// test digits. The page is served from the repository root, so the test data is at ../tests/.
import init, { GruModel, Model, Classifier } from "./pkg/wgpu_gru.js";
import { parseSafetensors, asF32 } from "./safetensors.js";

const log = (s) => { document.getElementById("log").textContent += s + "\n"; };
const fetchBytes = async (url) => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
};
const maxAbsDiff = (a, b) => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

// ONNX's Y [T, D, B, H] as the layer's output [T, B, D·H].
function onnxY(y, [t, d, b, h]) {
  const out = new Float32Array(y.length);
  for (let ti = 0; ti < t; ti++)
    for (let di = 0; di < d; di++)
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          out[((ti * b + bi) * d + di) * h + hi] = y[((ti * d + di) * b + bi) * h + hi];
  return out;
}

// One golden case: loaded with the options its metadata records, run, compared.
async function goldenCase(name, backend) {
  const bytes = await fetchBytes(`../tests/data/golden/${name}.safetensors`);
  const f = parseSafetensors(bytes);
  const fw = f.metadata.framework;
  const m = await GruModel.load(bytes, { fromMetadata: true, backend });
  const names = {
    pytorch: ["input", "h0", "lengths", "expected_output", "expected_h_n"],
    keras: ["input", "h0", null, "expected_output", "expected_state"],
    onnx: ["X", "initial_h", "sequence_lens", "expected_Y", "expected_Y_h"],
    seed: ["input", "h0", null, "expected_output", "expected_state"],
  }[fw];
  const x = f.get(names[0]);
  const batchFirst = fw === "keras" || f.metadata.batch_first === "true";
  const [steps, batch] = batchFirst ? [x.shape[1], x.shape[0]] : [x.shape[0], x.shape[1]];
  const opts = {};
  if (f.has(names[1])) opts.h0 = asF32(f.get(names[1]));
  if (names[2] && f.has(names[2])) opts.lengths = Int32Array.from(f.get(names[2]).data, Number);
  const { output, state } = await m.forward(asF32(x), steps, batch, opts);
  const ey = f.get(names[3]);
  const wantY = fw === "onnx" ? onnxY(ey.data, ey.shape) : ey.data;
  const err = Math.max(maxAbsDiff(output, wantY), maxAbsDiff(state, f.get(names[4]).data));
  const tol = name === "seed_gru128" ? 5e-5 : 1e-5;
  return { name, backend: m.backend, err, ok: err <= tol };
}

// A whole-model case: { model, tol } in its metadata, x and the framework's y.
async function modelCase(name, backend) {
  const f = parseSafetensors(await fetchBytes(`../tests/data/models/${name}.case.safetensors`));
  const model = await Model.load(await fetchBytes(`../tests/data/models/${f.metadata.model}`), { backend });
  const x = f.get("x");
  const y = f.get("y");
  const got = await model.predict(asF32(x), x.shape);
  let scale = 1;
  for (const v of y.data) scale = Math.max(scale, Math.abs(v));
  const sameShape = JSON.stringify(got.shape) === JSON.stringify(y.shape);
  const err = sameShape ? maxAbsDiff(got.data, y.data) / scale : Infinity;
  return { name, backend: model.backend, err, ok: err <= Number(f.metadata.tol) };
}

// The 360 test digits: accuracy, and the same predictions as the native reference.
async function digits(backend) {
  const c = await Classifier.load(await fetchBytes("data/digits_gru.safetensors"), { backend });
  const split = parseSafetensors(await fetchBytes("data/digits_test.safetensors"));
  const x = split.get("x");
  const [n, t] = x.shape;
  const probs = await c.predictProba(asF32(x), t, n);
  const labels = Array.from(split.get("labels").data, Number);
  const native = await (await fetch("test/fixtures/digits_reference.json")).json();
  let correct = 0, same = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < c.classes; k++) if (probs[i * c.classes + k] > probs[i * c.classes + best]) best = k;
    correct += best === labels[i];
    same += best === native.pred[i];
  }
  const accuracy = correct / n;
  return { name: "digits", backend: c.backend, adapter: c.adapter, accuracy, same, n,
           ok: same === n && Math.abs(accuracy - native.accuracy) < 1e-12 };
}

// The JS API as documented, on a PyTorch-layout file with h0 and lengths, against the native
// reference's output (web/test/fixtures/, checked natively by tests/formats/golden.rs).
async function jsApi(backend) {
  const bytes = await fetchBytes("../tests/data/golden/pytorch_packed_bidir.safetensors");
  const f = parseSafetensors(bytes);
  const m = await GruModel.load(bytes, { format: "pytorch", backend });
  const x = f.get("input");
  const [steps, batch] = x.shape;
  const h0 = asF32(f.get("h0"));
  const lengths = Int32Array.from(f.get("lengths").data, Number);
  const { output, state } = await m.forward(asF32(x), steps, batch, { h0, lengths });
  const native = await (await fetch("test/fixtures/packed_bidir_reference.json")).json();
  const err = Math.max(maxAbsDiff(output, native.output), maxAbsDiff(state, native.state));
  return { name: "js-api", backend: m.backend, adapter: m.adapter, err, ok: err <= 1e-5 };
}

window.runTests = async ({ golden, models, backend = "auto" }) => {
  await init();
  const results = [];
  const run = async (label, f) => {
    try {
      const t0 = performance.now();
      const r = await f();
      r.ms = performance.now() - t0;
      results.push(r);
      log(`${r.ok ? "ok  " : "FAIL"} ${label}: ${JSON.stringify(r)}`);
    } catch (e) {
      results.push({ name: label, ok: false, error: String(e) });
      log(`FAIL ${label}: ${e}`);
    }
  };
  await run("js-api", () => jsApi(backend));
  for (const name of golden) await run(`golden ${name}`, () => goldenCase(name, backend));
  for (const name of models) await run(`model ${name}`, () => modelCase(name, backend));
  await run("digits", () => digits(backend));
  return results;
};
window.testsReady = true;
