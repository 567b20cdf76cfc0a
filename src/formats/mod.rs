//! Importers for the four weight layouts, and conversions between each framework's array shapes
//! and the canonical [`SeqInput`](crate::SeqInput) / [`GruOutput`](crate::GruOutput) shapes.
//!
//! | format | weights (safetensors names) | X | h0 / state | Y |
//! |---|---|---|---|---|
//! | [`Format::PyTorch`] | `weight_ih_l{k}[_reverse]` `[3H, I_k]`, `weight_hh_l{k}[_reverse]` `[3H, H]`, optional `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]` `[3H]` | `[T, B, I]` (`[B, T, I]` batch_first) | `[L·D, B, H]` | `[T, B, D·H]` (`[B, T, D·H]`) |
//! | [`Format::Keras`] | `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]`, optional `bias` `[2, 3H]` or `[3H]` | `[B, T, I]` | `[B, H]` | `[B, T, H]` |
//! | [`Format::Onnx`] | `W` `[D, 3H, I]`, `R` `[D, 3H, H]`, optional `B` `[D, 6H]` | `[T, B, I]` | `[D, B, H]` | `[T, D, B, H]` |
//! | [`Format::Seed`] | `W_z`, `W_r`, `W_h` `[H, H+I]`, `b_z`, `b_r`, `b_h` `[H]` | `[T, B, I]` | `[B, H]` | `[T, B, H]` |
//!
//! Layers, directions, `H` and `I` are inferred from the tensors; everything else comes from
//! [`ImportOptions`]. Other tensors in the file (inputs, `expected_*`) are ignored.
//!
//! Each layout is one file (`pytorch.rs`, `keras.rs`, `onnx.rs`, `seed.rs`) implementing one
//! trait that detects its names, imports, exports ([`export_weights`]) and gives its array
//! shapes ([`FrameworkShapes`]); [`Format`] is generated from the `layouts!` registry below, one
//! line per layout. File readers yield tensors to a layout: safetensors ([`SafetensorsFile`]),
//! `torch.save` checkpoints ([`torch_pt`], into the PyTorch layout), `.onnx` graphs
//! ([`onnx_model`], through the ONNX layout's cell conversion) and Keras `.keras` / `.h5`
//! models ([`keras_file`], through the Keras layout's).

mod export;
mod keras;
pub mod keras_file;
mod layout;
mod onnx;
pub(crate) mod onnx_data;
pub mod onnx_model;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod onnx_proto;
mod options;
mod pytorch;
mod seed;
mod shapes;
mod tensors;
pub mod torch_pt;
mod zip_entry;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use export::{export_grads, export_weights, safetensors_bytes};
pub use layout::NamedTensor;
pub use options::{MetadataOptions, keras_activation, options_from_metadata, resolve_activations};
pub use shapes::{FrameworkShapes, TensorNames};
#[doc(hidden)]
pub use tensors::shape_str;
pub use tensors::{SafetensorsFile, Tensor};

use crate::config::{Direction, GruConfig};
use crate::error::{Error, Result};
use crate::weights::Gru;
use layout::Layout;

