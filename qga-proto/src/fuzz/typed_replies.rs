//! Target `typed_replies`: every command's reply type against any message.

use std::fmt::Debug;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::drain;
use crate::codec::{Frame, FrameDecoder};
use crate::message::Reply;
use crate::{Command, qga, qmp};

/// Decodes each message as a reply to a command whose `return` is `T` and checks what can be
/// checked without knowing the bytes: the accessors work, and a decoded value encodes and
/// decodes again (to an equal value when `EXACT`; types holding floats may lose precision).
/// Returns whether the message decoded.
fn typed_reply<T, const EXACT: bool>(message: &[u8]) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(reply) = Reply::<T>::from_slice(message) else {
        return false;
    };
    let _ = format!("{reply:?}");
    let id = reply.id().cloned();
    match reply.into_result() {
        Ok(value) => {
            let json = serde_json::to_vec(&value).expect("a decoded value encodes");
            let back: T = match serde_json::from_slice(&json) {
                Ok(back) => back,
                Err(e) => panic!("re-decoding {} failed: {e}", String::from_utf8_lossy(&json)),
            };
            if EXACT {
                assert_eq!(back, value, "decode(encode(x)) != x");
            }
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = id;
        }
    }
    true
}

macro_rules! typed_replies {
    ($($name:literal => $ty:ty, $exact:literal;)*) => {
        /// Wire names of the commands `typed_replies` can select, in selector order: the first
        /// input byte modulo the length picks one. The last entry, `*raw*`, decodes the
        /// `return` value as untyped JSON (`RawCommand`).
        pub const TYPED_REPLY_COMMANDS: &[&str] = &[$($name,)* "*raw*"];

        pub(super) const TYPED_REPLY_DECODERS: &[fn(&[u8]) -> bool] = &[
            $(typed_reply::<<$ty as Command>::Response, $exact>,)*
            typed_reply::<Value, false>,
        ];

        // The names above are the commands' own.
        const _: () = {
            $(assert!(
                same_str(<$ty as Command>::NAME, $name),
                concat!("wrong wire name for ", stringify!($ty))
            );)*
        };
    };
}

// BEGIN TYPED REPLIES (read by fuzz/capture-corpus.py; append new commands at the end)
typed_replies! {
    "guest-sync-delimited" => qga::GuestSyncDelimited, true;
    "guest-sync" => qga::GuestSync, true;
    "guest-ping" => qga::GuestPing, true;
    "guest-info" => qga::GuestInfo, true;
    "guest-get-time" => qga::GuestGetTime, true;
    "guest-set-time" => qga::GuestSetTime, true;
    "guest-get-timezone" => qga::GuestGetTimezone, true;
    "guest-shutdown" => qga::GuestShutdown, true;
    "guest-suspend-disk" => qga::GuestSuspendDisk, true;
    "guest-suspend-ram" => qga::GuestSuspendRam, true;
    "guest-suspend-hybrid" => qga::GuestSuspendHybrid, true;
    "guest-file-open" => qga::GuestFileOpen, true;
    "guest-file-close" => qga::GuestFileClose, true;
    "guest-file-read" => qga::GuestFileRead, true;
    "guest-file-write" => qga::GuestFileWrite<'static>, true;
    "guest-file-seek" => qga::GuestFileSeek, true;
    "guest-file-flush" => qga::GuestFileFlush, true;
    "guest-fsfreeze-status" => qga::GuestFsfreezeStatus, true;
    "guest-fsfreeze-freeze" => qga::GuestFsfreezeFreeze, true;
    "guest-fsfreeze-freeze-list" => qga::GuestFsfreezeFreezeList, true;
    "guest-fsfreeze-thaw" => qga::GuestFsfreezeThaw, true;
    "guest-fstrim" => qga::GuestFstrim, true;
    "guest-network-get-interfaces" => qga::GuestNetworkGetInterfaces, true;
    "guest-network-get-route" => qga::GuestNetworkGetRoute, true;
    "guest-get-vcpus" => qga::GuestGetVcpus, true;
    "guest-set-vcpus" => qga::GuestSetVcpus, true;
    "guest-get-memory-blocks" => qga::GuestGetMemoryBlocks, true;
    "guest-set-memory-blocks" => qga::GuestSetMemoryBlocks, true;
    "guest-get-memory-block-info" => qga::GuestGetMemoryBlockInfo, true;
    "guest-get-devices" => qga::GuestGetDevices, true;
    "guest-get-cpustats" => qga::GuestGetCpustats, true;
    "guest-get-disks" => qga::GuestGetDisks, false;
    "guest-get-fsinfo" => qga::GuestGetFsinfo, true;
    "guest-get-diskstats" => qga::GuestGetDiskstats, true;
    "guest-get-host-name" => qga::GuestGetHostName, true;
    "guest-get-osinfo" => qga::GuestGetOsinfo, true;
    "guest-get-users" => qga::GuestGetUsers, false;
    "guest-get-load" => qga::GuestGetLoad, false;
    "guest-set-user-password" => qga::GuestSetUserPassword, true;
    "guest-exec" => qga::GuestExec, true;
    "guest-exec-status" => qga::GuestExecStatus, true;
    "guest-ssh-get-authorized-keys" => qga::GuestSshGetAuthorizedKeys, true;
    "guest-ssh-add-authorized-keys" => qga::GuestSshAddAuthorizedKeys, true;
    "guest-ssh-remove-authorized-keys" => qga::GuestSshRemoveAuthorizedKeys, true;
    "qmp_capabilities" => qmp::QmpCapabilities, true;
    "query-version" => qmp::QueryVersion, true;
    "query-status" => qmp::QueryStatus, true;
    "query-commands" => qmp::QueryCommands, true;
    "query-chardev" => qmp::QueryChardev, true;
    "stop" => qmp::Stop, true;
    "cont" => qmp::Cont, true;
    "system_powerdown" => qmp::SystemPowerdown, true;
    "system_reset" => qmp::SystemReset, true;
    "quit" => qmp::Quit, true;
    "human-monitor-command" => qmp::HumanMonitorCommand, true;
}
// END TYPED REPLIES

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// Every qemu-ga command of the catalogue has an entry.
const _: () = {
    let mut i = 0;
    while i < qga::ALL_COMMANDS.len() {
        let mut found = false;
        let mut j = 0;
        while j < TYPED_REPLY_COMMANDS.len() {
            found |= same_str(qga::ALL_COMMANDS[i], TYPED_REPLY_COMMANDS[j]);
            j += 1;
        }
        assert!(found, "a qga command is missing from TYPED_REPLY_COMMANDS");
        i += 1;
    }
};

/// Target `typed_replies`. Input: `[selector] stream`.
///
/// The selector picks a command of [`TYPED_REPLY_COMMANDS`]; every message of the stream is
/// decoded as a reply to it. Must never panic.
pub fn typed_replies(data: &[u8]) {
    typed_replies_counted(data);
}

/// [`typed_replies`], returning how many messages there were and how many decoded.
pub(super) fn typed_replies_counted(data: &[u8]) -> (usize, usize) {
    let Some((&selector, stream)) = data.split_first() else {
        return (0, 0);
    };
    let decode = TYPED_REPLY_DECODERS[usize::from(selector) % TYPED_REPLY_DECODERS.len()];
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    drain(&mut decoder, &mut buf, true, &mut out);
    let (mut messages, mut decoded) = (0, 0);
    for frame in out {
        if let Ok(Frame::Message(bytes)) = frame {
            messages += 1;
            decoded += usize::from(decode(&bytes));
        }
    }
    (messages, decoded)
}
