//! Which libvirt call serves a QGA command: a dedicated one when libvirt has it and the
//! arguments fit, else the raw `QEMU_DOMAIN_AGENT_COMMAND`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use virt_proto::remote::guest::ssh_keys_flags;

use super::convert::InfoQuery;
use crate::error::{Error, Result};

/// How a command is served.
#[derive(Debug)]
pub(crate) enum Plan {
    /// `QEMU_DOMAIN_AGENT_COMMAND` with the request as is (taints the domain).
    Raw,
    /// `DOMAIN_GET_TIME`: any answer of the agent.
    Ping,
    GetTime,
    SetTime(Option<i64>),
    SetPassword {
        user: String,
        password: String,
        crypted: bool,
    },
    Info(InfoQuery),
    Interfaces,
    Freeze(Vec<String>),
    Thaw,
    SshGet(String),
    SshSet {
        user: String,
        keys: Vec<String>,
        flags: u32,
    },
    Shutdown {
        reboot: bool,
    },
}

#[derive(Deserialize)]
struct Request<T> {
    arguments: Option<T>,
}

/// The `arguments` of an encoded request, as `T`.
fn arguments<T: DeserializeOwned>(request: &[u8]) -> Option<T> {
    serde_json::from_slice::<Request<T>>(request)
        .ok()?
        .arguments
}

#[derive(Deserialize)]
struct SetTimeArgs {
    time: Option<i64>,
}

#[derive(Deserialize)]
struct PasswordArgs {
    username: String,
    password: String,
    #[serde(default)]
    crypted: bool,
}

#[derive(Deserialize)]
struct FreezeListArgs {
    mountpoints: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SshArgs {
    username: String,
    #[serde(default)]
    keys: Vec<String>,
    reset: Option<bool>,
}

#[derive(Deserialize)]
struct ShutdownArgs {
    mode: Option<String>,
}

impl Plan {
    /// The dedicated call for a typed command, when libvirt has one and its arguments fit;
    /// anything else goes raw (the agent then judges the arguments).
    pub(crate) fn for_command(name: &str, request: &[u8]) -> Result<Self> {
        Ok(match name {
            "guest-ping" => Self::Ping,
            "guest-get-time" => Self::GetTime,
            "guest-set-time" => match serde_json::from_slice::<Request<SetTimeArgs>>(request) {
                Ok(r) => Self::SetTime(r.arguments.and_then(|a| a.time)),
                Err(_) => Self::Raw,
            },
            "guest-set-user-password" => match arguments::<PasswordArgs>(request) {
                Some(a) => Self::SetPassword {
                    password: password_text(&a.password)?,
                    user: a.username,
                    crypted: a.crypted,
                },
                None => Self::Raw,
            },
            "guest-get-osinfo" => Self::Info(InfoQuery::Os),
            "guest-get-host-name" => Self::Info(InfoQuery::HostName),
            "guest-get-users" => Self::Info(InfoQuery::Users),
            "guest-get-timezone" => Self::Info(InfoQuery::Timezone),
            "guest-get-fsinfo" => Self::Info(InfoQuery::Filesystems),
            "guest-network-get-interfaces" => Self::Interfaces,
            "guest-fsfreeze-freeze" => Self::Freeze(Vec::new()),
            "guest-fsfreeze-freeze-list" => match arguments::<FreezeListArgs>(request) {
                Some(FreezeListArgs {
                    mountpoints: Some(list),
                }) if !list.is_empty() => Self::Freeze(list),
                // No list means every file system, as for guest-fsfreeze-freeze.
                _ => Self::Freeze(Vec::new()),
            },
            "guest-fsfreeze-thaw" => Self::Thaw,
            "guest-ssh-get-authorized-keys" => match arguments::<SshArgs>(request) {
                Some(a) => Self::SshGet(a.username),
                None => Self::Raw,
            },
            "guest-ssh-add-authorized-keys" => match arguments::<SshArgs>(request) {
                Some(a) => Self::SshSet {
                    user: a.username,
                    keys: a.keys,
                    // Without APPEND libvirt replaces the file: the agent's `reset`.
                    flags: if a.reset == Some(true) {
                        0
                    } else {
                        ssh_keys_flags::APPEND
                    },
                },
                None => Self::Raw,
            },
            "guest-ssh-remove-authorized-keys" => match arguments::<SshArgs>(request) {
                Some(a) => Self::SshSet {
                    user: a.username,
                    keys: a.keys,
                    flags: ssh_keys_flags::REMOVE,
                },
                None => Self::Raw,
            },
            "guest-shutdown" => {
                let mode = arguments::<ShutdownArgs>(request).and_then(|a| a.mode);
                match mode.as_deref() {
                    None | Some("powerdown") => Self::Shutdown { reboot: false },
                    Some("reboot") => Self::Shutdown { reboot: true },
                    // halt has no libvirt call.
                    _ => Self::Raw,
                }
            }
            _ => Self::Raw,
        })
    }
}

/// libvirt takes the password as a C string: text without NUL.
fn password_text(base64: &str) -> Result<String> {
    let bytes = qga_proto::base64::decode(base64.as_bytes())
        .map_err(|e| Error::InvalidArgument(format!("the password is not base64: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::InvalidArgument("libvirt takes the password as UTF-8 text".into()))?;
    if text.contains('\0') {
        return Err(Error::InvalidArgument(
            "libvirt takes the password as a C string: no NUL byte".into(),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, request: &str) -> Plan {
        Plan::for_command(name, request.as_bytes()).unwrap()
    }

    #[test]
    fn plans() {
        assert!(matches!(plan("guest-ping", ""), Plan::Ping));
        assert!(matches!(plan("guest-info", ""), Plan::Raw));
        assert!(matches!(plan("guest-exec", ""), Plan::Raw));
        assert!(matches!(
            plan(
                "guest-set-time",
                r#"{"execute":"guest-set-time","arguments":{"time":5}}"#
            ),
            Plan::SetTime(Some(5))
        ));
        assert!(matches!(
            plan(
                "guest-set-time",
                r#"{"execute":"guest-set-time","arguments":{}}"#
            ),
            Plan::SetTime(None)
        ));
        let pw = r#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"aHVudGVyMg==","crypted":false}}"#;
        let Plan::SetPassword {
            user,
            password,
            crypted,
        } = plan("guest-set-user-password", pw)
        else {
            panic!()
        };
        assert_eq!(
            (user.as_str(), password.as_str(), crypted),
            ("root", "hunter2", false)
        );
        let nul = pw.replace("aHVudGVyMg==", "YQBi");
        assert!(Plan::for_command("guest-set-user-password", nul.as_bytes()).is_err());
        let add = r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"u","keys":["k"],"reset":true}}"#;
        assert!(matches!(
            plan("guest-ssh-add-authorized-keys", add),
            Plan::SshSet { flags: 0, .. }
        ));
        let halt = r#"{"execute":"guest-shutdown","arguments":{"mode":"halt"}}"#;
        assert!(matches!(plan("guest-shutdown", halt), Plan::Raw));
        assert!(matches!(
            plan("guest-shutdown", r#"{"execute":"guest-shutdown"}"#),
            Plan::Shutdown { reboot: false }
        ));
        let list = r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/a"]}}"#;
        assert!(matches!(plan("guest-fsfreeze-freeze-list", list), Plan::Freeze(m) if m == ["/a"]));
    }
}
