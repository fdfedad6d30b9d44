//! One QGA command over libvirt: which libvirt call serves it (a dedicated one, or the raw
//! `QEMU_DOMAIN_AGENT_COMMAND`), and its answer in the agent's reply format.

use std::time::Duration;

use bytes::BytesMut;
use serde_json::{Value, json};
use tokio::time::Instant;
use virt_proto::qemu::QemuDomainAgentCommand;
use virt_proto::remote::domain::{DomainReboot, DomainShutdownFlags, reboot_flags, shutdown_flags};
use virt_proto::remote::guest::{
    DomainAuthorizedSshKeysGet, DomainAuthorizedSshKeysSet, DomainFsfreeze, DomainFsthaw,
    DomainGetGuestInfo, DomainGetTime, DomainInterfaceAddresses, DomainSetTime,
    DomainSetUserPassword, PASSWORD_ENCRYPTED, SshKeys, TIME_SYNC, addr_source,
};
use virt_proto::remote::guest_info::GuestInfo;

use super::convert::interfaces;
use super::plan::Plan;
use super::target::{CallOptions, Target};
use crate::client::Config;
use crate::error::{Error, Result};

/// What came back.
enum Outcome {
    /// The `return` value, built from a dedicated call's reply.
    Value(Value),
    /// The agent's reply line (raw commands).
    Reply(String),
    /// Accepted, without a reply (shutdown and the like).
    NoReply,
}

/// libvirt's agent timeout in whole seconds, at least 1.
fn agent_seconds(left: Duration) -> i32 {
    let secs = left
        .as_secs()
        .saturating_add(u64::from(left.subsec_nanos() > 0));
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

/// Runs one command on `target` and decodes its answer as the agent's reply would be.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn transact<R>(
    target: &Target,
    config: &Config,
    command: &str,
    raw: bool,
    expects_reply: bool,
    deadline: Instant,
    after: Duration,
    encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
    decode: impl Fn(Option<&[u8]>, Option<u64>) -> Result<R>,
) -> Result<R> {
    let mut request = BytesMut::new();
    encode(None, &mut request)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode the arguments: {e}")))?;
    let plan = if raw {
        Plan::Raw
    } else {
        Plan::for_command(command, &request)?
    };
    tracing::trace!(command, ?plan, "libvirt plan");
    let options = CallOptions {
        command: command.to_owned(),
        deadline,
        after,
        no_reply: !expects_reply,
    };
    match run(target, config, &options, plan, &request).await? {
        Outcome::Value(value) => {
            let reply = serde_json::to_vec(&json!({ "return": value }))
                .map_err(|e| Error::InvalidArgument(format!("cannot encode the reply: {e}")))?;
            decode(Some(&reply), None)
        }
        Outcome::Reply(text) => decode(Some(text.as_bytes()), None),
        Outcome::NoReply => decode(None, None),
    }
}

async fn run(
    target: &Target,
    config: &Config,
    options: &CallOptions,
    plan: Plan,
    request: &[u8],
) -> Result<Outcome> {
    let empty = || Outcome::Value(json!({}));
    match plan {
        Plan::Raw => raw(target, config, options, request).await,
        Plan::Ping => match target.agent_call(options, |dom, _| get_time(dom)).await {
            // Any answer of the agent, an error included, proves that it is there.
            Ok(_) | Err(Error::Agent { .. }) => Ok(empty()),
            Err(e) => Err(e),
        },
        Plan::GetTime => {
            let t = target.agent_call(options, |dom, _| get_time(dom)).await?;
            let ns = t
                .seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nseconds));
            Ok(Outcome::Value(json!(ns)))
        }
        Plan::SetTime(time) => {
            let (seconds, nseconds, flags) = match time {
                Some(ns) => (
                    ns.div_euclid(1_000_000_000),
                    u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
                    0,
                ),
                None => (0, 0, TIME_SYNC),
            };
            target
                .agent_call(options, |dom, _| DomainSetTime {
                    dom: dom.clone(),
                    seconds,
                    nseconds,
                    flags,
                })
                .await?;
            Ok(empty())
        }
        Plan::SetPassword {
            user,
            password,
            crypted,
        } => {
            target
                .agent_call(options, |dom, _| DomainSetUserPassword {
                    dom: dom.clone(),
                    user: Some(user.clone()),
                    password: Some(password.clone()),
                    flags: if crypted { PASSWORD_ENCRYPTED } else { 0 },
                })
                .await?;
            Ok(empty())
        }
        Plan::Info(query) => {
            let params = target
                .agent_call(options, |dom, _| DomainGetGuestInfo {
                    dom: dom.clone(),
                    types: query.types(),
                    flags: 0,
                })
                .await?;
            let value = query.reply(&options.command, GuestInfo::from_params(&params))?;
            Ok(Outcome::Value(value))
        }
        Plan::Interfaces => {
            let ifaces = target
                .agent_call(options, |dom, _| DomainInterfaceAddresses {
                    dom: dom.clone(),
                    source: addr_source::AGENT,
                    flags: 0,
                })
                .await?;
            Ok(Outcome::Value(interfaces(ifaces)))
        }
        Plan::Freeze(mountpoints) => {
            let n = target
                .agent_call(options, |dom, _| DomainFsfreeze {
                    dom: dom.clone(),
                    mountpoints: mountpoints.clone(),
                    flags: 0,
                })
                .await?;
            Ok(Outcome::Value(json!(n)))
        }
        Plan::Thaw => {
            let n = target
                .agent_call(options, |dom, _| DomainFsthaw {
                    dom: dom.clone(),
                    mountpoints: Vec::new(),
                    flags: 0,
                })
                .await?;
            Ok(Outcome::Value(json!(n)))
        }
        Plan::SshGet(user) => {
            let SshKeys(keys) = target
                .agent_call(options, |dom, _| DomainAuthorizedSshKeysGet {
                    dom: dom.clone(),
                    user: user.clone(),
                    flags: 0,
                })
                .await?;
            Ok(Outcome::Value(json!({ "keys": keys })))
        }
        Plan::SshSet { user, keys, flags } => {
            target
                .agent_call(options, |dom, _| DomainAuthorizedSshKeysSet {
                    dom: dom.clone(),
                    user: user.clone(),
                    keys: SshKeys(keys.clone()),
                    flags,
                })
                .await?;
            Ok(empty())
        }
        Plan::Shutdown { reboot } => shutdown(target, config, options, reboot).await,
    }
}

