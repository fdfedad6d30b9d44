//! Against the real qemu-ga, in host mode with every destructive command blocked
//! (see `qga_testing::BLOCKED_RPCS`).

use std::time::{Duration, Instant};

use qga_client::proto::message::ErrorClass;
use qga_client::proto::qga::{self, FsfreezeStatus, GuestFileOpen, GuestFileRead, ShutdownMode};
use qga_client::proto::{Command, RawCommand};
use qga_client::{Client, Error, ExecRequest, ExitStatus, FileOptions};
use qga_testing::{BLOCKED_RPCS, QemuGa};
use sha2::{Digest, Sha256};

async fn connect(agent: &QemuGa) -> Client {
    Client::connect(agent.socket())
        .await
        .expect("connect to qemu-ga")
}

#[tokio::test]
async fn ping_info_and_blocked_commands() {
    let agent = QemuGa::start();
    let client = connect(&agent).await;
    client.ping().await.unwrap();
    let info = client.info().await.unwrap();
    assert!(info.version.starts_with("7.") || info.version.split('.').count() >= 2);
    assert!(
        info.supported_commands.len() >= 40,
        "{}",
        info.supported_commands.len()
    );
    for name in BLOCKED_RPCS {
        let c = info
            .command(name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert!(!c.enabled, "{name} must be blocked");
    }
    assert!(info.is_enabled("guest-ping"));
    let shutdown = info.command("guest-shutdown").unwrap();
    assert!(!shutdown.success_response);
    // A blocked command answers CommandNotFound: the no-reply path must report it.
    let err = client
        .shutdown(Some(ShutdownMode::Reboot))
        .await
        .unwrap_err();
    assert!(err.is_command_not_found(), "{err:?}");
    // And the client is fine afterwards.
    client.ping().await.unwrap();
}

#[tokio::test]
async fn every_non_destructive_query_decodes() {
    let agent = QemuGa::start();
    let client = connect(&agent).await;
    let os = client.osinfo().await.unwrap();
    assert!(
        os.kernel_release.is_some() && os.machine.is_some(),
        "{os:?}"
    );
    assert!(!client.hostname().await.unwrap().is_empty());
    let ifaces = client.network_interfaces().await.unwrap();
    let lo = ifaces.iter().find(|i| i.name == "lo").expect("lo");
    assert!(
        lo.ip_addresses
            .iter()
            .any(|a| a.ip_address == "127.0.0.1" && a.prefix == 8)
    );
    client.users().await.unwrap();
    let now_ns = client.time().await.unwrap();
    let host_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!(
        (now_ns - host_ns).abs() < 60_000_000_000,
        "{now_ns} vs {host_ns}"
    );
    assert_eq!(
        client.fsfreeze_status().await.unwrap(),
        FsfreezeStatus::Thawed
    );
    client.call(&qga::GuestGetTimezone).await.unwrap();
    client.call(&qga::GuestGetVcpus).await.unwrap();
    client.call(&qga::GuestGetMemoryBlockInfo).await.unwrap();
    client.call(&qga::GuestGetCpustats).await.unwrap();
    client.call(&qga::GuestGetDiskstats).await.unwrap();
    client.call(&qga::GuestGetDisks).await.unwrap();
    client.call(&qga::GuestGetMemoryBlocks).await.unwrap();
    // fsinfo may list nothing in a container, but must decode.
    client.fsinfo().await.unwrap();
    let keys = client
        .call(&qga::GuestSshGetAuthorizedKeys {
            username: "nosuchuser-qga-test".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(keys.agent_error().unwrap().class, ErrorClass::GenericError);
    // Disabled on Linux 7.2, absent upstream: CommandNotFound either way.
    let devices = client.call(&qga::GuestGetDevices).await.unwrap_err();
    assert!(devices.is_command_not_found(), "{devices:?}");
    // Newer than 7.2: unknown command.
    if !client.info().await.unwrap().is_enabled("guest-get-load") {
        assert!(
            client
                .call(&qga::GuestGetLoad)
                .await
                .unwrap_err()
                .is_command_not_found()
        );
    }
    let raw = client
        .call_raw(&RawCommand::new("guest-get-host-name"))
        .await
        .unwrap();
    assert!(raw["host-name"].is_string());
    let unknown = client
        .call_raw(&RawCommand::new("guest-nosuch"))
        .await
        .unwrap_err();
    assert!(unknown.is_command_not_found());
}

#[tokio::test]
async fn exec_with_stdin_env_exit_code_and_signal() {
    let agent = QemuGa::start();
    let client = connect(&agent).await;
    let out = client
        .exec(
            ExecRequest::new("/bin/sh")
                .args(["-c", "cat; echo err >&2; echo \"v=$V\"; exit 3"])
                .env("V", "x y")
                .stdin(b"in\x00put\n".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout, b"in\x00put\nv=x y\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    let killed = client
        .exec(ExecRequest::new("/bin/sh").args(["-c", "kill -9 $$"]))
        .await
        .unwrap();
    assert_eq!(killed.status, ExitStatus::Signal(9));
    let missing = client
        .exec(ExecRequest::new("/nonexistent/prog"))
        .await
        .unwrap_err();
    assert!(missing.agent_error().is_some(), "{missing:?}");
    let slow = client
        .exec(
            ExecRequest::new("/bin/sleep")
                .arg("5")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(slow, Error::ExecTimeout { pid, .. } if pid > 0),
        "{slow:?}"
    );
    client.ping().await.unwrap();
}

#[tokio::test]
async fn exec_of_20_mib_output_reports_truncation() {
    let agent = QemuGa::start();
    let client = Client::builder()
        .default_timeout(Duration::from_secs(30))
        .connect(agent.socket())
        .await
        .unwrap();
    let out = client
        .exec(
            ExecRequest::new("/bin/sh")
                .args([
                    "-c",
                    "head -c 20000000 /dev/zero | tr '\\0' a; echo tail >&2",
                ])
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), qga::EXEC_CAPTURE_LIMIT);
    assert!(out.stdout.iter().all(|&b| b == b'a'));
    assert!(out.stdout_truncated);
    assert_eq!(out.stderr, b"tail\n");
    assert!(!out.stderr_truncated);
}

fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x1234_5678_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn file_round_trips_of_0_1_and_100_mib() {
    let agent = QemuGa::start();
    let client = Client::builder()
        .default_timeout(Duration::from_secs(30))
        .connect(agent.socket())
        .await
        .unwrap();
    let dir = agent.scratch();
    for len in [0usize, 1, 100 * 1024 * 1024] {
        let data = pattern(len);
        let path = dir.join(format!("f{len}")).display().to_string();
        let mut reports = Vec::new();
        let summary = client
            .write_file_with(&path, &data, &FileOptions::default(), &mut |done, total| {
                reports.push((done, total));
            })
            .await
            .unwrap();
        assert_eq!(summary.size, len as u64);
        assert!(summary.verified);
        let want: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(summary.sha256, want);
        assert_eq!(reports.last(), Some(&(len as u64, Some(len as u64))));
        // The file on disk is what we sent.
        assert_eq!(std::fs::read(&path).unwrap(), data, "len {len}");
        let back = client.read_file(&path).await.unwrap();
        assert_eq!(back.len(), len);
        assert!(back == data);
    }
    // A small chunk size forces many calls, and progress sees the total.
    let path = dir.join("chunked").display().to_string();
    let data = pattern(10_000);
    std::fs::write(&path, &data).unwrap();
    let mut got = Vec::new();
    let mut last = (0, None);
    client
        .read_file_with(
            &path,
            &FileOptions::default().chunk_size(999),
            &mut |d, t| last = (d, t),
            &mut |chunk| {
                got.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(got, data);
    assert_eq!(last, (10_000, Some(10_000)));
    let missing = client.read_file("/nonexistent/dir/file").await.unwrap_err();
    assert_eq!(
        missing.agent_error().unwrap().class,
        ErrorClass::GenericError
    );
}

#[tokio::test]
async fn verify_catches_a_file_changed_behind_our_back() {
    let agent = QemuGa::start();
    let client = connect(&agent).await;
    // /dev/full-like mismatch: write to a FIFO-free path, then make read-back differ by
    // writing to a path that is a symlink to /dev/null (reads back empty).
    let link = agent.scratch().join("null-link");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let err = client
        .write_file(&link.display().to_string(), b"data")
        .await
        .unwrap_err();
    match err {
        Error::VerifyFailed {
            expected_size,
            actual_size,
            ..
        } => assert_eq!((expected_size, actual_size), (4, 0)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn timeout_then_a_working_call_after_sigstop_sigcont() {
    let agent = QemuGa::start();
    let client = Client::builder()
        .default_timeout(Duration::from_millis(500))
        .connect(agent.socket())
        .await
        .unwrap();
    client.ping().await.unwrap();
    agent.pause();
    let started = Instant::now();
    let err = client.ping().await.unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    let text = err.to_string();
    assert!(
        text.contains("timed out") && text.contains("another client"),
        "{text}"
    );
    agent.resume();
    // The stale reply to the timed-out ping is discarded by the resync.
    client.ping().await.unwrap();
    let info = client.info().await.unwrap();
    assert!(!info.supported_commands.is_empty());
}

#[tokio::test]
async fn agent_restarted_under_a_connected_client() {
    let mut agent = QemuGa::start();
    let client = connect(&agent).await;
    client.ping().await.unwrap();
    let old_pid = agent.pid();
    agent.restart();
    assert_ne!(agent.pid(), old_pid);
    // The client sees the EOF on the idle socket and reconnects by itself.
    client.ping().await.unwrap();
    client.info().await.unwrap();
}

#[tokio::test]
async fn closed_error_without_a_transport() {
    let mut agent = QemuGa::start();
    let stream = tokio::net::UnixStream::connect(agent.socket())
        .await
        .unwrap();
    let client = Client::builder().from_stream(stream);
    client.ping().await.unwrap();
    agent.kill();
    let err = client.ping().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(client.ping().await.unwrap_err().is_closed());
}

#[tokio::test]
async fn a_second_client_waits_for_the_first() {
    let agent = QemuGa::start();
    let first = connect(&agent).await;
    // qemu-ga serves one client at a time: the second connects but gets no answer.
    let second = Client::builder()
        .default_timeout(Duration::from_millis(400))
        .connect(agent.socket())
        .await
        .unwrap_err();
    assert!(second.is_timeout(), "{second:?}");
    first.ping().await.unwrap();
}

#[tokio::test]
async fn clones_share_one_connection_in_order() {
    let agent = QemuGa::start();
    let client = connect(&agent).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let out = c
                .exec(ExecRequest::new("/bin/echo").arg(i.to_string()))
                .await
                .unwrap();
            assert_eq!(out.stdout, format!("{i}\n").into_bytes());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn dropped_call_forces_a_resync() {
    let mut agent = QemuGa::start();
    let client = connect(&agent).await;
    let dir = agent.scratch();
    let big = dir.join("big");
    std::fs::write(&big, pattern(8 * 1024 * 1024)).unwrap();
    let handle = client
        .call(&GuestFileOpen {
            path: big.display().to_string(),
            mode: None,
        })
        .await
        .unwrap();
    // Start a large read and abandon it mid-flight.
    let command = GuestFileRead {
        handle,
        count: Some(8 * 1024 * 1024),
    };
    let read = client.call(&command);
    let abandoned = tokio::time::timeout(Duration::from_micros(200), read).await;
    assert!(abandoned.is_err(), "the read should still be in flight");
    // The next call gets its own answer, not the stale 11 MB reply.
    let host = client.hostname().await.unwrap();
    assert!(!host.is_empty());
    agent.ensure_running();
}

#[test]
fn blocked_list_covers_every_destructive_command() {
    for name in [
        qga::GuestShutdown::NAME,
        qga::GuestSuspendDisk::NAME,
        qga::GuestSuspendRam::NAME,
        qga::GuestSuspendHybrid::NAME,
        qga::GuestSetTime::NAME,
        qga::GuestFsfreezeFreeze::NAME,
        qga::GuestFsfreezeFreezeList::NAME,
        qga::GuestFsfreezeThaw::NAME,
        qga::GuestSetUserPassword::NAME,
        qga::GuestSetVcpus::NAME,
        qga::GuestSetMemoryBlocks::NAME,
        qga::GuestSshAddAuthorizedKeys::NAME,
        qga::GuestSshRemoveAuthorizedKeys::NAME,
        qga::GuestFstrim::NAME,
    ] {
        assert!(BLOCKED_RPCS.contains(&name), "{name}");
    }
}
