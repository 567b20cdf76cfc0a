//! Uploading a model: the weights packed the way the kernels read them, and its specialisation
//! (pipelines are built when a plan first needs them).

use std::sync::atomic::AtomicU64;

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::io::pop_scopes;
use super::options::{Algorithm, GpuOptions, Precision};
use super::wgsl::{self, Kernels};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::weights::Gru;

/// Ids of the models built so far.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One layer's weights on the device.
pub(crate) struct LayerBuffers {
    pub w_ih: wgpu::Buffer,
    pub b_ih: wgpu::Buffer,
    pub u: wgpu::Buffer,
    pub bhh_off: u32,
    pub ut_off: u32,
}

/// A model on the device: what a [`Workspace`](super::Workspace) is built from and every
/// forward reads.
pub(crate) struct Model {
    /// Tells this model's workspaces from other models' (see `GpuGru::encode`).
    pub id: u64,
    pub ctx: GpuContext,
    pub config: GruConfig,
    pub layers: Vec<LayerBuffers>,
    /// The specialisation its pipelines are built with (on first use).
    pub kernels: Kernels,
    /// The options it was built with, `grid_workgroups` resolved.
    pub options: GpuOptions,
}

impl Model {
    /// Uploads `gru` to `ctx`'s device, packed for the kernels.
    pub(crate) fn upload(ctx: &GpuContext, gru: &Gru, options: &GpuOptions) -> Result<Model> {
        gru.validate()?;
        if options.subgroup_units > wgsl::STEP_WG {
            return Err(Error::arg(
                "subgroup_units",
                format!("{} is more than {}", options.subgroup_units, wgsl::STEP_WG),
            ));
        }
        if ![8, 16, 32].contains(&options.register_columns) {
            return Err(Error::arg(
                "register_columns",
                format!("{} is not 8, 16 or 32", options.register_columns),
            ));
        }
        // wgpu panics in buffer creation on a lost device; refuse first.
        ctx.refresh_lost()?;
        let f16 = options.precision == Precision::F16Weights;
        if f16 && !ctx.facts().shader_f16 {
            return Err(Error::MissingFeature {
                option: "Precision::F16Weights",
                feature: "SHADER_F16",
                adapter: ctx.describe(),
            });
        }
        // Bytes per stored weight.
        let wbytes: u64 = if f16 { 2 } else { 4 };
        let c = gru.config.clone();
        // Each direction's pair specialises its own override constants of one pipeline.
        let acts = [c.activations_for(0), c.activations_for(1)];
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let h = c.hidden_size;
        let hp = h.next_multiple_of(4);
        let d = c.num_directions();
        let max_bind = device.limits().max_storage_buffer_binding_size;
        let mut layers = Vec::with_capacity(c.num_layers);
        for (l, dirs) in gru.weights.layers.iter().enumerate() {
            let in_w = c.layer_input_size(l);
            let mut w_ih = Vec::with_capacity(d * 3 * h * in_w);
            let mut b_ih = Vec::with_capacity(d * 3 * h);
            for cell in dirs {
                w_ih.extend_from_slice(&cell.w_ih);
                b_ih.extend_from_slice(&cell.b_ih);
            }
            // `u`: W_hh padded to HP columns, [D, 3H, HP]; then b_hh [D, 3H] padded to a vec4;
            // then W_hhᵀ as vec4 (r, z, n, 0) per (k, j), [D, H, H].
            let u_rows = d * 3 * h * hp;
            let bhh_len = (d * 3 * h).next_multiple_of(4);
            let total = u_rows + bhh_len + d * h * h * 4;
            if (total.max(w_ih.len()) as u64) * wbytes > max_bind {
                return Err(Error::DeviceLimit {
                    what: format!("layer {l} weights binding (bytes)"),
                    needed: (total.max(w_ih.len()) as u64) * wbytes,
                    limit: max_bind,
                });
            }
            let mut u = vec![0.0f32; total];
            for (di, cell) in dirs.iter().enumerate() {
                for row in 0..3 * h {
                    let dst = (di * 3 * h + row) * hp;
                    u[dst..dst + h].copy_from_slice(&cell.w_hh[row * h..(row + 1) * h]);
                    u[u_rows + di * 3 * h + row] = cell.b_hh[row];
                }
                let ut = u_rows + bhh_len + di * h * h * 4;
                for k in 0..h {
                    for j in 0..h {
                        for g in 0..3 {
                            u[ut + (k * h + j) * 4 + g] = cell.w_hh[(g * h + j) * h + k];
                        }
                    }
                }
            }
            let init = |label: String, data: &[f32]| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: bytemuck::cast_slice(data),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            };
            // Weights in the storage type the kernels read (`wt`).
            let init_w = |label: String, data: &[f32]| {
                if !f16 {
                    return init(label, data);
                }
                let halves: Vec<u16> = data
                    .iter()
                    .map(|&v| half::f16::from_f32(v).to_bits())
                    .collect();
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: bytemuck::cast_slice(&halves),
                    usage: wgpu::BufferUsages::STORAGE,
                })
            };
            layers.push(LayerBuffers {
                w_ih: init_w(format!("wgpu-gru W_ih l{l}"), &w_ih),
                b_ih: init(format!("wgpu-gru b_ih l{l}"), &b_ih),
                u: init_w(format!("wgpu-gru W_hh l{l}"), &u),
                bhh_off: u_rows as u32,
                ut_off: ((u_rows + bhh_len) / 4) as u32,
            });
        }
        let mut options = *options;
        if options.algorithm == Algorithm::Grid && options.grid_workgroups == 0 {
            // As many workgroups as ran at once with the grid kernel's shape.
            let bytes = super::wgsl::GRID_WORKGROUP_BYTES;
            let launch = if ctx.facts().software { 64 } else { 8192 };
            options.grid_workgroups =
                super::occupancy::resident_workgroups(ctx, wgsl::STEP_WG, bytes, launch)?.resident;
        }
        let kernels = Kernels::new(ctx, h as u32, c.variant, acts, c.clip, &options)?;
        pop_scopes(oom, scope)?;
        ctx.check_lost()?;
        Ok(Model {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ctx: ctx.clone(),
            config: c,
            layers,
            kernels,
            options,
        })
    }
}
