//! The round-trip cases and the clients that run them: raw (std `UnixStream`, one prebuilt
//! line out, one line in, no parsing), ours (`qga-client`, the full typed path), qapi-rs
//! (`qapi` 0.15 on tokio) and python qemu.qmp (through [`crate::python`]).
//!
//! qemu-ga and QEMU serve one client at a time, so each block connects, runs its calls and
//! disconnects; connecting (and the sync handshake or QMP negotiation) is not timed. Each
//! async client gets a fresh current-thread runtime per block, dropped at its end, so that
//! its socket is closed before the next client connects.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use qga_benches::stats::{Summary, summarise};
use qga_benches::sys::cpu_time;
use qga_client::{Client, QmpClient};
use qga_proto::qmp::QueryStatus;

use crate::Peers;
use crate::python::Worker;

/// Untimed calls at the start of every block.
pub(crate) const WARM: usize = 10;

/// The round-trip cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    /// `guest-ping` on qemu-ga.
    Ping,
    /// `guest-info` on qemu-ga (a 3.2 KB reply).
    Info,
    /// QMP `query-status` on QEMU.
    QueryStatus,
}

impl Case {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ping => "guest-ping",
            Self::Info => "guest-info",
            Self::QueryStatus => "QMP query-status",
        }
    }

    fn wire_name(self) -> &'static str {
        match self {
            Self::Ping => "guest-ping",
            Self::Info => "guest-info",
            Self::QueryStatus => "query-status",
        }
    }
}

/// The clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Who {
    /// std `UnixStream`, the prebuilt line out, one line in.
    Raw,
    /// The same, with the request carrying an `id` as ours does.
    RawId,
    Ours,
    /// `qga_client::blocking::Client`: the same typed path, blocking on std's `UnixStream`.
    Blocking,
    Qapi,
    Python,
    /// The raw client's bytes (with an id) on a tokio `UnixStream` in a current-thread
    /// runtime, no parsing, no timers: the floor of any epoll-driven client.
    TokioRaw,
}

impl Who {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Raw => "raw client",
            Self::RawId => "raw, request with id",
            Self::TokioRaw => "raw on tokio, with id",
            Self::Ours => "qga-client (ours)",
            Self::Blocking => "qga-client blocking (ours)",
            Self::Qapi => "qapi-rs 0.15 tokio",
            Self::Python => "qemu.qmp 0.0.6 (Python)",
        }
    }
}

/// One block of timed calls.
#[derive(Debug, Default)]
pub(crate) struct Block {
    pub(crate) lat_ns: Vec<u64>,
    pub(crate) wall_ns: u64,
    pub(crate) cpu_ns: u64,
}

impl Block {
    fn with_capacity(n: usize) -> Self {
        Self {
            lat_ns: Vec::with_capacity(n),
            ..Self::default()
        }
    }
}

/// All blocks of one round of one case, by client.
#[derive(Debug, Default)]
pub(crate) struct RoundAcc {
    by: HashMap<Who, Block>,
}

impl RoundAcc {
    pub(crate) fn add(&mut self, who: Who, block: Block) {
        let acc = self.by.entry(who).or_default();
        acc.lat_ns.extend_from_slice(&block.lat_ns);
        acc.wall_ns += block.wall_ns;
        acc.cpu_ns += block.cpu_ns;
    }

    pub(crate) fn summaries(mut self) -> HashMap<Who, Summary> {
        self.by
            .iter_mut()
            .map(|(&w, b)| (w, summarise(&mut b.lat_ns, b.wall_ns, b.cpu_ns)))
            .collect()
    }
}

