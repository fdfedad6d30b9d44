//! The file-read case: a 100 MiB guest file read through guest-file-read in 4 MiB chunks (the
//! default chunk), by the raw client (prebuilt requests, no parsing, no base64) and by ours,
//! async and blocking (the full typed path: base64 decoded, bytes handed to a sink).

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use qga_benches::sys::cpu_time;
use qga_client::FileOptions;

use crate::Peers;
use crate::clients::{read_line, runtime};
use crate::exec::{ExecWho, Timing};

/// The file's size.
pub(crate) const FILE_BYTES: usize = 100 * 1024 * 1024;
/// Bytes per guest-file-read, as `FileOptions::default()`.
const CHUNK: usize = qga_client::DEFAULT_CHUNK;

/// The file, in the agent's scratch directory.
pub(crate) struct TestFile {
    path: PathBuf,
}

impl TestFile {
    /// Writes 100 MiB of pseudo-random bytes (base64 of them does not compress into a pattern).
    pub(crate) fn create(peers: &Peers) -> io::Result<Self> {
        let path = peers.agent.scratch().join("read-100MiB");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data: Vec<u8> = (0..FILE_BYTES / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        std::fs::write(&path, data)?;
        Ok(Self { path })
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

/// The number after `"return": ` in a reply.
fn number(reply: &[u8]) -> String {
    let at = memchr::memmem::find(reply, b"\"return\"").unwrap_or(0);
    reply[at..]
        .iter()
        .skip_while(|b| !b.is_ascii_digit())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect()
}

/// Open, read until `"eof": true`, close; prebuilt requests, replies not parsed.
fn raw_read(peers: &Peers, file: &TestFile) -> io::Result<(usize, Timing)> {
    let mut s = UnixStream::connect(peers.agent.socket())?;
    let mut buf = vec![0; 64 * 1024];
    let (c0, t) = (cpu_time(), Instant::now());
    let open = format!(
        "{{\"execute\":\"guest-file-open\",\"arguments\":{{\"path\":\"{}\",\"mode\":\"rb\"}}}}\n",
        file.path()
    );
    s.write_all(open.as_bytes())?;
    let n = read_line(&mut s, &mut buf)?;
    let handle = number(&buf[..n]);
    let read = format!(
        "{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{handle},\"count\":{CHUNK}}}}}\n"
    );
    let mut replied = 0;
    loop {
        s.write_all(read.as_bytes())?;
        let n = read_line(&mut s, &mut buf)?;
        replied += n;
        if memchr::memmem::find(&buf[..n], b"\"eof\": true").is_some() {
            break;
        }
    }
    let close =
        format!("{{\"execute\":\"guest-file-close\",\"arguments\":{{\"handle\":{handle}}}}}\n");
    s.write_all(close.as_bytes())?;
    read_line(&mut s, &mut buf)?;
    let timing = Timing {
        wall: t.elapsed(),
        cpu: cpu_time() - c0,
    };
    Ok((replied, timing))
}

/// `read_file_with` into a counting sink.
fn ours_read(peers: &Peers, file: &TestFile, blocking: bool) -> io::Result<(usize, Timing)> {
    let options = FileOptions::default();
    let mut got = 0usize;
    let mut sink = |chunk: &[u8]| {
        got += std::hint::black_box(chunk).len();
        Ok(())
    };
    let timing = if blocking {
        let client = qga_client::blocking::Client::connect(peers.agent.socket())
            .map_err(io::Error::other)?;
        let (c0, t) = (cpu_time(), Instant::now());
        client
            .read_file_with(file.path(), &options, &mut |_, _| {}, &mut sink)
            .map_err(io::Error::other)?;
        let timing = Timing {
            wall: t.elapsed(),
            cpu: cpu_time() - c0,
        };
        client.disconnect();
        timing
    } else {
        runtime().block_on(async {
            let client = qga_client::Client::connect(peers.agent.socket())
                .await
                .map_err(io::Error::other)?;
            let (c0, t) = (cpu_time(), Instant::now());
            client
                .read_file_with(file.path(), &options, &mut |_, _| {}, &mut sink)
                .await
                .map_err(io::Error::other)?;
            let timing = Timing {
                wall: t.elapsed(),
                cpu: cpu_time() - c0,
            };
            client.disconnect().await;
            Ok::<_, io::Error>(timing)
        })?
    };
    Ok((got, timing))
}

/// One read of the file, checked.
pub(crate) fn read_once(peers: &Peers, file: &TestFile, who: ExecWho) -> io::Result<Timing> {
    let (n, timing) = match who {
        ExecWho::Raw => raw_read(peers, file)?,
        ExecWho::Ours => ours_read(peers, file, false)?,
        ExecWho::Blocking => ours_read(peers, file, true)?,
    };
    // The raw client counts reply bytes (base64 and JSON), ours decoded bytes.
    if n < FILE_BYTES {
        return Err(io::Error::other(format!("{who:?} read {n} bytes")));
    }
    Ok(timing)
}

/// Medians of one round: MB/s of each, and ours over raw within each triple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileRound {
    pub(crate) raw: f64,
    pub(crate) ours: f64,
    pub(crate) blocking: f64,
    pub(crate) ours_share: f64,
    pub(crate) blocking_share: f64,
}

/// Raw, ours and blocking in turn (rotating who goes first), `iters` times.
pub(crate) fn file_round(
    peers: &mut Peers,
    file: &TestFile,
    quick: bool,
    round: usize,
) -> io::Result<FileRound> {
    use qga_benches::stats::median;
    let iters = if quick { 1 } else { 2 };
    let all = [ExecWho::Raw, ExecWho::Ours, ExecWho::Blocking];
    let mut t: [Vec<f64>; 5] = Default::default();
    for i in 0..iters {
        let mut rate = [0.0; 3];
        for k in 0..3 {
            let which = (k + i + round) % 3;
            peers.agent.ensure_running();
            let timing = read_once(peers, file, all[which])?;
            rate[which] = FILE_BYTES as f64 / timing.wall.as_secs_f64();
        }
        t[0].push(rate[0]);
        t[1].push(rate[1]);
        t[2].push(rate[2]);
        t[3].push(rate[1] / rate[0]);
        t[4].push(rate[2] / rate[0]);
    }
    let m = |k: usize| median(&t[k]);
    Ok(FileRound {
        raw: m(0),
        ours: m(1),
        blocking: m(2),
        ours_share: m(3),
        blocking_share: m(4),
    })
}
