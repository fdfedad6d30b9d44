//! The `qemu` program (`QEMU_PROGRAM` 0x20008087, version 1) of `qemu_protocol.x`: raw
//! guest agent commands through libvirt.

use crate::call::call;
use crate::packet::{QEMU_PROGRAM as PROG, QEMU_PROTOCOL_VERSION as VERS};
use crate::remote::{REMOTE_STRING_MAX, strings};
use crate::types::Domain;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `QEMU_PROC_DOMAIN_AGENT_COMMAND`.
pub const PROC_DOMAIN_AGENT_COMMAND: i32 = 3;

/// Special `timeout` values of [`QemuDomainAgentCommand`]
/// (`virDomainQemuAgentCommandTimeoutValues`); any positive value is seconds.
pub mod agent_timeout {
    /// `VIR_DOMAIN_QEMU_AGENT_COMMAND_BLOCK`: wait for ever.
    pub const BLOCK: i32 = -2;
    /// `VIR_DOMAIN_QEMU_AGENT_COMMAND_DEFAULT`: libvirt's default (5 s).
    pub const DEFAULT: i32 = -1;
    /// `VIR_DOMAIN_QEMU_AGENT_COMMAND_NOWAIT`: do not wait for the reply.
    pub const NOWAIT: i32 = 0;
    /// `VIR_DOMAIN_QEMU_AGENT_COMMAND_SHUTDOWN`: 60 s, for shutdown-like commands.
    pub const SHUTDOWN: i32 = 60;
}

/// `QEMU_PROC_DOMAIN_AGENT_COMMAND` (3):
/// `struct qemu_domain_agent_command_args { remote_nonnull_domain dom;
/// remote_nonnull_string cmd; int timeout; unsigned int flags; }`; replies
/// `struct qemu_domain_agent_command_ret { remote_string result; }`: the agent's JSON reply,
/// or `None` with [`agent_timeout::NOWAIT`].
///
/// libvirt passes `cmd` to the agent unchanged and returns the agent's reply line, so the
/// JSON format is qemu-ga's own (see the `qga-proto` crate).
#[derive(Clone, PartialEq, Eq)]
pub struct QemuDomainAgentCommand {
    /// `dom`.
    pub dom: Domain,
    /// `cmd`: one JSON command, e.g. `{"execute":"guest-ping"}`.
    pub cmd: String,
    /// `timeout`: seconds, or see [`agent_timeout`].
    pub timeout: i32,
    /// `flags` (must be 0).
    pub flags: u32,
}

impl std::fmt::Debug for QemuDomainAgentCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Commands can carry file contents or exec arguments: show only the size.
        f.debug_struct("QemuDomainAgentCommand")
            .field("dom", &self.dom)
            .field("cmd_len", &self.cmd.len())
            .field("timeout", &self.timeout)
            .field("flags", &self.flags)
            .finish()
    }
}

impl XdrEncode for QemuDomainAgentCommand {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        self.dom.encode(e)?;
        e.string(&self.cmd, REMOTE_STRING_MAX)?;
        e.i32(self.timeout);
        e.u32(self.flags);
        Ok(())
    }
}

impl XdrDecode for QemuDomainAgentCommand {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            dom: Domain::decode(d)?,
            cmd: d.string(REMOTE_STRING_MAX)?.to_owned(),
            timeout: d.i32()?,
            flags: d.u32()?,
        })
    }
}
call!(QemuDomainAgentCommand => AgentReply, PROG, VERS, PROC_DOMAIN_AGENT_COMMAND,
    "QEMU_PROC_DOMAIN_AGENT_COMMAND", timeout = 90);

/// `remote_string result`: the agent's reply, if libvirt waited for one.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AgentReply(pub Option<String>);

impl std::fmt::Debug for AgentReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "AgentReply({} bytes)", s.len()),
            None => f.write_str("AgentReply(None)"),
        }
    }
}

impl XdrEncode for AgentReply {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        strings::encode_opt(e, self.0.as_deref())
    }
}

impl XdrDecode for AgentReply {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        strings::decode_opt(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::packet::MAX_PACKET_LEN;
    use crate::types::Uuid;
    use crate::xdr::from_slice;

    /// QEMU_DOMAIN_AGENT_COMMAND(dom "vm1", `{"execute":"guest-ping"}`, timeout -1, flags 0)
    /// with serial 5, written out by hand from virnetprotocol.x and qemu_protocol.x.
    #[rustfmt::skip]
    const AGENT_COMMAND_PACKET: [u8; 92] = [
        0x00, 0x00, 0x00, 0x5c, // length 92
        0x20, 0x00, 0x80, 0x87, // prog QEMU_PROGRAM
        0x00, 0x00, 0x00, 0x01, // vers 1
        0x00, 0x00, 0x00, 0x03, // proc QEMU_PROC_DOMAIN_AGENT_COMMAND
        0x00, 0x00, 0x00, 0x00, // type VIR_NET_CALL
        0x00, 0x00, 0x00, 0x05, // serial 5
        0x00, 0x00, 0x00, 0x00, // status VIR_NET_OK
        0x00, 0x00, 0x00, 0x03, b'v', b'm', b'1', 0x00, // dom.name + 1 byte padding
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // dom.uuid
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x00, 0x00, 0x00, 0x01, // dom.id
        0x00, 0x00, 0x00, 0x18, // cmd length 24, no padding
        b'{', b'"', b'e', b'x', b'e', b'c', b'u', b't', b'e', b'"', b':', b'"',
        b'g', b'u', b'e', b's', b't', b'-', b'p', b'i', b'n', b'g', b'"', b'}',
        0xff, 0xff, 0xff, 0xff, // timeout VIR_DOMAIN_QEMU_AGENT_COMMAND_DEFAULT
        0x00, 0x00, 0x00, 0x00, // flags
    ];

    fn call() -> QemuDomainAgentCommand {
        let mut uuid = [0u8; 16];
        for (i, b) in uuid.iter_mut().enumerate() {
            *b = i as u8;
        }
        QemuDomainAgentCommand {
            dom: Domain {
                name: "vm1".into(),
                uuid: Uuid(uuid),
                id: 1,
            },
            cmd: r#"{"execute":"guest-ping"}"#.into(),
            timeout: agent_timeout::DEFAULT,
            flags: 0,
        }
    }

    #[test]
    fn agent_command_is_byte_exact() {
        let packet = call().encode_packet(5, MAX_PACKET_LEN).unwrap();
        assert_eq!(&packet[..], AGENT_COMMAND_PACKET);
        assert_eq!(
            from_slice::<QemuDomainAgentCommand>(&AGENT_COMMAND_PACKET[28..]).unwrap(),
            call()
        );
        assert!(!format!("{:?}", call()).contains("guest-ping"));
    }

    #[test]
    fn agent_reply() {
        // remote_string present, 13 bytes, 3 bytes of padding.
        let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 13];
        payload.extend_from_slice(br#"{"return":{}}"#);
        payload.extend([0, 0, 0]);
        let r = QemuDomainAgentCommand::decode_reply(&payload).unwrap();
        assert_eq!(r.0.as_deref(), Some(r#"{"return":{}}"#));
        assert_eq!(
            QemuDomainAgentCommand::decode_reply(&[0, 0, 0, 0]).unwrap(),
            AgentReply(None)
        );
        assert_eq!(QemuDomainAgentCommand::PROGRAM, 0x2000_8087);
        assert_eq!(QemuDomainAgentCommand::PROCEDURE, 3);
    }
}
