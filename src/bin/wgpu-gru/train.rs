//! `wgpu-gru train`: trains the seed's model, GRU(128) → Dense(10) → softmax, from scratch on the
//! GPU, on the committed digits (`assets/digits_train.safetensors`, scored on
//! `assets/digits_test.safetensors`: the split of `scripts/train_digits.py`).
//!
//! Seeded PyTorch-style initialisation, Adam(3e-3), minibatches of 64 in a seeded order; it stops
//! at the first epoch from the 10th on whose test accuracy reaches 97 % (as the PyTorch script
//! does), or after `--epochs`. stderr gets a progress bar and one line per epoch (loss, test
//! accuracy, time); stdout's last line is `final test accuracy: NN.NN%`. It writes the model as
//! safetensors under `nn.GRU` + `nn.Linear` names (`weight_ih_l0`, …, `dense.weight`,
//! `dense.bias`, as `assets/digits_gru.safetensors`) and an SVG of the loss and accuracy curves
//! beside it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use wgpu_gru::formats::{Format, SafetensorsFile};
use wgpu_gru::gpu::GpuContext;
use wgpu_gru::train::fit::{self, Dataset, EpochReport, FitOptions};
use wgpu_gru::train::{self, GpuTrainer, Optimizer};
use wgpu_gru::{GruConfig, Variant};

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainBackend {
    /// The GPU (any adapter wgpu finds, lavapipe included).
    Gpu,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Adam (β = 0.9, 0.999, ε = 1e-8).
    Adam,
    /// SGD with momentum (--momentum).
    Sgd,
}

/// Arguments of `wgpu-gru train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training split: x [N, T, I] (f32) and labels [N] (int).
    #[arg(long, value_name = "TRAIN.safetensors")]
    pub train: Option<PathBuf>,
    /// Test split, the same layout.
    #[arg(long, value_name = "TEST.safetensors")]
    pub test: Option<PathBuf>,
    /// The trained model (safetensors, nn.GRU + nn.Linear names); the curves go beside it (.svg).
    #[arg(
        long,
        value_name = "MODEL.safetensors",
        default_value = "digits_trained.safetensors"
    )]
    pub out: PathBuf,
    /// The loss and accuracy curves [default: --out with .svg].
    #[arg(long, value_name = "CURVE.svg")]
    pub curve: Option<PathBuf>,
    /// Most epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Stop at the first epoch (from --min-epochs on) whose test accuracy reaches this fraction;
    /// 0 runs every epoch.
    #[arg(long, default_value_t = 0.97)]
    pub target: f64,
    /// Epochs before --target may stop the run.
    #[arg(long, default_value_t = 10)]
    pub min_epochs: usize,
    /// Rows per minibatch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Hidden units H.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f32,
    /// The optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Clip the gradients to this global norm.
    #[arg(long, value_name = "NORM")]
    pub clip: Option<f32>,
    /// Seed of the initialisation and of the minibatch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where training runs.
    #[arg(long, value_enum, default_value_t = TrainBackend::Gpu)]
    pub backend: TrainBackend,
    /// No progress bar and no per-epoch lines (the last stdout line is still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

fn assets_dir() -> PathBuf {
    match std::env::var_os("WGPU_GRU_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets")),
    }
}

/// A split: x `[N, T, I]` and labels `[N]`.
struct Split {
    x: Vec<f32>,
    labels: Vec<u32>,
    steps: usize,
    input: usize,
}

fn load_split(path: &Path) -> Result<Split, String> {
    let at = |e: wgpu_gru::Error| format!("{}: {e}", path.display());
    let f = SafetensorsFile::open(path).map_err(at)?;
    let x = f.require_f32("x", "data split").map_err(at)?;
    let [n, steps, input] = x.shape[..] else {
        return Err(format!(
            "{}: x has shape {:?}, expected [N, T, I]",
            path.display(),
            x.shape
        ));
    };
    let labels = match f.get_lengths("labels").map_err(at)? {
        Some((shape, v)) if shape == [n] => v,
        Some((shape, _)) => {
            return Err(format!(
                "{}: labels has shape {shape:?}, expected [{n}]",
                path.display()
            ));
        }
        None => return Err(format!("{}: no tensor labels", path.display())),
    };
    let labels = labels
        .into_iter()
        .map(|v| u32::try_from(v).map_err(|_| format!("{}: label {v} too large", path.display())))
        .collect::<Result<Vec<u32>, String>>()?;
    if n == 0 || steps == 0 || input == 0 {
        return Err(format!("{}: x is empty ({:?})", path.display(), x.shape));
    }
    Ok(Split {
        x: x.data,
        labels,
        steps,
        input,
    })
}

