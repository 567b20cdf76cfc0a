//! Every WGSL shader passes naga's validator (the naga wgpu uses), with its overrides
//! specialised, and translates to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL (GL).

use wgpu_gru::gpu::Precision;
use wgpu_gru::gpu::wgsl::Shader;

/// The modules that read weights, which have an f16-weights variant.
fn f16_modules() -> impl Iterator<Item = Shader> {
    Shader::ALL.into_iter().filter(|s| s.reads_weights())
}

/// Every module as the crate compiles it: (name, composed source), the f16-weights variants
/// named `… (f16)`.
fn all_shaders() -> impl Iterator<Item = (String, &'static str)> {
    Shader::ALL
        .into_iter()
        .map(|s| (s.name().to_string(), s.source()))
        .chain(f16_modules().map(|s| {
            (
                format!("{} (f16)", s.name()),
                s.source_for(Precision::F16Weights),
            )
        }))
}

#[test]
fn f16_variants_differ_only_in_the_weights_type() {
    for s in f16_modules() {
        let (a, b) = (s.source(), s.source_for(Precision::F16Weights));
        assert!(b.starts_with("enable f16;\n") && !a.contains("enable f16"));
        assert_eq!(
            b.trim_start_matches("enable f16;\n")
                .replace("alias wt = f16;", "alias wt = f32;"),
            a
        );
    }
}

fn parse(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    (module, info)
}

/// Override values as the crate sets them for a typical model (H = 65, reset-before, clip; a
/// head of K = 65 inputs and C = 10 classes), restricted to those `module` declares (naga refuses
/// unknown names, as wgpu does).
fn constants(module: &naga::Module) -> naga::back::PipelineConstants {
    let mut c = naga::back::PipelineConstants::default();
    for (k, v) in [
        ("H", 65.0),
        ("BS", 8.0),
        ("RESET_AFTER", 0.0),
        ("F_KIND", 3.0),
        ("F_ALPHA", 0.2),
        ("CLIP", 3.0),
        ("K", 65.0),
        ("C", 10.0),
    ] {
        if module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some(k))
        {
            c.insert(k.to_string(), v);
        }
    }
    c
}

#[test]
fn every_shader_validates() {
    for (name, src) in all_shaders() {
        let (module, info) = parse(&name, src);
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
        let consts = if module.overrides.is_empty() {
            naga::back::PipelineConstants::default()
        } else {
            constants(&module)
        };
        naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
            .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
    }
}

#[test]
fn every_shader_translates_for_vulkan_metal_dx12_gl() {
    for (name, src) in all_shaders() {
        let (module, info) = parse(&name, src);
        let consts = if module.overrides.is_empty() {
            naga::back::PipelineConstants::default()
        } else {
            constants(&module)
        };
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
                .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
        let (module, info) = (module.into_owned(), info.into_owned());

        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name} → SPIR-V: {e}"));

        let msl_opts = naga::back::msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        let pipe = naga::back::msl::PipelineOptions::default();
        naga::back::msl::write_string(&module, &info, &msl_opts, &pipe)
            .unwrap_or_else(|e| panic!("{name} → MSL: {e}"));

        let mut hlsl = String::new();
        let f16 = name.ends_with("(f16)");
        let opts = naga::back::hlsl::Options {
            // DX12 has 16-bit types from shader model 6.2.
            shader_model: if f16 {
                naga::back::hlsl::ShaderModel::V6_2
            } else {
                naga::back::hlsl::ShaderModel::V6_0
            },
            ..Default::default()
        };
        let hlsl_pipe = naga::back::hlsl::PipelineOptions::default();
        let mut w = naga::back::hlsl::Writer::new(&mut hlsl, &opts, &hlsl_pipe);
        w.write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name} → HLSL: {e}"));
        assert!(!hlsl.is_empty());

        // GL has no f16: the crate refuses f16 weights there (Error::MissingFeature).
        for ep in module.entry_points.iter().filter(|_| !f16) {
            let mut glsl = String::new();
            let gl_opts = naga::back::glsl::Options {
                version: naga::back::glsl::Version::Embedded {
                    version: 310,
                    is_webgl: false,
                },
                ..Default::default()
            };
            let gl_pipe = naga::back::glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut w = naga::back::glsl::Writer::new(
                &mut glsl,
                &module,
                &info,
                &gl_opts,
                &gl_pipe,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .unwrap_or_else(|e| panic!("{name}:{} → GLSL: {e}", ep.name));
            w.write()
                .unwrap_or_else(|e| panic!("{name}:{} → GLSL: {e}", ep.name));
            assert!(!glsl.is_empty());
        }
    }
}

/// Shared code exists once: every recurrence module is composed from `prelude.wgsl`, and no
/// run of 10 lines or more (blank lines and comments aside) stands twice in `shaders/`, within
/// a file or between two.
#[test]
fn shaders_repeat_no_run_of_ten_lines() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let prelude = std::fs::read_to_string(dir.join("prelude.wgsl")).unwrap();
    for s in f16_modules().filter(|&s| s != Shader::InputProj) {
        assert!(s.source().contains(&prelude), "{}", s.name());
    }
    let mut lines: Vec<(String, usize, String)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if !l.is_empty() && !l.starts_with("//") {
                lines.push((name.clone(), i + 1, l.to_string()));
            }
        }
    }
    const RUN: usize = 10;
    let mut seen = std::collections::HashMap::new();
    for w in lines.windows(RUN) {
        // Windows that cross a file boundary are not runs.
        if w.iter().any(|(f, _, _)| *f != w[0].0) {
            continue;
        }
        let key: Vec<&str> = w.iter().map(|(_, _, l)| l.as_str()).collect();
        if let Some((f, line)) = seen.insert(key.join("\n"), (w[0].0.clone(), w[0].1)) {
            panic!("{f}:{line} and {}:{} repeat {RUN} lines", w[0].0, w[0].1);
        }
    }
}

/// Only the `*_subgroup.wgsl` modules need the subgroup capability: the crate builds them only on devices with
/// `Features::SUBGROUP`, and every other shader must run without it (GL has none).
#[test]
fn only_the_subgroup_shader_needs_subgroups() {
    let caps = naga::valid::Capabilities::all()
        - naga::valid::Capabilities::SUBGROUP
        - naga::valid::Capabilities::SUBGROUP_BARRIER;
    for (name, src) in all_shaders() {
        let module = naga::front::wgsl::parse_str(src).unwrap();
        let res = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module);
        assert_eq!(
            res.is_err(),
            name.contains("_subgroup.wgsl"),
            "{name}: {res:?}"
        );
    }
}
