//! Man pages and shell completions for the project's three programs, generated from their own
//! clap command lines so they cannot drift from `--help`:
//!
//! - `qga(1)` and one page per subcommand (`qga-exec(1)`, ...), from
//!   [`qga_examples::qga_command`];
//! - `nova-guest-agent(8)`, from [`nova_guest_daemon::process::command`];
//! - `nova-guest-api(8)`, the same plus its `--print-agent-token` ([`nova_guest_api::tools`]).
//!
//! Completions are written for bash, zsh and fish, in the layout the shells look in
//! (`bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`). It installs nothing itself:
//! `deploy/install.sh` copies what it writes.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let dir = std::path::Path::new("target/man");
//! for page in nova_guest_tools::write_man_pages(dir)? {
//!     println!("{}", page.display());
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// One program: its command line, its man section and what its page says beyond `--help`.
#[derive(Debug, Clone)]
pub struct Program {
    /// Its clap command line.
    pub command: Command,
    /// `1` (user commands) or `8` (daemons).
    pub section: &'static str,
    /// Extra roff sections (FILES, SIGNALS, ...) placed before VERSION.
    pub extra: String,
}

/// `qga`, `nova-guest-agent` and `nova-guest-api`.
pub fn programs() -> Vec<Program> {
    use nova_guest_daemon::process::command;
    vec![
        Program {
            command: qga_examples::qga_command(),
            section: "1",
            extra: QGA_EXTRA.to_owned(),
        },
        Program {
            command: command("nova-guest-agent", nova_guest_agent::ABOUT),
            section: "8",
            extra: [AGENT_FILES, &daemon_sections("agent"), AGENT_EXIT].concat(),
        },
        Program {
            command: nova_guest_api::tools::arguments(command(
                "nova-guest-api",
                nova_guest_api::ABOUT,
            )),
            section: "8",
            extra: [API_FILES, &daemon_sections("api"), API_EXIT].concat(),
        },
    ]
}

/// Writes every man page into `dir` (created if missing): one per program and one per
/// subcommand (`qga-exec.1`), and returns their paths.
///
/// # Errors
///
/// When `dir` or a page cannot be written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for program in programs() {
        let mut command = program.command.disable_help_subcommand(true);
        command.build();
        write_pages(&command, program.section, &program.extra, dir, &mut written)?;
    }
    Ok(written)
}

/// The page of `command` and, recursively, of its visible subcommands (which get no extras).
fn write_pages(
    command: &Command,
    section: &'static str,
    extra: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, section, "", dir, written)?;
    }
    let man = clap_mangen::Man::new(command.clone())
        .section(section)
        .source(format!("nova-guest {}", env!("CARGO_PKG_VERSION")))
        .manual("nova-guest");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    let page = insert_before_version(&String::from_utf8_lossy(&page), extra);
    let mut file = fs::File::create(&path)?;
    file.write_all(page.as_bytes())?;
    file.flush()?;
    written.push(path);
    Ok(())
}

/// `page` with `extra` placed before its VERSION section (or at the end without one).
fn insert_before_version(page: &str, extra: &str) -> String {
    if extra.is_empty() {
        return page.to_owned();
    }
    match page.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &page[..at], extra.trim_end(), &page[at..]),
        None => format!("{}\n{}\n", page.trim_end(), extra.trim_end()),
    }
}

