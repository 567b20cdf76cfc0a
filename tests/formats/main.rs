//! Formats and frameworks: the golden cases of PyTorch, Keras, ONNX Runtime and the seed, import refusals, .npy, .onnx and .pt files, ONNX activations, and whole saved models.
//!
//! One test binary (each links wgpu) with one GPU context (`gpu_common::ctx`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../gpu_common/mod.rs"]
mod gpu_common;

mod golden;
mod import_refusals;
mod npy_files;
mod onnx_activations;
mod onnx_files;
mod pt_checkpoints;
mod whole_models;
