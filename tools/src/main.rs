//! `nova-guest-tools man DIR` and `nova-guest-tools completions DIR`: see the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Generate the man pages and shell completions of qga, nova-guest-agent and nova-guest-api.
#[derive(Debug, Parser)]
#[command(name = "nova-guest-tools", version)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Write the man pages (NAME.1, NAME.8, one per qga subcommand) into DIR.
    Man {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Write bash, zsh and fish completions into DIR/bash, DIR/zsh and DIR/fish.
    Completions {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().what {
        What::Man { dir } => nova_guest_tools::write_man_pages(&dir),
        What::Completions { dir } => nova_guest_tools::write_completions(&dir),
    };
    match result {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nova-guest-tools: {e}");
            ExitCode::FAILURE
        }
    }
}