/// Declares [`Format`] from the registry of layouts: one line per layout, `Variant =>
/// module::LayoutType`, in detection order.
macro_rules! layouts {
    ($($(#[$doc:meta])* $variant:ident => $module:ident :: $layout:ident,)+) => {
        /// A framework's weight layout and array conventions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Format {
            $($(#[$doc])* $variant,)+
        }

        impl Format {
            /// All formats, in detection order.
            pub const ALL: [Format; 0 $(+ { let _ = Format::$variant; 1 })+] =
                [$(Format::$variant),+];

            /// The layout that detects, imports, exports and shapes this format.
            fn layout(self) -> &'static dyn Layout {
                match self {
                    $(Format::$variant => &$module::$layout,)+
                }
            }
        }
    };
}

// The registry: a new layout is a file implementing `Layout`, its `mod` line above, and one line
// here.
layouts! {
    /// PyTorch `nn.GRU` state_dict.
    PyTorch => pytorch::PyTorch,
    /// Keras `layers.GRU` weights.
    Keras => keras::Keras,
    /// ONNX `GRU` operator inputs.
    Onnx => onnx::Onnx,
    /// The seed's `W_z`/`W_r`/`W_h` cell.
    Seed => seed::Seed,
}

/// `a, b, c or d`.
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

impl Format {
    /// The lower-case name (`pytorch`, `keras`, `onnx`, `seed`).
    pub fn name(self) -> &'static str {
        self.layout().name()
    }

    /// A one-line description (`PyTorch nn.GRU state_dict`), as the CLI lists the formats.
    pub fn summary(self) -> &'static str {
        self.layout().summary()
    }

    /// Detects the layout from tensor names: `weight_ih_l{k}` or `weight_hh_l{k}` ⇒ PyTorch,
    /// `kernel` or `recurrent_kernel` ⇒ Keras, `W` or `R` ⇒ ONNX, `W_z`, `W_r` or `W_h` ⇒ seed.
    /// Exactly one layout must match (the importer then names any tensor still missing).
    pub fn detect(names: &[String]) -> Result<Format> {
        let hits: Vec<Format> = Format::ALL
            .into_iter()
            .filter(|f| f.layout().detect(names))
            .collect();
        match hits.as_slice() {
            [f] => Ok(*f),
            [] => {
                let mut shown: Vec<&str> = names.iter().map(String::as_str).take(12).collect();
                if names.len() > 12 {
                    shown.push("…");
                }
                let hints: Vec<&str> = Format::ALL.iter().map(|f| f.layout().hint()).collect();
                Err(Error::UnknownLayout(format!(
                    "no {} weights among tensors [{}]",
                    or_list(&hints),
                    shown.join(", ")
                )))
            }
            many => Err(Error::UnknownLayout(format!(
                "tensor names match several layouts ({}); pass the format explicitly",
                many.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    /// A layout's name or one of its aliases (`torch`, `tensorflow`, `tf`), in any case.
    fn from_str(s: &str) -> Result<Format> {
        let lower = s.to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower || f.layout().aliases().contains(&lower.as_str()))
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                Error::arg(
                    "format",
                    format!("unknown format {lower:?} (expected {})", or_list(&names)),
                )
            })
    }
}

/// What the tensors do not say: options of the framework's layer.
///
/// Every field has the framework's default when left at `Default::default()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// Direction. `None` infers it: bidirectional when the file holds two directions
    /// (`_reverse` tensors, ONNX `D = 2`), forward otherwise. `Some` must agree with the file's
    /// number of directions; `Reverse` is accepted for single-direction files.
    pub direction: Option<Direction>,
    /// ONNX `linear_before_reset`: `true` ⇒ reset-after, `false` (ONNX's default) ⇒
    /// reset-before. Read only for the ONNX layout (PyTorch is always reset-after, the seed
    /// reset-before, Keras follows its bias shape).
    pub linear_before_reset: bool,
    /// Keras `reset_after`, used when the file has no `bias` to infer it from (default `true`);
    /// when a bias exists, a `Some` value must agree with its shape.
    pub reset_after: Option<bool>,
    /// ONNX activation names in ONNX order: `f`, `g` for the first direction, then `f`, `g` for
    /// the second. Two names apply to every direction. Empty = Sigmoid, Tanh.
    pub activations: Vec<String>,
    /// ONNX `activation_alpha`: consumed in order by the activations that take an α.
    pub activation_alpha: Vec<f32>,
    /// ONNX `activation_beta`: consumed in order by the activations that take a β.
    pub activation_beta: Vec<f32>,
    /// ONNX `clip`: activation inputs are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
    /// Keras `go_backwards`: x is processed reversed and outputs are returned in processing order.
    pub go_backwards: bool,
    /// PyTorch `batch_first`: X is `[B, T, I]` and Y `[B, T, D·H]`. Keras is always batch-first;
    /// ONNX and the seed refuse it.
    pub batch_first: bool,
    /// `.onnx` files: the GRU chain to read, by the name of one of its nodes, where the graph
    /// holds several.
    pub node: Option<String>,
    /// `.pt` checkpoints: the module prefix of the GRU's tensors (`encoder.gru.`), where the
    /// checkpoint holds several GRUs.
    pub prefix: Option<String>,
}

/// A model read from a file, with the layout it was read as.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The layout of the weights (and the shape conventions of the inputs and outputs).
    pub format: Format,
    /// The canonical model.
    pub gru: Gru,
    /// For `.onnx` files: the graph's GRU nodes, initial state and lengths.
    pub onnx: Option<onnx_model::OnnxGraph>,
}

