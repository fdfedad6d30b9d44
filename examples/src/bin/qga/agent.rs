//! The one-shot agent commands: queries, password, fsfreeze, shutdown and raw requests.

use std::io::{IsTerminal as _, Read as _};

use crate::guest::Guest;
use qga_proto::qga::{
    GuestFsfreezeFreeze, GuestGetFsinfo, GuestGetOsinfo, GuestGetUsers, GuestNetworkGetInterfaces,
    ShutdownMode,
};
use qga_proto::{Command as _, RawCommand};
use serde_json::{Value, json};

use crate::Ctx;
use crate::cli::{Cmd, FreezeAction, Mode};
use crate::error::CliError;
use crate::output::{self, encode_failed};

/// Runs one of the commands that need a connection and print a short result.
pub(crate) fn run(ctx: &Ctx, command: Cmd) -> Result<(), CliError> {
    match command {
        Cmd::Ping => {
            ctx.within("guest-ping", || Ok(ctx.connect()?.ping()?))?;
            if ctx.json {
                output::json(&json!({}))
            } else {
                output::line("ok")
            }
        }
        Cmd::Info => info(ctx),
        Cmd::Osinfo => {
            if ctx.json {
                return print_raw(ctx, GuestGetOsinfo::NAME);
            }
            let os = query(ctx, "guest-get-osinfo", |c| c.osinfo())?;
            let fields = [
                ("name", &os.name),
                ("pretty-name", &os.pretty_name),
                ("id", &os.id),
                ("version", &os.version),
                ("version-id", &os.version_id),
                ("variant", &os.variant),
                ("variant-id", &os.variant_id),
                ("kernel-release", &os.kernel_release),
                ("kernel-version", &os.kernel_version),
                ("machine", &os.machine),
            ];
            let text: String = fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{:<16}{v}\n", format!("{k}:"))))
                .collect();
            output::stdout(text.as_bytes())
        }
        Cmd::Hostname => {
            let name = query(ctx, "guest-get-host-name", |c| c.hostname())?;
            if ctx.json {
                output::json(&json!({ "host-name": name }))
            } else {
                output::line(&name)
            }
        }
        Cmd::Interfaces => interfaces(ctx),
        Cmd::Users => users(ctx),
        Cmd::Fsinfo => fsinfo(ctx),
        Cmd::Time => {
            let ns = query(ctx, "guest-get-time", |c| c.time())?;
            let utc = output::utc_from_ns(ns);
            if ctx.json {
                output::json(&json!({ "nanoseconds": ns, "utc": utc }))
            } else {
                output::line(&format!("{utc} ({ns} ns since the epoch)"))
            }
        }
        Cmd::SetPassword { user, crypted } => set_password(ctx, &user, crypted),
        Cmd::Fsfreeze { action } => fsfreeze(ctx, action),
        Cmd::Shutdown { mode } => {
            let mode = mode.map(|m| match m {
                Mode::Powerdown => ShutdownMode::Powerdown,
                Mode::Reboot => ShutdownMode::Reboot,
                Mode::Halt => ShutdownMode::Halt,
            });
            ctx.within("guest-shutdown", || Ok(ctx.connect()?.shutdown(mode)?))?;
            if ctx.json {
                output::json(&json!({ "accepted": true }))
            } else {
                output::line("shutdown accepted by the agent")
            }
        }
        Cmd::Raw { request: text } => {
            let request = RawCommand::from_request_json(&text)
                .map_err(|e| CliError::Usage(format!("bad request: {e}")))?;
            let value = ctx.within(&request.name, || Ok(ctx.connect()?.call_raw(&request)?))?;
            print_value(ctx.json, &value)
        }
        Cmd::Exec(_) | Cmd::Cat { .. } | Cmd::Get { .. } | Cmd::Put { .. } | Cmd::Qmp { .. } => {
            Err(CliError::Usage(
                "internal: command routed to the wrong module".into(),
            ))
        }
    }
}

/// Prints a raw `return` value: compact with `--json`, indented otherwise.
pub(crate) fn print_value(json: bool, value: &Value) -> Result<(), CliError> {
    if json {
        output::json(value)
    } else {
        output::json_pretty(value)
    }
}

/// `--json` for the queries: the agent's `return` value exactly as it sent it (members a
/// newer agent adds are kept; absent ones stay absent).
fn print_raw(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let command = RawCommand::new(name);
    let value = ctx.within(name, || Ok(ctx.connect()?.call_raw(&command)?))?;
    output::json(&value)
}

/// Connects and runs one query under the deadline.
fn query<T, F>(ctx: &Ctx, command: &str, call: F) -> Result<T, CliError>
where
    F: FnOnce(Guest) -> qga_client::Result<T>,
{
    ctx.within(command, || Ok(call(ctx.connect()?)?))
}

