//! systemd's watchdog (`WatchdogSec=` in a unit): when systemd asks us for keep-alives, by
//! setting `WATCHDOG_USEC` (and `WATCHDOG_PID` to our PID), a task on the runtime sends
//! `WATCHDOG=1` at half that interval until shutdown is cancelled. Nothing happens otherwise.
//!
//! The keep-alives come from a task of the daemon's runtime, so they stop when the runtime
//! stops scheduling tasks (every worker blocked): that is what systemd then restarts. Once
//! shutdown is cancelled they stop too; systemd does not watch a service that is stopping, and
//! the drain is bounded by the daemon's own shutdown timeout (and `TimeoutStopSec=`).

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The interval systemd asked for, when it asked us (not a parent or a child) for
/// keep-alives. The environment is left as it is.
pub fn requested() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}

/// How often to send a keep-alive for a watchdog `interval`: half of it, as sd_notify(3)
/// advises; `None` for an interval of zero (no watchdog).
pub fn period(interval: Duration) -> Option<Duration> {
    let half = interval / 2;
    (!half.is_zero()).then_some(half)
}

/// Sends keep-alives to systemd when it asked for them, on a task of the current runtime
/// that ends when `shutdown` is cancelled. Returns `None` (and spawns nothing) otherwise.
///
/// Must be called from within a tokio runtime.
pub fn spawn(shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let interval = requested()?;
    let every = period(interval)?;
    tracing::info!(
        interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        "systemd watchdog: sending keep-alives every {every:?}"
    );
    Some(tokio::spawn(keep_alive(every, shutdown, notify)))
}

/// Calls `ping` at once and then every `every` until `shutdown` is cancelled. A late tick
/// (the runtime was busy) is not made up for with a burst: the next one is `every` later.
pub async fn keep_alive<F>(every: Duration, shutdown: CancellationToken, mut ping: F)
where
    F: FnMut() -> std::io::Result<()>,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match ping() {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                // Logged once per run of failures: systemd restarts us if it goes on.
                tracing::warn!(error = %e, "cannot send a watchdog keep-alive to systemd");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

/// One keep-alive to systemd's notification socket.
fn notify() -> std::io::Result<()> {
    sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn half_the_interval() {
        assert_eq!(
            period(Duration::from_secs(30)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            period(Duration::from_micros(3)),
            Some(Duration::from_nanos(1500))
        );
        assert_eq!(period(Duration::ZERO), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pings_at_once_then_every_period_until_shutdown() {
        let count = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(keep_alive(Duration::from_secs(10), shutdown.clone(), {
            let count = Arc::clone(&count);
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "one keep-alive at start");
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(count.load(Ordering::SeqCst), 4, "then at 10, 20 and 30 s");
        shutdown.cancel();
        task.await.expect("the task ends on shutdown");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(count.load(Ordering::SeqCst), 4, "nothing after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_do_not_stop_it() {
        let count = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(keep_alive(Duration::from_secs(1), shutdown.clone(), {
            let count = Arc::clone(&count);
            move || {
                count.fetch_add(1, Ordering::SeqCst);
                Err(std::io::Error::other("no socket"))
            }
        }));
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(count.load(Ordering::SeqCst), 5);
        shutdown.cancel();
        task.await.expect("the task ends on shutdown");
    }

    #[test]
    fn nothing_without_systemd() {
        // The test runner is not started by systemd with a watchdog for this PID.
        if std::env::var_os("WATCHDOG_PID").is_none() {
            assert_eq!(requested(), None);
        }
    }
}
