//! [`Workspace`]: every buffer and bind group one (T, B) needs, reused across forwards.

use super::pack::Model;
use super::plan::Plan;
use super::wgsl::{LayerParams, ProjParams};
use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// A bind group over an app's input buffer: (input buffer, W_ih buffer, group).
pub(crate) type AppInput = (wgpu::Buffer, wgpu::Buffer, wgpu::BindGroup);

/// The input projection's bind group of `layer`: its `[params, input A, xp, step indices]`
/// buffers with the layer's W_ih and b_ih (the one place `input_proj.wgsl`'s bindings are laid
/// out).
pub(crate) fn proj_group(
    gru: &Model,
    label: &str,
    [params, input, xp, steps]: [&wgpu::Buffer; 4],
    layer: usize,
) -> wgpu::BindGroup {
    let lw = &gru.layers[layer];
    fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: buffer.as_entire_binding(),
        }
    }
    gru.ctx
        .device
        .create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &gru.kernels.proj_layout.group,
            entries: &[
                entry(0, params),
                entry(1, input),
                entry(2, &lw.w_ih),
                entry(3, &lw.b_ih),
                entry(4, xp),
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: steps,
                        offset: 0,
                        size: wgpu::BufferSize::new(16),
                    }),
                },
            ],
        })
}

/// Buffers for forwards of one shape `(steps, batch)` of one [`GpuGru`](super::GpuGru), and the
/// plan of what such a forward records.
///
/// Create it with [`GpuGru::workspace`](super::GpuGru::workspace); a repeated forward of the same
/// shape creates no buffers. A new workspace is valid as it stands: x zeros, every length T, h0
/// zeros.
/// Sizes, with `D` directions, `L` layers, `HP` = H rounded up to 4:
/// `x` `[T, B, I]`, `xp` `[T, B, D, 3H]`, two layer outputs `[T, B, D·H]`,
/// `h` `[2, D, B, HP]`, `zr` `[2, D, B, HP]`, `states` `[2, L, D, B, H]` (h0 then h_n), `lens`
/// `[B]` ++ mask mode ++ mask flags `[B, T]`.
#[derive(Debug)]
pub struct Workspace {
    /// The id of the [`GpuGru`](super::GpuGru) that made it.
    pub(crate) owner: u64,
    pub(crate) steps: usize,
    pub(crate) batch: usize,
    pub(crate) x: wgpu::Buffer,
    pub(crate) ys: Vec<wgpu::Buffer>,
    pub(crate) states: wgpu::Buffer,
    pub(crate) lens: wgpu::Buffer,
    pub(crate) read_y: wgpu::Buffer,
    pub(crate) read_h: wgpu::Buffer,
    /// Index slots read through dynamic offsets, `min_uniform_buffer_offset_alignment` apart.
    pub(crate) step_uniform: wgpu::Buffer,
    /// The grid kernel's `sync` slots, `[L]` × [`wgsl::grid_sync_words`](super::wgsl::grid_sync_words), zeroed per forward.
    pub(crate) sync: wgpu::Buffer,
    /// Layer 0's projection bind group over an app-owned input buffer, kept for the next
    /// `encode_from_buffer` with the same buffer (and the same weights): (input, W_ih, group).
    pub(crate) app_input: std::sync::Mutex<Option<AppInput>>,
    pub(crate) proj_groups: Vec<wgpu::BindGroup>,
    /// Layer 0's projection parameters and output, for binding an app-owned input buffer.
    pub(crate) proj0_params: wgpu::Buffer,
    pub(crate) xp: wgpu::Buffer,
    pub(crate) gru_groups: Vec<wgpu::BindGroup>,
    pub(crate) lens_host: Vec<u32>,
    /// Bytes of h0 to clear in `encode` when the input gave none (a new workspace: all of it).
    pub(crate) zero_h0: Option<u64>,
    /// What a forward of this shape records (`plan/mod.rs`), made just before the workspace.
    pub(crate) plan: Plan,
}

fn bytes(what: &str, elems: usize) -> Result<u64> {
    elems
        .checked_mul(4)
        .map(|b| b.max(16) as u64)
        .ok_or_else(|| Error::Overflow(what.to_string()))
}

impl Workspace {
    /// Steps T this workspace was made for.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Batch B this workspace was made for.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The layer output buffer `[T, B, D·H]` (`[B, T, D·H]` when batch-first) the last forward wrote.
    pub fn output_buffer(&self) -> &wgpu::Buffer {
        &self.ys[self.ys.len() - 1]
    }
    /// The states buffer: h0 `[L, D, B, H]` at offset 0, then h_n `[L, D, B, H]`.
    pub fn states_buffer(&self) -> &wgpu::Buffer {
        &self.states
    }
    /// The input buffer `[T, B, I]` (`[B, T, I]` when batch-first), written by `write_input`.
    pub fn input_buffer(&self) -> &wgpu::Buffer {
        &self.x
    }

