//! `qga`: a command-line client for the QEMU guest agent and QEMU's QMP monitor, built on
//! `qga-client`. Run `qga --help` for the commands and the exit codes.

mod agent;
mod cli;
mod error;
mod output;
mod qmp;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use qga_client::Client;
use tokio::time::Instant;

use crate::cli::{Cli, Cmd, exit};
use crate::error::CliError;

/// Default bound on a whole call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound for exec, file transfers and fsfreeze.
const LONG_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors exit 64, not clap's 2, and
            // read `qga: ...` like every other error.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.render().to_string();
            let text = match text.strip_prefix("error: ") {
                Some(rest) => format!("qga: {rest}"),
                None => text,
            };
            let _ = output::stderr(text.as_bytes());
            return ExitCode::from(exit::USAGE);
        }
    };
    init_logging(cli.verbose);
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = output::stderr(format!("qga: {}\n", e.report()).as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr only with `-v` or `RUST_LOG`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match (std::env::var("RUST_LOG"), verbose) {
        (Ok(spec), _) if !spec.is_empty() => EnvFilter::new(spec),
        (_, 0) => return,
        (_, 1) => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Where the agent is.
pub(crate) enum Target {
    /// Its UNIX socket.
    Socket(PathBuf),
    /// Through libvirt: a domain's name or UUID, and libvirt's socket if given.
    Libvirt {
        domain: String,
        socket: Option<PathBuf>,
    },
}

/// What every command needs: where to connect, the deadline, the output form.
pub(crate) struct Ctx {
    pub(crate) target: Target,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
}

impl Ctx {
    /// Connects and synchronises within the timeout, and returns a handle whose every call
    /// (exec polling and file chunks included) ends by the same deadline: the whole command
    /// gets `--timeout`, however many calls it makes.
    pub(crate) async fn connect(&self) -> Result<Client, CliError> {
        let deadline = Instant::now() + self.timeout;
        let builder = Client::builder().timeout(self.timeout);
        let client = match &self.target {
            Target::Socket(path) => builder.connect(path).await?,
            Target::Libvirt { domain, socket } => {
                connect_libvirt(builder, domain, socket.as_deref(), self.timeout).await?
            }
        };
        Ok(client.with_deadline(deadline))
    }

    /// Runs `work` (connect, handshake, command). A call that the deadline cut short (it had
    /// less than its own timeout) is reported as the whole `command` timing out after
    /// `--timeout`, since that is what ran out.
    pub(crate) async fn within<T>(
        &self,
        command: &str,
        work: impl Future<Output = Result<T, CliError>>,
    ) -> Result<T, CliError> {
        match work.await {
            Err(CliError::Agent(qga_client::Error::Timeout { after, .. }))
                if after < self.timeout =>
            {
                Err(CliError::agent_timeout(command, self.timeout))
            }
            other => other,
        }
    }
}

/// A client for `domain` on a new connection to libvirt (closed with the client).
#[cfg(feature = "libvirt")]
async fn connect_libvirt(
    builder: qga_client::ClientBuilder,
    domain: &str,
    socket: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Client, CliError> {
    let mut libvirt = qga_client::libvirt::LibvirtConnection::builder()
        .connect_timeout(timeout)
        .call_timeout(timeout);
    if let Some(path) = socket {
        libvirt = libvirt.socket(path);
    }
    let libvirt = libvirt.connect().await?;
    Ok(builder.connect_libvirt(&libvirt, domain).await?)
}

#[cfg(not(feature = "libvirt"))]
async fn connect_libvirt(
    _: qga_client::ClientBuilder,
    _: &str,
    _: Option<&std::path::Path>,
    _: Duration,
) -> Result<Client, CliError> {
    Err(CliError::Usage(
        "this qga was built without the libvirt feature".into(),
    ))
}

/// Runs the command; returns the exit code.
async fn run(cli: Cli) -> Result<u8, CliError> {
    let Cli {
        socket,
        libvirt,
        libvirt_socket,
        qmp,
        timeout,
        json,
        command,
        ..
    } = cli;
    if let (Cmd::Qmp { .. }, Some(_)) = (&command, &libvirt) {
        return Err(CliError::Usage(
            "the qmp commands talk to QEMU's monitor (--qmp PATH), not through libvirt".into(),
        ));
    }
    if let Cmd::Qmp { action } = command {
        let Some(qmp_socket) = qmp else {
            return Err(CliError::Usage(
                "the qmp commands need --qmp PATH (QEMU's QMP socket)".into(),
            ));
        };
        return qmp::run(action, qmp_socket, timeout, json).await;
    }
    if qmp.is_some() {
        return Err(CliError::Usage(
            "--qmp is for the qmp commands; the agent's socket is --socket PATH".into(),
        ));
    }
    let target = match (socket, libvirt) {
        (_, Some(domain)) => Target::Libvirt {
            domain,
            socket: libvirt_socket,
        },
        (Some(path), None) => Target::Socket(path),
        (None, None) => match std::env::var_os("QGA_SOCKET") {
            Some(path) if !path.is_empty() => Target::Socket(PathBuf::from(path)),
            _ => {
                return Err(CliError::Usage(
                    "no agent socket: pass --socket PATH (or --libvirt DOMAIN) or set QGA_SOCKET"
                        .into(),
                ));
            }
        },
    };
    let long = matches!(
        command,
        Cmd::Exec(_)
            | Cmd::Cat { .. }
            | Cmd::Get { .. }
            | Cmd::Put { .. }
            | Cmd::Fsfreeze {
                action: cli::FreezeAction::Freeze | cli::FreezeAction::Thaw
            }
    );
    let timeout = timeout.unwrap_or(if long { LONG_TIMEOUT } else { DEFAULT_TIMEOUT });
    let ctx = Ctx {
        target,
        timeout,
        json,
    };
    match command {
        Cmd::Exec(args) => transfer::exec(&ctx, args).await,
        Cmd::Cat { guest_path } => transfer::cat(&ctx, &guest_path).await.map(|()| 0),
        Cmd::Get { guest_path, local } => {
            transfer::get(&ctx, &guest_path, &local).await.map(|()| 0)
        }
        Cmd::Put { local, guest_path } => {
            transfer::put(&ctx, &local, &guest_path).await.map(|()| 0)
        }
        other => agent::run(&ctx, other).await.map(|()| 0),
    }
}
