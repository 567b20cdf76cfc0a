//! The seed's cell: `W_z`, `W_r`, `W_h` `[H, H+I]` acting on `[h, x]` (the first `H` columns
//! multiply h), `b_z`, `b_r`, `b_h` `[H]`; reset-before, `h' = (1−z)⊙h + z⊙ñ`. Arrays: X
//! `[T, B, I]`, h0 and the state `[B, H]`, Y `[T, B, H]` (one layer, one direction,
//! time-major).

use super::layout::{Layout, NamedTensor, one_cell};
use super::tensors::{SafetensorsFile, check_rank, check_shape, shape_str};
use super::{FrameworkShapes, ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "seed";

/// The seed's layout.
pub(super) struct Seed;

impl Layout for Seed {
    fn name(&self) -> &'static str {
        LAYOUT
    }

    fn summary(&self) -> &'static str {
        "The seed's W_z/W_r/W_h cell"
    }

    fn hint(&self) -> &'static str {
        "seed (W_z, W_r, W_h)"
    }

    fn detect(&self, names: &[String]) -> bool {
        names
            .iter()
            .any(|n| ["W_z", "W_r", "W_h"].contains(&n.as_str()))
    }

    fn import(&self, file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
        import(file, opts)
    }

    /// `W_z`, `W_r`, `W_h` `[H, H+I]` over `[h, x]`, `b_z`, `b_r`, `b_h` `[H]`, z negated (the
    /// seed's z is the canonical `1 − z`). The canonical recurrent bias, a constant zero of a
    /// seed model, has no tensor.
    fn export(&self, config: &GruConfig, weights: &GruWeights) -> Result<Vec<NamedTensor>> {
        let (h, i) = (config.hidden_size, config.input_size);
        let c = one_cell(LAYOUT, config, weights)?;
        let cols = h + i;
        let mut out = Vec::new();
        // (name, canonical gate block, sign)
        for (name, bname, g, sign) in [
            ("W_z", "b_z", 1, -1.0f32),
            ("W_r", "b_r", 0, 1.0),
            ("W_h", "b_h", 2, 1.0),
        ] {
            let mut m = vec![0.0; h * cols];
            let mut bias = vec![0.0; h];
            for j in 0..h {
                let row = g * h + j;
                for k in 0..h {
                    m[j * cols + k] = sign * c.w_hh[row * h + k];
                }
                for k in 0..i {
                    m[j * cols + h + k] = sign * c.w_ih[row * i + k];
                }
                bias[j] = sign * c.b_ih[row];
            }
            out.push(NamedTensor::new(name, vec![h, cols], m));
            out.push(NamedTensor::new(bname, vec![h], bias));
        }
        Ok(out)
    }

    fn refuse_shapes(&self, config: &GruConfig) -> Option<&'static str> {
        if config.num_layers != 1 || config.num_directions() != 1 {
            Some("seed arrays hold one layer and one direction")
        } else if config.batch_first {
            Some("seed arrays are time-major")
        } else {
            None
        }
    }

    fn state_shape(&self, s: &FrameworkShapes, batch: usize) -> Vec<usize> {
        vec![batch, s.hidden_size]
    }
}

fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
    let fname = file.name();
    let wz = file.require_f32("W_z", LAYOUT)?;
    check_rank("W_z", fname, &wz, 2, "[H, H+I]")?;
    let (hidden, cols) = (wz.shape[0], wz.shape[1]);
    if hidden == 0 || cols <= hidden {
        return Err(Error::shape(
            format!("W_z in {fname}"),
            "[H, H+I] with H >= 1 and I >= 1",
            shape_str(&wz.shape),
        ));
    }
    let input = cols - hidden;
    let wr = file.require_f32("W_r", LAYOUT)?;
    check_shape("W_r", fname, &wr, &[hidden, cols])?;
    let wh = file.require_f32("W_h", LAYOUT)?;
    check_shape("W_h", fname, &wh, &[hidden, cols])?;
    let mut bias = Vec::with_capacity(3);
    for name in ["b_z", "b_r", "b_h"] {
        let b = file.require_f32(name, LAYOUT)?;
        check_shape(name, fname, &b, &[hidden])?;
        bias.push(b.data);
    }
    let cell = CellWeights::from_seed(
        input, hidden, &wz.data, &wr.data, &wh.data, &bias[0], &bias[1], &bias[2],
    )?;
    let mut config = GruConfig::new(input, hidden).with_variant(Variant::ResetBefore);
    if opts.batch_first {
        return Err(Error::arg(
            "batch_first",
            "the seed layout takes input as [T, B, I]; batch_first is not supported",
        ));
    }
    finish_config(&mut config, opts, 1, "W_z", fname)?;
    Gru::new(
        config,
        GruWeights {
            layers: vec![vec![cell]],
        },
    )
}
