//! `nova-guest-api [--config-file PATH]`: the nova-guest REST API daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nova_guest_api::config;
use nova_guest_daemon::{logging, process};

/// The Keystone-authenticated REST API of nova-guest (port 4224).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file (INI, shared with nova-guest-agent).
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_CONFIG_FILE)]
    config_file: PathBuf,
    /// Print `listening on ADDRESS` on stdout once bound (useful with listen_port = 0).
    #[arg(long)]
    print_address: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load(&args.config_file) {
        Ok(c) => c,
        Err(errors) => return process::config_error("nova-guest-api", &errors),
    };
    logging::init(config.log_format, config.debug);
    let options = nova_guest_api::RunOptions {
        print_address: args.print_address,
    };
    process::run("nova-guest-api", |shutdown| {
        nova_guest_api::run_with(config, shutdown, options)
    })
}
