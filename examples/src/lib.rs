//! The `qga` CLI's command line as a library item, for its man page and shell completions
//! (`cargo run -p nova-guest-tools -- man|completions DIR`). It is the binary's own
//! `src/bin/qga/cli.rs`, compiled a second time here, so the two cannot drift apart.

// The binary reads every field; here only the clap definitions are used.
#[allow(dead_code)]
#[path = "bin/qga/cli.rs"]
mod cli;

/// The `qga` command line, as `qga --help` shows it.
pub fn qga_command() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}