/// Runs one block of `n` timed calls of `case` with client `who`.
pub(crate) fn run_block(
    peers: &mut Peers,
    python: Option<&mut Worker>,
    who: Who,
    case: Case,
    n: usize,
) -> io::Result<Block> {
    // qemu-ga 7.2 exits when a client leaves a reply unread; none of ours should, but a
    // failed block must not take the rest of the run with it.
    peers.agent.ensure_running();
    let qga = peers.agent.socket().to_owned();
    let qmp = peers.qemu.socket().to_owned();
    match (who, case) {
        (Who::Raw, Case::QueryStatus) => raw_qmp(&qmp, false, n),
        (Who::Raw, _) => raw_qga(&qga, case, false, n),
        (Who::RawId, Case::QueryStatus) => raw_qmp(&qmp, true, n),
        (Who::RawId, _) => raw_qga(&qga, case, true, n),
        (Who::Ours, Case::QueryStatus) => runtime().block_on(ours_qmp(&qmp, n)),
        (Who::Ours, _) => runtime().block_on(ours_qga(&qga, case, n)),
        (Who::Blocking, Case::QueryStatus) => Err(io::Error::other("no blocking QMP client")),
        (Who::Blocking, _) => blocking_qga(&qga, case, n),
        (Who::Qapi, Case::QueryStatus) => runtime().block_on(qapi_qmp(&qmp, n)),
        (Who::Qapi, _) => runtime().block_on(qapi_qga(&qga, case, n)),
        (Who::TokioRaw, Case::QueryStatus) => runtime().block_on(tokio_raw_qmp(&qmp, n)),
        (Who::TokioRaw, _) => runtime().block_on(tokio_raw_qga(&qga, case, n)),
        (Who::Python, _) => {
            let worker = python.ok_or_else(|| io::Error::other("no python worker"))?;
            let sock = if case == Case::QueryStatus {
                &qmp
            } else {
                &qga
            };
            worker.block(case == Case::QueryStatus, sock, case.wire_name(), n)
        }
    }
}

/// A fresh current-thread runtime (the peers share CPU 0 with us anyway).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot build a tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

/// Times `n` calls of `call` after [`WARM`] untimed ones.
macro_rules! timed_loop {
    ($n:expr, $call:expr) => {{
        for _ in 0..WARM {
            $call;
        }
        let mut block = Block::with_capacity($n);
        let cpu0 = cpu_time();
        let start = Instant::now();
        for _ in 0..$n {
            let t = Instant::now();
            $call;
            block.lat_ns.push(t.elapsed().as_nanos() as u64);
        }
        block.wall_ns = start.elapsed().as_nanos() as u64;
        block.cpu_ns = (cpu_time() - cpu0).as_nanos() as u64;
        block
    }};
}

/// Reads until the bytes read end a line (the peer sends exactly one reply per request, so a
/// line feed at the end of a read is the end of the reply). Returns the reply's length.
pub(crate) fn read_line(s: &mut UnixStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((buf.len() * 2).max(64 * 1024), 0);
        }
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        if buf[len - 1] == b'\n' {
            return Ok(len);
        }
    }
}

/// The raw client's request line: as small as it gets, or with an `id` of the size ours
/// sends (qemu-ga and QEMU echo it).
fn raw_request(case: Case, id: bool) -> &'static [u8] {
    match (case, id) {
        (Case::Ping, false) => b"{\"execute\":\"guest-ping\"}\n",
        (Case::Ping, true) => b"{\"execute\":\"guest-ping\",\"id\":2718281828}\n",
        (Case::Info, false) => b"{\"execute\":\"guest-info\"}\n",
        (Case::Info, true) => b"{\"execute\":\"guest-info\",\"id\":2718281828}\n",
        (Case::QueryStatus, false) => b"{\"execute\":\"query-status\"}\n",
        (Case::QueryStatus, true) => b"{\"execute\":\"query-status\",\"id\":2718}\n",
    }
}

fn raw_qga(path: &Path, case: Case, id: bool, n: usize) -> io::Result<Block> {
    let request = raw_request(case, id);
    let mut s = UnixStream::connect(path)?;
    let mut buf = vec![0; 64 * 1024];
    Ok(timed_loop!(n, {
        s.write_all(request)?;
        read_line(&mut s, &mut buf)?;
    }))
}

fn raw_qmp(path: &Path, id: bool, n: usize) -> io::Result<Block> {
    let request = raw_request(Case::QueryStatus, id);
    let mut s = UnixStream::connect(path)?;
    let mut buf = vec![0; 64 * 1024];
    read_line(&mut s, &mut buf)?; // greeting
    s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    read_line(&mut s, &mut buf)?;
    Ok(timed_loop!(n, {
        s.write_all(request)?;
        read_line(&mut s, &mut buf)?;
    }))
}