/// The kind of file a model comes in, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// safetensors: an 8-byte header length, then a JSON header.
    Safetensors,
    /// A zip archive: a PyTorch checkpoint from `torch.save` (format of PyTorch ≥ 1.6).
    TorchZip,
    /// An ONNX `ModelProto`.
    Onnx,
}

impl Container {
    /// Tells the container from the file's bytes, never from its name.
    pub fn detect(bytes: &[u8]) -> Option<Container> {
        if bytes.starts_with(b"PK\x03\x04") {
            return Some(Container::TorchZip);
        }
        if let Some(h) = bytes.get(..8) {
            let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            let starts_json = bytes.get(8).is_some_and(|&c| c == b'{');
            if starts_json && n >= 2 && n <= (bytes.len() - 8) as u64 {
                return Some(Container::Safetensors);
            }
        }
        onnx_model::is_onnx(bytes).then_some(Container::Onnx)
    }
}

impl Imported {
    /// The shape conversions of this model's framework.
    pub fn shapes(&self) -> Result<FrameworkShapes> {
        FrameworkShapes::new(self.format, &self.gru.config)
    }
}

/// Imports a GRU from an opened safetensors file. `format: None` detects it from the names.
pub fn import(
    file: &SafetensorsFile,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<Imported> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(&file.names()?)?,
    };
    let gru = format.layout().import(file, opts)?;
    Ok(Imported {
        format,
        gru,
        onnx: None,
    })
}

/// Reads `path` and imports the GRU in it (see [`load_bytes`]; external data of an `.onnx` file
/// is read from `path`'s folder).
pub fn load(
    path: impl AsRef<Path>,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<Imported> {
    let (bytes, name) = read_file(path.as_ref())?;
    load_bytes(&bytes, &name, path.as_ref().parent(), format, opts)
}

/// A file's bytes and its name for errors (its path, as given); a failed read is
/// [`Error::Io`] naming it.
pub(crate) fn read_file(path: &Path) -> Result<(Vec<u8>, String)> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((bytes, name)),
        Err(source) => Err(Error::Io { path: name, source }),
    }
}

