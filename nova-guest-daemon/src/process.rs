//! The body of both daemons' `main`: the configuration is read first (exit 78, EX_CONFIG,
//! with every problem on stderr), then logging, the runtime and the signal handlers, then the
//! daemon until SIGTERM.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// sysexits' EX_CONFIG.
pub const EX_CONFIG: u8 = 78;

/// What `main` does once the configuration is known: `run` gets a token cancelled on SIGTERM
/// or SIGINT and returns when the daemon has stopped.
pub fn run<F, Fut, E>(name: &str, run: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
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
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        crate::signals::cancel_on_signals(shutdown.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        run(shutdown).await.map_err(|e| error_chain(&e))
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

/// Prints an invalid configuration and gives EX_CONFIG.
pub fn config_error(name: &str, errors: &impl Display) -> ExitCode {
    eprintln!("{name}: invalid configuration:\n{errors}");
    ExitCode::from(EX_CONFIG)
}
