//! libvirt's errors as the client's typed errors, in one place.
//!
//! | libvirt | [`Error`] |
//! |---|---|
//! | `VIR_ERR_AGENT_UNRESPONSIVE` "…not available for now" (libvirt's wait for the agent ran out) | [`Error::Timeout`] |
//! | `VIR_ERR_AGENT_UNRESPONSIVE`, any other text ("not connected", "disappeared", "due to an error") | [`Error::NotConnected`] |
//! | `VIR_ERR_AGENT_UNSYNCED`, `VIR_ERR_OPERATION_TIMEOUT` (a job lock held by another call) | [`Error::Timeout`] |
//! | `VIR_ERR_INTERNAL_ERROR` "unable to execute QEMU agent command 'X': DESC" | [`Error::Agent`] with DESC (class `CommandNotFound` for an unknown or disabled command, else `GenericError`: libvirt drops the class) |
//! | `VIR_ERR_NO_DOMAIN` | [`Error::DomainNotFound`] |
//! | `VIR_ERR_OPERATION_INVALID` "…not running" | [`Error::DomainNotRunning`] |
//! | no reply before the call's deadline | [`Error::Timeout`] |
//! | anything else: access denied, unsupported, the connection lost, a malformed reply | [`Error::Libvirt`] |

use std::time::Duration;

use qga_proto::message::{ErrorBody, ErrorClass};
use virt_proto::{ErrorCode, LibvirtError, ReplyError};

use super::driver::RpcError;
use super::state::DomainRef;
use crate::error::Error;

/// `e` and its sources, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn message(e: &LibvirtError) -> &str {
    e.message.as_deref().unwrap_or_default()
}

/// libvirt waited for the agent's reply and gave up (`qemuAgentSend`'s timeout).
pub(crate) fn is_agent_wait_over(e: &LibvirtError) -> bool {
    e.code == ErrorCode::AGENT_UNRESPONSIVE && message(e).contains("not available for now")
}

/// The agent is not there: not connected, gone during the call, or its channel broke.
pub(crate) fn is_agent_gone(e: &LibvirtError) -> bool {
    e.code == ErrorCode::AGENT_UNRESPONSIVE && !is_agent_wait_over(e)
}

/// The agent's own error inside libvirt's "unable to execute QEMU agent command" text.
pub(crate) fn agent_failure(e: &LibvirtError) -> Option<ErrorBody> {
    const MARK: &str = "unable to execute QEMU agent command '";
    if e.code != ErrorCode::INTERNAL_ERROR {
        return None;
    }
    let text = message(e);
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let (_name, rest) = rest.split_once('\'')?;
    let desc = rest.strip_prefix(": ").unwrap_or_default().to_owned();
    let class = if desc.contains("has not been found") || desc.contains("has been disabled") {
        ErrorClass::CommandNotFound
    } else {
        ErrorClass::GenericError
    };
    Some(ErrorBody { class, desc })
}

/// The error of an agent call (`command` is the QGA command the caller asked for).
pub(crate) fn agent_error(
    command: &str,
    procedure: &'static str,
    domain: &DomainRef,
    after: Duration,
    e: RpcError,
) -> Error {
    let timeout = || Error::Timeout {
        command: command.to_owned(),
        after,
    };
    let error = match e {
        RpcError::Encode(text) => return Error::InvalidArgument(text),
        RpcError::Reply(error) => error,
    };
    let Some(lv) = error.libvirt() else {
        return match error {
            ReplyError::TimedOut => timeout(),
            error => Error::Libvirt { procedure, error },
        };
    };
    if is_agent_wait_over(lv) || lv.is_timeout() || lv.code == ErrorCode::AGENT_UNSYNCED {
        return timeout();
    }
    if lv.is_agent_unavailable() {
        return Error::NotConnected;
    }
    if lv.is_no_domain() {
        return Error::DomainNotFound {
            domain: domain.to_string(),
        };
    }
    if lv.is_not_running() && message(lv).contains("not running") {
        return Error::DomainNotRunning {
            domain: domain.to_string(),
        };
    }
    if let Some(body) = agent_failure(lv) {
        return Error::Agent {
            command: command.to_owned(),
            error: body,
        };
    }
    Error::Libvirt { procedure, error }
}

