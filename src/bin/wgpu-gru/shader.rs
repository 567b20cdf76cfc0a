//! `wgpu-gru shader`: prints the WGSL modules exactly as the crate compiles them (the generated
//! header, the shared fragments, then the kernel file), so what runs can be read or fed to other
//! tools. Specialisation (`override` constants such as H) happens when a pipeline is built.

use wgpu_gru::gpu::wgsl::Shader;

/// Arguments of `wgpu-gru shader`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Module to print, by kernel file (`gru.wgsl`, …); without one, the names are listed.
    pub name: Option<String>,
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
            print!("{}", s.source());
            Ok(())
        }
        None => Err(format!(
            "no shader {name}; the shaders are {}",
            Shader::ALL.map(Shader::name).join(", ")
        )),
    }
}
