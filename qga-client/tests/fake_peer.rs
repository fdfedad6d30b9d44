//! A scripted fake qemu-ga (`qga_testing::fake`) over `tokio::io::duplex`, for the faults a
//! real agent cannot produce on demand: garbage and stale replies before the sentinel, replies
//! written one byte at a time, silence, a reset in the middle of a reply, floods, wrong ids,
//! unsolicited bytes, a short write. Everything a real agent does is covered against the real
//! qemu-ga in `qemu_ga.rs`; the deadlines of `Client::with_deadline` are in `deadline.rs`.

use std::time::Duration;

use qga_client::proto::qga::{GuestInfo, GuestShutdown};
use qga_client::{Client, Error, ExecRequest, ExitStatus, FileOptions, ProtocolError};
use qga_testing::fake::{self, FakeAgent, Seen};
use serde_json::json;

mod support;
use support::scripts;

fn quick() -> qga_client::ClientBuilder {
    Client::builder()
        .default_timeout(Duration::from_secs(2))
        .no_reply_grace(Duration::from_millis(300))
}

#[tokio::test]
async fn garbage_and_multi_mib_stale_replies_before_the_sentinel() {
    let (client, peer) = fake::pair(quick());
    let agent = tokio::spawn(scripts::stale_replies_before_the_sentinel(peer));
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_sync_reply_with_an_old_id_is_not_ours() {
    let (client, peer) = fake::pair(quick());
    let agent = tokio::spawn(scripts::old_sync_ids(peer));
    assert_eq!(client.hostname().await.unwrap(), "vm1");
    agent.await.unwrap();
}

#[tokio::test]
async fn replies_written_one_byte_at_a_time() {
    let (client, peer) = fake::pair(quick());
    let agent = tokio::spawn(scripts::a_reply_one_byte_at_a_time(peer));
    let info = client.info().await.unwrap();
    assert_eq!(info.version, "9.9.9");
    assert!(info.is_enabled("guest-ping"));
    agent.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_agent_gives_a_typed_timeout_that_names_both_causes() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        // Read everything, answer nothing.
        peer.ignore_until_closed().await;
    });
    let started = tokio::time::Instant::now();
    let err = client.ping().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let text = err.to_string();
    assert!(text.contains("may not be running"), "{text}");
    assert!(text.contains("another client"), "{text}");
    drop(client);
    agent.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn silence_after_sync_then_the_next_call_resyncs() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let late = peer.request().await; // the ping that will time out
        // The next call must start with a fresh sync; the late reply arrives before it.
        let id = peer.expect_sync().await;
        peer.reply(&late, json!({})).await;
        peer.answer_sync(id).await;
        peer.serve("guest-get-host-name", json!({"host-name": "fresh"}))
            .await;
    });
    assert!(client.ping().await.unwrap_err().is_timeout());
    assert_eq!(client.hostname().await.unwrap(), "fresh");
    agent.await.unwrap();
}

#[tokio::test]
async fn a_reset_in_the_middle_of_a_reply_is_closed() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {\"version\": \"7.2").await;
        // Dropping the peer closes the stream mid-reply.
    });
    let err = client.info().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    agent.await.unwrap();
    // No transport to reconnect through: it stays closed, at once.
    assert!(client.ping().await.unwrap_err().is_closed());
}

#[tokio::test]
async fn a_flood_without_newlines_is_cut_at_the_limit_and_the_client_recovers() {
    let (client, peer) = fake::pair(quick().max_message_len(64 * 1024));
    let agent = tokio::spawn(scripts::a_flood_without_newlines(peer));
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::Frame(_))),
        "{err:?}"
    );
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_reply_with_another_id_is_a_protocol_error_and_forces_a_resync() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {}, \"id\": 123456789012}\n")
            .await;
        peer.sync().await;
        peer.serve("guest-ping", json!({})).await;
    });
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::IdMismatch { .. })),
        "{err:?}"
    );
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_reply_without_an_id_is_accepted_as_from_an_old_agent() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let _ = peer.request().await;
        peer.reply_bytes(b"{\"return\": {}}\n").await;
        // Still in sync: no new handshake before the next request.
        peer.serve("guest-ping", json!({})).await;
    });
    client.ping().await.unwrap();
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_a_decode_error_and_the_channel_stays_in_sync() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.serve("guest-info", json!("not an object")).await;
        peer.serve("guest-ping", json!({})).await;
    });
    let err = client.call(&GuestInfo).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_dropped_call_leaves_a_stale_reply_that_the_next_call_never_sees() {
    let (client, mut peer) = fake::pair(quick());
    let (got_request, request_seen) = tokio::sync::oneshot::channel();
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let old = peer.request().await;
        got_request.send(()).unwrap();
        let id = peer.expect_sync().await;
        peer.reply(&old, json!({"host-name": "STALE"})).await;
        peer.answer_sync(id).await;
        peer.serve("guest-get-host-name", json!({"host-name": "mine"}))
            .await;
    });
    let c2 = client.clone();
    let call = tokio::spawn(async move { c2.hostname().await });
    request_seen.await.unwrap();
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(client.hostname().await.unwrap(), "mine");
    agent.await.unwrap();
}

