//! A recording proxy for libvirt's RPC: it listens on a UNIX socket, forwards each connection
//! to libvirtd's socket and writes the bytes of each direction, exactly as on the wire, to
//! `<session>.c2s.bin` (client to server) and `<session>.s2c.bin` (server to client), plus
//! `<session>.timeline.txt` (one line per read: milliseconds since accept, direction, length).
//!
//! [`rpc_headers`] splits a capture into libvirt RPC messages (4-byte big-endian length that
//! counts itself, then the 24-byte header: program, version, procedure, type, serial, status).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// One recorded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The session name the files are named after.
    pub name: String,
    /// Client-to-server bytes.
    pub c2s: PathBuf,
    /// Server-to-client bytes.
    pub s2c: PathBuf,
}

#[derive(Debug, Default)]
struct Shared {
    session: String,
    recordings: Vec<Recording>,
}

/// Forwards connections to an upstream UNIX socket and records them. Stops on drop
/// (connections still open are cut).
#[derive(Debug)]
pub struct RecordingProxy {
    socket: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl RecordingProxy {
    /// Listens on `listen` (which must not exist) and records into `out_dir`.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound or `out_dir` created.
    pub fn start(listen: &Path, upstream: &Path, out_dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(out_dir)?;
        let listener = UnixListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Mutex::new(Shared {
            session: "session".into(),
            recordings: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            let (upstream, out_dir) = (upstream.to_path_buf(), out_dir.to_path_buf());
            thread::Builder::new()
                .name("rpc-proxy".into())
                .spawn(move || accept_loop(&listener, &upstream, &out_dir, &shared, &stop))?
        };
        Ok(Self {
            socket: listen.to_path_buf(),
            shared,
            stop,
            accept: Some(accept),
        })
    }

    /// The socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `qemu:///system?socket=<socket_path>`.
    pub fn uri(&self) -> String {
        format!("qemu:///system?socket={}", self.socket.display())
    }

    /// Names the connections accepted from now on (`NAME`, then `NAME-2`, …).
    pub fn set_session(&self, name: &str) {
        lock(&self.shared).session = name.to_owned();
    }

    /// The connections recorded so far.
    pub fn recordings(&self) -> Vec<Recording> {
        lock(&self.shared).recordings.clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        let _ = fs::remove_file(&self.socket);
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(
    listener: &UnixListener,
    upstream: &Path,
    out_dir: &Path,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    let mut pumps: Vec<(UnixStream, UnixStream, Vec<JoinHandle<()>>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                if let Ok(conn) = start_connection(client, upstream, out_dir, shared) {
                    pumps.push(conn);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
    for (client, server, handles) in pumps {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        for handle in handles {
            let _ = handle.join();
        }
    }
}

type Connection = (UnixStream, UnixStream, Vec<JoinHandle<()>>);

fn start_connection(
    client: UnixStream,
    upstream: &Path,
    out_dir: &Path,
    shared: &Mutex<Shared>,
) -> io::Result<Connection> {
    client.set_nonblocking(false)?;
    let server = UnixStream::connect(upstream)?;
    let recording = {
        let mut shared = lock(shared);
        let base = shared.session.clone();
        let taken = |n: &str| shared.recordings.iter().any(|r| r.name == n);
        let mut name = base.clone();
        let mut i = 2;
        while taken(&name) {
            name = format!("{base}-{i}");
            i += 1;
        }
        let recording = Recording {
            c2s: out_dir.join(format!("{name}.c2s.bin")),
            s2c: out_dir.join(format!("{name}.s2c.bin")),
            name,
        };
        shared.recordings.push(recording.clone());
        recording
    };
    let timeline = Arc::new(Mutex::new(File::create(
        out_dir.join(format!("{}.timeline.txt", recording.name)),
    )?));
    let accepted = Instant::now();
    let c2s = pump(
        client.try_clone()?,
        server.try_clone()?,
        File::create(&recording.c2s)?,
        "c2s",
        Arc::clone(&timeline),
        accepted,
    )?;
    let s2c = pump(
        server.try_clone()?,
        client.try_clone()?,
        File::create(&recording.s2c)?,
        "s2c",
        timeline,
        accepted,
    )?;
    Ok((client, server, vec![c2s, s2c]))
}

fn pump(
    mut from: UnixStream,
    to: UnixStream,
    mut file: File,
    direction: &'static str,
    timeline: Arc<Mutex<File>>,
    accepted: Instant,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("rpc-proxy-{direction}"))
        .spawn(move || {
            let mut to = to;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = file.write_all(&buf[..n]);
                if let Ok(mut t) = timeline.lock() {
                    let _ = writeln!(t, "{} {direction} {n}", accepted.elapsed().as_millis());
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = file.flush();
            let _ = to.shutdown(Shutdown::Write);
        })
}

/// The fixed header of one libvirt RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcHeader {
    /// Length of the whole message including the 4 length bytes.
    pub len: u32,
    /// Program (`0x20008086` remote, `0x20008087` QEMU, `0x6b656570` keepalive).
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: i32,
    /// 0 call, 1 reply, 2 message (event), 3 stream, 4 call with fds, 5 reply with fds.
    pub kind: i32,
    /// Serial (matches a reply to its call).
    pub serial: u32,
    /// 0 OK, 1 error, 2 continue.
    pub status: i32,
}

impl RpcHeader {
    /// A short name for the program.
    pub fn prog_name(&self) -> &'static str {
        match self.prog {
            0x2000_8086 => "REMOTE",
            0x2000_8087 => "QEMU",
            0x0006_8000 => "LXC",
            0x6b65_6570 => "KEEPALIVE",
            0x0690_0690 => "ADMIN",
            _ => "?",
        }
    }
}

/// Splits a capture into messages; stops at the first incomplete or impossible one (length
/// below 28 or above 32 MiB). Returns the headers and the number of bytes they cover.
pub fn rpc_headers(bytes: &[u8]) -> (Vec<RpcHeader>, usize) {
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 28 <= bytes.len() {
        let len = word(pos);
        if !(28..=32 << 20).contains(&len) || pos + len as usize > bytes.len() {
            break;
        }
        out.push(RpcHeader {
            len,
            prog: word(pos + 4),
            vers: word(pos + 8),
            proc_: word(pos + 12) as i32,
            kind: word(pos + 16) as i32,
            serial: word(pos + 20),
            status: word(pos + 24) as i32,
        });
        pos += len as usize;
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_messages_and_stop_at_a_partial_one() {
        let mut bytes = Vec::new();
        for (prog, proc_, serial) in [(0x2000_8086u32, 66i32, 1u32), (0x6b65_6570, 1, 0)] {
            bytes.extend_from_slice(&28u32.to_be_bytes());
            for w in [prog, 1, proc_ as u32, 0, serial, 0] {
                bytes.extend_from_slice(&w.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&40u32.to_be_bytes());
        let (headers, used) = rpc_headers(&bytes);
        assert_eq!(used, 56);
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].prog_name(), "REMOTE");
        assert_eq!(headers[0].proc_, 66);
        assert_eq!(headers[1].prog_name(), "KEEPALIVE");
    }

    #[test]
    fn proxy_records_both_directions() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let upstream = dir.path().join("up.sock");
        let listener = UnixListener::bind(&upstream).unwrap();
        let echo = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"pong!").unwrap();
        });
        let proxy = RecordingProxy::start(
            &dir.path().join("p.sock"),
            &upstream,
            &dir.path().join("out"),
        )
        .unwrap();
        proxy.set_session("t");
        let mut c = UnixStream::connect(proxy.socket_path()).unwrap();
        c.write_all(b"ping!").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"pong!");
        echo.join().unwrap();
        drop(c);
        drop(proxy);
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("t.c2s.bin")).unwrap(), b"ping!");
        assert_eq!(fs::read(out.join("t.s2c.bin")).unwrap(), b"pong!");
    }
}
