//! Keras model files read into a typed chain of layers: Keras 3 `.keras` archives (a zip of
//! `config.json`, `metadata.json` and `model.weights.h5`) and legacy Keras HDF5 `.h5` files
//! (`model.save("m.h5")`: the config in the root attribute `model_config`, the weights under
//! `model_weights/`).
//!
//! Supported: `Sequential` models, and `Functional` models that are one chain (an input layer,
//! each layer fed by the one before, one output), of `InputLayer`, `Masking`, `GRU`,
//! `Bidirectional(GRU)`, `Dense` and `Dropout` (the identity at predict, dropped here). The
//! optimizer's state in the files is ignored. HDF5 is read with the pure-Rust `hdf5-pure` crate,
//! from memory. Every failure is one typed [`Error`]; hostile files (truncated, oversized
//! declared sizes, zip bombs, cyclic HDF5 links) are refused within the bounds documented in
//! the submodules.

mod archive;
mod h5;
mod layers;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::model::DenseActivation;

/// A Keras model read from a file: its name, its input's fixed sizes, and its layers in order.
#[derive(Debug, Clone)]
pub struct KerasModel {
    /// The model's name from its config.
    pub name: String,
    /// Features per step of the input, when the input shape fixes it.
    pub input_features: Option<usize>,
    /// Steps of the input, when the input shape fixes it (`None` for `Input((None, I))`).
    pub input_steps: Option<usize>,
    /// The layers from input to output (no `InputLayer`, no `Dropout`).
    pub layers: Vec<KerasLayer>,
}

/// One layer of a [`KerasModel`].
#[derive(Debug, Clone)]
pub enum KerasLayer {
    /// `Masking(mask_value)`: a step is masked when every one of its features equals
    /// `mask_value`.
    Masking {
        /// The value that marks padding.
        mask_value: f32,
    },
    /// A GRU layer; `gru` is the canonical crate::Gru with config.batch_first = true,
    /// go_backwards set from the config, num_layers 1, direction Forward.
    Gru {
        /// The layer's name.
        name: String,
        /// The layer as a canonical GRU.
        gru: crate::Gru,
        /// Whether the layer returns every step (`[B, T, H]`) or only the last (`[B, H]`).
        return_sequences: bool,
    },
    /// Bidirectional(GRU): `gru` has Direction::Bidirectional (cell 0 = forward layer, cell 1 =
    /// backward layer), batch_first = true.
    Bidirectional {
        /// The wrapper's name.
        name: String,
        /// Both directions as one canonical bidirectional GRU (go_backwards not set: direction
        /// slot 1 runs reversed over the sequence).
        gru: crate::Gru,
        /// How the two directions' outputs are merged.
        merge_mode: MergeMode,
        /// Whether the layer returns every step or only the final states.
        return_sequences: bool,
    },
    /// `dense` is crate::model::Dense in PyTorch layout: weight `[out, in]` (the Keras kernel
    /// `[in, out]` transposed), bias `[out]` (zeros when use_bias=False).
    Dense {
        /// The layer's name.
        name: String,
        /// The affine map.
        dense: crate::model::Dense,
        /// The activation applied after it.
        activation: DenseActivation,
    },
}

/// How `Bidirectional` merges its forward and backward outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// `[forward, backward]` on the last axis, forward first.
    Concat,
    /// `forward + backward`.
    Sum,
    /// `(forward + backward) / 2`.
    Ave,
    /// `forward * backward`.
    Mul,
    /// `merge_mode=None`: two outputs. [`read`] refuses it; the variant exists to name it.
    None,
}

impl MergeMode {
    /// Parses Keras's `merge_mode` (`None`/`null` gives [`MergeMode::None`]).
    pub fn from_keras(name: Option<&str>) -> Result<Self> {
        Ok(match name {
            Some("concat") => MergeMode::Concat,
            Some("sum") => MergeMode::Sum,
            Some("ave") => MergeMode::Ave,
            Some("mul") => MergeMode::Mul,
            None => MergeMode::None,
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "Bidirectional merge_mode {other:?}; supported: concat, sum, ave, mul"
                )));
            }
        })
    }
}

/// Whether `bytes` is a zip archive whose entries include `config.json` and `model.weights.h5`
/// (a Keras 3 `.keras` file).
pub fn is_keras_zip(bytes: &[u8]) -> bool {
    archive::is_keras_zip(bytes)
}

/// Whether `bytes` starts with the HDF5 signature `\x89HDF\r\n\x1a\n` (at 0, or after a user
/// block at 512, 1024, 2048, …).
pub fn is_hdf5(bytes: &[u8]) -> bool {
    h5::is_hdf5(bytes)
}

/// Reads a Keras 3 `.keras` file or a legacy Keras `.h5` file, told apart by its bytes; `name`
/// is used in error messages.
pub fn read(bytes: &[u8], name: &str) -> Result<KerasModel> {
    if is_keras_zip(bytes) {
        let z = archive::open(bytes, name)?;
        let config: serde_json::Value = serde_json::from_str(&z.config)
            .map_err(|e| archive::parse_err(name, format!("config.json is not JSON: {e}")))?;
        let weights_name = format!("{name}: model.weights.h5");
        let file = h5::H5::open(z.weights, &weights_name)?;
        layers::build(&config, &layers::Weights::Keras3(&file), name)
    } else if is_hdf5(bytes) {
        let file = h5::H5::open(bytes.to_vec(), name)?;
        let Some(text) = file.attr_string("/", "model_config")? else {
            return Err(archive::parse_err(
                name,
                "an HDF5 file without the model_config attribute: not a whole Keras model \
                 (model.save(\"m.h5\")); a weights-only file (save_weights) cannot be read alone",
            ));
        };
        if text.len() as u64 > archive::MAX_CONFIG_BYTES {
            return Err(archive::parse_err(
                name,
                "model_config is larger than 16 MiB",
            ));
        }
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| archive::parse_err(name, format!("model_config is not JSON: {e}")))?;
        let legacy = layers::Legacy::open(&file, name)?;
        layers::build(&config, &layers::Weights::Legacy(&file, &legacy), name)
    } else {
        Err(archive::parse_err(
            name,
            "neither a Keras 3 .keras archive (a zip with config.json and model.weights.h5) \
             nor an HDF5 file",
        ))
    }
}
