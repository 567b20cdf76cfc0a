//! The GPU path: WGSL kernels on wgpu.
//!
//! - [`GpuContext`]: the device and queue (the app's own, or one picked for you).
//! - [`GpuGru`]: a model uploaded once; [`GpuGru::encode`] records a forward into your encoder,
//!   [`GpuGru::forward`] is the blocking convenience.
//! - [`Workspace`]: buffers for one `(T, B)`, reused across forwards.
//! - [`GpuClassifier`]: GRU → [`GpuHead`] (dense + softmax) in one submit.
//! - [`GpuHead`] with any Keras activation and [`GpuMerge`] (a bidirectional layer's halves) are
//!   the pieces a whole Keras model (`predict::Model`) is recorded from, in one submit.
//! - [`GpuStream`]: feeds a timestep or a chunk at a time, keeping h on the GPU between calls.

mod blocks;
mod context;
mod head;
pub(crate) mod io;
mod layer;
pub(crate) mod layout;
mod merge;
mod occupancy;
mod options;
mod pack;
mod plan;
mod stream;
pub mod wgsl;
mod workspace;

pub use context::{AdapterFacts, GpuContext, LossMarker, is_software};
pub use head::{ClassifierWorkspace, GpuClassifier, GpuHead, HeadBinding, final_state_offset};
pub use layer::GpuGru;
pub use merge::{GpuMerge, Halves, Merge, MergeBinding};
pub use occupancy::{Occupancy, resident_workgroups};
pub use options::{Algorithm, ForwardStats, GpuOptions, Precision};
pub use stream::GpuStream;
pub use workspace::Workspace;
