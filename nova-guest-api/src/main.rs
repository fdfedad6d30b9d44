//! `nova-guest-api [--config-file PATH]`: the nova-guest REST API daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nova_guest_api::{config, server};

/// The Keystone-authenticated REST API of nova-guest (port 4224).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file (INI, shared with nova-guest-agent).
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_CONFIG_FILE)]
    config_file: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load(&args.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nova-guest-api: invalid configuration:\n{e}");
            return ExitCode::from(78);
        }
    };
    server::init_logging(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nova-guest-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = server::shutdown_on_signals();
        nova_guest_api::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "nova-guest-api stopped");
            eprintln!("nova-guest-api: {e}");
            ExitCode::FAILURE
        }
    }
}
