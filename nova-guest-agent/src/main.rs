//! `nova-guest-agent`: reads the configuration, installs logging and signal handlers, and
//! calls [`nova_guest_agent::run_with`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use nova_guest_agent::config::{self, DEFAULT_CONFIG_FILE};
use nova_guest_agent::{RunOptions, logging, server};

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
        Err(errors) => {
            eprintln!("nova-guest-agent: invalid configuration:\n{errors}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if args.check_config {
        println!("{}: ok", args.config_file.display());
        return ExitCode::SUCCESS;
    }
    logging::init(config.log_format, config.debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nova-guest-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = RunOptions {
        print_address: args.print_address,
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        server::cancel_on_signals(shutdown.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        nova_guest_agent::run_with(config, shutdown, options)
            .await
            .map_err(|e| nova_guest_agent::error::error_chain(&e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "nova-guest-agent failed");
            eprintln!("nova-guest-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