#[tokio::test]
async fn unsolicited_bytes_while_idle_trigger_a_resync() {
    let (client, mut peer) = fake::pair(quick());
    let (spoke, spoken) = tokio::sync::oneshot::channel();
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.serve("guest-ping", json!({})).await;
        peer.reply_bytes(b"{\"return\": {\"host-name\": \"injected\"}}\n")
            .await;
        spoke.send(()).unwrap();
        peer.sync().await;
        peer.serve("guest-get-host-name", json!({"host-name": "real"}))
            .await;
    });
    client.ping().await.unwrap();
    spoken.await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(client.hostname().await.unwrap(), "real");
    agent.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_reply_commands_succeed_after_the_grace_period_and_resync_next() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.request().await;
        assert_eq!(r.command(), Some("guest-shutdown"));
        assert_eq!(r.arguments.unwrap()["mode"], "reboot");
        // Silence means accepted; the next call syncs first.
        peer.sync().await;
        let r = peer.request().await;
        assert_eq!(r.command(), Some("guest-shutdown"));
        peer.reply_bytes(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"child process has failed to shutdown\"}}\n").await;
        peer.serve("guest-ping", json!({})).await;
    });
    let started = tokio::time::Instant::now();
    client
        .shutdown(Some(qga_client::proto::qga::ShutdownMode::Reboot))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    let err = client.call(&GuestShutdown::default()).await.unwrap_err();
    assert!(err.to_string().contains("failed to shutdown"), "{err}");
    // An error reply is an answer: no resync needed.
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn eof_right_after_a_no_reply_command_is_success() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.request().await;
        assert_eq!(r.command(), Some("guest-shutdown"));
        drop(peer);
    });
    client.shutdown(None).await.unwrap();
    agent.await.unwrap();
    assert!(!client.is_connected().await);
    assert!(client.ping().await.unwrap_err().is_closed());
}

#[tokio::test(start_paused = true)]
async fn exec_polls_with_backoff_until_exit() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.request().await;
        assert_eq!(r.command(), Some("guest-exec"));
        let args = r.arguments.clone().unwrap();
        assert_eq!(args["path"], "/bin/sh");
        assert_eq!(args["arg"], json!(["-c", "x"]));
        assert_eq!(args["input-data"], "aW4=");
        assert_eq!(args["capture-output"], true);
        peer.reply(&r, json!({"pid": 77})).await;
        let mut times = Vec::new();
        for _ in 0..5 {
            let r = peer.request().await;
            assert_eq!(r.arguments.clone().unwrap()["pid"], 77);
            times.push(tokio::time::Instant::now());
            peer.reply(&r, json!({"exited": false})).await;
        }
        let r = peer.request().await;
        peer.reply(
            &r,
            json!({"exited": true, "exitcode": 2, "out-data": "b3V0", "err-data": "ZXJy", "out-truncated": true, "err-truncated": false}),
        )
        .await;
        times
    });
    let out = client
        .exec(
            ExecRequest::new("/bin/sh")
                .args(["-c", "x"])
                .stdin(b"in".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(out.pid, 77);
    assert_eq!(out.status, ExitStatus::Code(2));
    assert_eq!(out.stdout, b"out");
    assert_eq!(out.stderr, b"err");
    assert!(out.stdout_truncated && !out.stderr_truncated);
    let times = agent.await.unwrap();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "backoff grows: {gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn exec_past_its_deadline_reports_the_pid() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.request().await;
        peer.reply(&r, json!({"pid": 5})).await;
        while let Some(Seen::Request(r)) = peer.next().await {
            peer.reply(&r, json!({"exited": false})).await;
        }
    });
    let err = client
        .exec(
            ExecRequest::new("sleep")
                .arg("1000")
                .timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ExecTimeout { pid: 5, .. }), "{err:?}");
    drop(client);
    agent.await.unwrap();
}

#[tokio::test]
async fn invalid_passwords_are_refused_before_sending() {
    let (client, _peer) = fake::pair(quick());
    for (user, pw) in [("root", &b"a\nb"[..]), ("ro:ot", b"x"), ("", b"x")] {
        let err = client.set_user_password(user, pw, false).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(!err.to_string().contains("a\nb"));
    }
}

#[tokio::test]
async fn a_short_write_is_its_own_error_and_the_channel_stays_in_sync() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let open = peer.expect("guest-file-open").await;
        assert_eq!(open.arguments.as_ref().unwrap()["mode"], "wb");
        peer.reply(&open, json!(9)).await;
        for count in [4, 2] {
            let w = peer.expect("guest-file-write").await;
            assert_eq!(w.arguments.as_ref().unwrap()["handle"], 9);
            // The second chunk: the guest's disk is full.
            peer.reply(&w, json!({"count": count, "eof": false})).await;
        }
        peer.serve("guest-file-close", json!({})).await;
        // No resync: the reply was well formed.
        peer.serve("guest-ping", json!({})).await;
    });
    let options = FileOptions::default().chunk_size(4);
    let err = client
        .write_file_with("/var/big", b"abcdefgh", &options, &mut |_, _| {})
        .await
        .unwrap_err();
    let Error::ShortWrite {
        path,
        offset,
        written,
        expected,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (path.as_str(), *offset, *written, *expected),
        ("/var/big", 4, 2, 4)
    );
    assert!(err.agent_error().is_none() && !err.is_timeout() && !err.is_closed());
    assert!(err.to_string().contains("disk may be full"), "{err}");
    client.ping().await.unwrap();
    agent.await.unwrap();
}

#[tokio::test]
async fn a_fake_agent_on_a_unix_socket_serves_a_client_that_connects_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let listener = FakeAgent::listen(dir.path().join("qga.sock")).unwrap();
    let path = listener.path().to_owned();
    let agent = listener.serve_one(|mut peer| async move {
        peer.sync().await;
        let r = peer.expect("guest-get-host-name").await;
        peer.reply_error(&r, "GenericError", "no host name").await;
        peer.serve("guest-ping", json!({})).await;
        peer.close().await;
    });
    let client = quick().connect(&path).await.unwrap();
    let err = client.hostname().await.unwrap_err();
    assert_eq!(err.agent_error().unwrap().desc, "no host name");
    client.ping().await.unwrap();
    agent.await.unwrap();
    assert!(
        !path.exists(),
        "the socket is removed once the script is done"
    );
}
