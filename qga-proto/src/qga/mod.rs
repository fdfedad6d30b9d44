//! The qemu-ga command catalogue: one type per command, named after its wire name, with its
//! arguments as fields and its `return` value as [`Command::Response`](crate::Command).
//!
//! It covers every command of the current upstream schema, including those newer than the
//! qemu-ga 7.2 that Debian 12 ships (`guest-get-load`, `guest-network-get-route`). Members added
//! upstream after a command first appeared are optional, unknown members are ignored and
//! enums keep unknown values, so replies from older and newer agents decode alike.
//!
//! Commands without arguments are unit structs (`GuestPing`). Response types carrying base64
//! data hold it already decoded ([`Base64Bytes`](crate::base64::Base64Bytes)).

mod disk;
mod exec;
mod file;
mod fsfreeze;
mod hardware;
mod network;
mod power;
mod ssh;
mod sync;
mod system;
mod time;

pub use disk::*;
pub use exec::*;
pub use file::*;
pub use fsfreeze::*;
pub use hardware::*;
pub use network::*;
pub use power::*;
pub use ssh::*;
pub use sync::*;
pub use system::*;
pub use time::*;

/// The wire names of every command in this module, in schema order.
pub const ALL_COMMANDS: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-get-time",
    "guest-set-time",
    "guest-info",
    "guest-shutdown",
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-network-get-interfaces",
    "guest-get-vcpus",
    "guest-set-vcpus",
    "guest-get-disks",
    "guest-get-fsinfo",
    "guest-set-user-password",
    "guest-get-memory-blocks",
    "guest-set-memory-blocks",
    "guest-get-memory-block-info",
    "guest-exec-status",
    "guest-exec",
    "guest-get-host-name",
    "guest-get-users",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-get-devices",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-get-diskstats",
    "guest-get-cpustats",
    "guest-get-load",
    "guest-network-get-route",
];
