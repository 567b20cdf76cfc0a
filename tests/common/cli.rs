//! Running the `wgpu-gru` binary: where it is, a temporary directory for its files, and golden
//! cases as `wgpu-gru run` command lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wgpu_gru::formats::Format;
use wgpu_gru::npy;

use super::{Array, Case, golden_cases, npy_file};

/// The binary under test; `WGPU_GRU_BIN` overrides the path cargo built (for test binaries
/// copied to another machine).
pub fn bin() -> PathBuf {
    std::env::var_os("WGPU_GRU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let built = option_env!("CARGO_BIN_EXE_wgpu-gru");
            PathBuf::from(built.expect("no wgpu-gru binary (the `cli` feature); set WGPU_GRU_BIN"))
        })
}

/// Runs the binary with `args`.
pub fn run_bin(args: &[String]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// A run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Owned arguments.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory, unique to this process and call.
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("wgpu-gru-test-{tag}-{}-{n}", std::process::id());
        let p = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// [`TempDir::path`] as a command-line argument.
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    /// The names of the files in the directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes lengths as int32 (ONNX's `sequence_lens`) or int64 (PyTorch's) `.npy`.
pub fn write_lengths(path: &Path, lengths: &[usize], int32: bool) {
    let data: Vec<u8> = if int32 {
        lengths
            .iter()
            .flat_map(|&l| (l as i32).to_le_bytes())
            .collect()
    } else {
        lengths
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect()
    };
    let descr = if int32 { "<i4" } else { "<i8" };
    npy_file::write(path, descr, false, &[lengths.len()], &data);
}

/// The flags that reproduce the case's import options.
pub fn option_flags(case: &Case, explicit_format: bool) -> Vec<String> {
    let mut f = Vec::new();
    if explicit_format {
        f.extend(["--format".into(), case.imported.format.name().to_string()]);
    }
    f.extend(super::flags::option_flags(&case.meta.options));
    f
}

/// Writes the case's inputs as .npy files and returns the `run` arguments (without backend).
pub fn case_args(case: &Case, dir: &TempDir, explicit_format: bool) -> Vec<String> {
    let s = |p: PathBuf| p.display().to_string();
    npy::write_f32(dir.path("x.npy"), &case.x.shape, &case.x.data).unwrap();
    let mut args = vec![
        "run".to_string(),
        "--weights".into(),
        s(case.path.clone()),
        "--input".into(),
        s(dir.path("x.npy")),
        "--output".into(),
        s(dir.path("y.npy")),
        "--state-out".into(),
        s(dir.path("state.npy")),
    ];
    if let Some(h0) = &case.h0 {
        npy::write_f32(dir.path("h0.npy"), &h0.shape, &h0.data).unwrap();
        args.extend(["--h0".into(), s(dir.path("h0.npy"))]);
    }
    if let Some(l) = &case.lengths {
        // ONNX sequence_lens are int32, PyTorch lengths int64.
        write_lengths(
            &dir.path("len.npy"),
            l,
            case.imported.format == Format::Onnx,
        );
        args.extend(["--lengths".into(), s(dir.path("len.npy"))]);
    }
    if let Some(m) = &case.mask {
        // Keras masks as np.save writes a bool array.
        let bytes: Vec<u8> = m.iter().map(|&v| u8::from(v)).collect();
        npy_file::write(
            &dir.path("mask.npy"),
            "|b1",
            false,
            &[case.batch, case.steps],
            &bytes,
        );
        args.extend(["--mask".into(), s(dir.path("mask.npy"))]);
        if case.zero_output_for_mask {
            args.push("--zero-output-for-mask".into());
        }
    }
    args.extend(option_flags(case, explicit_format));
    args
}

/// Reads the binary's outputs back under the framework's names.
pub fn read_outputs(case: &Case, dir: &TempDir) -> Vec<(String, Array)> {
    let names = case.shapes.names();
    let read = |p: &str| {
        let (shape, data) = npy::read_f32(dir.path(p)).unwrap();
        Array { shape, data }
    };
    vec![
        (names.output.to_string(), read("y.npy")),
        (names.state.to_string(), read("state.npy")),
    ]
}

/// The golden case with h0, lengths and both directions (`onnx_bidir_seqlens`).
pub fn onnx_case() -> Case {
    let path = golden_cases()
        .into_iter()
        .find(|p| p.ends_with("onnx_bidir_seqlens.safetensors"))
        .unwrap();
    Case::load(&path).unwrap()
}

/// `args` with the value after `flag` replaced.
pub fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).unwrap();
    args[i + 1] = value.to_string();
    args
}
