//! The large-payload cases: decoding the 11 MB `guest-exec-status` reply (ours against
//! qapi-rs's own decoding of the same bytes) and an 8 MiB `guest-exec` end to end on the real
//! qemu-ga (ours against the raw client).

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use qga_benches::stats::median;
use qga_benches::sys::{cpu_time, thread_cpu_time};
use qga_client::{Client, ExecRequest};
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::message::Reply;
use qga_proto::qga::ExecStatus;

use crate::Peers;
use crate::clients::{read_line, runtime};

/// The 8 MiB the exec case prints (`head -c 8388608 /dev/zero`).
const EXEC_BYTES: usize = 8 * 1024 * 1024;

/// Medians of one round of the decode case, bytes per second of the decoding thread's CPU
/// time (the core is shared with other work; preemption is not the decoder's cost). `wall`
/// holds the same five by wall-clock time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeRound {
    /// `FrameDecoder` splitting the reply out of a buffer.
    pub(crate) split: f64,
    /// `Reply::<ExecStatus>::from_slice`, base64 included.
    pub(crate) typed: f64,
    /// Both, as the client does them.
    pub(crate) split_typed: f64,
    /// qapi-rs's blocking `Qga::read_response` over a `BufReader`.
    pub(crate) qapi_sync: f64,
    /// qapi-rs's tokio path (`QgaStreamTokio::execute` reading the same bytes).
    pub(crate) qapi_async: f64,
    /// Ours typed against qapi-rs's faster path, the ratio taken within each pass.
    pub(crate) vs_qapi: f64,
    /// The same by wall-clock time: split, typed, split + typed, qapi sync, qapi async.
    pub(crate) wall: [f64; 5],
}

fn split(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> bytes::Bytes {
    match decoder.decode(buf) {
        Ok(Some(Frame::Message(m))) => m,
        other => panic!("the payload is one message: {other:?}"),
    }
}

fn typed(bytes: &[u8]) -> usize {
    match Reply::<ExecStatus>::from_slice(bytes).map(Reply::into_result) {
        Ok(Ok(s)) => s.out_data.map_or(0, |d| d.len()),
        other => panic!("the payload decodes: {other:?}"),
    }
}

/// The same bytes over and over, as one long-lived connection delivering the reply each
/// time it is asked for: qapi-rs's clients keep their buffers across calls, as they would on
/// a real connection, instead of growing new ones for every decode.
struct Repeat<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Repeat<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn fill(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.data.len();
        n
    }
}

impl io::Read for Repeat<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl tokio::io::AsyncRead for Repeat<'_> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.fill(buf.initialize_unfilled());
        buf.advance(n);
        std::task::Poll::Ready(Ok(()))
    }
}

/// Times `f` `runs + 1` times, the first run untimed, each on an input `setup` makes outside
/// the timing; returns (CPU, wall) bytes per second.
fn batch<T>(
    len: usize,
    runs: usize,
    label: usize,
    debug: bool,
    mut setup: impl FnMut() -> T,
    mut f: impl FnMut(T) -> usize,
) -> Vec<(f64, f64)> {
    let mut rates = Vec::with_capacity(runs);
    for i in 0..=runs {
        let input = setup();
        let faults = qga_benches::sys::minflt();
        let (c0, t) = (thread_cpu_time(), Instant::now());
        std::hint::black_box(f(input));
        let (secs, cpu_secs) = (
            t.elapsed().as_secs_f64(),
            (thread_cpu_time() - c0).as_secs_f64(),
        );
        if debug {
            eprintln!(
                "decoder {label} run {i}: {:.2} ms CPU, {:.2} ms wall, {} page faults",
                cpu_secs * 1e3,
                secs * 1e3,
                qga_benches::sys::minflt() - faults
            );
        }
        if i > 0 {
            rates.push((len as f64 / cpu_secs.max(1e-9), len as f64 / secs));
        }
    }
    rates
}

