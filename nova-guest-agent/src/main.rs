//! `nova-guest-agent`: reads the configuration, installs logging and signal handlers, and
//! calls [`nova_guest_agent::run_with`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nova_guest_agent::RunOptions;
use nova_guest_agent::config::{self, DEFAULT_CONFIG_FILE};
use nova_guest_daemon::{logging, process};

/// Serves guest actions (QEMU guest agent) for the VMs of this compute host to nova-guest-api.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The configuration file (INI, shared with nova-guest-api).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_FILE)]
    config_file: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Print `listening on ADDRESS` on stdout once bound (useful with listen_port = 0).
    #[arg(long)]
    print_address: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load(&args.config_file) {
        Ok(c) => c,
        Err(errors) => return process::config_error("nova-guest-agent", &errors),
    };
    if args.check_config {
        println!("{}: ok", args.config_file.display());
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_format, config.debug);
    let options = RunOptions {
        print_address: args.print_address,
    };
    process::run("nova-guest-agent", |shutdown| {
        nova_guest_agent::run_with(config, shutdown, options)
    })
}
