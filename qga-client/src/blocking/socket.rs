//! The blocking client's socket: std's `UnixStream` with its kernel timeouts set from each
//! call's deadline, only when they would otherwise run past it (a system call saved on most
//! calls).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// A deadline nearer than twice this gets a socket timeout that ends exactly at it; a farther
/// one gets half of what is left, so that the next calls' deadlines (a little later each, or
/// the same one of a `with_deadline` handle) need no new timeout for a while. Waking early
/// only means waiting again for what is left.
const SLACK: Duration = Duration::from_millis(50);
/// Smallest and largest read.
const MIN_WINDOW: usize = 4 * 1024;
const MAX_WINDOW: usize = 1024 * 1024;

pub(crate) struct Socket {
    stream: UnixStream,
    /// The timeouts the kernel has now (`None`: none).
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Bytes per read: grows while reads fill it (a large reply), shrinks again after.
    window: usize,
    /// Where reads land before they are appended to the read buffer: zeroed once as it
    /// grows (std's `read` wants initialised memory), so a read costs a copy of what it
    /// brought, not a clearing of the whole window.
    scratch: Vec<u8>,
}

impl Socket {
    pub(crate) fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            read_timeout: None,
            write_timeout: None,
            window: MIN_WINDOW,
            scratch: Vec::new(),
        }
    }

    /// Connects to `path`, waiting at most `timeout` (more than zero) for room in the
    /// listener's backlog (qemu-ga and QEMU accept one client at a time and keep a short
    /// one). A connect that waited that long fails with `TimedOut`.
    pub(crate) fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let addr = SocketAddrUnix::new(path)?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // A UNIX connect waits for the backlog as long as the send timeout says (none: zero).
        let timeout = Some(timeout.max(Duration::from_micros(1)));
        set_socket_timeout(&fd, Timeout::Send, timeout)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {}
            Err(rustix::io::Errno::AGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connect timed out after {timeout:?}: the socket's backlog stays full \
                         (another client holds the agent)"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut socket = Self::new(UnixStream::from(fd));
        socket.write_timeout = timeout;
        Ok(socket)
    }

    /// Reads what is there (at least one byte) onto the end of `buf`, waiting until `until`
    /// at most: `Ok(None)` when `until` came first, `Ok(Some(0))` at end of stream.
    pub(crate) fn read_until(
        &mut self,
        buf: &mut BytesMut,
        until: Instant,
    ) -> io::Result<Option<usize>> {
        loop {
            match arm(&mut self.read_timeout, until) {
                Arm::Late => return Ok(None),
                Arm::Keep => {}
                Arm::Set(t) => self.stream.set_read_timeout(Some(t))?,
            }
            if self.scratch.len() < self.window {
                self.scratch.resize(self.window, 0);
            }
            match self.stream.read(&mut self.scratch[..self.window]) {
                Ok(n) => {
                    buf.extend_from_slice(&self.scratch[..n]);
                    self.window = match n {
                        n if n == self.window => (n * 2).min(MAX_WINDOW),
                        n if n < self.window / 4 => (self.window / 2).max(MIN_WINDOW),
                        _ => self.window,
                    };
                    if self.window == MIN_WINDOW && self.scratch.len() > 16 * MIN_WINDOW {
                        // Back to small replies: do not keep a large reply's scratch.
                        self.scratch = Vec::new();
                    }
                    return Ok(Some(n));
                }
                Err(e) if waits(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `out` from `*written` on, waiting until `until` at most: false when `until`
    /// came first. `*written` tells how much went out.
    pub(crate) fn write_until(
        &mut self,
        out: &[u8],
        written: &mut usize,
        until: Instant,
    ) -> io::Result<bool> {
        while *written < out.len() {
            match arm(&mut self.write_timeout, until) {
                Arm::Late => return Ok(false),
                Arm::Keep => {}
                Arm::Set(t) => self.stream.set_write_timeout(Some(t))?,
            }
            match self.stream.write(&out[*written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if waits(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// What a timed-out or interrupted wait looks like: not an error, wait again.
fn waits(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// What to do with a socket timeout before waiting until a deadline.
#[derive(Debug, PartialEq)]
enum Arm {
    /// The deadline has passed.
    Late,
    /// The kernel's timeout ends no later than the deadline: keep it.
    Keep,
    /// Set this one.
    Set(Duration),
}

/// The timeout to set before waiting until `until`, given the one the kernel has
/// (`current`, updated when a new one is to be set).
fn arm(current: &mut Option<Duration>, until: Instant) -> Arm {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Arm::Late;
    }
    if current.is_some_and(|t| t <= left) {
        return Arm::Keep;
    }
    let t = if left > 2 * SLACK { left / 2 } else { left };
    *current = Some(t);
    Arm::Set(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_set_only_when_it_would_run_past_the_deadline() {
        let mut current = None;
        let now = Instant::now();
        let Arm::Set(t) = arm(&mut current, now + Duration::from_secs(5)) else {
            panic!("a first timeout is set");
        };
        assert!(t <= Duration::from_secs(5) / 2);
        // The next call's deadline is a little later: the timeout stays.
        assert_eq!(arm(&mut current, now + Duration::from_secs(5)), Arm::Keep);
        // A nearer deadline needs a shorter one, set to the deadline itself when near.
        let Arm::Set(t) = arm(&mut current, now + Duration::from_millis(60)) else {
            panic!("a nearer deadline sets a shorter timeout");
        };
        assert!(t <= Duration::from_millis(60));
        assert_eq!(arm(&mut current, now), Arm::Late);
    }
}
