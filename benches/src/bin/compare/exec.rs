//! The large-payload cases: decoding the 11 MB `guest-exec-status` reply (ours against
//! qapi-rs's own decoding of the same bytes) and an 8 MiB `guest-exec` end to end on the real
//! qemu-ga (ours against the raw client).

use std::io::{self, Cursor, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use qga_benches::stats::median;
use qga_client::{Client, ExecRequest};
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::message::Reply;
use qga_proto::qga::ExecStatus;

use crate::Peers;
use crate::clients::{read_line, runtime};

/// The 8 MiB the exec case prints (`head -c 8388608 /dev/zero`).
const EXEC_BYTES: usize = 8 * 1024 * 1024;

/// Medians of one round of the decode case, bytes per second.
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
}

fn split(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> usize {
    match decoder.decode(buf) {
        Ok(Some(Frame::Message(m))) => m.len(),
        other => panic!("the payload is one message: {other:?}"),
    }
}

fn typed(bytes: &[u8]) -> usize {
    match Reply::<ExecStatus>::from_slice(bytes).map(Reply::into_result) {
        Ok(Ok(s)) => s.out_data.map_or(0, |d| d.len()),
        other => panic!("the payload decodes: {other:?}"),
    }
}

fn qapi_sync(bytes: &[u8]) -> usize {
    use qapi::qga::guest_exec_status;
    let stream = qapi::Stream::new(io::BufReader::new(Cursor::new(bytes)), io::sink());
    let mut qga = qapi::Qga::new(stream);
    match qga.read_response::<guest_exec_status>() {
        Ok(s) => s.out_data.map_or(0, |d| d.len()),
        Err(e) => panic!("qapi decodes the payload: {e}"),
    }
}

async fn qapi_async(bytes: &[u8]) -> usize {
    use qapi::futures::QgaStreamTokio;
    use qapi::qga::guest_exec_status;
    let mut stream = QgaStreamTokio::open_split(bytes, tokio::io::sink());
    match stream.execute(guest_exec_status { pid: 1 }).await {
        Ok(s) => s.out_data.map_or(0, |d| d.len()),
        Err(e) => panic!("qapi decodes the payload: {e}"),
    }
}

/// Interleaves the five decoders over `reply`, `iters` times each.
pub(crate) fn decode_round(reply: &[u8], quick: bool, round: usize) -> DecodeRound {
    let iters = if quick { 3 } else { 9 };
    let mut times: [Vec<f64>; 5] = Default::default();
    let rt = runtime();
    let mut decoder = FrameDecoder::new();
    for i in 0..iters {
        for k in 0..5 {
            // Rotate which decoder goes first.
            let which = (k + i + round) % 5;
            let mut buf = BytesMut::from(reply);
            let t = Instant::now();
            let n = match which {
                0 => split(&mut decoder, &mut buf),
                1 => typed(reply),
                2 => typed(&reply[..split(&mut decoder, &mut buf)]),
                3 => qapi_sync(reply),
                _ => rt.block_on(qapi_async(reply)),
            };
            let secs = t.elapsed().as_secs_f64();
            std::hint::black_box(n);
            times[which].push(reply.len() as f64 / secs);
        }
    }
    DecodeRound {
        split: median(&times[0]),
        typed: median(&times[1]),
        split_typed: median(&times[2]),
        qapi_sync: median(&times[3]),
        qapi_async: median(&times[4]),
    }
}

/// Medians of one round of the exec case, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecRound {
    pub(crate) raw: f64,
    pub(crate) ours: f64,
    /// Median of the per-pair ratios ours / raw.
    pub(crate) ratio: f64,
}

/// The raw client: the prebuilt guest-exec line, the pid cut out of the reply, then
/// guest-exec-status polled with the schedule `qga-client` uses (1 ms doubling to 200 ms)
/// until the reply says it exited. Returns the length of the final reply and the time from
/// the first write to the end of that reply (connecting is not timed).
fn raw_exec(peers: &Peers) -> io::Result<(usize, Duration)> {
    let mut s = UnixStream::connect(peers.agent.socket())?;
    let mut buf = vec![0; 64 * 1024];
    let t = Instant::now();
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
            return Ok((n, t.elapsed()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `Client::exec` (connecting and the sync handshake are not timed).
async fn ours_exec(peers: &Peers) -> io::Result<(usize, Duration)> {
    let client = Client::connect(peers.agent.socket())
        .await
        .map_err(io::Error::other)?;
    let t = Instant::now();
    let out = client
        .exec(ExecRequest::new("head").args(["-c", "8388608", "/dev/zero"]))
        .await
        .map_err(io::Error::other)?;
    let elapsed = t.elapsed();
    client.disconnect().await;
    Ok((out.stdout.len(), elapsed))
}

/// Alternates raw and ours, `iters` pairs.
pub(crate) fn exec_round(peers: &mut Peers, quick: bool, round: usize) -> io::Result<ExecRound> {
    let iters = if quick { 1 } else { 3 };
    let (mut raw, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        let mut pair = [0.0; 2];
        for k in 0..2 {
            let which = (k + i + round) % 2;
            peers.agent.ensure_running();
            let elapsed = if which == 0 {
                let (n, elapsed) = raw_exec(peers)?;
                if n < EXEC_BYTES {
                    return Err(io::Error::other(format!("raw exec reply of {n} bytes")));
                }
                elapsed
            } else {
                let (n, elapsed) = runtime().block_on(ours_exec(peers))?;
                if n != EXEC_BYTES {
                    return Err(io::Error::other(format!("ours got {n} bytes of stdout")));
                }
                elapsed
            };
            pair[which] = elapsed.as_secs_f64();
        }
        raw.push(pair[0]);
        ours.push(pair[1]);
        ratios.push(pair[1] / pair[0]);
    }
    Ok(ExecRound {
        raw: median(&raw),
        ours: median(&ours),
        ratio: median(&ratios),
    })
}