/// Writes the completions of every program for every shell of [`SHELLS`] into `dir`, as
/// `bash/NAME`, `zsh/_NAME` and `fish/NAME.fish`, and returns their paths.
///
/// # Errors
///
/// When a file cannot be written.
pub fn write_completions(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for program in programs() {
        let mut command = program.command;
        let name = command.get_name().to_owned();
        for shell in SHELLS {
            let path = completion_path(dir, shell, &name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command, &name, &mut text);
            fs::write(&path, text)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Where the completion of `name` for `shell` goes under `dir`.
pub fn completion_path(dir: &Path, shell: Shell, name: &str) -> PathBuf {
    match shell {
        Shell::Zsh => dir.join("zsh").join(format!("_{name}")),
        Shell::Fish => dir.join("fish").join(format!("{name}.fish")),
        other => dir.join(other.to_string()).join(name),
    }
}

const QGA_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBQGA_SOCKET\fR
The guest agent socket when \fB\-\-socket\fR is not given.
.TP
\fBRUST_LOG\fR
Log filter (tracing's syntax) for the messages on standard error; \fB\-v\fR and \fB\-vv\fR
set debug and trace.
.SH SEE ALSO
\fBqemu\-ga\fR(8), \fBnova\-guest\-agent\fR(8), \fBnova\-guest\-api\fR(8)
"#;

/// SIGNALS and ENVIRONMENT of a daemon whose settings are in `[section]`: both serve
/// through nova-guest-daemon and answer the same signals and variables.
fn daemon_sections(section: &str) -> String {
    format!(
        r#".SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting connections, let the requests in flight finish for up to [{section}]
shutdown_timeout, exit 0.
.TP
\fBSIGHUP\fR
Read the configuration again (an invalid file is logged and the running one kept).
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter, over [DEFAULT] debug.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBWATCHDOG_PID\fR
Set by systemd for a Type=notify unit: readiness, reloading and stopping are reported, and
with WatchdogSec= a keep\-alive is sent every half interval.
"#
    )
}

const AGENT_FILES: &str = r#".SH FILES
.TP
\fI/etc/nova\-guest/nova\-guest.conf\fR
The configuration, shared with \fBnova\-guest\-api\fR(8): this daemon reads [DEFAULT] and
[agent]. Every key is documented in the sample installed with it.
.TP
\fI/etc/nova\-guest/agent\-token\fR
This host's token ([agent] auth_token_file): mode 0600, at least 32 bytes, printed by
\fBnova\-guest\-api \-\-print\-agent\-token\fR \fIHOST\fR.
.TP
\fI/run/libvirt/libvirt\-sock\fR, the guests' qemu\-ga sockets
What it connects to ([agent] transport and socket_path_template).
"#;

const AGENT_EXIT: &str = r#".SH EXIT STATUS
0 after a clean stop or a successful \fB\-\-check\-config\fR; 78 (EX_CONFIG) for an invalid
configuration, every problem named on standard error; 2 for an invalid command line; 1
when it cannot start (the address is taken, for example).
.SH SEE ALSO
\fBnova\-guest\-api\fR(8), \fBqga\fR(1), \fBqemu\-ga\fR(8), \fBsystemd.service\fR(5)
"#;

const API_FILES: &str = r#".SH FILES
.TP
\fI/etc/nova\-guest/nova\-guest.conf\fR
The configuration, shared with \fBnova\-guest\-agent\fR(8): this daemon reads [DEFAULT],
[api], [keystone_authtoken], [instances] and [policy]. Every key is documented in the
sample installed with it.
.TP
\fI/etc/nova\-guest/api\-master\-secret\fR
The master secret ([api] agent_auth_token_file): mode 0600, at least 32 bytes. Each
compute host's agent holds the token derived from it for that host.
"#;

const API_EXIT: &str = r#".SH EXIT STATUS
0 after a clean stop, a successful \fB\-\-check\-config\fR or \fB\-\-print\-agent\-token\fR;
64 for a \fB\-\-print\-agent\-token\fR argument that cannot be a host name; 78 (EX_CONFIG)
for an invalid configuration, every problem named on standard error; 2 for an invalid
command line; 1 when it cannot start.
.SH SEE ALSO
\fBnova\-guest\-agent\fR(8), \fBqga\fR(1), \fBsystemd.service\fR(5)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_go_before_version() {
        let page = ".TH X\n.SH OPTIONS\nx\n.SH VERSION\nv1\n";
        assert_eq!(
            insert_before_version(page, ".SH FILES\nf\n"),
            ".TH X\n.SH OPTIONS\nx\n.SH FILES\nf\n.SH VERSION\nv1\n"
        );
        assert_eq!(
            insert_before_version(".TH X\n", ".SH FILES\nf\n"),
            ".TH X\n.SH FILES\nf\n"
        );
        assert_eq!(insert_before_version(page, ""), page);
    }
}
