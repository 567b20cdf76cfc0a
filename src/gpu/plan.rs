//! The plan of a forward: which algorithm runs it, how many dispatches the projection takes, and
//! how a problem larger than the device's limits is split into several submits.

use super::kernels;
use super::layer::GpuGru;
use super::options::{Algorithm, ForwardStats};
use super::pack::Model;
use super::workspace::Workspace;
use crate::error::{Error, Result};
use crate::io::{GruOutput, SeqInput};

impl GpuGru {
    /// The algorithm and sequence-kernel rows per workgroup `choose` picks for batch `batch`.
    ///
    /// A sequence kernel wins wherever dispatches are expensive relative to a step's work: always
    /// on software adapters (a dependent dispatch costs ~50 µs on lavapipe), and on real GPUs
    /// wherever W_hh fits in registers (H ≤ 160; measured on an H100, see BENCHMARKS.md).
    /// Elsewhere one dispatch per step.
    pub fn choose(&self, batch: usize) -> (Algorithm, u32) {
        let seq_ok = !self.model.kernels.sequence.is_empty();
        let cpu = self.model.kernels.software;
        let regs_ok = self.model.kernels.sequence_regs.is_some()
            || self
                .model
                .kernels
                .subgroup
                .as_ref()
                .is_some_and(|k| k.sequence_regs.is_some());
        // Measured on lavapipe (2 cores, BENCHMARKS.md): the register kernel beats the batch-slice
        // kernel wherever it runs, by 2.7–4× at B ≤ 2 and more at larger batches.
        let algo = match self.algorithm {
            Algorithm::Auto if regs_ok => Algorithm::SequenceRegisters,
            Algorithm::Auto if cpu && seq_ok => Algorithm::Sequence,
            Algorithm::Sequence if seq_ok => Algorithm::Sequence,
            Algorithm::SequenceRegisters if regs_ok => Algorithm::SequenceRegisters,
            Algorithm::Tiled => Algorithm::Tiled,
            Algorithm::Grid if self.grid_fits(batch) => Algorithm::Grid,
            _ => Algorithm::PerStep,
        };
        // `Auto` never picks the tiled kernels: on the H100 they lost to the per-step kernel at
        // every measured shape (B = 1…64, H = 64…1024; BENCHMARKS.md), and on lavapipe at medium.
        if algo == Algorithm::Tiled {
            return (algo, self.tiled_rows(batch, cpu));
        }
        match algo {
            Algorithm::PerStep | Algorithm::Grid => return (algo, 0),
            Algorithm::SequenceRegisters => return (algo, 1),
            _ => {}
        }
        // Enough workgroups to fill the device, as few rows each as that allows.
        let parallel = if cpu { 4 } else { 64 };
        let want = (batch as u32).div_ceil(parallel).max(1);
        let rows = self
            .model
            .kernels
            .sequence
            .iter()
            .map(|k| k.rows)
            .filter(|&bs| bs <= want.next_power_of_two())
            .max()
            .unwrap_or(1);
        (algo, rows)
    }

    /// Whether the grid kernel was built and, on a software adapter, one step of its
    /// single-workgroup attempt stays within llvmpipe's loop cap for `batch` rows.
    fn grid_fits(&self, batch: usize) -> bool {
        if self.model.kernels.grid.is_none() {
            return false;
        }
        if !self.model.kernels.software {
            return true;
        }
        let c = &self.model.config;
        let (b, h) = (batch as u32, c.hidden_size as u32);
        let virtual_groups = h.div_ceil(kernels::STEP_UNITS)
            * b.div_ceil(kernels::STEP_ROWS)
            * c.num_directions() as u32;
        let phases = if c.variant == crate::config::Variant::ResetAfter {
            1
        } else {
            2
        };
        // Per virtual workgroup: the K loop (BT rows each), the lane reduction, the finishes.
        let lanes = kernels::STEP_WG / kernels::STEP_UNITS;
        let per_group = h.next_multiple_of(4).div_ceil(4).div_ceil(lanes)
            * (1 + kernels::STEP_ROWS)
            + lanes
            + 16;
        let per_step = phases * (virtual_groups * per_group + kernels::grid_spin(true));
        per_step <= kernels::LLVMPIPE_LOOP_LIMIT - 5_535
    }

    /// Tile rows of the tiled kernels for `batch`: the largest tile (fewest W_hh reads) that does
    /// not leave half a tile empty and still gives [`kernels::TILED_FILL_WORKGROUPS`] workgroups
    /// per step on a real GPU.
    fn tiled_rows(&self, batch: usize, cpu: bool) -> u32 {
        let c = &self.model.config;
        let (b, h) = (batch as u32, c.hidden_size as u32);
        let d = c.num_directions() as u32;
        let fill = if cpu {
            0
        } else {
            kernels::TILED_FILL_WORKGROUPS
        };
        let mut rows = kernels::TILED_ROWS[kernels::TILED_ROWS.len() - 1];
        while rows > kernels::TILED_ROWS[0] {
            let groups = h.div_ceil(kernels::TILED_UNITS) * b.div_ceil(rows) * d;
            if b > rows / 2 && groups >= fill {
                break;
            }
            rows /= 2;
        }
        rows
    }