fn info(ctx: &Ctx) -> Result<(), CliError> {
    let mut info = query(ctx, "guest-info", |c| c.info())?;
    info.supported_commands.sort_by(|a, b| a.name.cmp(&b.name));
    if ctx.json {
        let commands = serde_json::to_value(&info.supported_commands).map_err(encode_failed)?;
        return output::json(&json!({ "version": info.version, "commands": commands }));
    }
    let enabled = info.supported_commands.iter().filter(|c| c.enabled).count();
    let rows: Vec<Vec<String>> = info
        .supported_commands
        .iter()
        .map(|c| {
            let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
            vec![
                c.name.clone(),
                yes_no(c.enabled),
                yes_no(c.success_response),
            ]
        })
        .collect();
    let mut text = format!(
        "qemu-ga {}: {} commands, {} enabled\n\n",
        info.version,
        info.supported_commands.len(),
        enabled
    );
    text.push_str(&output::table(&["COMMAND", "ENABLED", "REPLIES"], &rows));
    output::stdout(text.as_bytes())
}

fn interfaces(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.json {
        return print_raw(ctx, GuestNetworkGetInterfaces::NAME);
    }
    let list = query(ctx, "guest-network-get-interfaces", |c| {
        c.network_interfaces()
    })?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            let addrs: Vec<String> = i
                .ip_addresses
                .iter()
                .map(|a| format!("{}/{}", a.ip_address, a.prefix))
                .collect();
            let (rx, tx) = i.statistics.map_or(("-".into(), "-".into()), |s| {
                (output::size(s.rx_bytes), output::size(s.tx_bytes))
            });
            vec![
                i.name.clone(),
                i.hardware_address.clone().unwrap_or_else(|| "-".into()),
                rx,
                tx,
                if addrs.is_empty() {
                    "-".into()
                } else {
                    addrs.join(" ")
                },
            ]
        })
        .collect();
    output::stdout(output::table(&["NAME", "MAC", "RX", "TX", "ADDRESSES"], &rows).as_bytes())
}

fn users(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.json {
        return print_raw(ctx, GuestGetUsers::NAME);
    }
    let list = query(ctx, "guest-get-users", |c| c.users())?;
    if list.is_empty() {
        return output::line("no users logged in");
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.domain.clone().unwrap_or_else(|| "-".into()),
                output::utc_from_secs(u.login_time),
            ]
        })
        .collect();
    output::stdout(output::table(&["USER", "DOMAIN", "LOGIN (UTC)"], &rows).as_bytes())
}

fn fsinfo(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.json {
        return print_raw(ctx, GuestGetFsinfo::NAME);
    }
    let list = query(ctx, "guest-get-fsinfo", |c| c.fsinfo())?;
    let opt = |v: Option<u64>| v.map_or_else(|| "-".into(), output::size);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let disks: Vec<String> = f
                .disk
                .iter()
                .map(|d| {
                    d.dev
                        .clone()
                        .unwrap_or_else(|| format!("{}:{}", d.bus_type, d.unit))
                })
                .collect();
            vec![
                f.mountpoint.clone(),
                f.name.clone(),
                f.fs_type.clone(),
                opt(f.used_bytes),
                opt(f.total_bytes),
                if disks.is_empty() {
                    "-".into()
                } else {
                    disks.join(" ")
                },
            ]
        })
        .collect();
    let header = ["MOUNTPOINT", "DEVICE", "TYPE", "USED", "TOTAL", "DISKS"];
    output::stdout(output::table(&header, &rows).as_bytes())
}

fn set_password(ctx: &Ctx, user: &str, crypted: bool) -> Result<(), CliError> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        output::stderr(b"qga: reading the password from stdin (it is echoed); end with Ctrl-D\n")?;
    }
    let mut password = Vec::new();
    stdin
        .read_to_end(&mut password)
        .map_err(|e| CliError::local("cannot read the password from stdin", e))?;
    if password.last() == Some(&b'\n') {
        password.pop();
    }
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password on stdin (it is read from stdin, never from the command line)".into(),
        ));
    }
    let result = ctx.within("guest-set-user-password", || {
        let client = ctx.connect()?;
        Ok(client.set_user_password(user, &password, crypted)?)
    });
    // Not a guarantee (copies may remain in freed buffers), but do not keep it around.
    password.fill(0);
    result?;
    if ctx.json {
        output::json(&json!({ "user": user }))
    } else {
        output::line(&format!("password set for {user}"))
    }
}

fn fsfreeze(ctx: &Ctx, action: FreezeAction) -> Result<(), CliError> {
    match action {
        FreezeAction::Status => {
            let status = query(ctx, "guest-fsfreeze-status", |c| c.fsfreeze_status())?;
            if ctx.json {
                output::json(&json!({ "status": status.as_str() }))
            } else {
                output::line(status.as_str())
            }
        }
        FreezeAction::Freeze => {
            // Not `Client::fsfreeze`: its guard thaws when dropped, and this command is meant
            // to leave the filesystems frozen for a later `fsfreeze thaw`.
            let n = query(ctx, "guest-fsfreeze-freeze", |c| {
                c.call(&GuestFsfreezeFreeze)
            })?;
            if ctx.json {
                output::json(&json!({ "frozen": n }))
            } else {
                output::line(&format!(
                    "froze {n} filesystems; run `qga fsfreeze thaw` next"
                ))
            }
        }
        FreezeAction::Thaw => {
            let n = query(ctx, "guest-fsfreeze-thaw", |c| c.fsfreeze_thaw())?;
            if ctx.json {
                output::json(&json!({ "thawed": n }))
            } else {
                output::line(&format!("thawed {n} filesystems"))
            }
        }
    }
}