    /// The buffers and bind groups of `plan`'s shape.
    pub(crate) fn new(gru: &Model, plan: Plan) -> Result<Self> {
        let super::plan::Dims { t, b, h, d, l } = plan.dims;
        let (steps, batch) = (t, b);
        let c = &gru.config;
        let device = &gru.ctx.device;
        let hp = h.next_multiple_of(4);
        let tb = t * b;
        let storage = |label: &str, size: u64, extra: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let cp = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let x = storage("wgpu-gru x", bytes("x", tb * c.input_size)?, cp);
        let xp = storage(
            "wgpu-gru xp",
            bytes("xp", tb * 3 * d * h)?,
            wgpu::BufferUsages::empty(),
        );
        let ys: Vec<wgpu::Buffer> = (0..l.min(2))
            .map(|i| {
                Ok(storage(
                    &format!("wgpu-gru y{i}"),
                    bytes("y", tb * d * h)?,
                    cp,
                ))
            })
            .collect::<Result<_>>()?;
        let hbuf = storage(
            "wgpu-gru h ping-pong",
            bytes("h", 2 * d * b * hp)?,
            wgpu::BufferUsages::empty(),
        );
        let zr = storage(
            "wgpu-gru z, r⊙h",
            bytes("zr", 2 * d * b * hp)?,
            wgpu::BufferUsages::empty(),
        );
        let states = storage("wgpu-gru states", bytes("states", 2 * l * d * b * h)?, cp);
        // Lengths [B], the mask mode, and mask flags [B, T] (`prelude.wgsl`'s `position_len`).
        let lens_n = t
            .checked_mul(b)
            .and_then(|n| n.checked_add(b + 1))
            .ok_or_else(|| Error::Overflow("mask".into()))?;
        let lens = storage("wgpu-gru lengths", bytes("lens", lens_n)?, cp);
        let read_y = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru readback y"),
            size: bytes("y", tb * d * h)?,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let read_h = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru readback h_n"),
            size: bytes("h_n", l * d * b * h)?,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let align = plan.stride;
        // One 16-byte index per aligned slot, read through a dynamic offset: the step of a step
        // kernel, the first step of a sequence-kernel dispatch, or the K-chunk of a projection.
        let slots = t.max(gru.proj_chunks_max());
        let mut steps_data = vec![0u8; slots.max(1) * align as usize];
        for s in 0..slots {
            steps_data[s * align as usize..s * align as usize + 4]
                .copy_from_slice(&(s as u32).to_le_bytes());
        }
        let step_uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-gru step indices"),
            contents: &steps_data,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let sync_words = super::wgsl::grid_sync_words(plan.grid_steps.unwrap_or(0), t as u32);
        let sync = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru grid sync"),
            size: u64::from(sync_words) * l as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut proj_groups = Vec::with_capacity(l);
        let mut proj_params = Vec::with_capacity(l);
        let mut gru_groups = Vec::with_capacity(l);
        let bsz = (l * d * b * h) as u32;
        for layer in 0..l {
            let lw = &gru.layers[layer];
            let in_w = c.layer_input_size(layer);
            let (a_buf, a_st, a_sb) = if layer == 0 {
                if c.batch_first {
                    (&x, in_w, t * in_w)
                } else {
                    (&x, b * in_w, in_w)
                }
            } else {
                (&ys[(layer - 1) % 2], b * d * h, d * h)
            };
            let pp = ProjParams {
                m: tb as u32,
                n: (3 * d * h) as u32,
                k: in_w as u32,
                rows_per_t: b as u32,
                a_st: a_st as u32,
                a_sb: a_sb as u32,
                a_off: 0,
                _p0: 0,
            };
            let pp_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("wgpu-gru proj params l{layer}")),
                contents: bytemuck::bytes_of(&pp),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            proj_params.push(pp_buf.clone());
            proj_groups.push(proj_group(
                gru,
                &format!("wgpu-gru proj group l{layer}"),
                [&pp_buf, a_buf, &xp, &step_uniform],
                layer,
            ));
            let last = layer + 1 == l;
            let (y_st, y_sb) = if last && c.batch_first {
                (d * h, t * d * h)
            } else {
                (b * d * h, d * h)
            };
            let rev_mask = match c.direction {
                crate::Direction::Forward => 0,
                crate::Direction::Reverse => 1,
                crate::Direction::Bidirectional => 2,
            };
            let lp = LayerParams {
                steps: t as u32,
                batch: b as u32,
                dirs: d as u32,
                hp4: (hp / 4) as u32,
                y_st: y_st as u32,
                y_sb: y_sb as u32,
                y_sd: h as u32,
                rev_mask,
                go_back: c.go_backwards as u32,
                bhh_off: lw.bhh_off,
                ut_off: lw.ut_off,
                h0_off: (layer * d * b * h) as u32,
                hn_off: bsz + (layer * d * b * h) as u32,
                sync_off: layer as u32 * sync_words,
                ..Default::default()
            };
            let lp_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&format!("wgpu-gru layer params l{layer}")),
                contents: bytemuck::bytes_of(&lp),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            gru_groups.push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("wgpu-gru gru group l{layer}")),
                layout: &gru.kernels.gru_layout.group,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &step_uniform,
                            offset: 0,
                            size: wgpu::BufferSize::new(16),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: lp_buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: xp.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: lw.u.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: lens.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: hbuf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 6,
                        resource: ys[layer % 2].as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 7,
                        resource: states.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 8,
                        resource: zr.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 9,
                        resource: sync.as_entire_binding(),
                    },
                ],
            }));
        }
        let ys_last = (l - 1) % 2;
        let mut ys = ys;
        // Keep the last layer's output last, so `output_buffer` is `ys.last()`.
        if ys_last == 0 && ys.len() == 2 {
            ys.swap(0, 1);
        }
        // Every length T, no mask: valid before anything is written.
        let mut lens_host = vec![0u32; lens_n];
        lens_host[..b].fill(t as u32);
        gru.ctx
            .queue
            .write_buffer(&lens, 0, bytemuck::cast_slice(&lens_host[..b + 1]));
        Ok(Workspace {
            owner: gru.id,
            steps,
            batch,
            x,
            ys,
            states,
            lens,
            read_y,
            read_h,
            step_uniform,
            sync,
            app_input: std::sync::Mutex::new(None),
            proj_groups,
            proj0_params: proj_params.swap_remove(0),
            xp,
            gru_groups,
            lens_host,
            zero_h0: Some((l * d * b * h) as u64 * 4),
            plan,
        })
    }
}
