//! Wire bytes to measure: replies exactly as qemu-ga 7.2 and QEMU 7.2 write them (a space after
//! `,` and `:`, LF after QGA replies, CRLF after QMP messages).

use std::fmt::Write as _;

use qga_proto::base64;

/// A `guest-ping` reply.
pub const PING_REPLY: &[u8] = b"{\"return\": {}}\n";

/// A `guest-ping` reply echoing an id, as our client receives it.
pub const PING_REPLY_ID: &[u8] = b"{\"return\": {}, \"id\": 4242}\n";

/// The `guest-info` reply captured from qemu-ga 7.2.22 (42 commands, 3,234 bytes).
pub const GUEST_INFO_REPLY: &[u8] = include_bytes!("../data/guest-info-7.2.22.json");

/// A QMP `query-status` reply from QEMU 7.2 (`-machine none`).
pub const QUERY_STATUS_REPLY: &[u8] =
    b"{\"return\": {\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}, \"id\": 7}\r\n";

/// Bytes of stdout in the large `guest-exec-status` reply: 8 MiB.
pub const EXEC_STDOUT_LEN: usize = 8 * 1024 * 1024;

/// Deterministic bytes that do not compress or repeat in any way a decoder could exploit
/// (xorshift64*), as random command output would be.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A `guest-exec-status` reply carrying `stdout` and a small stderr, shaped like transcript T8
/// of the protocol notes (member order as qemu-ga 7.2 writes it).
pub fn exec_status_reply(stdout: &[u8]) -> Vec<u8> {
    let out = base64::encode(stdout);
    let mut reply = String::with_capacity(out.len() + 200);
    reply.push_str("{\"return\": {\"exitcode\": 0, \"err-data\": \"dGFpbAo=\", \"out-data\": \"");
    reply.push_str(&out);
    reply.push_str("\", \"err-truncated\": false, \"out-truncated\": false, \"exited\": true}}\n");
    reply.into_bytes()
}

/// The 11 MB reply: 8 MiB of random stdout, base64-encoded (11,184,812 characters).
pub fn large_exec_status_reply() -> Vec<u8> {
    exec_status_reply(&random_bytes(EXEC_STDOUT_LEN, 0x9E37_79B9_7F4A_7C15))
}

/// `count` QMP events in one buffer, as QEMU writes a burst (`STOP`/`RESUME` alternating,
/// every tenth a `SHUTDOWN` with data), each ending in CRLF.
pub fn qmp_event_burst(count: usize) -> Vec<u8> {
    let mut out = String::with_capacity(count * 110);
    for i in 0..count {
        let micros = (i * 7919) % 1_000_000;
        let seconds = 1_795_348_828 + i / 100;
        if i % 10 == 9 {
            let _ = write!(
                out,
                "{{\"timestamp\": {{\"seconds\": {seconds}, \"microseconds\": {micros}}}, \
                 \"event\": \"SHUTDOWN\", \"data\": {{\"guest\": false, \"reason\": \"host-qmp-quit\"}}}}\r\n"
            );
        } else {
            let name = if i % 2 == 0 { "STOP" } else { "RESUME" };
            let _ = write!(
                out,
                "{{\"timestamp\": {{\"seconds\": {seconds}, \"microseconds\": {micros}}}, \
                 \"event\": \"{name}\"}}\r\n"
            );
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qga_proto::message::Reply;
    use qga_proto::qga::{ExecStatus, GuestAgentInfo};

    #[test]
    fn payloads_decode() {
        let info: Reply<GuestAgentInfo> = Reply::from_slice(GUEST_INFO_REPLY).unwrap();
        assert_eq!(info.into_result().unwrap().supported_commands.len(), 42);
        let stdout = random_bytes(1000, 3);
        let status: Reply<ExecStatus> = Reply::from_slice(&exec_status_reply(&stdout)).unwrap();
        let status = status.into_result().unwrap();
        assert_eq!(status.out_data.unwrap().into_vec(), stdout);
        assert_eq!(status.err_data.unwrap().into_vec(), b"tail\n");
        let burst = qmp_event_burst(10);
        assert_eq!(burst.windows(2).filter(|w| w == b"\r\n").count(), 10);
    }

    #[test]
    fn large_reply_size() {
        let reply = large_exec_status_reply();
        assert!(
            reply.len() > 11_000_000 && reply.len() < 11_300_000,
            "{}",
            reply.len()
        );
    }
}
