//! Command-line syntax.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, also listed in `--help`.
pub(crate) mod exit {
    /// Bad command line, bad JSON for `raw`, no socket given.
    pub(crate) const USAGE: u8 = 64;
    /// No libvirt domain has the name or UUID given (sysexits `EX_NOHOST`).
    pub(crate) const NO_DOMAIN: u8 = 68;
    /// The socket could not be connected.
    pub(crate) const UNAVAILABLE: u8 = 69;
    /// The agent (or QEMU) answered with an error.
    pub(crate) const AGENT: u8 = 70;
    /// A local file or the connection failed, or the peer broke the protocol.
    pub(crate) const IO: u8 = 74;
    /// The deadline passed.
    pub(crate) const TIMEOUT: u8 = 75;
}

const AFTER_HELP: &str = "\
The agent socket is --socket PATH, else $QGA_SOCKET. With --libvirt DOMAIN the agent is reached
through libvirt instead (the domain's name or UUID; libvirt's socket is --libvirt-socket PATH,
else /run/libvirt/virtqemud-sock or /run/libvirt/libvirt-sock). QMP commands need --qmp PATH.

Exit status:
  0      success
  64     usage error (bad arguments, bad JSON for raw, no socket given)
  68     no libvirt domain with that name or UUID
  69     cannot connect to the socket (or libvirt's), the domain is not running, or the
         agent is not connected
  70     the agent or QEMU answered with an error (a disabled command, for example)
  74     local I/O error, connection closed, or protocol error
  75     timed out (see --timeout)
  exec   exits with the guest program's exit code; 128+N when signal N killed it
         (a guest code outside 0..=255 becomes 1); an exit code can clash with the
         codes above, so check stderr for a line starting with \"qga: \"

Logs go to stderr with -v (debug) or -vv (trace), or as RUST_LOG says.";

/// Talk to a QEMU guest agent (or, with --qmp, to QEMU's monitor).
#[derive(Debug, Parser)]
#[command(name = "qga", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The guest agent's UNIX socket [default: $QGA_SOCKET].
    #[arg(
        long,
        short = 's',
        value_name = "PATH",
        global = true,
        conflicts_with = "qmp"
    )]
    pub(crate) socket: Option<PathBuf>,

    /// Reach the agent through libvirt: the domain's name or UUID (a Nova instance id).
    #[arg(
        long,
        value_name = "DOMAIN",
        global = true,
        conflicts_with_all = ["socket", "qmp"]
    )]
    pub(crate) libvirt: Option<String>,

    /// libvirt's socket, with --libvirt [default: /run/libvirt/virtqemud-sock, else
    /// /run/libvirt/libvirt-sock].
    #[arg(long, value_name = "PATH", global = true, requires = "libvirt")]
    pub(crate) libvirt_socket: Option<PathBuf>,

    /// QEMU's QMP UNIX socket, for the `qmp` commands.
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) qmp: Option<PathBuf>,

    /// Bound on the whole call (connect, handshake, command), in seconds, fractions allowed
    /// [default: 5; 60 for exec, cat, get, put and fsfreeze freeze/thaw; none for
    /// waiting in `qmp events`].
    #[arg(long, short = 't', value_name = "SECS", global = true, value_parser = parse_secs)]
    pub(crate) timeout: Option<Duration>,

    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Log to stderr (-v debug, -vv trace). Payloads are never logged.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Check that the agent answers (guest-ping).
    Ping,
    /// Agent version and every command it knows, enabled or not.
    Info,
    /// Operating system and kernel.
    Osinfo,
    /// The guest's host name.
    Hostname,
    /// Network interfaces, addresses and counters.
    Interfaces,
    /// Logged-in users.
    Users,
    /// Mounted filesystems.
    Fsinfo,
    /// The guest's clock (UTC).
    Time,
    /// Run a program in the guest; its stdout and stderr become ours, its exit code ours.
    Exec(ExecArgs),
    /// Print a guest file to stdout.
    Cat {
        /// Path in the guest.
        guest_path: String,
    },
    /// Copy a guest file to a local file.
    Get {
        /// Path in the guest.
        guest_path: String,
        /// Local file to write (replaced once the copy is complete).
        local: PathBuf,
    },
    /// Copy a local file into the guest (created or truncated), then verify it by reading
    /// it back.
    Put {
        /// Local file to read.
        local: PathBuf,
        /// Path in the guest.
        guest_path: String,
    },
    /// Set a user's password, read from stdin (one trailing newline is removed).
    SetPassword {
        /// The guest account.
        user: String,
        /// The input is a crypt(3) hash, not a plain password.
        #[arg(long)]
        crypted: bool,
    },
    /// Freeze or thaw the guest's filesystems, or show the state.
    Fsfreeze {
        #[command(subcommand)]
        action: FreezeAction,
    },
    /// Shut the guest down; succeeds once the agent took the command.
    Shutdown {
        /// How to stop [default: powerdown].
        #[arg(long, value_enum)]
        mode: Option<Mode>,
    },
    /// Send any request object, e.g. '{"execute":"guest-ping"}'; print its return value
    /// as JSON. (For guest-shutdown and guest-suspend-*, which send no reply on success, use
    /// the typed commands.)
    Raw {
        /// The request as JSON.
        #[arg(value_name = "JSON")]
        request: String,
    },
    /// QEMU monitor commands (need --qmp).
    Qmp {
        #[command(subcommand)]
        action: QmpAction,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Feed this file (or `-` for our stdin) to the program's stdin [default: /dev/null].
    #[arg(long, value_name = "FILE|-")]
    pub(crate) stdin: Option<PathBuf>,

    /// Set an environment variable (repeatable). Once one is given the program sees only
    /// these: qemu-ga replaces the whole environment, PATH included.
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,

    /// The program (looked up in the agent's PATH) and its arguments.
    #[arg(
        value_name = "PROG ARGS",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub(crate) enum FreezeAction {
    /// Print `thawed` or `frozen`.
    Status,
    /// Freeze every filesystem; they stay frozen until `fsfreeze thaw`.
    Freeze,
    /// Thaw them.
    Thaw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Mode {
    Powerdown,
    Reboot,
    Halt,
}

#[derive(Debug, Subcommand)]
pub(crate) enum QmpAction {
    /// Send any request object, e.g. '{"execute":"query-version"}'; print its return value.
    Raw {
        /// The request as JSON.
        #[arg(value_name = "JSON")]
        request: String,
    },
    /// The VM's run state (running, paused, ...).
    Status,
    /// Print events as JSON lines until --count of them came (or forever).
    Events {
        /// Stop after this many events.
        #[arg(long, short = 'n', value_name = "N")]
        count: Option<u64>,
    },
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("the timeout must be more than 0 seconds".into());
    }
    // A year is far more than any guest command needs, and far from what a clock overflows.
    const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;
    if secs > MAX_SECS {
        return Err(format!(
            "'{text}' seconds is too long (at most {MAX_SECS} seconds)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}' seconds is too long"))
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not of the form KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_and_env() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("nan").is_err());
        assert!(parse_secs("inf").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }
}
