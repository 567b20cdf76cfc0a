//! A bidirectional GRU's two halves merged on the GPU ([`GpuMerge`], `merge.wgsl`), as Keras's
//! `Bidirectional(merge_mode=…)` does, into one contiguous array the next layer reads.

use super::context::GpuContext;
use super::io::{check_binding_fits, check_strided_input, grid, pop_scopes};
use super::layout::{Layout, bind_whole};
use super::wgsl::{MERGE_WG, MergeParams, Shader, Spec};
use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// How the forward half `a` and the backward half `b` (each `[N, H]`) combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `[a, b]`: `[N, 2H]`.
    Concat,
    /// `a + b`: `[N, H]`.
    Sum,
    /// `(a + b) / 2`: `[N, H]`.
    Ave,
    /// `a · b`: `[N, H]`.
    Mul,
}

impl Merge {
    /// Every mode, in the order of their shader codes.
    pub const ALL: [Merge; 4] = [Merge::Concat, Merge::Sum, Merge::Ave, Merge::Mul];

    /// The shader code: the index in [`ALL`](Self::ALL).
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The name of the code's WGSL constant (`MERGE_CONCAT`).
    pub(crate) fn wgsl_const(self) -> String {
        format!("MERGE_{}", format!("{self:?}").to_ascii_uppercase())
    }

    /// Output features per row for halves of `h` units.
    pub fn width(self, h: usize) -> usize {
        if self == Merge::Concat { 2 * h } else { h }
    }
}

/// Where a two-direction output's halves are: the forward half's row `n` starts at float
/// `offset + n · row_stride` of the buffer, the backward half's `dir_stride` floats after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halves {
    /// Rows N.
    pub rows: usize,
    /// Units H of each half.
    pub hidden: usize,
    /// Float offset of the forward half's row 0.
    pub offset: usize,
    /// Floats between rows.
    pub row_stride: usize,
    /// Floats from a forward row to its backward row.
    pub dir_stride: usize,
}

impl Halves {
    /// A sequence output `[B, T, 2H]` (or `[T, B, 2H]`): `rows` = B·T.
    pub fn sequence(rows: usize, hidden: usize) -> Halves {
        Halves {
            rows,
            hidden,
            offset: 0,
            row_stride: 2 * hidden,
            dir_stride: hidden,
        }
    }

    /// A final state `[2, B, H]` starting at float `offset`.
    pub fn state(offset: usize, batch: usize, hidden: usize) -> Halves {
        Halves {
            rows: batch,
            hidden,
            offset,
            row_stride: hidden,
            dir_stride: batch * hidden,
        }
    }
}

/// One merge mode's pipeline. Build once; [`bind`](Self::bind) per input buffer and shape.
pub struct GpuMerge {
    ctx: GpuContext,
    mode: Merge,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl std::fmt::Debug for GpuMerge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuMerge")
            .field("mode", &self.mode)
            .finish()
    }
}

/// A [`GpuMerge`] bound to one input: its parameters, its output `[N, width]` and bind group.
#[derive(Debug)]
pub struct MergeBinding {
    rows: usize,
    width: usize,
    out: wgpu::Buffer,
    group: wgpu::BindGroup,
    grid: (u32, u32),
}

impl MergeBinding {
    /// The merged output `[N, width]` (usage `STORAGE | COPY_SRC`).
    pub fn output_buffer(&self) -> &wgpu::Buffer {
        &self.out
    }
    /// Rows N.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Features per output row: 2H for concat, H otherwise.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl GpuMerge {
    /// Builds `mode`'s pipeline on `ctx`.
    pub fn new(ctx: &GpuContext, mode: Merge) -> Result<Self> {
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        use super::layout::Bind::{Read, ReadWrite, Uniform};
        let layout = Layout::new(device, "wgpu-gru merge", &[Uniform, Read, ReadWrite]);
        let module = Shader::Merge.create(device, Spec::default());
        let pipeline = layout.pipeline(device, &module, "merge", &[("MODE", mode.code() as f64)]);
        pop_scopes(oom, scope)?;
        ctx.check_lost()?;
        Ok(GpuMerge {
            ctx: ctx.clone(),
            mode,
            layout: layout.group,
            pipeline,
        })
    }

    /// The merge mode.
    pub fn mode(&self) -> Merge {
        self.mode
    }

    /// Binds the merge to `halves` of `input` (usage `STORAGE`) and creates its output.
    pub fn bind(&self, input: &wgpu::Buffer, halves: Halves) -> Result<MergeBinding> {
        let Halves {
            rows,
            hidden,
            offset,
            row_stride,
            dir_stride,
        } = halves;
        if rows == 0 || hidden == 0 {
            return Err(Error::arg(
                "halves",
                format!("a merge needs N ≥ 1 and H ≥ 1, got N={rows}, H={hidden}"),
            ));
        }
        // A row's backward half ends `dir_stride + H` floats after its forward half starts.
        let width_in = dir_stride
            .checked_add(hidden)
            .ok_or_else(|| Error::Overflow("merge input extent".into()))?;
        let end = check_strided_input(input, "merge", rows, row_stride, offset, width_in)?;
        let width = self.mode.width(hidden);
        let out_len = rows
            .checked_mul(width)
            .ok_or_else(|| Error::Overflow(format!("merge output [{rows}, {width}]")))?;
        let as_u32 =
            |v: usize| u32::try_from(v).map_err(|_| Error::Overflow(format!("{v} as u32")));
        let params = MergeParams {
            rows: as_u32(rows)?,
            h: as_u32(hidden)?,
            src_off: as_u32(offset)?,
            row_stride: as_u32(row_stride)?,
            dir_stride: as_u32(dir_stride)?,
            ..Default::default()
        };
        as_u32(out_len.max(end))?;
        let device = &self.ctx.device;
        let limits = device.limits();
        let out_bytes = out_len as u64 * 4;
        check_binding_fits(device, "merge", out_bytes, input)?;
        let grid = grid(
            out_len,
            MERGE_WG,
            limits.max_compute_workgroups_per_dimension,
            "merge",
        )?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("wgpu-gru merge params"),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-gru merge output"),
            size: out_bytes.max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let group = bind_whole(
            device,
            "wgpu-gru merge group",
            &self.layout,
            &[&params, input, &out],
        );
        pop_scopes(oom, scope)?;
        Ok(MergeBinding {
            rows,
            width,
            out,
            group,
            grid,
        })
    }

    /// Records the merge (one dispatch, one compute pass) into `encoder`; returns the dispatches.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, binding: &MergeBinding) -> u32 {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-gru merge"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &binding.group, &[]);
        pass.dispatch_workgroups(binding.grid.0, binding.grid.1, 1);
        1
    }
}
