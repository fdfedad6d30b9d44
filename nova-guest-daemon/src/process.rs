//! The body of both daemons' `main`: the same command line (`--config-file`,
//! `--check-config`, `--print-address`), the configuration read first (exit 78, EX_CONFIG, with
//! every problem on stderr), then logging, the runtime, the signal handlers and systemd's
//! watchdog keep-alives (when asked for), then the daemon until SIGTERM or SIGINT.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args as _, FromArgMatches as _};
use nova_guest_conf::LogFormat;
use tokio_util::sync::CancellationToken;

/// sysexits' EX_CONFIG.
pub const EX_CONFIG: u8 = 78;

/// The configuration file both daemons read by default.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/nova-guest/nova-guest.conf";

/// The command line both daemons share.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The configuration file (INI, shared by nova-guest-agent and nova-guest-api).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Print `listening on ADDRESS` on stdout once bound (useful with listen_port = 0).
    #[arg(long)]
    pub print_address: bool,
}

/// What a daemon's `run` gets besides its configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// Cancelled to stop the daemon (SIGTERM and SIGINT do it in the binaries).
    pub shutdown: CancellationToken,
    /// Print `listening on ADDRESS` on stdout once bound (for tests and scripts).
    pub print_address: bool,
}

impl RunOptions {
    /// Options stopping on `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            print_address: false,
        }
    }
}

/// What a daemon's configuration says about logging.
pub trait Logging {
    /// The log format and whether to log at debug level.
    fn logging(&self) -> (LogFormat, bool);
}

/// Runs a daemon: parses the shared command line (`name` and `about` for `--help`), loads the
/// configuration with `load` (or only checks it), installs logging, starts the runtime and the
/// signal handlers, and runs `run(config, options)` until it returns.
pub fn main<C, E, F, Fut, R>(
    name: &'static str,
    about: &'static str,
    load: impl FnOnce(&Path) -> Result<C, E>,
    run: F,
) -> ExitCode
where
    C: Logging,
    E: Display,
    F: FnOnce(C, RunOptions) -> Fut,
    Fut: Future<Output = Result<(), R>>,
    R: std::error::Error,
{
    main_with(name, about, |c| c, |_, _| None, load, run)
}

/// [`main`] for a daemon with options of its own: `extend` adds them to the shared command
/// line, and `tool` runs once the configuration is loaded; when it returns an exit code the
/// daemon exits with it instead of running (for one-shot commands such as printing a
/// derived secret).
pub fn main_with<C, E, F, Fut, R>(
    name: &'static str,
    about: &'static str,
    extend: impl FnOnce(clap::Command) -> clap::Command,
    tool: impl FnOnce(&clap::ArgMatches, &C) -> Option<ExitCode>,
    load: impl FnOnce(&Path) -> Result<C, E>,
    run: F,
) -> ExitCode
where
    C: Logging,
    E: Display,
    F: FnOnce(C, RunOptions) -> Fut,
    Fut: Future<Output = Result<(), R>>,
    R: std::error::Error,
{
    let matches = extend(command(name, about)).get_matches();
    let args = match DaemonArgs::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let config = match load(&args.config_file) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{name}: invalid configuration:\n{errors}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if args.check_config {
        println!("{}: ok", args.config_file.display());
        return ExitCode::SUCCESS;
    }
    if let Some(code) = tool(&matches, &config) {
        return code;
    }
    let (format, debug) = config.logging();
    crate::logging::init(format, debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = RunOptions {
        shutdown: CancellationToken::new(),
        print_address: args.print_address,
    };
    let result = runtime.block_on(async {
        crate::signals::cancel_on_signals(options.shutdown.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        // Keep-alives for systemd's WatchdogSec=, when it asked for them.
        let _watchdog = crate::watchdog::spawn(options.shutdown.clone());
        run(config, options).await.map_err(|e| error_chain(&e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line of daemon `name` (for `--help`, man pages and shell completions).
pub fn command(name: &'static str, about: &'static str) -> clap::Command {
    // After augment_args: it sets the struct's own doc comment as the about text.
    DaemonArgs::augment_args(clap::Command::new(name))
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
}

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
