//! The scale case: one process holding 1,000 guest connections to scripted in-process peers
//! (socketpairs; each peer a task answering the 0xFF reset, `guest-sync-delimited` and
//! `guest-ping` as qemu-ga 7.2 does). Measures the memory each idle, synchronised client
//! connection costs and the round trips per second with all of them busy at once.
//!
//! The peers are created and their buffers allocated before the first measurement, so the
//! memory delta is the clients': `Client`, its buffers and its tokio socket registration.
//! Kernel socket buffers are not in the RSS and not counted.

use std::io::Write as _;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Instant;

use qga_benches::stats::median;
use qga_benches::sys::rss_bytes;
use qga_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::clients::runtime;

/// Connections.
pub(crate) const CONNECTIONS: usize = 1000;

/// What qemu-ga answers to a 0xFF byte.
const STRAY: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";

/// One round of the scale case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScaleRound {
    /// RSS growth per idle connection, bytes.
    pub(crate) rss_per_conn: f64,
    /// Heap bytes held per idle connection (allocator count).
    pub(crate) heap_per_conn: f64,
    /// Round trips per second, all connections busy.
    pub(crate) busy_rt_per_s: f64,
}

/// The number after `key` in `line`.
fn number_after(line: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::rfind(line, key)? + key.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

fn respond(line: &[u8], out: &mut Vec<u8>) {
    if memchr::memmem::find(line, b"guest-sync-delimited").is_some() {
        let id = number_after(line, b"\"arguments\":{\"id\":").unwrap_or(0);
        out.push(0xFF);
        let _ = writeln!(out, "{{\"return\": {id}}}");
    } else if memchr::memmem::find(line, b"\"guest-ping\"").is_some() {
        match number_after(line, b"\"id\":") {
            Some(id) => {
                let _ = writeln!(out, "{{\"return\": {{}}, \"id\": {id}}}");
            }
            None => out.extend_from_slice(b"{\"return\": {}}\n"),
        }
    } else {
        out.extend_from_slice(
            b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"not scripted\"}}\n",
        );
    }
}

/// A scripted guest: reads requests (one per line, possibly preceded by 0xFF bytes) and
/// answers each. Its buffers are allocated up front.
async fn fake_guest(mut s: UnixStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        out.clear();
        let mut start = 0;
        loop {
            while buf.get(start) == Some(&0xFF) {
                out.extend_from_slice(STRAY);
                start += 1;
            }
            let Some(nl) = memchr::memchr(b'\n', &buf[start..]) else {
                break;
            };
            respond(&buf[start..start + nl], &mut out);
            start += nl + 1;
        }
        buf.drain(..start);
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Runs the case once.
pub(crate) fn scale_round(quick: bool, alloc: &cap::Cap<std::alloc::System>) -> ScaleRound {
    let pings = if quick { 20 } else { 100 };
    let rt = runtime();
    rt.block_on(async {
        let mut client_ends = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let (a, b) = StdUnixStream::pair().expect("socketpair");
            a.set_nonblocking(true).expect("nonblocking");
            b.set_nonblocking(true).expect("nonblocking");
            let peer = UnixStream::from_std(b).expect("register");
            tokio::spawn(fake_guest(peer));
            client_ends.push(a);
        }
        // Let every peer start and park on its first read.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let (rss0, heap0) = (rss_bytes(), alloc.allocated());
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for end in client_ends {
            let stream = UnixStream::from_std(end).expect("register");
            let client = Client::builder().from_stream(stream);
            // The first call synchronises; afterwards the connection is idle and in sync.
            client.ping().await.expect("ping a scripted guest");
            clients.push(client);
        }
        let (rss1, heap1) = (rss_bytes(), alloc.allocated());
        let t = Instant::now();
        let mut tasks = Vec::with_capacity(CONNECTIONS);
        for c in &clients {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..pings {
                    c.ping().await.expect("ping a scripted guest");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        let secs = t.elapsed().as_secs_f64();
        ScaleRound {
            rss_per_conn: rss1.saturating_sub(rss0) as f64 / CONNECTIONS as f64,
            heap_per_conn: heap1.saturating_sub(heap0) as f64 / CONNECTIONS as f64,
            busy_rt_per_s: (CONNECTIONS * pings) as f64 / secs,
        }
    })
}

impl ScaleRound {
    /// The line `--only scale` prints.
    pub(crate) fn to_line(self) -> String {
        format!(
            "scale {} {} {}",
            self.rss_per_conn, self.heap_per_conn, self.busy_rt_per_s
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let mut it = line
            .strip_prefix("scale ")?
            .split(' ')
            .map(str::parse::<f64>);
        Some(Self {
            rss_per_conn: it.next()?.ok()?,
            heap_per_conn: it.next()?.ok()?,
            busy_rt_per_s: it.next()?.ok()?,
        })
    }
}

/// Runs [`scale_round`] in a fresh process (this program with `--only scale`): in this one,
/// memory freed by the earlier cases would be reused and the RSS would not grow.
pub(crate) fn scale_round_in_child(quick: bool) -> std::io::Result<ScaleRound> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--only", "scale"]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(ScaleRound::from_line)
        .filter(|_| out.status.success())
        .ok_or_else(|| std::io::Error::other(format!("scale child: {} {text}", out.status)))
}

/// Medians over rounds.
pub(crate) fn medians(rounds: &[ScaleRound]) -> ScaleRound {
    let m = |f: fn(&ScaleRound) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    ScaleRound {
        rss_per_conn: m(|r| r.rss_per_conn),
        heap_per_conn: m(|r| r.heap_per_conn),
        busy_rt_per_s: m(|r| r.busy_rt_per_s),
    }
}