/// The error of a call that does not reach the agent (lookups, listing).
pub(crate) fn call_error(procedure: &'static str, after: Duration, e: RpcError) -> Error {
    match e {
        RpcError::Encode(text) => Error::InvalidArgument(text),
        RpcError::Reply(ReplyError::TimedOut) => Error::Timeout {
            command: procedure.to_owned(),
            after,
        },
        RpcError::Reply(error) => Error::Libvirt { procedure, error },
    }
}

#[cfg(test)]
mod tests {
    use virt_proto::ErrorDomain;

    use super::*;

    fn lv(code: ErrorCode, text: &str) -> RpcError {
        RpcError::Reply(ReplyError::Libvirt(Box::new(LibvirtError::new(
            code,
            ErrorDomain::QEMU,
            text,
        ))))
    }

    fn map(e: RpcError) -> Error {
        let dom = DomainRef::Name("vm".into());
        agent_error("guest-ping", "P", &dom, Duration::from_secs(2), e)
    }

    #[test]
    fn the_table() {
        // Texts as libvirtd 9.0 sends them (virt-proto/tests/captures).
        let not_connected = "Guest agent is not responding: QEMU guest agent is not connected";
        assert!(matches!(
            map(lv(ErrorCode::AGENT_UNRESPONSIVE, not_connected)),
            Error::NotConnected
        ));
        let gone = "Guest agent is not responding: Guest agent disappeared while executing command";
        assert!(matches!(
            map(lv(ErrorCode::AGENT_UNRESPONSIVE, gone)),
            Error::NotConnected
        ));
        let waited = "Guest agent is not responding: Guest agent not available for now";
        assert!(matches!(
            map(lv(ErrorCode::AGENT_UNRESPONSIVE, waited)),
            Error::Timeout { after, .. } if after == Duration::from_secs(2)
        ));
        let lock = "Timed out during operation: cannot acquire state change lock";
        assert!(map(lv(ErrorCode::OPERATION_TIMEOUT, lock)).is_timeout());
        assert!(map(RpcError::Reply(ReplyError::TimedOut)).is_timeout());
        let missing = "Domain not found: no domain with matching name 'vm'";
        assert!(matches!(
            map(lv(ErrorCode::NO_DOMAIN, missing)),
            Error::DomainNotFound { domain } if domain == "'vm'"
        ));
        let off = "Requested operation is not valid: domain is not running";
        let e = map(lv(ErrorCode::OPERATION_INVALID, off));
        assert_eq!(e.to_string(), "libvirt domain 'vm' is not running");
        let unknown = "internal error: unable to execute QEMU agent command 'no-such-command': \
                       The command no-such-command has not been found";
        let e = map(lv(ErrorCode::INTERNAL_ERROR, unknown));
        assert!(e.is_command_not_found(), "{e:?}");
        assert_eq!(
            e.agent_error().unwrap().desc,
            "The command no-such-command has not been found"
        );
        let failed = "internal error: unable to execute QEMU agent command 'guest-file-open': \
                      Failed to open file '/x': No such file or directory";
        let body = map(lv(ErrorCode::INTERNAL_ERROR, failed))
            .agent_error()
            .cloned()
            .unwrap();
        assert_eq!(body.class, ErrorClass::GenericError);
        assert!(body.desc.contains("'/x'"));
        let denied = map(lv(ErrorCode::ACCESS_DENIED, "access denied"));
        assert!(denied.libvirt_error().unwrap().is_access_denied());
        let closed = map(RpcError::Reply(ReplyError::Closed(
            virt_proto::CloseReason::Eof,
        )));
        assert!(closed.is_closed());
        assert!(
            chain(&closed).contains("closed by the peer"),
            "{}",
            chain(&closed)
        );
    }
}
