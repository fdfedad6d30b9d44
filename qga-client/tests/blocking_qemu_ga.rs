//! The blocking client against the real qemu-ga, in host mode with every destructive command
//! blocked (see `qga_testing::BLOCKED_RPCS`): the same round trips as `qemu_ga.rs`, with no
//! runtime anywhere.

use std::thread;
use std::time::{Duration, Instant};

use qga_client::blocking::Client;
use qga_client::proto::qga::ShutdownMode;
use qga_client::{Config, Error, ExecRequest, ExitStatus, FileOptions};
use qga_testing::{BLOCKED_RPCS, QemuGa};
use sha2::{Digest, Sha256};

fn connect(agent: &QemuGa) -> Client {
    Client::connect(agent.socket()).expect("connect to qemu-ga")
}

/// Bytes without a short period, so that a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

#[test]
fn ping_info_queries_and_a_blocked_no_reply_command() {
    let agent = QemuGa::start();
    let client = connect(&agent);
    client.ping().unwrap();
    let info = client.info().unwrap();
    for name in BLOCKED_RPCS {
        assert!(!info.is_enabled(name), "{name} must be blocked");
    }
    assert!(info.is_enabled("guest-ping"));
    assert!(client.osinfo().unwrap().kernel_release.is_some());
    assert!(!client.hostname().unwrap().is_empty());
    assert!(!client.network_interfaces().unwrap().is_empty());
    assert!(client.time().unwrap() > 0);
    // A blocked no-reply command answers CommandNotFound through the grace period.
    let err = client.shutdown(Some(ShutdownMode::Reboot)).unwrap_err();
    assert!(err.is_command_not_found(), "{err:?}");
    client.ping().unwrap();
    let raw = client
        .call_raw(&qga_client::proto::RawCommand::new("guest-get-host-name"))
        .unwrap();
    assert!(raw["host-name"].is_string(), "{raw}");
}

#[test]
fn exec_with_stdin_env_exit_code_signal_and_timeout() {
    let agent = QemuGa::start();
    let client = connect(&agent);
    let out = client
        .exec(
            ExecRequest::new("/bin/sh")
                .args(["-c", "cat; echo err >&2; echo \"v=$V\"; exit 3"])
                .env("V", "x y")
                .stdin(b"in\x00put\n".to_vec()),
        )
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout, b"in\x00put\nv=x y\n");
    assert_eq!(out.stderr, b"err\n");
    let killed = client
        .exec(ExecRequest::new("/bin/sh").args(["-c", "kill -9 $$"]))
        .unwrap();
    assert_eq!(killed.status, ExitStatus::Signal(9));
    let missing = client
        .exec(ExecRequest::new("/nonexistent/prog"))
        .unwrap_err();
    assert!(missing.agent_error().is_some(), "{missing:?}");
    let slow = client
        .exec(
            ExecRequest::new("/bin/sleep")
                .arg("5")
                .timeout(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert!(
        matches!(slow, Error::ExecTimeout { pid, .. } if pid > 0),
        "{slow:?}"
    );
    // 8 MiB of output in one reply (11 MB of base64).
    let big = client
        .exec(ExecRequest::new("head").args(["-c", "8388608", "/dev/zero"]))
        .unwrap();
    assert_eq!(big.stdout.len(), 8 << 20);
    assert!(big.stdout.iter().all(|&b| b == 0));
    client.ping().unwrap();
}

#[test]
fn file_round_trips_bounds_and_verification() {
    let agent = QemuGa::start();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .connect(agent.socket())
        .unwrap();
    let dir = agent.scratch();
    for len in [0usize, 1, 30 * 1024 * 1024 + 5] {
        let data = pattern(len);
        let path = dir.join(format!("f{len}")).display().to_string();
        let mut last = (0, None);
        let summary = client
            .write_file_with(&path, &data, &FileOptions::default(), &mut |d, t| {
                last = (d, t)
            })
            .unwrap();
        assert!(summary.verified);
        assert_eq!(summary.size, len as u64);
        assert_eq!(summary.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(last, (len as u64, Some(len as u64)));
        assert!(std::fs::read(&path).unwrap() == data, "len {len}");
        assert!(client.read_file(&path).unwrap() == data, "len {len}");
    }
    // Many small chunks, progress with the total, and the bound.
    let path = dir.join("chunked").display().to_string();
    let data = pattern(10_000);
    std::fs::write(&path, &data).unwrap();
    let (mut got, mut last) = (Vec::new(), (0, None));
    let options = FileOptions::default().chunk_size(999);
    let n = client
        .read_file_with(&path, &options, &mut |d, t| last = (d, t), &mut |c| {
            got.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        (n, got == data, last),
        (10_000, true, (10_000, Some(10_000)))
    );
    let bounded = options.max_bytes(Some(5_000));
    let err = client
        .read_file_with(&path, &bounded, &mut |_, _| {}, &mut |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::FileTooLarge { limit: 5_000, .. }),
        "{err:?}"
    );
    // A read-back that differs: a link to /dev/null reads back empty.
    let link = dir.join("null-link");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let err = client
        .write_file(&link.display().to_string(), b"data")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::VerifyFailed {
                expected_size: 4,
                actual_size: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let missing = client.read_file("/nonexistent/dir/file").unwrap_err();
    assert!(missing.agent_error().is_some(), "{missing:?}");
    client.ping().unwrap();
}

#[test]
fn timeout_on_a_stopped_agent_then_a_working_call() {
    let mut agent = QemuGa::start();
    let config = Config {
        default_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let client = Client::builder()
        .config(config)
        .connect(agent.socket())
        .unwrap();
    client.ping().unwrap();
    agent.pause();
    let started = Instant::now();
    let err = client.ping().unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(err.to_string().contains("another client"), "{err}");
    // A handle whose deadline has passed fails at once, sending nothing.
    let past = client.with_deadline(Instant::now());
    assert!(past.ping().unwrap_err().is_timeout());
    agent.resume();
    agent.ensure_running();
    // The stale reply of the timed-out ping is dropped by the resync.
    client.ping().unwrap();
    assert!(!client.info().unwrap().supported_commands.is_empty());
}

#[test]
fn an_agent_restarted_under_a_connected_client_is_reconnected() {
    let mut agent = QemuGa::start();
    let client = connect(&agent);
    client.ping().unwrap();
    agent.restart();
    // The write to the dead socket fails before anything is sent: a new connection, a new
    // handshake and the same request.
    client.ping().unwrap();
    client.info().unwrap();
    assert!(client.is_connected());
}

#[test]
fn clones_on_two_threads_share_the_connection_in_turn() {
    let agent = QemuGa::start();
    let client = connect(&agent);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    client.ping().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    client.info().unwrap();
}
