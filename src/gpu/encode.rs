//! Recording a forward: the input projection and the recurrence of every layer, in one compute
//! pass.

use super::kernels;
use super::layer::GpuGru;
use super::options::{Algorithm, ForwardStats};
use super::workspace::{Workspace, proj_group};
use crate::config::Variant;
use crate::error::{Error, Result};

impl GpuGru {
    /// Like [`encode`](Self::encode), but layer 0 reads its input from `x`, a buffer the app owns
    /// (usage `STORAGE`), laid out as the config says: `[T, B, I]` f32, or `[B, T, I]` when
    /// batch-first. Lengths and h0 still come from [`write_input`](Self::write_input) (or
    /// [`write_state`](Self::write_state)); nothing is copied. The bind group over `x` is made on
    /// the first call and reused while later calls pass the same buffer (the workspace holds a
    /// handle to it until then).
    pub fn encode_from_buffer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        x: &wgpu::Buffer,
    ) -> Result<ForwardStats> {
        self.check_owner(ws)?;
        Self::check_written(ws)?;
        let c = &self.model.config;
        let need = (ws.steps * ws.batch * c.input_size * 4) as u64;
        if x.size() < need {
            return Err(Error::shape("input buffer (bytes)", need, x.size()));
        }
        if !x.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::arg("input buffer", "needs BufferUsages::STORAGE"));
        }
        // One bind group per app buffer, reused while the app passes the same one.
        let mut cache = ws
            .app_input
            .lock()
            .map_err(|_| Error::Gpu("workspace input cache poisoned".into()))?;
        let w_ih = &self.model.layers[0].w_ih;
        if !matches!(&*cache, Some((bx, bw, _)) if bx == x && bw == w_ih) {
            *cache = None;
        }
        let make = || {
            proj_group(
                &self.model,
                "wgpu-gru proj group l0 (app input)",
                [&ws.proj0_params, x, &ws.xp, &ws.step_uniform],
                0,
            )
        };
        let (_, _, group) = cache.get_or_insert_with(|| (x.clone(), w_ih.clone(), make()));
        Ok(self.encode_inner(encoder, ws, Some(group)))
    }

    pub(crate) fn encode_inner(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        proj0: Option<&wgpu::BindGroup>,
    ) -> ForwardStats {
        let c = &self.model.config;
        let (t, b, h) = (ws.steps as u32, ws.batch as u32, c.hidden_size as u32);
        let d = c.num_directions() as u32;
        let (algo, rows) = self.choose(ws.batch);
        if let Some(bytes) = ws.zero_h0 {
            encoder.clear_buffer(&ws.states, 0, Some(bytes));
        }
        if algo == Algorithm::Grid {
            encoder.clear_buffer(&ws.sync, 0, None);
        }
        let mut stats = ForwardStats {
            algorithm: algo,
            rows_per_workgroup: rows,
            ..Default::default()
        };
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru forward"),
            timestamp_writes: None,
        });
        let (n, m) = (3 * d * h, t * b);
        let (proj, tile) = (&self.model.kernels.proj, kernels::GEMM_TILE);
        for l in 0..c.num_layers {
            pass.set_pipeline(proj);
            let group = match (l, proj0) {
                (0, Some(g)) => g,
                _ => &ws.proj_groups[l],
            };
            for i in 0..self.model.proj_chunks(l) {
                pass.set_bind_group(0, group, &[i * ws.step_stride]);
                pass.dispatch_workgroups(n.div_ceil(tile), m.div_ceil(tile), 1);
                stats.dispatches += 1;
            }
            let sg = self.model.kernels.subgroup.as_ref();
            if algo == Algorithm::SequenceRegisters {
                let sg_regs = sg.and_then(|k| k.sequence_regs.as_ref());
                stats.subgroups = sg_regs.is_some();
                if let Some(k) = sg_regs.or(self.model.kernels.sequence_regs.as_ref()) {
                    stats.dispatches += encode_sequence(&mut pass, k, &ws.gru_groups[l], ws, b, d);
                }
                continue;
            }
            if let (Algorithm::Grid, Some(g)) = (algo, self.model.kernels.grid.as_ref()) {
                // Per chunk of steps: two attempts with every workgroup, then one with a single
                // workgroup; an attempt that finds the chunk done returns at once.
                let per = if g.steps == 0 { t } else { g.steps };
                for first in (0..t).step_by(per.max(1) as usize) {
                    for (a, p) in g.attempts.iter().enumerate() {
                        pass.set_pipeline(p);
                        pass.set_bind_group(0, &ws.gru_groups[l], &[first * ws.step_stride]);
                        pass.dispatch_workgroups(if a < 2 { g.workgroups } else { 1 }, 1, 1);
                        stats.dispatches += 1;
                    }
                }
                continue;
            }
            if algo == Algorithm::Sequence {
                if let Some(k) = self.model.kernels.sequence.iter().find(|k| k.rows == rows) {
                    stats.dispatches += encode_sequence(&mut pass, k, &ws.gru_groups[l], ws, b, d);
                }
                continue;
            }
            if algo == Algorithm::Tiled {
                // As PerStep: 1 dispatch per step (reset-after), 2 (reset-before).
                let tiled: &[&Vec<(u32, wgpu::ComputePipeline)>] = match c.variant {
                    Variant::ResetAfter => &[&self.model.kernels.tiled_fused],
                    Variant::ResetBefore => &[
                        &self.model.kernels.tiled_gates,
                        &self.model.kernels.tiled_candidate,
                    ],
                };
                let grid = (h.div_ceil(kernels::TILED_UNITS), b.div_ceil(rows), d);
                for s in 0..t {
                    for by_rows in tiled {
                        if let Some((_, p)) = by_rows.iter().find(|(r, _)| *r == rows) {
                            pass.set_pipeline(p);
                            pass.set_bind_group(0, &ws.gru_groups[l], &[s * ws.step_stride]);
                            pass.dispatch_workgroups(grid.0, grid.1, grid.2);
                            stats.dispatches += 1;
                        }
                    }
                }
                continue;
            }
            let (units, steps): (u32, [&Option<wgpu::ComputePipeline>; 2]) = match (sg, c.variant) {
                (Some(k), Variant::ResetAfter) => (k.units, [&k.step_fused, &None]),
                (Some(k), Variant::ResetBefore) => (k.units, [&k.step_gates, &k.step_candidate]),
                (None, Variant::ResetAfter) => {
                    (kernels::STEP_UNITS, [&self.model.kernels.step_fused, &None])
                }
                (None, Variant::ResetBefore) => (
                    kernels::STEP_UNITS,
                    [
                        &self.model.kernels.step_gates,
                        &self.model.kernels.step_candidate,
                    ],
                ),
            };
            stats.subgroups = sg.is_some();
            let grid = (h.div_ceil(units), b.div_ceil(kernels::STEP_ROWS), d);
            for s in 0..t {
                for p in steps.iter().filter_map(|p| p.as_ref()) {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, &ws.gru_groups[l], &[s * ws.step_stride]);
                    pass.dispatch_workgroups(grid.0, grid.1, grid.2);
                    stats.dispatches += 1;
                }
            }
        }
        stats
    }
}

/// Records a sequence kernel over all of `ws`'s steps: one dispatch, or one per `k.steps` steps
/// (each starting at its step's dynamic offset). Returns the dispatches recorded.
fn encode_sequence(
    pass: &mut wgpu::ComputePass<'_>,
    k: &kernels::SeqKernel,
    group: &wgpu::BindGroup,
    ws: &Workspace,
    batch: u32,
    dirs: u32,
) -> u32 {
    let t = ws.steps as u32;
    let per = if k.steps == 0 { t } else { k.steps };
    pass.set_pipeline(&k.pipeline);
    let mut n = 0;
    for first in (0..t).step_by(per.max(1) as usize) {
        pass.set_bind_group(0, group, &[first * ws.step_stride]);
        pass.dispatch_workgroups(batch.div_ceil(k.rows), 1, dirs);
        n += 1;
    }
    n
}