async fn tokio_read_line(s: &mut tokio::net::UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut len = 0;
    loop {
        let got = s.read(&mut buf[len..]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += got;
        if buf[len - 1] == b'\n' {
            return Ok(len);
        }
    }
}

async fn tokio_raw_qga(path: &Path, case: Case, n: usize) -> io::Result<Block> {
    use tokio::io::AsyncWriteExt;
    let request = raw_request(case, true);
    let mut s = tokio::net::UnixStream::connect(path).await?;
    let mut buf = vec![0; 64 * 1024];
    Ok(timed_loop!(n, {
        s.write_all(request).await?;
        tokio_read_line(&mut s, &mut buf).await?;
    }))
}

async fn tokio_raw_qmp(path: &Path, n: usize) -> io::Result<Block> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::UnixStream::connect(path).await?;
    let mut buf = vec![0; 64 * 1024];
    tokio_read_line(&mut s, &mut buf).await?;
    s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").await?;
    tokio_read_line(&mut s, &mut buf).await?;
    let request = raw_request(Case::QueryStatus, true);
    Ok(timed_loop!(n, {
        s.write_all(request).await?;
        tokio_read_line(&mut s, &mut buf).await?;
    }))
}

async fn ours_qga(path: &Path, case: Case, n: usize) -> io::Result<Block> {
    let client = Client::connect(path).await.map_err(io::Error::other)?;
    let block = match case {
        Case::Info => timed_loop!(n, {
            std::hint::black_box(client.info().await.map_err(io::Error::other)?);
        }),
        _ => timed_loop!(n, {
            client.ping().await.map_err(io::Error::other)?;
        }),
    };
    client.disconnect().await;
    Ok(block)
}

fn blocking_qga(path: &Path, case: Case, n: usize) -> io::Result<Block> {
    let client = qga_client::blocking::Client::connect(path).map_err(io::Error::other)?;
    let block = match case {
        Case::Info => timed_loop!(n, {
            std::hint::black_box(client.info().map_err(io::Error::other)?);
        }),
        _ => timed_loop!(n, {
            client.ping().map_err(io::Error::other)?;
        }),
    };
    client.disconnect();
    Ok(block)
}

async fn ours_qmp(path: &Path, n: usize) -> io::Result<Block> {
    let client = QmpClient::connect(path, Duration::from_secs(5))
        .await
        .map_err(io::Error::other)?;
    Ok(timed_loop!(n, {
        std::hint::black_box(client.call(&QueryStatus).await.map_err(io::Error::other)?);
    }))
}

async fn qapi_qga(path: &Path, case: Case, n: usize) -> io::Result<Block> {
    use qapi::futures::QgaStreamTokio;
    use qapi::qga::{guest_info, guest_ping, guest_sync};
    let mut stream = QgaStreamTokio::open_uds(path).await?;
    let id = 0x5eed_1234;
    let got = stream
        .execute(guest_sync { id })
        .await
        .map_err(io::Error::from)?;
    if got != id {
        return Err(io::Error::other("qapi guest-sync echoed another id"));
    }
    Ok(match case {
        Case::Info => timed_loop!(n, {
            std::hint::black_box(
                stream
                    .execute(guest_info {})
                    .await
                    .map_err(io::Error::from)?,
            );
        }),
        _ => timed_loop!(n, {
            stream
                .execute(guest_ping {})
                .await
                .map_err(io::Error::from)?;
        }),
    })
}

async fn qapi_qmp(path: &Path, n: usize) -> io::Result<Block> {
    use qapi::futures::QmpStreamTokio;
    use qapi::qmp::query_status;
    let mut stream = QmpStreamTokio::open_uds(path).await?.negotiate().await?;
    Ok(timed_loop!(n, {
        std::hint::black_box(
            stream
                .execute(query_status {})
                .await
                .map_err(io::Error::from)?,
        );
    }))
}

/// qemu-ga and QEMU versions, as they report them.
pub(crate) fn versions(peers: &Peers) -> String {
    let rt = runtime();
    let agent = rt.block_on(async {
        let c = Client::connect(peers.agent.socket()).await.ok()?;
        let v = c.info().await.ok().map(|i| i.version);
        c.disconnect().await;
        v
    });
    let qemu = rt.block_on(async {
        let c = QmpClient::connect(peers.qemu.socket(), Duration::from_secs(5))
            .await
            .ok()?;
        Some(c.greeting().qmp.version.qemu.to_string())
    });
    drop(rt);
    format!(
        "qemu-ga {}, QEMU {}",
        agent.as_deref().unwrap_or("?"),
        qemu.as_deref().unwrap_or("?")
    )
}
