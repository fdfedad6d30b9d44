//! `nova-guest-agent`: see [`nova_guest_daemon::process::main`].

use std::process::ExitCode;

use clap::Parser;
use nova_guest_agent::{RunOptions, config};
use nova_guest_daemon::process::{self, DaemonArgs};

/// Serves guest actions (QEMU guest agent) for the VMs of this compute host to nova-guest-api.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    process::main(
        "nova-guest-agent",
        &args.daemon,
        config::load,
        |config, shutdown, print_address| {
            nova_guest_agent::run_with(config, shutdown, RunOptions { print_address })
        },
    )
}
