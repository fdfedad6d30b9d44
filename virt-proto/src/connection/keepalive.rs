//! The keepalive timer of `src/rpc/virkeepalive.c`, on caller-supplied time.

use std::time::{Duration, Instant};

/// Keepalive settings. The defaults are libvirt's (`keepalive_interval = 5`,
/// `keepalive_count = 5` in libvirtd.conf): a silent peer is detected after
/// `interval * (count + 1)`, 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Silence after which a ping is sent.
    pub interval: Duration,
    /// Unanswered pings after which the connection is dead.
    pub count: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            count: 5,
        }
    }
}

/// What the timer wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    None,
    SendPing,
    Dead,
}

#[derive(Debug, Clone)]
pub(crate) struct Keepalive {
    config: Option<KeepaliveConfig>,
    enabled: bool,
    count_to_death: u32,
    /// Start of the current interval: the last packet received or ping sent.
    interval_start: Instant,
}

impl Keepalive {
    pub(crate) fn new(config: Option<KeepaliveConfig>, now: Instant) -> Self {
        Self {
            config: config.filter(|c| !c.interval.is_zero()),
            enabled: false,
            count_to_death: config.map_or(0, |c| c.count),
            interval_start: now,
        }
    }

    /// Starts sending pings. Returns false if keepalive is disabled by the configuration.
    /// The current interval runs from the last packet received (as `virKeepAliveStart` does),
    /// so a connection that has been silent for longer pings at once.
    pub(crate) fn enable(&mut self) -> bool {
        self.enabled = self.config.is_some();
        self.enabled
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A packet arrived: the peer is alive.
    pub(crate) fn received(&mut self, now: Instant) {
        if let Some(c) = self.config {
            self.count_to_death = c.count;
        }
        self.interval_start = now;
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        let c = self.config.filter(|_| self.enabled)?;
        self.interval_start.checked_add(c.interval)
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Action {
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return Action::None,
        }
        if self.count_to_death == 0 {
            self.enabled = false;
            return Action::Dead;
        }
        self.count_to_death -= 1;
        self.interval_start = now;
        Action::SendPing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_after_count_plus_one_intervals() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = Keepalive::new(Some(KeepaliveConfig::default()), t0);
        assert_eq!(k.deadline(), None);
        assert!(k.enable());
        assert_eq!(k.deadline(), Some(t0 + s(5)));
        assert_eq!(k.on_timeout(t0 + s(4)), Action::None);
        for i in 1..=5 {
            assert_eq!(k.on_timeout(t0 + s(5 * i)), Action::SendPing, "ping {i}");
        }
        assert_eq!(k.on_timeout(t0 + s(29)), Action::None);
        assert_eq!(k.on_timeout(t0 + s(30)), Action::Dead);
        assert_eq!(k.deadline(), None);
    }

    #[test]
    fn a_packet_restarts_the_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = Keepalive::new(
            Some(KeepaliveConfig {
                interval: s(1),
                count: 1,
            }),
            t0,
        );
        k.enable();
        assert_eq!(k.on_timeout(t0 + s(1)), Action::SendPing);
        k.received(t0 + s(1) + Duration::from_millis(500));
        assert_eq!(k.on_timeout(t0 + s(2)), Action::None);
        assert_eq!(
            k.on_timeout(t0 + s(2) + Duration::from_millis(500)),
            Action::SendPing
        );
        assert_eq!(k.on_timeout(t0 + s(4)), Action::Dead);
    }

    #[test]
    fn disabled_by_config() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(None, t0);
        assert!(!k.enable());
        assert_eq!(k.on_timeout(t0 + Duration::from_secs(1000)), Action::None);
        let mut z = Keepalive::new(
            Some(KeepaliveConfig {
                interval: Duration::ZERO,
                count: 3,
            }),
            t0,
        );
        assert!(!z.enable());
    }
}