fn get_time(dom: &virt_proto::Domain) -> DomainGetTime {
    DomainGetTime {
        dom: dom.clone(),
        flags: 0,
    }
}

/// The request unchanged through `QEMU_DOMAIN_AGENT_COMMAND`, with the time left as
/// libvirt's timeout. A command without a reply on success gets the no-reply grace: when
/// libvirt's wait for a reply runs out, the command was taken.
async fn raw(
    target: &Target,
    config: &Config,
    options: &CallOptions,
    request: &[u8],
) -> Result<Outcome> {
    let text = std::str::from_utf8(request)
        .map_err(|_| Error::InvalidArgument("the request is not UTF-8".into()))?
        .trim_end()
        .to_owned();
    if text.len() > super::MAX_COMMAND_LEN {
        return Err(Error::InvalidArgument(format!(
            "a {}-byte request is larger than libvirt can pass to the agent safely ({} bytes; \
             see qga_client::libvirt, Limits)",
            text.len(),
            super::MAX_COMMAND_LEN
        )));
    }
    if options.no_reply && target.agent() == super::AgentState::Disconnected {
        return Err(Error::NotConnected);
    }
    let grace = config.no_reply_grace;
    let result = target
        .agent_call(options, |dom, left| QemuDomainAgentCommand {
            dom: dom.clone(),
            cmd: text.clone(),
            timeout: agent_seconds(if options.no_reply {
                grace.min(left)
            } else {
                left
            }),
            flags: 0,
        })
        .await;
    match result {
        Ok(reply) => match reply.0 {
            Some(line) => Ok(Outcome::Reply(line)),
            None => Ok(Outcome::NoReply),
        },
        // No reply within the grace, or the agent went away with the command: taken.
        Err(Error::Timeout { .. } | Error::NotConnected) if options.no_reply => {
            Ok(Outcome::NoReply)
        }
        Err(e) => Err(e),
    }
}

/// `DOMAIN_SHUTDOWN_FLAGS` or `DOMAIN_REBOOT` with the agent flag. libvirt answers when QEMU
/// reports the shutdown (or reset), which may take a while: as with the agent's socket, an
/// error within the no-reply grace fails the call, and silence means it was taken (libvirt
/// keeps waiting; the next call to the guest waits for it).
async fn shutdown(
    target: &Target,
    config: &Config,
    options: &CallOptions,
    reboot: bool,
) -> Result<Outcome> {
    if target.agent() == super::AgentState::Disconnected {
        return Err(Error::NotConnected);
    }
    let grace = options
        .deadline
        .min(crate::client::later(Instant::now(), config.no_reply_grace));
    let call = async {
        if reboot {
            target
                .agent_call(options, |dom, _| DomainReboot {
                    dom: dom.clone(),
                    flags: reboot_flags::GUEST_AGENT,
                })
                .await
        } else {
            target
                .agent_call(options, |dom, _| DomainShutdownFlags {
                    dom: dom.clone(),
                    flags: shutdown_flags::GUEST_AGENT,
                })
                .await
        }
    };
    match tokio::time::timeout_at(grace, call).await {
        Ok(Ok(())) | Err(_) => Ok(Outcome::NoReply),
        Ok(Err(Error::NotConnected)) => Ok(Outcome::NoReply),
        Ok(Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_timeouts_round_up() {
        assert_eq!(agent_seconds(Duration::ZERO), 1);
        assert_eq!(agent_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(agent_seconds(Duration::from_secs(5)), 5);
        assert_eq!(agent_seconds(Duration::MAX), i32::MAX);
    }
}
