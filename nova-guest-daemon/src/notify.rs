//! systemd notifications (`Type=notify`): nothing happens when not started by systemd.

/// The daemon is ready to serve.
pub fn ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// The daemon is reloading its configuration; call [`ready`] when done.
pub fn reloading() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
}

/// The daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}
