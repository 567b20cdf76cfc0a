//! The one interface of a framework weight layout: every layout (one file each: `pytorch.rs`,
//! `keras.rs`, `onnx.rs`, `seed.rs`) detects its tensor names, imports its tensors into the
//! canonical [`Gru`], exports canonical weights back under its names, and knows its array
//! shapes. [`Format`](super::Format) maps each user-facing name to its layout; the registry is
//! the `layouts!` list in `formats/mod.rs`.

use super::{FrameworkShapes, ImportOptions, SafetensorsFile, TensorNames};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};

/// A tensor under a framework's name and shape (row-major `f32`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The framework's name (`weight_ih_l0`, `kernel`, `W`, `W_z`, …).
    pub name: String,
    /// Shape, outermost axis first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements.
    pub data: Vec<f32>,
}

impl NamedTensor {
    pub(crate) fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        NamedTensor {
            name: name.into(),
            shape,
            data,
        }
    }
}

/// A framework's weight layout and array conventions. The shape methods default to the
/// canonical arrays (h0 and the state `[L·D, B, H]`, Y `[T, B, D·H]` or `[B, T, D·H]`
/// batch-first, no element reordering); a layout overrides what differs.
pub(crate) trait Layout: Sync {
    /// The lower-case name (`pytorch`), as [`Format::name`](super::Format::name) gives it.
    fn name(&self) -> &'static str;

    /// Other names [`Format::from_str`](std::str::FromStr) accepts (`torch`), lower case.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The CLI's one-line description of the layout.
    fn summary(&self) -> &'static str;

    /// What detection looks for, as the error that finds no layout lists it:
    /// `pytorch (weight_ih_l0)`.
    fn hint(&self) -> &'static str;

    /// Whether `names` hold this layout's weight names.
    fn detect(&self, names: &[String]) -> bool;

    /// The canonical model from the file's tensors; `opts` gives what the tensors do not say.
    fn import(&self, file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru>;

    /// Canonical weights (already validated against `config`) → the layout's tensors under its
    /// names: the inverse of [`Layout::import`]'s conversion. Refuses configs the layout cannot
    /// hold.
    fn export(&self, config: &GruConfig, weights: &GruWeights) -> Result<Vec<NamedTensor>>;

    /// Why the layout's arrays cannot express `config`, or `None` when they can.
    fn refuse_shapes(&self, config: &GruConfig) -> Option<&'static str>;

    /// The framework's names for its inputs and outputs.
    fn names(&self) -> TensorNames {
        TensorNames::CANONICAL
    }

    /// h0's (and the final state's) shape for `batch`.
    fn state_shape(&self, s: &FrameworkShapes, batch: usize) -> Vec<usize> {
        vec![s.layers * s.directions, batch, s.hidden_size]
    }

    /// Y's shape for `steps` and `batch`.
    fn output_shape(&self, s: &FrameworkShapes, steps: usize, batch: usize) -> Vec<usize> {
        let dh = s.directions * s.hidden_size;
        if s.batch_first {
            vec![batch, steps, dh]
        } else {
            vec![steps, batch, dh]
        }
    }

    /// Moves Y (length already checked) between the canonical order and the layout's
    /// (`to_framework` says which way).
    fn permute_output(
        &self,
        _s: &FrameworkShapes,
        _steps: usize,
        _batch: usize,
        y: &[f32],
        _to_framework: bool,
    ) -> Vec<f32> {
        y.to_vec()
    }

    /// Moves a state (length already checked) between the canonical `[L·D, B, H]` order and
    /// the layout's (`to_canonical` says which way).
    fn permute_state(
        &self,
        _s: &FrameworkShapes,
        _batch: usize,
        v: &[f32],
        _to_canonical: bool,
    ) -> Vec<f32> {
        v.to_vec()
    }
}

/// The error of a layout that cannot hold `config`'s weights.
pub(super) fn bad_layout(layout: &str, config: &GruConfig, why: &str) -> Error {
    Error::arg(
        format!("{layout} layout"),
        format!(
            "{why} (the model has {} layer(s), direction {:?})",
            config.num_layers, config.direction
        ),
    )
}

/// The only cell of a one-layer, one-direction model; `layout` names the layout in the error.
pub(super) fn one_cell<'a>(
    layout: &str,
    config: &GruConfig,
    weights: &'a GruWeights,
) -> Result<&'a CellWeights> {
    match weights.layers.as_slice() {
        [dirs] if dirs.len() == 1 => Ok(&dirs[0]),
        _ => Err(bad_layout(
            layout,
            config,
            "the layout holds one layer, one direction",
        )),
    }
}

/// Canonical gate block (r, z, n) → Keras/ONNX gate block (z, r, h); its own inverse.
pub(super) const ZRH: [usize; 3] = [1, 0, 2];

#[cfg(test)]
mod tests {
    use super::super::{Format, ImportOptions, export_weights, import, safetensors_bytes};
    use crate::config::{GruConfig, Variant};
    use crate::formats::{FrameworkShapes, SafetensorsFile};
    use crate::weights::{CellWeights, Gru, GruWeights};

    /// Every registered layout: its name parses back, and canonical weights exported in it are
    /// detected as it and imported back bit for bit, wherever its tensors can say the config's
    /// variant (a reset-before model has a zero recurrent bias, which not every layout stores).
    #[test]
    fn every_layout_round_trips() {
        let (i, h) = (3, 2);
        let vals = |n: usize, k: usize| -> Vec<f32> {
            (0..n).map(|j| (j * 7 + k) as f32 * 0.125 - 1.0).collect()
        };
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>().unwrap(), format);
            assert_eq!(format.to_string(), format.name());
            let mut round_trips = 0;
            for variant in [Variant::ResetAfter, Variant::ResetBefore] {
                for batch_first in [false, true] {
                    let mut config = GruConfig::new(i, h).with_variant(variant);
                    config.batch_first = batch_first;
                    if FrameworkShapes::new(format, &config).is_err() {
                        continue;
                    }
                    let b_hh = match variant {
                        Variant::ResetAfter => vals(3 * h, 4),
                        Variant::ResetBefore => vec![0.0; 3 * h],
                    };
                    let cell = CellWeights {
                        w_ih: vals(3 * h * i, 1),
                        w_hh: vals(3 * h * h, 2),
                        b_ih: vals(3 * h, 3),
                        b_hh,
                    };
                    let gru = Gru::new(
                        config.clone(),
                        GruWeights {
                            layers: vec![vec![cell]],
                        },
                    )
                    .unwrap();
                    let tensors = export_weights(format, &config, &gru.weights).unwrap();
                    let bytes = safetensors_bytes(&tensors, None).unwrap();
                    let file = SafetensorsFile::from_bytes(bytes, "t").unwrap();
                    let opts = ImportOptions {
                        batch_first,
                        linear_before_reset: variant == Variant::ResetAfter,
                        ..ImportOptions::default()
                    };
                    let Ok(back) = import(&file, None, &opts) else {
                        continue;
                    };
                    assert_eq!(back.format, format);
                    if back.gru.config == config {
                        assert_eq!(back.gru, gru, "{format} {variant:?}");
                        round_trips += 1;
                    }
                }
            }
            assert!(round_trips > 0, "{format}: no config round-trips");
        }
    }
}
