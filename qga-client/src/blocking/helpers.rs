//! Thin typed wrappers for the everyday commands, and exec polling, blocking.

use std::time::Instant;

use qga_proto::qga::{
    GuestAgentInfo, GuestFilesystemInfo, GuestGetFsinfo, GuestGetHostName, GuestGetOsinfo,
    GuestGetTime, GuestGetUsers, GuestInfo, GuestNetworkGetInterfaces, GuestNetworkInterface,
    GuestOsInfo, GuestPing, GuestShutdown, GuestUser, ShutdownMode,
};

use super::Client;
use crate::error::Result;
use crate::logic::deadline;
use crate::logic::exec::{ExecOutput, ExecPoll, ExecRequest};

impl Client {
    /// `guest-ping`: succeeds when the agent answers.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn ping(&self) -> Result<()> {
        self.call(&GuestPing).map(drop)
    }

    /// `guest-info`: version and every command with its enabled flag.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn info(&self) -> Result<GuestAgentInfo> {
        self.call(&GuestInfo)
    }

    /// `guest-get-osinfo`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn osinfo(&self) -> Result<GuestOsInfo> {
        self.call(&GuestGetOsinfo)
    }

    /// `guest-get-host-name`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn hostname(&self) -> Result<String> {
        Ok(self.call(&GuestGetHostName)?.host_name)
    }

    /// `guest-network-get-interfaces`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn network_interfaces(&self) -> Result<Vec<GuestNetworkInterface>> {
        self.call(&GuestNetworkGetInterfaces)
    }

    /// `guest-get-users`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn users(&self) -> Result<Vec<GuestUser>> {
        self.call(&GuestGetUsers)
    }

    /// `guest-get-fsinfo`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn fsinfo(&self) -> Result<Vec<GuestFilesystemInfo>> {
        self.call(&GuestGetFsinfo)
    }

    /// `guest-get-time`: nanoseconds since the epoch.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn time(&self) -> Result<i64> {
        self.call(&GuestGetTime)
    }

    /// `guest-set-user-password`. With `crypted`, `password` is a crypt(3) hash.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a password with a newline
    /// or a user name with `:` or a newline (the agent would refuse them), before anything
    /// is sent; else as for [`Client::call`].
    pub fn set_user_password(&self, username: &str, password: &[u8], crypted: bool) -> Result<()> {
        let command = crate::logic::guest::set_user_password(username, password, crypted)?;
        self.call(&command).map(drop)
    }

    /// `guest-shutdown`. Returns once the agent has taken the command (it sends no reply on
    /// success); confirm through QMP. The channel is resynchronised before the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when the agent refuses, else as for
    /// [`Client::call`].
    pub fn shutdown(&self, mode: Option<ShutdownMode>) -> Result<()> {
        self.call(&GuestShutdown { mode }).map(drop)
    }

    /// Runs a program in the guest and waits for it: `guest-exec`, then `guest-exec-status`
    /// polled with a growing pause (1 ms doubling to 200 ms) until it exits or the deadline
    /// passes: [`ExecRequest::timeout`] (default: the long timeout), or this handle's
    /// deadline when that comes first.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when it cannot be started;
    /// [`Error::ExecTimeout`](crate::Error::ExecTimeout) with the pid when it runs past the
    /// deadline (it keeps running in the guest); else as for [`Client::call`].
    pub fn exec(&self, request: ExecRequest) -> Result<ExecOutput> {
        let limit = request.limit(self.config());
        let limit = deadline::bound(self.deadline, Instant::now(), limit);
        let mut poll = ExecPoll::new(self.call(&request.into_command())?.pid, limit);
        loop {
            let (status, timeout) = poll.next_call(Instant::now(), self.config())?;
            match poll.judge(self.call_timeout(&status, timeout), Instant::now())? {
                Some(output) => return Ok(output),
                None => {
                    let at = poll.wake_at(Instant::now());
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                }
            }
        }
    }
}
