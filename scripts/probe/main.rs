//! The refactor probe (`scripts/probe/run.sh`): dumps the f32 bits (FNV-1a hashes) of every GPU
//! output of many configurations, for comparing two builds of the crate.
#[path = "../../tests/common/random.rs"]
#[allow(dead_code)]
mod random;
use random::{Rng, random_gru_with};
use std::io::Write;
use wgpu_gru::gpu::{Algorithm, GpuContext, GpuGru, GpuOptions, GpuStream, Precision};
use wgpu_gru::predict::{Array, Backend, Model};
use wgpu_gru::{Activation, Activations, Batch, Direction, GruConfig, SeqInput, Steps, Stream, Variant};

/// (I, H, L, direction, variant, batch-first, go_backwards, T, B) of each configuration.
type Case = (usize, usize, usize, Direction, Variant, bool, bool, usize, usize);
const CASES: [Case; 8] = [
    (3, 1, 1, Direction::Forward, Variant::ResetAfter, false, false, 5, 1),
    (5, 7, 2, Direction::Bidirectional, Variant::ResetAfter, false, false, 6, 3),
    (5, 7, 1, Direction::Reverse, Variant::ResetBefore, true, false, 4, 2),
    (9, 65, 1, Direction::Forward, Variant::ResetBefore, false, true, 7, 5),
    (4, 65, 2, Direction::Bidirectional, Variant::ResetBefore, true, false, 3, 17),
    (6, 130, 1, Direction::Forward, Variant::ResetAfter, false, false, 4, 33),
    (8, 257, 1, Direction::Bidirectional, Variant::ResetAfter, false, false, 3, 2),
    (8, 32, 2, Direction::Forward, Variant::ResetAfter, true, false, 9, 70),
];

