//! `wgpu-gru shader`: prints the WGSL modules exactly as the crate compiles them (the generated
//! header, the shared fragments, then the kernel file), so what runs can be read or fed to other
//! tools. Specialisation (`override` constants such as H) happens when a pipeline is built.

use wgpu_gru::gpu::Precision;
use wgpu_gru::gpu::wgsl::{Shader, Spec};

/// Arguments of `wgpu-gru shader`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Module to print, by kernel file (`step.wgsl`, …); without one, the names are listed.
    pub name: Option<String>,
    /// The weights' storage type the module is built for (`--precision` of bench).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    pub precision: String,
    /// The register kernels' vec4s per gate row slice (KQ, 1 to 8): `--regs-cols` / 4 for
    /// `sequence_regs.wgsl`; `sequence_regs_subgroup.wgsl` may use fewer for H not a multiple of
    /// the slice.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub kq: u32,
}

/// Prints one module, or lists them.
pub fn main(args: Args) -> Result<(), String> {
    let Some(name) = args.name else {
        for s in Shader::ALL {
            println!("{}", s.name());
        }
        return Ok(());
    };
    let wanted = name.trim_end_matches(".wgsl");
    match Shader::ALL
        .into_iter()
        .find(|s| s.name().trim_end_matches(".wgsl") == wanted)
    {
        Some(s) => {
            let precision = match args.precision.as_str() {
                "f16" => Precision::F16Weights,
                _ => Precision::F32,
            };
            print!(
                "{}",
                s.source_with(Spec {
                    precision,
                    kq: args.kq
                })
            );
            Ok(())
        }
        None => Err(format!(
            "no shader {name}; the shaders are {}",
            Shader::ALL.map(Shader::name).join(", ")
        )),
    }
}