/// Draws `epoch e [=====>    ] k/n` on stderr, in place (a terminal's progress bar).
fn progress(epoch: usize, done: usize, total: usize) {
    const W: usize = 30;
    let fill = done * W / total.max(1);
    let bar: String = (0..W)
        .map(|i| match i.cmp(&fill) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        })
        .collect();
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\repoch {epoch:>3} [{bar}] {done}/{total}");
    let _ = e.flush();
}

/// Runs `wgpu-gru train`.
pub fn main(args: Args) -> Result<(), String> {
    let TrainBackend::Gpu = args.backend;
    let dir = assets_dir();
    let train_path = args
        .train
        .clone()
        .unwrap_or_else(|| dir.join("digits_train.safetensors"));
    let test_path = args
        .test
        .clone()
        .unwrap_or_else(|| dir.join("digits_test.safetensors"));
    let tr = load_split(&train_path).map_err(|e| {
        format!("{e} (regenerate the committed split with python3 scripts/digits_split.py)")
    })?;
    let te = load_split(&test_path)?;
    if (te.steps, te.input) != (tr.steps, tr.input) {
        return Err(format!(
            "{}: sequences are [T = {}, I = {}], the training split's [T = {}, I = {}]",
            test_path.display(),
            te.steps,
            te.input,
            tr.steps,
            tr.input
        ));
    }
    let classes = tr
        .labels
        .iter()
        .chain(&te.labels)
        .max()
        .map_or(0, |&m| m as usize + 1);
    if classes < 2 {
        return Err("the labels name fewer than 2 classes".into());
    }
    let curve = args
        .curve
        .clone()
        .unwrap_or_else(|| args.out.with_extension("svg"));
    for p in [&args.out, &curve] {
        let d = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !d.is_dir() {
            return Err(format!(
                "{}: directory {} does not exist",
                p.display(),
                d.display()
            ));
        }
    }
    let mut config = GruConfig::new(tr.input, args.hidden).with_variant(Variant::ResetAfter);
    config.batch_first = true;
    let model = fit::init_classifier(config, classes, args.seed).map_err(|e| e.to_string())?;
    let ctx = GpuContext::new_default().map_err(|e| format!("gpu backend: {e}"))?;
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => Optimizer::adam(args.lr),
        OptimizerArg::Sgd => Optimizer::sgd(args.lr, args.momentum),
    };
    let mut trainer = GpuTrainer::classifier(&ctx, &model, optimizer).map_err(|e| e.to_string())?;
    let opts = FitOptions {
        epochs: args.epochs,
        target: (args.target > 0.0).then_some(args.target),
        min_epochs: args.min_epochs,
        batch_size: args.batch_size,
        clip: args.clip,
        seed: args.seed,
    };
    let n_params = trainer.num_params();
    if !args.quiet {
        eprintln!(
            "wgpu-gru: training GRU({}) → Dense({classes}) → softmax ({n_params} parameters) on {} \
             sequences of {}×{}, scored on {}; {:?}, batches of {}, seed {}; on {}",
            args.hidden,
            tr.labels.len(),
            tr.steps,
            tr.input,
            te.labels.len(),
            optimizer,
            args.batch_size,
            args.seed,
            ctx.describe()
        );
    }
    let train = Dataset {
        x: &tr.x,
        labels: &tr.labels,
        steps: tr.steps,
    };
    let test = Dataset {
        x: &te.x,
        labels: &te.labels,
        steps: te.steps,
    };
    let t0 = Instant::now();
    let quiet = args.quiet;
    // The bar redraws one line in place: only where a person watches a terminal.
    let bar = !quiet && std::io::stderr().is_terminal();
    let epoch_now = std::cell::Cell::new(1usize);
    let reports = fit::fit(
        &mut trainer,
        &train,
        &test,
        &opts,
        &mut |done, total| {
            if bar {
                progress(epoch_now.get(), done, total);
            }
        },
        &mut |r: &EpochReport| {
            if !quiet {
                eprintln!(
                    "{}epoch {:>3}: loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}%, {:.1} s",
                    if bar { "\r" } else { "" },
                    r.epoch,
                    r.loss,
                    100.0 * r.train_accuracy,
                    100.0 * r.test_accuracy,
                    r.seconds
                );
            }
            epoch_now.set(r.epoch + 1);
        },
    )
    .map_err(|e| e.to_string())?;
    let last = reports
        .last()
        .ok_or_else(|| "no epoch ran (--epochs 0)".to_string())?;
    let classifier = trainer.read_classifier().map_err(|e| e.to_string())?;
    let mut tensors = train::export_weights(
        Format::PyTorch,
        &classifier.gru.config,
        &classifier.gru.weights,
    )
    .map_err(|e| e.to_string())?;
    tensors.push(train::NamedTensor {
        name: "dense.weight".into(),
        shape: vec![classes, args.hidden],
        data: classifier.dense.weight.clone(),
    });
    tensors.push(train::NamedTensor {
        name: "dense.bias".into(),
        shape: vec![classes],
        data: classifier.dense.bias.clone(),
    });
    let meta = std::collections::HashMap::from([(
        "model".to_string(),
        format!(
            "nn.GRU({}, {}, batch_first=True) -> Linear({}, {classes}) -> softmax; trained by \
             wgpu-gru train (seed {}, {} epochs, test accuracy {:.4})",
            tr.input, args.hidden, args.hidden, args.seed, last.epoch, last.test_accuracy
        ),
    )]);
    let bytes = train::safetensors_bytes(&tensors, Some(meta)).map_err(|e| e.to_string())?;
    wgpu_gru::npy::PendingFile::create(&args.out, &bytes)
        .and_then(wgpu_gru::npy::PendingFile::commit)
        .map_err(|e| e.to_string())?;
    plot(
        &curve,
        &reports,
        &format!(
            "wgpu-gru train: GRU({}) → Dense({classes}) → softmax, seed {}, on {}",
            args.hidden,
            args.seed,
            ctx.describe()
        ),
    )?;
    if !args.quiet {
        eprintln!(
            "wgpu-gru: {} epochs in {:.1} s; wrote {} and {}",
            reports.len(),
            t0.elapsed().as_secs_f64(),
            args.out.display(),
            curve.display()
        );
    }
    println!("final test accuracy: {:.2}%", 100.0 * last.test_accuracy);
    Ok(())
}

