//! The guest the agent commands talk to: on its socket through the blocking client (no
//! runtime to start for a one-shot call), or through libvirt with the async client on a
//! current-thread runtime. The commands see one synchronous surface either way.

use qga_client::proto::qga::{
    FsfreezeStatus, GuestAgentInfo, GuestFilesystemInfo, GuestNetworkInterface, GuestOsInfo,
    GuestUser, ShutdownMode,
};
use qga_client::proto::{Command, RawCommand};
use qga_client::{ExecOutput, ExecRequest, FileOptions, FileWriteSummary, Result};

/// A connected guest agent.
pub(crate) enum Guest {
    /// The agent's socket, blocking.
    Socket(qga_client::blocking::Client),
    /// Through libvirt: the async client and the runtime it runs on.
    Libvirt {
        client: qga_client::Client,
        runtime: tokio::runtime::Runtime,
    },
}

/// Calls `$call` on the client inside `$guest`, waiting for it on the runtime when it is the
/// async one.
macro_rules! on_either {
    ($guest:expr, $c:ident => $call:expr) => {
        match $guest {
            Guest::Socket($c) => $call,
            Guest::Libvirt {
                client: $c,
                runtime,
            } => runtime.block_on(async { $call.await }),
        }
    };
}

/// A progress callback.
pub(crate) type Progress<'a> = &'a mut (dyn FnMut(u64, Option<u64>) + Send);
/// What a read hands each chunk to.
pub(crate) type Sink<'a> = &'a mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send);

impl Guest {
    pub(crate) fn ping(&self) -> Result<()> {
        on_either!(self, c => c.ping())
    }

    pub(crate) fn info(&self) -> Result<GuestAgentInfo> {
        on_either!(self, c => c.info())
    }

    pub(crate) fn osinfo(&self) -> Result<GuestOsInfo> {
        on_either!(self, c => c.osinfo())
    }

    pub(crate) fn hostname(&self) -> Result<String> {
        on_either!(self, c => c.hostname())
    }

    pub(crate) fn network_interfaces(&self) -> Result<Vec<GuestNetworkInterface>> {
        on_either!(self, c => c.network_interfaces())
    }

    pub(crate) fn users(&self) -> Result<Vec<GuestUser>> {
        on_either!(self, c => c.users())
    }

    pub(crate) fn fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>> {
        on_either!(self, c => c.fsinfo())
    }

    pub(crate) fn time(&self) -> Result<i64> {
        on_either!(self, c => c.time())
    }

    pub(crate) fn set_user_password(
        &self,
        user: &str,
        password: &[u8],
        crypted: bool,
    ) -> Result<()> {
        on_either!(self, c => c.set_user_password(user, password, crypted))
    }

    pub(crate) fn fsfreeze_status(&self) -> Result<FsfreezeStatus> {
        on_either!(self, c => c.fsfreeze_status())
    }

    pub(crate) fn fsfreeze_thaw(&self) -> Result<i64> {
        on_either!(self, c => c.fsfreeze_thaw())
    }

    pub(crate) fn shutdown(&self, mode: Option<ShutdownMode>) -> Result<()> {
        on_either!(self, c => c.shutdown(mode))
    }

    pub(crate) fn call<C: Command>(&self, command: &C) -> Result<C::Response> {
        on_either!(self, c => c.call(command))
    }

    pub(crate) fn call_raw(&self, command: &RawCommand) -> Result<serde_json::Value> {
        on_either!(self, c => c.call_raw(command))
    }

    pub(crate) fn exec(&self, request: ExecRequest) -> Result<ExecOutput> {
        on_either!(self, c => c.exec(request))
    }

    pub(crate) fn read_file_with(
        &self,
        path: &str,
        options: &FileOptions,
        progress: Progress<'_>,
        sink: Sink<'_>,
    ) -> Result<u64> {
        match self {
            Self::Socket(c) => {
                c.read_file_with(path, options, &mut |d, t| progress(d, t), &mut |b| sink(b))
            }
            Self::Libvirt { client, runtime } => {
                runtime.block_on(client.read_file_with(path, options, progress, sink))
            }
        }
    }

    pub(crate) fn write_file_with(
        &self,
        path: &str,
        data: &[u8],
        options: &FileOptions,
        progress: Progress<'_>,
    ) -> Result<FileWriteSummary> {
        match self {
            Self::Socket(c) => c.write_file_with(path, data, options, &mut |d, t| progress(d, t)),
            Self::Libvirt { client, runtime } => {
                runtime.block_on(client.write_file_with(path, data, options, progress))
            }
        }
    }
}
