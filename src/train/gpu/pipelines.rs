//! The compute pipelines of a trainer, built once when it is made: only those its passes can
//! dispatch: its variant's step kernels, and the head's and the update's for a classifier, with
//! only its optimiser.

use super::Optimizer;
use crate::config::{GruConfig, Variant};
use crate::gpu::layout::Bind::{self, DynUniform, Read, ReadWrite};
use crate::gpu::layout::Layout;
use crate::gpu::wgsl::{Shader, Spec};

/// The recurrence's bindings: the prelude's `st` (0) and `lens` (4), then `gru_backward.wgsl`'s
/// own past the prelude's 0–8: `tl` (9), the parameters (10) and `work` (11).
pub(super) const REC_BINDINGS: [(u32, Bind); 5] = [
    (0, DynUniform),
    (4, Read),
    (9, DynUniform),
    (10, Read),
    (11, ReadWrite),
];

/// The pipelines of a classifier's head and update (`train_step.wgsl`).
#[derive(Debug)]
pub(super) struct HeadPipelines {
    pub head_loss: wgpu::ComputePipeline,
    pub loss_reduce: wgpu::ComputePipeline,
    pub sumsq: wgpu::ComputePipeline,
    pub clip_scale: wgpu::ComputePipeline,
    /// The trainer's optimiser: Adam, or SGD with momentum.
    pub optimise: wgpu::ComputePipeline,
}

/// The step kernels of the variant: reset-after runs one per step, reset-before two forward
/// (gates, then the candidate) and one more backward (`bwd_mid_rb`).
#[derive(Debug)]
pub(super) enum StepKernels {
    ResetAfter {
        fwd: wgpu::ComputePipeline,
    },
    ResetBefore {
        gates: wgpu::ComputePipeline,
        cand: wgpu::ComputePipeline,
        bwd_mid: wgpu::ComputePipeline,
    },
}

/// Compute pipelines and their bind group layouts, built once per trainer.
#[derive(Debug)]
pub(super) struct Pipelines {
    pub rec_layout: wgpu::BindGroupLayout,
    pub gemm_layout: wgpu::BindGroupLayout,
    pub opt_layout: wgpu::BindGroupLayout,
    pub steps: StepKernels,
    pub bwd_elem: wgpu::ComputePipeline,
    pub bwd_rec: wgpu::ComputePipeline,
    pub transpose: wgpu::ComputePipeline,
    pub gemm: wgpu::ComputePipeline,
    pub colsum: wgpu::ComputePipeline,
    /// A classifier's (`Some` with a head and its optimiser).
    pub head: Option<HeadPipelines>,
}

impl Pipelines {
    /// The pipelines of a GRU of `config`, and with `head = Some((C, optimiser))` a classifier's.
    pub fn new(
        device: &wgpu::Device,
        config: &GruConfig,
        head: Option<(usize, &Optimizer)>,
    ) -> Pipelines {
        let rec_layout = Layout::numbered(device, "wgpu-gru train recurrence", &REC_BINDINGS);
        let gemm_layout = Layout::new(
            device,
            "wgpu-gru train gemm",
            &[DynUniform, Read, ReadWrite, ReadWrite],
        );
        let opt_layout = Layout::new(
            device,
            "wgpu-gru train step",
            &[
                DynUniform, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, Read,
            ],
        );
        let rec_mod = Shader::GruBackward.create(device, Spec::default());
        let gemm_mod = Shader::TrainGemm.create(device, Spec::default());
        let ra = f64::from(u8::from(config.variant == Variant::ResetAfter));
        let rec_consts = [("H", config.hidden_size as f64), ("RESET_AFTER", ra)];
        let rec = |e: &str| rec_layout.pipeline(device, &rec_mod, e, &rec_consts);
        let head = head.map(|(classes, opt)| {
            let step_mod = Shader::TrainStep.create(device, Spec::default());
            let consts = [
                ("H", config.hidden_size as f64),
                ("C", classes.max(1) as f64),
            ];
            let step = |e: &str| opt_layout.pipeline(device, &step_mod, e, &consts);
            let sgd = matches!(opt, Optimizer::Sgd { .. });
            let mut opt_consts = consts.to_vec();
            opt_consts.push(("SGD", f64::from(u8::from(sgd))));
            HeadPipelines {
                head_loss: step("head_loss"),
                loss_reduce: step("loss_reduce"),
                sumsq: step("sumsq"),
                clip_scale: step("clip_scale"),
                optimise: opt_layout.pipeline(device, &step_mod, "optimise", &opt_consts),
            }
        });
        Pipelines {
            steps: match config.variant {
                Variant::ResetAfter => StepKernels::ResetAfter { fwd: rec("fwd_ra") },
                Variant::ResetBefore => StepKernels::ResetBefore {
                    gates: rec("fwd_rb_gates"),
                    cand: rec("fwd_rb_cand"),
                    bwd_mid: rec("bwd_mid_rb"),
                },
            },
            bwd_elem: rec("bwd_elem"),
            bwd_rec: rec("bwd_rec"),
            transpose: rec("transpose_whh"),
            gemm: gemm_layout.pipeline(device, &gemm_mod, "gemm", &[]),
            colsum: gemm_layout.pipeline(device, &gemm_mod, "colsum", &[]),
            head,
            rec_layout: rec_layout.group,
            gemm_layout: gemm_layout.group,
            opt_layout: opt_layout.group,
        }
    }
}
