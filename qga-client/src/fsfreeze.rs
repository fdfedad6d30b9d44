//! Filesystem freeze with a guard that always thaws.

use std::time::Duration;

use qga_proto::qga::{
    FsfreezeStatus, GuestFsfreezeFreeze, GuestFsfreezeFreezeList, GuestFsfreezeStatus,
    GuestFsfreezeThaw,
};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::Result;

/// Holds guest filesystems frozen. Thaw with [`FreezeGuard::thaw`]; if the guard is dropped
/// instead, or the hold time passes first, a background task thaws (this needs a tokio
/// runtime, which the guard's creation already required).
///
/// A guard made by a [`Client::with_deadline`] handle thaws with [`thaw`](Self::thaw) within
/// that deadline; the background thaws (on drop, after the hold time, after a freeze that
/// timed out) are not bound by it: they must not be cut short.
#[derive(Debug)]
#[must_use = "dropping the guard thaws the filesystems at once"]
pub struct FreezeGuard {
    client: Client,
    frozen: i64,
    watchdog: Option<JoinHandle<()>>,
    thawed: bool,
}

impl Client {
    /// `guest-fsfreeze-status`.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn fsfreeze_status(&self) -> Result<FsfreezeStatus> {
        self.call(&GuestFsfreezeStatus).await
    }

    /// `guest-fsfreeze-thaw`: returns how many filesystems were thawed.
    ///
    /// # Errors
    ///
    /// As for [`Client::call`].
    pub async fn fsfreeze_thaw(&self) -> Result<i64> {
        self.call(&GuestFsfreezeThaw).await
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
    pub async fn fsfreeze(
        &self,
        mountpoints: Option<Vec<String>>,
        hold: Duration,
    ) -> Result<FreezeGuard> {
        let frozen = match mountpoints {
            Some(list) => {
                self.call(&GuestFsfreezeFreezeList {
                    mountpoints: Some(list),
                })
                .await
            }
            None => self.call(&GuestFsfreezeFreeze).await,
        };
        let frozen = match frozen {
            Ok(n) => n,
            Err(e) => {
                if e.is_timeout() {
                    // The freeze may have happened after all: do not leave the guest frozen.
                    // Not bound by this handle's deadline, which has just passed.
                    spawn_thaw(self.without_deadline(), "freeze timed out");
                }
                return Err(e);
            }
        };
        let client = self.without_deadline();
        let watchdog = tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            tracing::warn!(?hold, "fsfreeze hold time passed; thawing");
            if let Err(e) = client.fsfreeze_thaw().await {
                tracing::error!(error = %e, "thawing guest filesystems failed");
            }
        });
        Ok(FreezeGuard {
            client: self.clone(),
            frozen,
            watchdog: Some(watchdog),
            thawed: false,
        })
    }
}

fn spawn_thaw(client: Client, why: &'static str) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                tracing::debug!(why, "thawing guest filesystems");
                if let Err(e) = client.fsfreeze_thaw().await {
                    tracing::error!(error = %e, "thawing guest filesystems failed");
                }
            });
        }
        Err(_) => tracing::error!(why, "no tokio runtime to thaw guest filesystems"),
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
    /// As for [`Client::call`]. On error the guard still tries once more in the background.
    pub async fn thaw(mut self) -> Result<i64> {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        let result = self.client.fsfreeze_thaw().await;
        self.thawed = result.is_ok();
        result
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
        if !self.thawed {
            spawn_thaw(self.client.without_deadline(), "freeze guard dropped");
        }
    }
}