    /// A forward too large for one workspace: split over the batch, and where one row is still
    /// too large, over time (forward-running models only), carrying h_n into the next chunk's h0.
    /// Each chunk is one submit.
    pub(crate) async fn forward_chunked(
        &self,
        input: &SeqInput<'_>,
        limit: Error,
    ) -> Result<(GruOutput, ForwardStats)> {
        let c = &self.model.config;
        let (t, b) = (input.steps, input.batch);
        let fits = |steps, batch| Workspace::check(&self.model, steps, batch).is_ok();
        let mut bc = b;
        while bc > 1 && !fits(t, bc) {
            bc = bc.div_ceil(2);
        }
        let mut tc = t;
        if !fits(t, bc) {
            if c.direction != crate::Direction::Forward || c.go_backwards {
                return Err(limit);
            }
            while tc > 1 && !fits(tc, 1) {
                tc = tc.div_ceil(2);
            }
            if !fits(tc, 1) {
                return Err(limit);
            }
        }
        let (i_w, o_w, h) = (c.input_size, c.output_size(), c.hidden_size);
        let slots = c.num_layers * c.num_directions();
        let mut output = vec![0.0f32; t * b * o_w];
        let mut h_n = vec![0.0f32; slots * b * h];
        let mut stats = ForwardStats::default();
        let flags = input.mask_flags();
        for b0 in (0..b).step_by(bc) {
            let nb = bc.min(b - b0);
            let rows = |v: &[f32], w: usize| -> Vec<f32> {
                (0..slots)
                    .flat_map(|s| v[(s * b + b0) * w..(s * b + b0 + nb) * w].iter().copied())
                    .collect()
            };
            let mut carry: Option<Vec<f32>> = input.h0.map(|h0| rows(h0, h));
            for t0 in (0..t).step_by(tc) {
                let nt = tc.min(t - t0);
                // x chunk in the config's layout: [nt, nb, I] or [nb, nt, I].
                let mut xc = Vec::with_capacity(nt * nb * i_w);
                let at = |tt: usize, bb: usize| {
                    if c.batch_first {
                        bb * t + tt
                    } else {
                        tt * b + bb
                    }
                };
                if c.batch_first {
                    for bb in b0..b0 + nb {
                        for tt in t0..t0 + nt {
                            xc.extend_from_slice(
                                &input.x[at(tt, bb) * i_w..(at(tt, bb) + 1) * i_w],
                            );
                        }
                    }
                } else {
                    for tt in t0..t0 + nt {
                        for bb in b0..b0 + nb {
                            xc.extend_from_slice(
                                &input.x[at(tt, bb) * i_w..(at(tt, bb) + 1) * i_w],
                            );
                        }
                    }
                }
                let lens: Option<Vec<usize>> = input.lengths.map(|l| {
                    l[b0..b0 + nb]
                        .iter()
                        .map(|&len| len.saturating_sub(t0).min(nt))
                        .collect()
                });
                // The flags carry whole-sequence facts (a valid step before or after), so a
                // chunk's slice of them is exact.
                let chunk_flags: Option<Vec<u32>> = flags.as_ref().map(|f| {
                    (b0..b0 + nb)
                        .flat_map(|bb| f[bb * t + t0..bb * t + t0 + nt].iter().copied())
                        .collect()
                });
                let mask = chunk_flags
                    .as_deref()
                    .map(|f| (f, input.zero_output_for_mask));
                let (out, st) = self
                    .forward_single(&xc, nt, nb, carry.as_deref(), lens.as_deref(), mask)
                    .await?;
                stats.dispatches += st.dispatches;
                stats.submits += st.submits;
                stats.algorithm = st.algorithm;
                stats.rows_per_workgroup = st.rows_per_workgroup;
                for tt in 0..nt {
                    for bb in 0..nb {
                        let src = if c.batch_first {
                            bb * nt + tt
                        } else {
                            tt * nb + bb
                        };
                        let dst = at(t0 + tt, b0 + bb);
                        output[dst * o_w..(dst + 1) * o_w]
                            .copy_from_slice(&out.output[src * o_w..(src + 1) * o_w]);
                    }
                }
                carry = Some(out.h_n);
            }
            if let Some(hc) = carry {
                for s in 0..slots {
                    h_n[(s * b + b0) * h..(s * b + b0 + nb) * h]
                        .copy_from_slice(&hc[s * nb * h..(s + 1) * nb * h]);
                }
            }
        }
        Ok((GruOutput { output, h_n }, stats))
    }
}

impl Model {
    /// Dispatches of layer `l`'s input projection: 1, or one per K-chunk on software adapters.
    pub(crate) fn proj_chunks(&self, l: usize) -> u32 {
        let k = self.config.layer_input_size(l) as u32;
        match self.kernels.proj_k_chunk {
            0 => 1,
            kc => k.div_ceil(kc).max(1),
        }
    }

    /// The most projection dispatches of any layer.
    pub(crate) fn proj_chunks_max(&self) -> usize {
        (0..self.config.num_layers)
            .map(|l| self.proj_chunks(l) as usize)
            .max()
            .unwrap_or(1)
    }
}