/// Runs one decoder `runs` (+1 untimed) times over `reply`.
fn decoder_batch(which: usize, reply: &[u8], runs: usize, debug: bool) -> Vec<(f64, f64)> {
    use qapi::qga::guest_exec_status;
    let len = reply.len();
    // Our decoders get a fresh copy of the reply for each run (made outside the timing), as
    // the client's read buffer holds it; qapi-rs reads it from its stream.
    let fresh = || BytesMut::from(reply);
    let mut decoder = FrameDecoder::new();
    match which {
        0 => batch(len, runs, which, debug, fresh, |mut buf| {
            split(&mut decoder, &mut buf).len()
        }),
        1 => batch(len, runs, which, debug, fresh, |buf| typed(&buf)),
        2 => batch(len, runs, which, debug, fresh, |mut buf| {
            typed(&split(&mut decoder, &mut buf))
        }),
        3 => {
            let stream = qapi::Stream::new(io::BufReader::new(Repeat::new(reply)), io::sink());
            let mut qga = qapi::Qga::new(stream);
            batch(
                len,
                runs,
                which,
                debug,
                || (),
                |()| match qga.read_response::<guest_exec_status>() {
                    Ok(s) => s.out_data.map_or(0, |d| d.len()),
                    Err(e) => panic!("qapi decodes the payload: {e}"),
                },
            )
        }
        _ => {
            let rt = runtime();
            let mut stream =
                qapi::futures::QgaStreamTokio::open_split(Repeat::new(reply), tokio::io::sink());
            batch(
                len,
                runs,
                which,
                debug,
                || (),
                |()| match rt.block_on(stream.execute(guest_exec_status { pid: 1 })) {
                    Ok(s) => s.out_data.map_or(0, |d| d.len()),
                    Err(e) => panic!("qapi decodes the payload: {e}"),
                },
            )
        }
    }
}

/// Runs the five decoders over `reply` in turn, each as a batch of one untimed and two timed
/// runs; three passes, rotating which decoder goes first. Each decoder keeps its state
/// (buffers) within a batch, as on a live connection, so that the allocator settles: the
/// first 8 MiB output after another decoder's pattern of allocations may be fresh memory from
/// the kernel, whose ~2,000 page faults double a decode's time and would measure the
/// allocator's history, not the decoder (`DECODE_DEBUG=1` prints every run with its page
/// faults).
pub(crate) fn decode_round(reply: &[u8], quick: bool, round: usize) -> DecodeRound {
    let passes = if quick { 1 } else { 3 };
    let mut cpu: [Vec<f64>; 5] = Default::default();
    let mut wall: [Vec<f64>; 5] = Default::default();
    let mut vs_qapi = Vec::new();
    let debug = std::env::var_os("DECODE_DEBUG").is_some();
    for pass in 0..passes {
        let mut best = [0.0f64; 5];
        for k in 0..5 {
            let which = (k + round + pass) % 5;
            for (c, w) in decoder_batch(which, reply, 2, debug) {
                best[which] = best[which].max(c);
                cpu[which].push(c);
                wall[which].push(w);
            }
        }
        vs_qapi.push(best[1] / best[3].max(best[4]));
    }
    DecodeRound {
        split: median(&cpu[0]),
        typed: median(&cpu[1]),
        split_typed: median(&cpu[2]),
        qapi_sync: median(&cpu[3]),
        qapi_async: median(&cpu[4]),
        vs_qapi: median(&vs_qapi),
        wall: [0, 1, 2, 3, 4].map(|k| median(&wall[k])),
    }
}

/// Medians of one round of the exec case, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecRound {
    pub(crate) raw: f64,
    pub(crate) ours: f64,
    pub(crate) blocking: f64,
    /// Medians of the per-pair ratios against raw.
    pub(crate) ratio: f64,
    pub(crate) blocking_ratio: f64,
    /// Client CPU time (getrusage) of one exec.
    pub(crate) raw_cpu: f64,
    pub(crate) ours_cpu: f64,
    pub(crate) blocking_cpu: f64,
}

/// Who runs the exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecWho {
    Raw,
    Ours,
    Blocking,
}

/// Wall-clock and client CPU time of one exec, connecting excluded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