fn bits(out: &mut impl Write, tag: &str, v: &[f32]) {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in v {
        h ^= x.to_bits() as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    writeln!(out, "{tag} n={} fnv={h:016x}", v.len()).unwrap();
}

fn time_first_forward() {
    let ctx = GpuContext::new_default().expect("adapter");
    for (name, c, t, b) in [
        ("digits GRU(128), T 8, B 360", GruConfig::new(8, 128), 8usize, 360usize),
        (
            "2-layer bidirectional H 64, T 16, B 32",
            GruConfig::new(8, 64).with_layers(2).with_direction(Direction::Bidirectional),
            16,
            32,
        ),
    ] {
        let mut rng = Rng::new(7);
        let gru = random_gru_with(c.clone(), &mut rng);
        let x = rng.vec(t * b * c.input_size, 1.0);
        let t0 = std::time::Instant::now();
        let g = GpuGru::new(&ctx, &gru).unwrap();
        let new_s = t0.elapsed().as_secs_f64();
        g.forward(&SeqInput::new(&x, Steps(t), Batch(b))).unwrap();
        let total = t0.elapsed().as_secs_f64();
        println!("{name}: new {:.1} ms, new + first forward {:.1} ms", new_s * 1e3, total * 1e3);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--time") {
        return time_first_forward();
    }
    let ctx = GpuContext::new_default().expect("adapter");
    eprintln!("probe on {}", ctx.describe());
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let algos = [
        Algorithm::Auto,
        Algorithm::PerStep,
        Algorithm::Sequence,
        Algorithm::SequenceRegisters,
        Algorithm::Tiled,
        Algorithm::Grid,
    ];
    let precisions = [Precision::F32, Precision::F16Weights];
    let mut seed = 1u64;
    for &(i, h, l, dir, var, bf, gb, t, b) in &CASES {
        for acts in [false, true] {
            let mut c = GruConfig::new(i, h)
                .with_layers(l)
                .with_direction(dir)
                .with_variant(var);
            c.batch_first = bf;
            c.go_backwards = gb;
            if acts {
                c.activations = vec![Activations {
                    f: Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
                    g: Activation::Elu { alpha: 0.7 },
                }];
                c.clip = Some(2.5);
            }
            seed += 1;
            let mut rng = Rng::new(seed);
            let gru = random_gru_with(c.clone(), &mut rng);
            let x = rng.vec(t * b * i, 1.0);
            let h0 = rng.vec(l * c.num_directions() * b * h, 0.7);
            let lens: Vec<usize> = (0..b).map(|k| if k == 0 { t } else { 1 + rng.below(t) }).collect();
            let mask: Vec<bool> = (0..b * t).map(|k| k % 3 != 1).collect();
            for &p in &precisions {
                for &a in &algos {
                    let opts = GpuOptions::default().with_algorithm(a).with_precision(p);
                    let tag = format!("cfg i{i} h{h} l{l} {dir:?} {var:?} bf{bf} gb{gb} t{t} b{b} acts{acts} {p:?} {a:?}");
                    let g = match GpuGru::with_options(&ctx, &gru, opts) {
                        Ok(g) => g,
                        Err(e) => {
                            writeln!(out, "{tag} new-err {e}").unwrap();
                            continue;
                        }
                    };
                    let inputs: Vec<(&str, SeqInput)> = vec![
                        ("plain", SeqInput::new(&x, Steps(t), Batch(b))),
                        ("h0+len", SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0).with_lengths(&lens)),
                        ("mask", SeqInput::new(&x, Steps(t), Batch(b)).with_mask(&mask).with_zero_output_for_mask(true)),
                    ];
                    for (name, input) in inputs {
                        if name == "mask" && (l > 1 || gb) { continue; }
                        match g.forward_with_stats(&input) {
                            Ok((o, st)) => {
                                bits(&mut out, &format!("{tag} {name} y [{:?} rows {} sg {}]", st.algorithm, st.rows_per_workgroup, st.subgroups), &o.output);
                                bits(&mut out, &format!("{tag} {name} hn"), &o.h_n);
                            }
                            Err(e) => writeln!(out, "{tag} {name} err {e}").unwrap(),
                        }
                    }
                    if a == Algorithm::Auto {
                        // Streaming in chunks of 1 and 2 steps.
                        for chunk in [1usize, 2] {
                            if bf || l > 1 { break; }
                            let mut s = match GpuStream::new(&g, b) { Ok(s) => s, Err(e) => { writeln!(out, "{tag} stream-err {e}").unwrap(); break; } };
                            let mut ys = Vec::new();
                            let mut k = 0;
                            while k < t {
                                let n = chunk.min(t - k);
                                match s.seq(&x[k * b * i..(k + n) * b * i], Steps(n)) { Ok(y) => ys.extend(y), Err(e) => { writeln!(out, "{tag} stream-err {e}").unwrap(); break; } }
                                k += n;
                            }
                            bits(&mut out, &format!("{tag} stream{chunk} y"), &ys);
                            bits(&mut out, &format!("{tag} stream{chunk} h"), &s.state().unwrap_or_default());
                        }
                    }
                }
            }
        }
    }
    // Training: forward and backward (BPTT) gradients, with h0 and lengths.
    for &(i, h, l, dir, var, bf, gb, t, b) in &CASES[..7] {
        let mut c = GruConfig::new(i, h).with_layers(l).with_direction(dir).with_variant(var);
        c.batch_first = bf;
        c.go_backwards = gb;
        seed += 1;
        let mut rng = Rng::new(seed);
        let gru = random_gru_with(c.clone(), &mut rng);
        let x = rng.vec(t * b * i, 1.0);
        let dh = l * c.num_directions() * b * h;
        let h0 = rng.vec(dh, 0.7);
        let gy = rng.vec(t * b * c.num_directions() * h, 1.0);
        let ghn = rng.vec(dh, 1.0);
        let lens: Vec<usize> = (0..b).map(|k| if k == 0 { t } else { 1 + rng.below(t) }).collect();
        let tr = wgpu_gru::train::GpuTrainer::new(&ctx, &gru).unwrap();
        let tag = format!("train i{i} h{h} l{l} {dir:?} {var:?} bf{bf} gb{gb} t{t} b{b}");
        for (name, input) in [
            ("plain", SeqInput::new(&x, Steps(t), Batch(b))),
            ("h0+len", SeqInput::new(&x, Steps(t), Batch(b)).with_h0(&h0).with_lengths(&lens)),
        ] {
            match tr.backward(&input, &gy, &ghn) {
                Ok(g) => {
                    bits(&mut out, &format!("{tag} {name} dx"), &g.input);
                    bits(&mut out, &format!("{tag} {name} dh0"), &g.h0);
                    for (li, cells) in g.weights.layers.iter().enumerate() {
                        for (d, cw) in cells.iter().enumerate() {
                            for (wn, w) in [("w_ih", &cw.w_ih), ("w_hh", &cw.w_hh), ("b_ih", &cw.b_ih), ("b_hh", &cw.b_hh)] {
                                bits(&mut out, &format!("{tag} {name} l{li} d{d} {wn}"), w);
                            }
                        }
                    }
                }
                Err(e) => writeln!(out, "{tag} {name} err {e}").unwrap(),
            }
        }
    }
    // Whole models on the GPU.
    // The saved models, from one checkout for both builds.
    let models = std::env::var("WGPU_GRU_MODELS")
        .expect("WGPU_GRU_MODELS: a checkout's tests/data/models (run.sh sets it)");
    let dir = std::path::Path::new(&models);
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".case.safetensors")).collect();
    paths.sort();
    for p in paths {
        let f = wgpu_gru::formats::SafetensorsFile::open(&p).unwrap();
        let meta = f.metadata().unwrap();
        let t = f.require_f32("x", "case").unwrap();
        let x = Array::new(t.shape, t.data).unwrap();
        let model = Model::load(dir.join(&meta["model"])).unwrap();
        let runner = model.runner(Backend::Gpu(&ctx)).unwrap();
        match runner.predict_with_stats(&x, &[]) {
            Ok((y, st)) => bits(&mut out, &format!("model {} {:?} submits {}", p.display(), y.shape, st.gpu_submits), &y.data),
            Err(e) => writeln!(out, "model {} err {e}", p.display()).unwrap(),
        }
    }
}
