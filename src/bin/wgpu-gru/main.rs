//! `wgpu-gru`: run GRU models from PyTorch, Keras, ONNX or the seed on a GPU (or the CPU).
//!
//! Each subcommand lives in its own file and exposes `Args` (a clap `Args` struct) and
//! `fn main(args) -> Result<(), String>`; errors are printed as one line.

mod bench;
mod demo;
mod grad;
mod occupancy;
mod predict;
mod run;
mod shader;
mod train;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Run GRU layers on any GPU through wgpu, or on the CPU.
#[derive(Debug, Parser)]
#[command(name = "wgpu-gru", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model from a safetensors file on .npy inputs and write .npy outputs.
    Run(run::Args),
    /// Run a whole saved model (Keras .keras/.h5, .onnx) as the framework's predict does.
    Predict(predict::Args),
    /// Time forwards on the standard shapes (or B,T,I,H) for the GPU and CPU paths.
    Bench(bench::Args),
    /// Gradients of a model's weights, input and h0 for upstream gradients (.npy → .safetensors).
    Grad(grad::Args),
    /// Train GRU(128) → Dense(10) → softmax on the digits from scratch (GPU by default).
    Train(train::Args),
    /// Print a WGSL module exactly as it is compiled (or list them).
    Shader(shader::Args),
    /// How many workgroups of each shape the GPU runs at once.
    Occupancy(occupancy::Args),
}

/// Library options an error may name, and the flag that sets each on the command line.
const OPTION_FLAGS: [(&str, &str); 1] = [("`ImportOptions::node`", "--node NAME")];

/// Prints `msg` as one line on stderr, naming flags where the library names options.
fn report_error(msg: &str) {
    let mut msg = msg.to_string();
    for (option, flag) in OPTION_FLAGS {
        msg = msg.replace(option, flag);
    }
    let line: String = msg
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    eprintln!("wgpu-gru: error: {line}");
}

/// The subcommand named on the command line, if any (`run`, `bench`).
fn subcommand_in_args() -> Option<String> {
    let cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| names.contains(a))
}

/// One line for a clap error that a newcomer can act on: every missing or conflicting argument
/// by name (clap lists them on lines of their own, after its first), and where help is.
fn clap_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let sub = subcommand_in_args();
    let help = match &sub {
        Some(s) => format!("see wgpu-gru {s} --help"),
        None => "see wgpu-gru --help".to_string(),
    };
    let strings = |kind| match e.get(kind) {
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::String(v)) => vec![v.clone()],
        _ => Vec::new(),
    };
    let and_list = |v: &[String]| match v {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    match e.kind() {
        ErrorKind::MissingRequiredArgument => {
            let missing = strings(ContextKind::InvalidArg);
            let who = sub.as_deref().unwrap_or("wgpu-gru");
            format!("{who} needs {} ({help})", and_list(&missing))
        }
        ErrorKind::ArgumentConflict => {
            let arg = strings(ContextKind::InvalidArg);
            let prior = strings(ContextKind::PriorArg);
            format!(
                "{} cannot be used with {} ({help})",
                and_list(&arg),
                and_list(&prior)
            )
        }
        _ => {
            // clap's message, and any detail lines (possible values, tips), before its usage.
            let text = e.render().to_string();
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let first = lines.join("; ");
            let first = first.trim_start_matches("error: ");
            format!(
                "{} ({help})",
                if first.is_empty() {
                    "invalid arguments"
                } else {
                    first
                }
            )
        }
    }
}

/// On a headless machine Mesa's Vulkan device-select layer still asks libwayland for a display
/// while wgpu enumerates adapters, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not
/// set` (twice) before any line of ours. Without XDG_RUNTIME_DIR there is no Wayland display to
/// find, so the layer has nothing to learn there: turn it off (wgpu picks the adapter itself).
fn quiet_headless_vulkan() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn main() -> ExitCode {
    quiet_headless_vulkan();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            report_error(&clap_message(&e));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Run(args)) => run::main(args),
        Some(Command::Predict(args)) => predict::main(args),
        Some(Command::Bench(args)) => bench::main(args),
        Some(Command::Grad(args)) => grad::main(args),
        Some(Command::Train(args)) => train::main(args),
        Some(Command::Shader(args)) => shader::main(args),
        Some(Command::Occupancy(args)) => occupancy::main(args),
        // No subcommand: the main job, the digits demo (`cargo run --release`).
        None => demo::main(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            report_error(&msg);
            ExitCode::FAILURE
        }
    }
}
