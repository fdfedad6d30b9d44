//! `nova-guest-api`: see [`nova_guest_daemon::process::main`].

use std::process::ExitCode;

use clap::Parser;
use nova_guest_api::{RunOptions, config};
use nova_guest_daemon::process::{self, DaemonArgs};

/// The Keystone-authenticated REST API of nova-guest (port 4224).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    process::main(
        "nova-guest-api",
        &args.daemon,
        config::load,
        |config, shutdown, print_address| {
            nova_guest_api::run_with(config, shutdown, RunOptions { print_address })
        },
    )
}
