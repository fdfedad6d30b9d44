//! Filesystem freeze with a guard that always thaws, blocking.

use std::sync::mpsc;
use std::time::Duration;

use qga_proto::qga::{
    FsfreezeStatus, GuestFsfreezeFreeze, GuestFsfreezeFreezeList, GuestFsfreezeStatus,
    GuestFsfreezeThaw,
};

use super::Client;
use crate::error::Result;

/// Holds guest filesystems frozen. Thaw with [`FreezeGuard::thaw`]; if the guard is dropped
/// instead, the drop thaws (blocking until the agent answers or the long timeout passes), and
/// if the hold time passes first, the guard's thread thaws.
///
/// A guard made by a [`Client::with_deadline`] handle thaws with [`thaw`](Self::thaw) within
/// that deadline; the other thaws are not bound by it: they must not be cut short.
#[derive(Debug)]
#[must_use = "dropping the guard thaws the filesystems at once"]
pub struct FreezeGuard {
    frozen: i64,
    /// Dropping it stops the hold-time thread.
    watchdog: Option<mpsc::Sender<()>>,
    /// The handle to thaw with; `None` once thawed.
    client: Option<Client>,
}

impl Client {
    /// `guest-fsfreeze-status`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn fsfreeze_status(&self) -> Result<FsfreezeStatus> {
        self.call(&GuestFsfreezeStatus)
    }

    /// `guest-fsfreeze-thaw`: returns how many filesystems were thawed.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub fn fsfreeze_thaw(&self) -> Result<i64> {
        self.call(&GuestFsfreezeThaw)
    }

    /// Freezes the guest's filesystems (all, or the given mount points) and returns a guard
    /// that thaws them when dropped, when [`FreezeGuard::thaw`] is called, or at the latest
    /// after `hold`.
    ///
    /// While frozen the agent accepts only ping, info, sync and fsfreeze-status/-thaw.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`]; the agent thaws by itself when freezing fails.
    pub fn fsfreeze(
        &self,
        mountpoints: Option<Vec<String>>,
        hold: Duration,
    ) -> Result<FreezeGuard> {
        let frozen = match mountpoints {
            Some(list) => self.call(&GuestFsfreezeFreezeList {
                mountpoints: Some(list),
            }),
            None => self.call(&GuestFsfreezeFreeze),
        };
        let frozen = frozen.inspect_err(|e| {
            if e.is_timeout() {
                // The freeze may have happened after all: do not leave the guest frozen.
                // Not bound by this handle's deadline, which has just passed.
                let client = self.without_deadline();
                std::thread::spawn(move || client.thaw_logged("freeze timed out"));
            }
        })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let client = self.without_deadline();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(hold) {
                tracing::warn!(?hold, "fsfreeze hold time passed; thawing");
                client.thaw_logged("hold time passed");
            }
        });
        Ok(FreezeGuard {
            frozen,
            watchdog: Some(stop),
            client: Some(self.clone()),
        })
    }

    fn thaw_logged(&self, why: &'static str) {
        tracing::debug!(why, "thawing guest filesystems");
        if let Err(e) = self.fsfreeze_thaw() {
            tracing::error!(error = %e, "thawing guest filesystems failed");
        }
    }
}

impl FreezeGuard {
    /// How many filesystems the freeze reported.
    pub fn frozen(&self) -> i64 {
        self.frozen
    }

    /// Thaws now; returns how many filesystems were thawed.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`]. On error the guard tries once more when it is dropped.
    pub fn thaw(mut self) -> Result<i64> {
        self.watchdog = None;
        let client = self.client.take();
        let result = client.as_ref().map_or(Ok(0), Client::fsfreeze_thaw);
        if result.is_err() {
            self.client = client;
        }
        result
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        self.watchdog = None;
        if let Some(client) = self.client.take() {
            client
                .without_deadline()
                .thaw_logged("freeze guard dropped");
        }
    }
}
