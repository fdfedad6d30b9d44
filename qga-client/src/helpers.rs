//! Thin typed wrappers for the everyday commands.

use qga_proto::qga::{
    GuestAgentInfo, GuestFilesystemInfo, GuestGetFsinfo, GuestGetHostName, GuestGetOsinfo,
    GuestGetTime, GuestGetUsers, GuestInfo, GuestNetworkGetInterfaces, GuestNetworkInterface,
    GuestOsInfo, GuestPing, GuestShutdown, GuestUser, ShutdownMode,
};

use crate::client::Client;
use crate::error::Result;

impl Client {
    /// `guest-ping`: succeeds when the agent answers.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn ping(&self) -> Result<()> {
        self.call(&GuestPing).await.map(|_| ())
    }

    /// `guest-info`: version and every command with its enabled flag.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn info(&self) -> Result<GuestAgentInfo> {
        self.call(&GuestInfo).await
    }

    /// `guest-get-osinfo`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn osinfo(&self) -> Result<GuestOsInfo> {
        self.call(&GuestGetOsinfo).await
    }

    /// `guest-get-host-name`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn hostname(&self) -> Result<String> {
        self.call(&GuestGetHostName).await.map(|h| h.host_name)
    }

    /// `guest-network-get-interfaces`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn network_interfaces(&self) -> Result<Vec<GuestNetworkInterface>> {
        self.call(&GuestNetworkGetInterfaces).await
    }

    /// `guest-get-users`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn users(&self) -> Result<Vec<GuestUser>> {
        self.call(&GuestGetUsers).await
    }

    /// `guest-get-fsinfo`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>> {
        self.call(&GuestGetFsinfo).await
    }

    /// `guest-get-time`: nanoseconds since the epoch.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn time(&self) -> Result<i64> {
        self.call(&GuestGetTime).await
    }

    /// `guest-set-user-password`. With `crypted`, `password` is a crypt(3) hash.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a password with a newline or a user name with `:` or a
    /// newline (the agent would refuse them), else as for [`Client::call`].
    pub async fn set_user_password(
        &self,
        username: &str,
        password: &[u8],
        crypted: bool,
    ) -> Result<()> {
        let command = crate::logic::guest::set_user_password(username, password, crypted)?;
        self.call(&command).await.map(|_| ())
    }

    /// `guest-shutdown`. Returns once the agent has taken the command (it sends no reply on
    /// success); confirm through QMP (`SHUTDOWN`, or `RESET` for a reboot). The channel is
    /// resynchronised before the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when the agent refuses (disabled, helper failed), else as for
    /// [`Client::call`].
    pub async fn shutdown(&self, mode: Option<ShutdownMode>) -> Result<()> {
        self.call(&GuestShutdown { mode }).await.map(|_| ())
    }
}
