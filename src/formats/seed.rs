//! The seed's cell: `W_z`, `W_r`, `W_h` `[H, H+I]` acting on `[h, x]` (the first `H` columns
//! multiply h), `b_z`, `b_r`, `b_h` `[H]`; reset-before, `h' = (1−z)⊙h + z⊙ñ`.

use super::tensors::{SafetensorsFile, check_rank, check_shape};
use super::{ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::npy::shape_str;
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "seed";

pub(super) fn detect(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| ["W_z", "W_r", "W_h"].contains(&n.as_str()))
}

pub(super) fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
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
