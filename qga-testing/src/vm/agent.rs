//! Waiting for the guest's qemu-ga: the `guest-sync-delimited` handshake over a blocking
//! socket, with a fresh id per attempt.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use qga_proto::codec::FrameDecoder;
use qga_proto::sync::{Handshake, Progress};

use super::Vm;

/// How often a new `guest-sync-delimited` is sent while waiting for the agent.
const SYNC_RESEND: Duration = Duration::from_secs(2);
/// Read timeout on the agent socket while waiting.
const SYNC_READ_TIMEOUT: Duration = Duration::from_millis(200);

impl Vm {
    pub(super) fn sync_agent(&self, deadline: Instant) -> Result<(), String> {
        let mut stream: Option<UnixStream> = None;
        let mut decoder = FrameDecoder::new();
        let mut hs = Handshake::start(fresh_sync_id(), &mut decoder);
        // The buffer type is whatever the decoder reads from; this call fixes it.
        let mut input = Default::default();
        let _ = hs.advance(&mut decoder, &mut input);
        let mut next_send = Instant::now();
        let mut buf = [0u8; 16 * 1024];
        let mut last_error = String::from("no answer");
        loop {
            self.exited()
                .map_err(|e| format!("{e} before the agent answered guest-sync-delimited"))?;
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "qemu-ga did not answer guest-sync-delimited on {} in time ({last_error})",
                    self.qga_socket().display()
                ));
            }
            let sock = match stream.as_mut() {
                Some(s) => s,
                None => match connect(self.qga_socket()) {
                    Ok(s) => {
                        decoder = FrameDecoder::new();
                        input.clear();
                        next_send = now;
                        stream.insert(s)
                    }
                    Err(e) => {
                        last_error = format!("connect: {e}");
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            if now >= next_send {
                hs = Handshake::start(fresh_sync_id(), &mut decoder);
                next_send = now + SYNC_RESEND;
                if let Err(e) = sock.write_all(&hs.request()) {
                    last_error = format!("write: {e}");
                    stream = None;
                    continue;
                }
            }
            match sock.read(&mut buf) {
                Ok(0) => {
                    last_error = "EOF on the agent socket".into();
                    stream = None;
                    thread::sleep(Duration::from_millis(100));
                }
                Ok(n) => {
                    input.extend_from_slice(&buf[..n]);
                    if hs.advance(&mut decoder, &mut input) == Progress::Synced {
                        finish_line(sock, &mut input, &mut buf);
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    last_error = format!("read: {e}");
                    stream = None;
                }
            }
        }
    }
}

/// After our reply, also read its trailing newline so that the next client finds an empty
/// channel (best effort, 300 ms at most).
fn finish_line(sock: &mut UnixStream, input: &mut impl AsRef<[u8]>, buf: &mut [u8]) {
    if input.as_ref().contains(&b'\n') {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        match sock.read(buf) {
            Ok(n) if n > 0 && buf[..n].contains(&b'\n') => return,
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn connect(path: &Path) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(SYNC_READ_TIMEOUT))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

/// A random id below 2^53, never repeated within the process.
pub(super) fn fresh_sync_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    (h.finish() & qga_proto::sync::MAX_SYNC_ID).max(1)
}
