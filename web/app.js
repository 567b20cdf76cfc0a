// The digits demo: draw on the canvas, and the committed digits model (GRU(128) → Dense(10) →
// softmax) classifies it on WebGPU, or on the CPU where the browser offers no adapter. A second
// panel runs a dropped model file through `Model`.
import init, { Classifier, Model } from "./pkg/wgpu_gru.js";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
let classifier = null;
const times = [];

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  $("prediction").textContent = "–";
  drawBars(new Float32Array(10));
}

function drawBars(p) {
  const top = p.reduce((b, v, i) => (v > p[b] ? i : b), 0);
  $("bars").innerHTML = Array.from(p, (v, k) =>
    `<div class="bar${v > 0 && k === top ? " top" : ""}"><span class="k">${k}</span>` +
    `<span class="track"><span class="fill" style="width:${(100 * v).toFixed(1)}%"></span></span>` +
    `<span class="p">${(100 * v).toFixed(1)}%</span></div>`).join("");
}

// The drawing as the digits dataset has it: the ink's bounding box scaled into a 32×32 square,
// then 4×4 blocks averaged into 8×8 intensities in [0, 1] (sklearn's pixels / 16).
function toDigit() {
  const { data } = ctx.getImageData(0, 0, pad.width, pad.height);
  let [x0, y0, x1, y1] = [pad.width, pad.height, -1, -1];
  for (let y = 0; y < pad.height; y++)
    for (let x = 0; x < pad.width; x++)
      if (data[(y * pad.width + x) * 4] > 32) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0, y1 - y0) + 1;
  const small = document.createElement("canvas");
  small.width = small.height = 32;
  const s = small.getContext("2d");
  s.fillStyle = "#000";
  s.fillRect(0, 0, 32, 32);
  const scale = 28 / side;
  const w = (x1 - x0 + 1) * scale, h = (y1 - y0 + 1) * scale;
  s.imageSmoothingEnabled = true;
  s.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (32 - w) / 2, (32 - h) / 2, w, h);
  const px = s.getImageData(0, 0, 32, 32).data;
  const x = new Float32Array(64);
  for (let r = 0; r < 8; r++)
    for (let c = 0; c < 8; c++) {
      let sum = 0;
      for (let dy = 0; dy < 4; dy++)
        for (let dx = 0; dx < 4; dx++) sum += px[((r * 4 + dy) * 32 + c * 4 + dx) * 4] / 255;
      x[r * 8 + c] = sum / 16;
    }
  return x;
}

let busy = false, again = false;
async function classify() {
  if (!classifier) return;
  if (busy) { again = true; return; }
  busy = true;
  const x = toDigit();
  if (x) {
    const t0 = performance.now();
    const p = await classifier.predictProba(x, 8, 1);
    const ms = performance.now() - t0;
    times.push(ms);
    const median = [...times].sort((a, b) => a - b)[times.length >> 1];
    const top = p.reduce((b, v, i) => (v > p[b] ? i : b), 0);
    $("prediction").textContent = `Prediction: ${top}`;
    drawBars(p);
    $("timing").innerHTML = `Forward (upload, GRU + head, read-back): <b>${ms.toFixed(2)} ms</b>, median <b>${median.toFixed(2)} ms</b> over ${times.length}`;
  }
  busy = false;
  if (again) { again = false; classify(); }
}

let drawing = false, last = null;
const at = (e) => { const r = pad.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
pad.addEventListener("pointerdown", (e) => { drawing = true; last = at(e); pad.setPointerCapture(e.pointerId); });
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = at(e);
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
  last = p;
  classify();
});
const end = () => { if (drawing) { drawing = false; classify(); } };
pad.addEventListener("pointerup", end);
pad.addEventListener("pointerleave", end);
$("clear").addEventListener("click", clearPad);

// Your own model: a dropped file, run on zeros of the given shape (or a dropped .npy).
function readNpy(buf) {
  const b = new Uint8Array(buf);
  const hl = b[8] | (b[9] << 8);
  const header = new TextDecoder().decode(b.subarray(10, 10 + hl));
  if (!/'descr': '<f4'/.test(header) || /'fortran_order': True/.test(header)) throw new Error("the .npy must be float32, C order");
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape, data: new Float32Array(buf.slice(10 + hl)) };
}

async function runOwn(files) {
  const own = $("own"), out = $("ownout");
  try {
    let modelFile = null, npy = null;
    for (const f of files) { if (f.name.endsWith(".npy")) npy = readNpy(await f.arrayBuffer()); else modelFile = f; }
    if (!modelFile) throw new Error("no model file among the dropped files");
    own.textContent = `Loading ${modelFile.name}…`;
    const model = await Model.load(new Uint8Array(await modelFile.arrayBuffer()), {});
    const shape = npy ? npy.shape : $("shape").value.split(",").map((s) => Number(s.trim()));
    const x = npy ? npy.data : new Float32Array(shape.reduce((a, b) => a * b, 1));
    const t0 = performance.now();
    const y = await model.predict(x, shape);
    const ms = performance.now() - t0;
    own.innerHTML = `<b>${modelFile.name}</b>: ${model.description}<br>on <b>${model.backend === "webgpu" ? "WebGPU" : "CPU"}</b>, output [${y.shape.join(", ")}] in ${ms.toFixed(2)} ms`;
    out.hidden = false;
    out.textContent = Array.from(y.data.slice(0, 40), (v) => v.toFixed(5)).join(" ") + (y.data.length > 40 ? " …" : "");
  } catch (e) {
    own.innerHTML = `<span class="warn">${e.message || e}</span>`;
    out.hidden = true;
  }
}
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); runOwn([...e.dataTransfer.files]); });
$("file").addEventListener("change", (e) => runOwn([...e.target.files]));

clearPad();
try {
  await init();
  const bytes = new Uint8Array(await (await fetch("data/digits_gru.safetensors")).arrayBuffer());
  classifier = await Classifier.load(bytes, {});
  // The browser's own words for the adapter (wgpu's name for it is empty on the web).
  let info = "";
  try {
    const i = (await navigator.gpu?.requestAdapter())?.info;
    if (i) info = [i.vendor, i.architecture, i.description].filter(Boolean).join(" · ");
  } catch { /* no adapter info */ }
  $("device").innerHTML = classifier.backend === "webgpu"
    ? `Running on <b>WebGPU</b>: ${info || "adapter"} (wgpu: ${classifier.adapter})`
    : `<span class="warn">No WebGPU adapter: running on the CPU</span> (wgpu-gru's CPU path, one thread)`;
  document.body.dataset.ready = classifier.backend;
} catch (e) {
  $("device").innerHTML = `<span class="warn">${e.message || e}</span>`;
  document.body.dataset.ready = "error";
}
