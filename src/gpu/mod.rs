//! The GPU path: WGSL kernels on wgpu.
//!
//! - [`GpuContext`]: the device and queue (the app's own, or one picked for you).
//! - [`GpuGru`]: a model uploaded once; [`GpuGru::encode`] records a forward into your encoder,
//!   [`GpuGru::forward`] is the blocking convenience.
//! - [`Workspace`]: buffers for one `(T, B)`, reused across forwards.

mod context;
pub mod kernels;
mod layer;
mod workspace;

pub use context::GpuContext;
pub use layer::{Algorithm, ForwardStats, GpuGru};
pub use workspace::Workspace;
