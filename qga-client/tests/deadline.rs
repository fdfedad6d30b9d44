//! `Client::with_deadline` against the scripted fake agent (`qga_testing::fake`), in paused
//! time: a silent agent is exactly what a real one cannot be made to be on cue, and paused
//! time makes "at the deadline, not at the default timeout" an exact assertion.

use std::time::Duration;

use qga_client::{Client, Error, ExecRequest, FileOptions};
use qga_testing::fake::{self, FakeAgent, Seen};
use serde_json::json;
use tokio::time::Instant;

/// Default timeout 2 s; long timeout (exec) 60 s.
fn quick() -> qga_client::ClientBuilder {
    Client::builder()
        .default_timeout(Duration::from_secs(2))
        .no_reply_grace(Duration::from_millis(300))
}

/// Everything the client sends until it closes the stream, by command name.
async fn rest<S>(peer: &mut FakeAgent<S>) -> Vec<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    while let Some(s) = peer.next().await {
        seen.push(match s {
            Seen::Sentinel => "0xFF".to_owned(),
            Seen::Request(r) => r.command().unwrap_or("?").to_owned(),
        });
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn a_silent_agent_fails_the_call_at_the_deadline_not_at_the_timeout() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.expect("guest-ping").await; // never answered
        // The next call on the plain client resyncs and gets its answer.
        peer.sync().await;
        peer.serve("guest-get-host-name", json!({"host-name": "vm1"}))
            .await;
        rest(&mut peer).await
    });
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_millis(700));
    assert_eq!(guest.deadline(), Some(start + Duration::from_millis(700)));
    assert_eq!(client.deadline(), None, "the original handle is unchanged");
    let err = guest.ping().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(700));
    let Error::Timeout { command, after } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(command, "guest-ping");
    assert_eq!(*after, Duration::from_millis(700), "the time the call had");
    assert!(err.is_timeout());

    // After the deadline a call fails at once and sends nothing.
    let again = Instant::now();
    let err = guest.hostname().await.unwrap_err();
    assert_eq!(again.elapsed(), Duration::ZERO);
    assert!(
        matches!(&err, Error::Timeout { command, after } if command == "guest-get-host-name" && after.is_zero()),
        "{err:?}"
    );
    let err = guest.sync().await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { command, .. } if command == "guest-sync-delimited"),
        "{err:?}"
    );

    // The connection itself is fine: the plain client resyncs and goes on.
    assert_eq!(client.hostname().await.unwrap(), "vm1");
    drop((client, guest));
    assert!(agent.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_earlier_of_the_timeout_and_the_deadline_wins() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.expect("guest-ping").await;
        peer.sync().await;
        peer.expect("guest-ping").await;
        rest(&mut peer).await
    });
    // A deadline after the call's own 2 s does not lengthen it.
    let start = Instant::now();
    let late = client.with_deadline(start + Duration::from_secs(30));
    let err = late.ping().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(matches!(err, Error::Timeout { after, .. } if after == Duration::from_secs(2)));
    // A handle made from a handle keeps the earlier deadline.
    let start = Instant::now();
    let early = client.with_deadline(start + Duration::from_millis(400));
    assert_eq!(
        early
            .with_deadline(start + Duration::from_secs(9))
            .deadline(),
        early.deadline()
    );
    let err = early
        .with_deadline(start + Duration::from_secs(9))
        .ping()
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    assert!(err.is_timeout(), "{err:?}");
    drop((client, late, early));
    assert!(agent.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_handshake_is_bound_by_the_deadline() {
    let (client, mut peer) = fake::pair(quick().sync_retry_interval(Duration::from_millis(200)));
    let agent = tokio::spawn(async move {
        // Takes the syncs, answers none.
        rest(&mut peer).await
    });
    let start = Instant::now();
    let err = client
        .with_deadline(start + Duration::from_millis(500))
        .info()
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert!(
        matches!(&err, Error::Timeout { command, after } if command == "guest-info" && *after == Duration::from_millis(500)),
        "{err:?}"
    );
    drop(client);
    let seen = agent.await.unwrap();
    // The sync was resent every 200 ms; guest-info itself never went out.
    assert_eq!(seen, ["0xFF", "guest-sync-delimited"].repeat(3), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn exec_polling_stops_at_the_deadline_with_the_pid() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.expect("guest-exec").await;
        peer.reply(&r, json!({"pid": 41})).await;
        let mut polls = 0;
        while let Some(Seen::Request(r)) = peer.next().await {
            if r.command() == Some("guest-exec") {
                peer.reply(&r, json!({"pid": 42})).await;
                continue;
            }
            assert_eq!(r.command(), Some("guest-exec-status"));
            peer.reply(&r, json!({"exited": false})).await;
            polls += 1;
        }
        polls
    });
    // The program's own limit would be the long timeout (60 s): the deadline comes first.
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_secs(3));
    let err = guest
        .exec(ExecRequest::new("sleep").arg("1000"))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert!(
        matches!(err, Error::ExecTimeout { pid: 41, after } if after == Duration::from_secs(3)),
        "{err:?}"
    );
    assert!(err.is_timeout());
    drop(guest);
    // ExecRequest::timeout stays the program's limit when it is the smaller one.
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_secs(30));
    let err = guest
        .exec(
            ExecRequest::new("sleep")
                .arg("1000")
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(
        matches!(err, Error::ExecTimeout { pid: 42, after } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    drop((client, guest));
    assert!(agent.await.unwrap() > 10, "it polled until then");
}

#[tokio::test(start_paused = true)]
async fn exec_whose_status_poll_hangs_at_the_deadline_is_an_exec_timeout() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.expect("guest-exec").await;
        peer.reply(&r, json!({"pid": 8})).await;
        // The first status poll is never answered.
        peer.expect("guest-exec-status").await;
        rest(&mut peer).await
    });
    let start = Instant::now();
    let err = client
        .with_deadline(start + Duration::from_millis(1500))
        .exec(ExecRequest::new("true"))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    assert!(
        matches!(err, Error::ExecTimeout { pid: 8, after } if after == Duration::from_millis(1500)),
        "{err:?}"
    );
    drop(client);
    assert!(agent.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_file_write_under_a_deadline_stops_at_it() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let open = peer.expect("guest-file-open").await;
        peer.reply(&open, json!(3)).await;
        let w = peer.expect("guest-file-write").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        peer.reply(&w, json!({"count": 4, "eof": false})).await;
        // The second chunk hangs in a guest whose disk stalled.
        peer.expect("guest-file-write").await;
        // After the deadline the handle is still closed, from the background, on the same
        // connection without the deadline: resync first, then guest-file-close.
        peer.sync().await;
        let close = peer.expect("guest-file-close").await;
        assert_eq!(close.arguments.clone().unwrap()["handle"], 3);
        peer.reply(&close, json!({})).await;
        rest(&mut peer).await
    });
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_secs(1));
    // Each call alone would have 2 s.
    let options = FileOptions::default()
        .chunk_size(4)
        .call_timeout(Duration::from_secs(2));
    let mut progress = Vec::new();
    let err = guest
        .write_file_with("/tmp/f", b"12345678", &options, &mut |done, _| {
            progress.push(done);
        })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(
        matches!(&err, Error::Timeout { command, after } if command == "guest-file-write" && *after == Duration::from_millis(600)),
        "{err:?}"
    );
    assert_eq!(progress, [0, 4]);
    drop((client, guest));
    // Nothing but that close went out after the deadline.
    assert!(agent.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_wait_for_a_connection_another_caller_holds() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        // The first caller's ping is never answered: it holds the connection for 2 s.
        peer.expect("guest-ping").await;
        rest(&mut peer).await
    });
    let holder = client.clone();
    let first = tokio::spawn(async move {
        let start = Instant::now();
        let result = holder.ping().await;
        (result, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let err = client
        .with_deadline(start + Duration::from_millis(300))
        .hostname()
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert!(
        matches!(&err, Error::Timeout { command, after } if command == "guest-get-host-name" && *after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(!first.is_finished(), "the holder still waits for its reply");
    let (result, took) = first.await.unwrap();
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(took, Duration::from_secs(2));
    drop(client);
    // The waiting call never reached the agent.
    assert!(agent.await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn helpers_run_under_the_deadline_too() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.expect("guest-set-user-password").await; // never answered
        peer.sync().await;
        let r = peer.expect("guest-shutdown").await;
        assert_eq!(r.command(), Some("guest-shutdown"));
        rest(&mut peer).await
    });
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_millis(250));
    let err = guest
        .set_user_password("tester", b"pw", false)
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert!(err.is_timeout(), "{err:?}");
    // guest-shutdown's grace period (300 ms) is cut short by the deadline: silence means
    // accepted, at the deadline.
    let start = Instant::now();
    client
        .with_deadline(start + Duration::from_millis(100))
        .shutdown(None)
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    drop(client);
    drop(guest);
    assert!(agent.await.unwrap().is_empty());
}

/// Real time: a real UNIX socket, reconnecting. The agent closes the connection after the
/// first call; the client reconnects, and the new connection's agent never answers the sync.
#[tokio::test]
async fn reconnecting_is_bound_by_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let listener = FakeAgent::listen(dir.path().join("qga.sock")).unwrap();
    let path = listener.path().to_owned();
    let agent = tokio::spawn(async move {
        let mut first = listener.accept().await.unwrap();
        first.sync().await;
        first.serve("guest-ping", json!({})).await;
        first.close().await;
        let mut second = listener.accept().await.unwrap();
        rest(&mut second).await
    });
    let client = quick().connect(&path).await.unwrap();
    client.ping().await.unwrap();
    // Let the close arrive, so that the next call finds the connection dead.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = std::time::Instant::now();
    let err = client
        .with_deadline(Instant::now() + Duration::from_millis(300))
        .ping()
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(client);
    let seen = agent.await.unwrap();
    assert_eq!(seen.first().map(String::as_str), Some("0xFF"), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn the_thaw_after_a_freeze_that_ran_into_the_deadline_is_not_bound_by_it() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.expect("guest-fsfreeze-freeze").await; // answered too late to matter
        // The background thaw, on the same connection, after the deadline.
        peer.sync().await;
        peer.serve("guest-fsfreeze-thaw", json!(1)).await;
        rest(&mut peer).await
    });
    let start = Instant::now();
    let guest = client.with_deadline(start + Duration::from_millis(500));
    let err = guest
        .fsfreeze(None, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert!(
        matches!(&err, Error::Timeout { command, after } if command == "guest-fsfreeze-freeze" && *after == Duration::from_millis(500)),
        "{err:?}"
    );
    // Give the spawned thaw its turn, well past the deadline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop((client, guest));
    assert!(agent.await.unwrap().is_empty());
}
