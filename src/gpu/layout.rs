//! [`Layout`]: a bind group layout of buffers, the pipeline layout over it, and its pipelines.

/// How a compute shader binds buffer `i` of a [`Layout`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind {
    /// A uniform block.
    Uniform,
    /// A uniform block read at a dynamic offset.
    DynUniform,
    /// A read-only storage buffer.
    Read,
    /// A read-write storage buffer.
    ReadWrite,
}

/// A bind group layout of buffers and the pipeline layout over it, labelled `label`; its
/// pipelines are labelled `label entry`.
pub(crate) struct Layout {
    label: String,
    /// The bind group layout: binding `i` as `binds[i]` of [`Layout::new`] (or as numbered).
    pub group: wgpu::BindGroupLayout,
    pipeline: wgpu::PipelineLayout,
}

impl Layout {
    pub(crate) fn new(device: &wgpu::Device, label: &str, binds: &[Bind]) -> Layout {
        let numbered: Vec<(u32, Bind)> = (0u32..).zip(binds.iter().copied()).collect();
        Layout::numbered(device, label, &numbered)
    }

    /// As [`Layout::new`], binding `n` as `b` for each `(n, b)`: for a module whose bindings
    /// leave gaps (the backward's, past the prelude's).
    pub(crate) fn numbered(device: &wgpu::Device, label: &str, binds: &[(u32, Bind)]) -> Layout {
        let entries: Vec<_> = binds
            .iter()
            .map(|&(binding, b)| {
                let ty = match b {
                    Bind::Uniform | Bind::DynUniform => wgpu::BufferBindingType::Uniform,
                    Bind::Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Bind::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                };
                wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty,
                        has_dynamic_offset: matches!(b, Bind::DynUniform),
                        min_binding_size: None,
                    },
                    count: None,
                }
            })
            .collect();
        let group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&format!("{label} layout")),
            entries: &entries,
        });
        let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&format!("{label} pipeline layout")),
            bind_group_layouts: &[Some(&group)],
            immediate_size: 0,
        });
        Layout {
            label: label.to_string(),
            group,
            pipeline,
        }
    }

    /// The label its pipelines are named after.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The compute pipeline of `entry` in `module`, with override `constants`. Workgroup memory
    /// is not zeroed: every kernel writes its workgroup variables before it reads them.
    pub(crate) fn pipeline(
        &self,
        device: &wgpu::Device,
        module: &wgpu::ShaderModule,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> wgpu::ComputePipeline {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{} {entry}", self.label)),
            layout: Some(&self.pipeline),
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
    }
}

/// A bind group over `layout` that binds each of `buffers` whole, at bindings 0, 1, ….
pub(crate) fn bind_whole(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<_> = (0u32..)
        .zip(buffers)
        .map(|(binding, b)| wgpu::BindGroupEntry {
            binding,
            resource: b.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}
