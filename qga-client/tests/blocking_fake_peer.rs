//! The blocking client against a scripted fake qemu-ga (`qga_testing::fake`) on the other end
//! of a `UnixStream` pair: the faults a real agent cannot produce on demand, as in
//! `fake_peer.rs` and `hostile_guest.rs` for the async client. The script runs on a tokio
//! runtime in its own thread (the test may use tokio; the client does not); the client runs
//! on the test's thread with real time, so the timeouts here are short.

use std::future::Future;
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use qga_client::blocking::Client;
use qga_client::proto::qga::{GuestFsfreezeFreeze, GuestInfo};
use qga_client::{Config, Error, ExecRequest, ExitStatus, FileOptions, ProtocolError};
use qga_testing::fake::FakeAgent;
use serde_json::json;

mod support;
use support::scripts;

type Peer = FakeAgent<tokio::net::UnixStream>;

fn quick() -> Config {
    Config {
        default_timeout: Duration::from_millis(800),
        no_reply_grace: Duration::from_millis(200),
        ..Config::default()
    }
}

/// A blocking client on one end of a socket pair and `script` on the other, on a runtime in
/// its own thread. Join the handle to see the script's panics.
fn scripted<F, Fut>(config: Config, script: F) -> (Client, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let peer = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let stream = tokio::net::UnixStream::from_std(theirs).unwrap();
            script(FakeAgent::new(stream)).await;
        });
    });
    (Client::builder().config(config).from_stream(ours), peer)
}

#[test]
fn garbage_and_multi_mib_stale_replies_before_the_sentinel() {
    let (client, peer) = scripted(quick(), scripts::stale_replies_before_the_sentinel);
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn a_sync_reply_with_an_old_id_or_without_a_sentinel_is_not_ours() {
    let (client, peer) = scripted(quick(), scripts::old_sync_ids);
    assert_eq!(client.hostname().unwrap(), "vm1");
    peer.join().unwrap();
}

#[test]
fn a_reply_written_one_byte_at_a_time() {
    let (client, peer) = scripted(quick(), scripts::a_reply_one_byte_at_a_time);
    let info = client.info().unwrap();
    assert_eq!(info.version, "9.9.9");
    assert!(info.is_enabled("guest-ping"));
    peer.join().unwrap();
}

#[test]
fn a_silent_agent_gives_a_typed_timeout_at_the_timeout() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.ignore_until_closed().await;
    });
    let started = Instant::now();
    let err = client.ping().unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let text = err.to_string();
    assert!(
        text.contains("may not be running") && text.contains("another client"),
        "{text}"
    );
    drop(client);
    peer.join().unwrap();
}

#[test]
fn silence_after_sync_then_the_next_call_resyncs_past_the_late_reply() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        let late = peer.request().await;
        let id = peer.expect_sync().await;
        peer.reply(&late, json!({})).await;
        peer.answer_sync(id).await;
        peer.serve("guest-get-host-name", json!({"host-name": "fresh"}))
            .await;
    });
    assert!(client.ping().unwrap_err().is_timeout());
    assert_eq!(client.hostname().unwrap(), "fresh");
    peer.join().unwrap();
}

#[test]
fn a_reset_in_the_middle_of_a_reply_is_closed_and_stays_closed() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {\"version\": \"7.2").await;
    });
    let err = client.info().unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    peer.join().unwrap();
    assert!(client.ping().unwrap_err().is_closed());
    assert!(!client.is_connected());
}

#[test]
fn a_flood_without_newlines_is_cut_at_the_limit_and_the_client_recovers() {
    let config = Config {
        max_message_len: 64 * 1024,
        ..quick()
    };
    let (client, peer) = scripted(config, scripts::a_flood_without_newlines);
    let err = client.ping().unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::Frame(_))),
        "{err:?}"
    );
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn another_id_is_a_protocol_error_and_no_id_is_an_old_agent() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {}, \"id\": 123456789012}\n")
            .await;
        // The wrong id forces a resync; the reply without an id keeps the channel in sync.
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {}}\n").await;
        peer.serve("guest-ping", json!({})).await;
    });
    let err = client.ping().unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::IdMismatch { .. })),
        "{err:?}"
    );
    client.ping().unwrap();
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn a_reply_of_the_wrong_shape_is_a_decode_error_and_events_are_skipped() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        peer.serve("guest-info", json!("not an object")).await;
        let r = peer.expect("guest-get-host-name").await;
        peer.reply_bytes(b"{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}\n")
            .await;
        peer.reply_bytes(b"{\"timestamp\": {\"seconds\": 1}, \"event\": \"RESET\"}\n")
            .await;
        peer.reply(&r, json!({"host-name": "vm1"})).await;
        peer.serve("guest-ping", json!({})).await;
    });
    let err = client.call(&GuestInfo).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(client.hostname().unwrap(), "vm1");
    assert_eq!(client.skipped_events(), 2);
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn a_no_reply_command_succeeds_after_the_grace_period_and_the_next_call_resyncs() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        peer.expect("guest-shutdown").await;
        // Silence: accepted. The next call must resync first.
        peer.sync().await;
        peer.serve("guest-ping", json!({})).await;
        // Taken, then the guest goes away: success too.
        peer.expect("guest-shutdown").await;
        peer.close().await;
    });
    let started = Instant::now();
    client.shutdown(None).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    client.ping().unwrap();
    client.shutdown(None).unwrap();
    peer.join().unwrap();
}