/// Imports the GRU in a file's bytes. The container is told from the bytes
/// ([`Container::detect`]): a safetensors file is imported with [`import`]; a PyTorch checkpoint
/// (`torch.save` of a state_dict) is read by its `nn.GRU` names; an `.onnx` model by its GRU
/// node(s), whose attributes are the truth: `opts` may repeat them but not contradict them.
/// `format` names the layout only (`pytorch` for a `.pt` file, `onnx` for an `.onnx` one).
/// `name` names the file in errors; `dir` is where an `.onnx` file's external data lives.
///
/// [`ImportOptions::prefix`] applies to safetensors files and checkpoints (a full `state_dict`,
/// such as `gru.*` and `fc.*`, is read as the module at the prefix; without one, the only module
/// with `nn.GRU` names is taken), [`ImportOptions::node`] to `.onnx` files; either one given for
/// a file it does not apply to is an error.
pub fn load_bytes(
    bytes: &[u8],
    name: &str,
    dir: Option<&Path>,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<Imported> {
    let name = name.to_string();
    let Some(container) = Container::detect(bytes) else {
        // A pickle: a checkpoint in PyTorch's pre-1.6 format, which the reader names.
        if bytes.first() == Some(&0x80) {
            torch_pt::read_checkpoint(bytes, &name, None)?;
        }
        if keras_file::is_hdf5(bytes) {
            return Err(Error::Parse {
                what: name,
                reason: "a Keras HDF5 model: whole models run with predict (Model::load), \
                         not as GRU weights"
                    .into(),
            });
        }
        return Err(Error::Parse {
            what: name,
            reason: "not a safetensors file, a PyTorch checkpoint (zip) or an ONNX model".into(),
        });
    };
    let kind = match container {
        Container::Safetensors => "safetensors",
        Container::TorchZip => "PyTorch checkpoint",
        Container::Onnx => "ONNX",
    };
    let wrong = |want: Format| {
        Error::arg(
            "format",
            format!("{name} is a {kind} file; its layout is {want}"),
        )
    };
    let not_for = |option: &str, applies: &str| {
        Error::arg(
            option,
            format!("{name} is a {kind} file; the {option} option applies to {applies} only"),
        )
    };
    if opts.node.is_some() && container != Container::Onnx {
        return Err(not_for("node", "ONNX models"));
    }
    match container {
        Container::Safetensors => {
            let file = SafetensorsFile::from_bytes(bytes.to_vec(), name.clone())?;
            let file = pytorch::select_module(file, format, opts.prefix.as_deref())?;
            import(&file, format, opts)
        }
        Container::TorchZip => {
            if keras_file::is_keras_zip(bytes) {
                return Err(Error::Parse {
                    what: name,
                    reason: "a Keras .keras model: whole models run with predict \
                             (Model::load), not as GRU weights"
                        .into(),
                });
            }
            if format.is_some_and(|f| f != Format::PyTorch) {
                return Err(wrong(Format::PyTorch));
            }
            let file = torch_pt::read_checkpoint(bytes, &name, opts.prefix.as_deref())?;
            import(&file, Some(Format::PyTorch), opts)
        }
        Container::Onnx => {
            if format.is_some_and(|f| f != Format::Onnx) {
                return Err(wrong(Format::Onnx));
            }
            if opts.prefix.is_some() {
                return Err(not_for(
                    "prefix",
                    "safetensors files and PyTorch checkpoints (choose an ONNX GRU by its node)",
                ));
            }
            let (gru, graph) = onnx_model::read(bytes, dir, &name, opts.node.as_deref())?;
            check_onnx_options(&gru.config, opts, &name)?;
            Ok(Imported {
                format: Format::Onnx,
                gru,
                onnx: Some(graph),
            })
        }
    }
}

/// Refuses options that contradict what an `.onnx` file's GRU nodes say.
fn check_onnx_options(c: &GruConfig, opts: &ImportOptions, name: &str) -> Result<()> {
    let refuse = |what: &str, file: String| {
        Err(Error::arg(
            what,
            format!("{name}'s GRU node says {file}; the file's attributes are used as they are"),
        ))
    };
    if let Some(d) = opts.direction
        && d != c.direction
    {
        return refuse("direction", format!("{:?}", c.direction));
    }
    if opts.linear_before_reset && c.variant != crate::config::Variant::ResetAfter {
        return refuse("linear_before_reset", "linear_before_reset=0".into());
    }
    if !opts.activations.is_empty()
        || !opts.activation_alpha.is_empty()
        || !opts.activation_beta.is_empty()
    {
        let given = resolve_activations(
            &opts.activations,
            &opts.activation_alpha,
            &opts.activation_beta,
            c.num_directions(),
        )?;
        let d = c.num_directions();
        if (0..d).any(|k| given.get(k).or(given.first()) != Some(&c.activations_for(k))) {
            return refuse("activations", format!("{:?}", c.activations));
        }
    }
    if let Some(clip) = opts.clip
        && Some(clip) != c.clip
    {
        return refuse("clip", format!("clip={:?}", c.clip));
    }
    if opts.go_backwards {
        return refuse(
            "go_backwards",
            "no go_backwards (an ONNX GRU has none)".into(),
        );
    }
    if opts.batch_first && !c.batch_first {
        return refuse("batch_first", "layout=0 (X is [T, B, I])".into());
    }
    Ok(())
}

/// Applies the options shared by every layout: direction (checked against the `dirs` directions
/// found in the file, reported against tensor `tensor`), activations, clip and go_backwards.
pub(crate) fn finish_config(
    config: &mut GruConfig,
    opts: &ImportOptions,
    dirs: usize,
    tensor: &str,
    file: &str,
) -> Result<()> {
    config.direction = match (opts.direction, dirs) {
        (None, 2) | (Some(Direction::Bidirectional), 2) => Direction::Bidirectional,
        (None, _) | (Some(Direction::Forward), 1) => Direction::Forward,
        (Some(Direction::Reverse), 1) => Direction::Reverse,
        (Some(d), n) => {
            return Err(Error::shape(
                format!("directions of {tensor} in {file}"),
                format!("{} for direction {d:?}", d.count()),
                n,
            ));
        }
    };
    config.activations = resolve_activations(
        &opts.activations,
        &opts.activation_alpha,
        &opts.activation_beta,
        config.num_directions(),
    )?;
    config.clip = opts.clip;
    config.go_backwards = opts.go_backwards;
    Ok(())
}
