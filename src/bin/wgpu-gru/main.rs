//! `wgpu-gru`: run GRU models from PyTorch, Keras, ONNX or the seed on a GPU (or the CPU).
//!
//! Each subcommand lives in its own file and exposes `Args` (a clap `Args` struct) and
//! `fn main(args) -> Result<(), String>`; errors are printed as one line.

mod bench;
mod demo;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Time forwards on the standard shapes (or B,T,I,H) for the GPU and CPU paths.
    Bench(bench::Args),
}

/// Prints `msg` as one line on stderr.
fn report_error(msg: &str) {
    let line: String = msg
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    eprintln!("wgpu-gru: error: {line}");
}

fn main() -> ExitCode {
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
            // clap's first line is the message; the rest is usage.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            report_error(&format!(
                "{} (see --help)",
                first.trim_start_matches("error: ")
            ));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Run(args)) => run::main(args),
        Some(Command::Bench(args)) => bench::main(args),
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
