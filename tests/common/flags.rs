//! The `wgpu-gru run` flags that reproduce a set of import options.
//!
//! Self-contained: `fuzz/src/targets.rs` includes this file too.

use wgpu_gru::Direction;
use wgpu_gru::formats::ImportOptions;

/// The flags for `o` (without `--format`).
pub fn option_flags(o: &ImportOptions) -> Vec<String> {
    let mut f = Vec::new();
    if let Some(d) = o.direction {
        let d = match d {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        };
        f.extend(["--direction".into(), d.into()]);
    }
    for (on, flag) in [
        (o.batch_first, "--batch-first"),
        (o.go_backwards, "--go-backwards"),
        (o.linear_before_reset, "--linear-before-reset"),
    ] {
        if on {
            f.push(flag.to_string());
        }
    }
    let join = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !o.activations.is_empty() {
        f.extend(["--activations".into(), o.activations.join(",")]);
    }
    if !o.activation_alpha.is_empty() {
        f.push(format!("--activation-alpha={}", join(&o.activation_alpha)));
    }
    if !o.activation_beta.is_empty() {
        f.push(format!("--activation-beta={}", join(&o.activation_beta)));
    }
    if let Some(c) = o.clip {
        f.extend(["--clip".into(), c.to_string()]);
    }
    f
}