/// Loss (left axis) and test/train accuracy (right axis) per epoch, written atomically.
fn plot(path: &Path, reports: &[EpochReport], title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let n = reports.len().max(2) as f64;
    let lmax = reports
        .iter()
        .map(|r| r.loss)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(1.0..n, 0.0..lmax)
            .map_err(|x| e(&x))?
            .set_secondary_coord(1.0..n, 0.0..100.0);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("mean training loss")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .configure_secondary_axes()
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|x| e(&x))?;
        let pts = |f: &dyn Fn(&EpochReport) -> f64| -> Vec<(f64, f64)> {
            reports.iter().map(|r| (r.epoch as f64, f(r))).collect()
        };
        let loss_color = RED.stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts(&|r| r.loss), loss_color))
            .map_err(|x| e(&x))?
            .label("training loss")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], loss_color));
        let test_color = BLUE.stroke_width(2);
        chart
            .draw_secondary_series(LineSeries::new(
                pts(&|r| 100.0 * r.test_accuracy),
                test_color,
            ))
            .map_err(|x| e(&x))?
            .label("test accuracy (%)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], test_color));
        let train_color = GREEN.stroke_width(1);
        chart
            .draw_secondary_series(LineSeries::new(
                pts(&|r| 100.0 * r.train_accuracy),
                train_color,
            ))
            .map_err(|x| e(&x))?
            .label("training accuracy (%)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], train_color));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    wgpu_gru::npy::PendingFile::create(path, svg.as_bytes())
        .and_then(wgpu_gru::npy::PendingFile::commit)
        .map_err(|x| format!("{}: {x}", path.display()))
}