/// The raw client: the prebuilt guest-exec line, the pid cut out of the reply, then
/// guest-exec-status polled with the schedule `qga-client` uses (1 ms doubling to 200 ms)
/// until the reply says it exited. Returns the length of the final reply.
fn raw_exec(peers: &Peers) -> io::Result<(usize, Timing)> {
    let mut s = UnixStream::connect(peers.agent.socket())?;
    let mut buf = vec![0; 64 * 1024];
    let (c0, t) = (cpu_time(), Instant::now());
    s.write_all(
        b"{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"head\",\"arg\":[\"-c\",\"8388608\",\"/dev/zero\"],\"capture-output\":true}}\n",
    )?;
    let n = read_line(&mut s, &mut buf)?;
    let pid: String = buf[..n]
        .iter()
        .skip_while(|b| !b.is_ascii_digit())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    let status = format!("{{\"execute\":\"guest-exec-status\",\"arguments\":{{\"pid\":{pid}}}}}\n");
    let mut pause = Duration::from_millis(1);
    loop {
        s.write_all(status.as_bytes())?;
        let n = read_line(&mut s, &mut buf)?;
        if memchr::memmem::find(&buf[..n], b"\"exited\": true").is_some() {
            let timing = Timing {
                wall: t.elapsed(),
                cpu: cpu_time() - c0,
            };
            return Ok((n, timing));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `Client::exec` (connecting and the sync handshake are not timed).
async fn ours_exec(peers: &Peers) -> io::Result<(usize, Timing)> {
    let client = Client::connect(peers.agent.socket())
        .await
        .map_err(io::Error::other)?;
    let (c0, t) = (cpu_time(), Instant::now());
    let out = client
        .exec(ExecRequest::new("head").args(["-c", "8388608", "/dev/zero"]))
        .await
        .map_err(io::Error::other)?;
    let timing = Timing {
        wall: t.elapsed(),
        cpu: cpu_time() - c0,
    };
    client.disconnect().await;
    Ok((out.stdout.len(), timing))
}

/// `blocking::Client::exec` (connecting and the sync handshake are not timed).
fn blocking_exec(peers: &Peers) -> io::Result<(usize, Timing)> {
    let client =
        qga_client::blocking::Client::connect(peers.agent.socket()).map_err(io::Error::other)?;
    let (c0, t) = (cpu_time(), Instant::now());
    let out = client
        .exec(ExecRequest::new("head").args(["-c", "8388608", "/dev/zero"]))
        .map_err(io::Error::other)?;
    let timing = Timing {
        wall: t.elapsed(),
        cpu: cpu_time() - c0,
    };
    client.disconnect();
    Ok((out.stdout.len(), timing))
}

/// One 8 MiB exec, checked.
pub(crate) fn exec_once(peers: &Peers, who: ExecWho) -> io::Result<Timing> {
    let (n, timing) = match who {
        ExecWho::Raw => {
            let (n, timing) = raw_exec(peers)?;
            if n < EXEC_BYTES {
                return Err(io::Error::other(format!("raw exec reply of {n} bytes")));
            }
            return Ok(timing);
        }
        ExecWho::Ours => runtime().block_on(ours_exec(peers))?,
        ExecWho::Blocking => blocking_exec(peers)?,
    };
    if n != EXEC_BYTES {
        return Err(io::Error::other(format!("{who:?} got {n} bytes of stdout")));
    }
    Ok(timing)
}

/// Runs raw, ours and blocking in turn (rotating who goes first), `iters` times.
pub(crate) fn exec_round(peers: &mut Peers, quick: bool, round: usize) -> io::Result<ExecRound> {
    let iters = if quick { 1 } else { 3 };
    let all = [ExecWho::Raw, ExecWho::Ours, ExecWho::Blocking];
    let mut t: [Vec<f64>; 8] = Default::default();
    for i in 0..iters {
        let mut got = [None; 3];
        for k in 0..3 {
            let which = (k + i + round) % 3;
            peers.agent.ensure_running();
            got[which] = Some(exec_once(peers, all[which])?);
        }
        let [Some(raw), Some(ours), Some(blocking)] = got else {
            unreachable!("all ran")
        };
        let wall = |x: Timing| x.wall.as_secs_f64();
        t[0].push(wall(raw));
        t[1].push(wall(ours));
        t[2].push(wall(blocking));
        t[3].push(wall(ours) / wall(raw));
        t[4].push(wall(blocking) / wall(raw));
        t[5].push(raw.cpu.as_secs_f64());
        t[6].push(ours.cpu.as_secs_f64());
        t[7].push(blocking.cpu.as_secs_f64());
    }
    let m = |k: usize| median(&t[k]);
    Ok(ExecRound {
        raw: m(0),
        ours: m(1),
        blocking: m(2),
        ratio: m(3),
        blocking_ratio: m(4),
        raw_cpu: m(5),
        ours_cpu: m(6),
        blocking_cpu: m(7),
    })
}
