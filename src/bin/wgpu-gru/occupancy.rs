//! `wgpu-gru occupancy`: how many workgroups of each shape the default adapter runs at once
//! (`gpu::resident_workgroups`), the launch bound of a grid-wide persistent kernel.

use wgpu_gru::gpu::{GpuContext, resident_workgroups};

/// Arguments of `wgpu-gru occupancy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Invocations per workgroup (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "256,64")]
    pub workgroup_size: Vec<u32>,
    /// Workgroup memory per workgroup in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,16384,49152")]
    pub workgroup_bytes: Vec<u32>,
    /// Workgroups launched per probe: more than the device can hold.
    #[arg(long, default_value_t = 4096)]
    pub launch: u32,
    /// Write the results as a JSON array to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Probes every (size, bytes) pair and prints a line each.
pub fn main(args: Args) -> Result<(), String> {
    let ctx = GpuContext::new_default().map_err(|e| e.to_string())?;
    println!("device: {}", ctx.describe());
    println!(
        "{:>10} {:>10} {:>9} {:>9}",
        "invocs", "bytes", "launched", "resident"
    );
    let mut rows = Vec::new();
    for &wg in &args.workgroup_size {
        for &bytes in &args.workgroup_bytes {
            match resident_workgroups(&ctx, wg, bytes, args.launch) {
                Ok(o) => {
                    println!(
                        "{:>10} {:>10} {:>9} {:>9}",
                        o.workgroup_size, o.workgroup_bytes, o.launched, o.resident
                    );
                    rows.push(serde_json::json!({
                        "device": ctx.describe(),
                        "workgroup_size": o.workgroup_size,
                        "workgroup_bytes": o.workgroup_bytes,
                        "launched": o.launched,
                        "resident": o.resident,
                    }));
                }
                // A shape past the device's limits is reported, not fatal.
                Err(e) => println!("{wg:>10} {bytes:>10}  skipped: {e}"),
            }
        }
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
