//! `guest-exec` with polling, on tokio. The request, the output and the schedule are in
//! `crate::logic::exec`.

use tokio::time::Instant;

use crate::client::Client;
use crate::error::Result;
use crate::logic::exec::{ExecOutput, ExecPoll, ExecRequest};

impl Client {
    /// Runs a program in the guest and waits for it: `guest-exec`, then `guest-exec-status`
    /// polled with a growing pause (1 ms doubling to 200 ms) until it exits or the deadline
    /// passes: [`ExecRequest::timeout`] (default: the long timeout), or this handle's
    /// deadline when that comes first.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when it cannot be started (for example not
    /// found); [`Error::ExecTimeout`](crate::Error::ExecTimeout) with the pid when it runs past
    /// the deadline (it keeps running in the guest); else as for [`Client::call`].
    pub async fn exec(&self, request: ExecRequest) -> Result<ExecOutput> {
        // The program's own limit, cut short by this handle's deadline.
        let limit = self.bound(Instant::now(), request.limit(self.config()));
        let pid = self.call(&request.into_command()).await?.pid;
        let mut poll = ExecPoll::new(pid, limit);
        loop {
            let (status, timeout) = poll.next_call(Instant::now(), self.config())?;
            let status = self.call_timeout(&status, timeout).await;
            if let Some(output) = poll.judge(status, Instant::now())? {
                return Ok(output);
            }
            tokio::time::sleep_until(poll.wake_at(Instant::now())).await;
        }
    }
}