#[test]
fn exec_polls_until_exit_then_past_its_deadline_reports_the_pid() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        peer.serve("guest-exec", json!({"pid": 42})).await;
        for _ in 0..3 {
            peer.serve("guest-exec-status", json!({"exited": false}))
                .await;
        }
        peer.serve(
            "guest-exec-status",
            json!({"exited": true, "exitcode": 0, "out-data": "aGkK", "err-truncated": true}),
        )
        .await;
        peer.serve("guest-exec", json!({"pid": 43})).await;
        loop {
            let r = peer.request().await;
            assert_eq!(r.command(), Some("guest-exec-status"));
            peer.reply(&r, json!({"exited": false})).await;
        }
    });
    let out = client.exec(ExecRequest::new("true")).unwrap();
    assert_eq!((out.pid, out.status), (42, ExitStatus::Code(0)));
    assert_eq!(out.stdout, b"hi\n");
    assert!(out.stderr_truncated && !out.stdout_truncated);
    let started = Instant::now();
    let err = client
        .exec(ExecRequest::new("sleep").timeout(Duration::from_millis(300)))
        .unwrap_err();
    assert!(matches!(err, Error::ExecTimeout { pid: 43, .. }), "{err:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    drop(client);
    // The script loops until the client hangs up: its panic (end of stream) is expected.
    assert!(peer.join().is_err());
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        assert!(peer.next().await.is_none(), "nothing may be sent");
    });
    for (user, password) in [
        ("", &b"x"[..]),
        ("a:b", b"x"),
        ("a\nb", b"x"),
        ("root", b"a\nb"),
    ] {
        let err = client.set_user_password(user, password, false).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }
    drop(client);
    peer.join().unwrap();
}

#[test]
fn a_short_write_is_its_own_error_and_the_handle_is_closed() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        peer.serve("guest-file-open", json!(5)).await;
        peer.serve("guest-file-write", json!({"count": 2, "eof": false}))
            .await;
        let close = peer.expect("guest-file-close").await;
        assert_eq!(close.arguments.as_ref().unwrap()["handle"], 5);
        peer.reply(&close, json!({})).await;
        peer.serve("guest-ping", json!({})).await;
    });
    let err = client.write_file("/var/big", b"data").unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShortWrite {
                written: 2,
                expected: 4,
                offset: 0,
                ..
            }
        ),
        "{err:?}"
    );
    // Still in sync: no handshake before the ping.
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn a_file_that_never_ends_stops_at_max_bytes() {
    let (client, peer) = scripted(quick(), scripts::a_file_that_never_ends);
    let options = FileOptions::default().max_bytes(Some(10_000));
    let mut got = 0;
    let err = client
        .read_file_with("/dev/zero", &options, &mut |_, _| {}, &mut |c| {
            got += c.len();
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::FileTooLarge { limit: 10_000, .. }),
        "{err:?}"
    );
    assert!(got <= 10_000);
    peer.join().unwrap();
}

#[test]
fn a_deadline_bounds_a_call_and_the_wait_for_a_connection_another_thread_holds() {
    let (gave_up, given_up) = tokio::sync::oneshot::channel::<()>();
    let patient = Config {
        default_timeout: Duration::from_secs(10),
        ..quick()
    };
    let (client, peer) = scripted(patient, |mut peer| async move {
        peer.sync().await;
        // The first ping is answered only once the second caller gave up waiting.
        let r = peer.expect("guest-ping").await;
        given_up.await.unwrap();
        peer.reply(&r, json!({})).await;
        peer.serve("guest-ping", json!({})).await;
    });
    client.sync().unwrap();
    let first = {
        let client = client.clone();
        thread::spawn(move || client.ping())
    };
    // Time for the first thread to take the connection.
    thread::sleep(Duration::from_millis(300));
    let short = client.with_deadline(Instant::now() + Duration::from_millis(150));
    let err = short.ping().unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after <= Duration::from_millis(150)),
        "{err:?}"
    );
    gave_up.send(()).unwrap();
    first.join().unwrap().unwrap();
    client.ping().unwrap();
    peer.join().unwrap();
}

#[test]
fn a_freeze_guard_thaws_when_dropped() {
    let (client, peer) = scripted(quick(), |mut peer| async move {
        peer.sync().await;
        peer.serve("guest-fsfreeze-freeze", json!(2)).await;
        peer.serve("guest-fsfreeze-status", json!("frozen")).await;
        peer.serve("guest-fsfreeze-thaw", json!(2)).await;
        peer.serve("guest-fsfreeze-freeze", json!(1)).await;
        peer.serve("guest-fsfreeze-thaw", json!(1)).await;
    });
    let guard = client.fsfreeze(None, Duration::from_secs(60)).unwrap();
    assert_eq!(guard.frozen(), 2);
    client.fsfreeze_status().unwrap();
    drop(guard);
    let guard = client.fsfreeze(None, Duration::from_secs(60)).unwrap();
    assert_eq!(guard.thaw().unwrap(), 1);
    peer.join().unwrap();
    // Typed calls of commands without a helper work the same.
    assert!(client.call(&GuestFsfreezeFreeze).unwrap_err().is_closed());
}

#[test]
fn a_client_connects_by_path_to_a_fake_agent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listening = path.clone();
    let peer = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = FakeAgent::listen(&listening).unwrap();
            let mut agent = listener.accept().await.unwrap();
            agent.sync().await;
            agent.serve("guest-ping", json!({})).await;
        });
    });
    assert!(qga_testing::wait_until(Duration::from_secs(5), || {
        qga_testing::accepts(&path)
    }));
    let client = Client::builder().config(quick()).connect(&path).unwrap();
    client.ping().unwrap();
    assert_eq!(client.path(), Some(path.as_path()));
    peer.join().unwrap();
}
