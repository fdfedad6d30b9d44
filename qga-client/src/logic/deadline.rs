//! Deadlines as data: the deadline of one call from its timeout and its handle's deadline.

use std::time::Duration;

/// A point in time: std's `Instant` for the blocking client, tokio's (whose clock tests can
/// pause) for the async one.
pub(crate) trait Moment: Copy + Ord {
    fn checked_add(self, d: Duration) -> Option<Self>;
    fn saturating_duration_since(self, earlier: Self) -> Duration;
}

impl Moment for std::time::Instant {
    fn checked_add(self, d: Duration) -> Option<Self> {
        Self::checked_add(&self, d)
    }
    fn saturating_duration_since(self, earlier: Self) -> Duration {
        Self::saturating_duration_since(&self, earlier)
    }
}

#[cfg(feature = "tokio")]
impl Moment for tokio::time::Instant {
    fn checked_add(self, d: Duration) -> Option<Self> {
        Self::checked_add(&self, d)
    }
    fn saturating_duration_since(self, earlier: Self) -> Duration {
        Self::saturating_duration_since(&self, earlier)
    }
}

/// `now + after`, or far in the future when that overflows (a caller's `Duration::MAX`): a
/// timeout too long to represent means "no timeout", never a panic.
pub(crate) fn later<I: Moment>(now: I, after: Duration) -> I {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// The deadline of a call that starts at `now` with `timeout` on a handle bound by `limit`,
/// and the time that leaves it: `timeout`, or less when the handle's deadline comes first.
pub(crate) fn bound<I: Moment>(limit: Option<I>, now: I, timeout: Duration) -> (I, Duration) {
    let own = later(now, timeout);
    match limit {
        Some(limit) if limit < own => (limit, limit.saturating_duration_since(now)),
        _ => (own, timeout),
    }
}

/// True when the handle's deadline has passed at `now`: a call must not start.
pub(crate) fn expired<I: Moment>(limit: Option<I>, now: I) -> bool {
    limit.is_some_and(|limit| limit <= now)
}

/// The deadline of a handle made from one bound by `limit` with `deadline`: the earlier one.
pub(crate) fn earlier<I: Moment>(limit: Option<I>, deadline: I) -> I {
    limit.map_or(deadline, |limit| limit.min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_earlier_deadline_wins_and_max_does_not_overflow() {
        let now = Instant::now();
        let t = Duration::from_secs(5);
        assert_eq!(bound(None, now, t), (now + t, t));
        let soon = now + Duration::from_secs(1);
        assert_eq!(bound(Some(soon), now, t), (soon, Duration::from_secs(1)));
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(3600));
        assert!(expired(Some(now), now) && !expired(None, now));
        assert_eq!(earlier(Some(soon), now + t), soon);
    }
}
