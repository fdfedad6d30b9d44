//! A hostile guest, scripted (`qga_testing::fake`, a fake qemu-ga over a pipe): what a real
//! qemu-ga never does but a guest's root user can make its channel do — events in place of
//! replies, a file that never ends — and what a careless caller can pass (a timeout of
//! `Duration::MAX`), and that a cancelled transfer closes its guest file handle.

use std::time::Duration;

use qga_client::proto::qga::GuestPing;
use qga_client::{Client, Error, FileOptions};
use qga_testing::fake;
use serde_json::json;

fn quick() -> qga_client::ClientBuilder {
    Client::builder()
        .default_timeout(Duration::from_secs(2))
        .no_reply_grace(Duration::from_millis(300))
}

/// `{"event": ...}` objects before the reply are skipped and counted; the call gets its reply.
#[tokio::test]
async fn events_on_the_agent_channel_are_skipped() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        let r = peer.expect("guest-get-host-name").await;
        peer.reply_bytes(b"{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}\n")
            .await;
        peer.reply_bytes(b"{\"timestamp\": {\"seconds\": 1}, \"event\": \"RESET\"}\n")
            .await;
        peer.reply(&r, json!({"host-name": "vm1"})).await;
        peer.serve("guest-ping", json!({})).await;
    });
    assert_eq!(client.hostname().await.unwrap(), "vm1");
    assert_eq!(client.skipped_events(), 2);
    // The channel stayed in step: the next call needs no resync.
    client.ping().await.unwrap();
    agent.await.unwrap();
}

/// A guest whose file never ends cannot make `read_file` collect without bound: past
/// `max_bytes` the read stops with a typed error, and the handle is closed.
#[tokio::test]
async fn a_file_that_never_ends_stops_at_max_bytes() {
    let (client, mut peer) = fake::pair(quick());
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.serve("guest-file-open", json!(7)).await;
        // The size is unknown (a pipe), so the client reads until eof...
        let seek = peer.expect("guest-file-seek").await;
        peer.reply_error(&seek, "GenericError", "Illegal seek")
            .await;
        // ...which never comes.
        let chunk = qga_client::proto::base64::encode(&[b'x'; 4096]);
        loop {
            let r = peer.request().await;
            match r.command() {
                Some("guest-file-read") => {
                    peer.reply(&r, json!({"count": 4096, "buf-b64": chunk, "eof": false}))
                        .await;
                }
                Some("guest-file-close") => {
                    assert_eq!(r.arguments.clone().unwrap()["handle"], 7);
                    peer.reply(&r, json!({})).await;
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let mut got = 0usize;
    let options = FileOptions::default().max_bytes(Some(64 * 1024));
    let e = client
        .read_file_with("/dev/zero-ish", &options, &mut |_, _| {}, &mut |c| {
            got += c.len();
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::FileTooLarge { limit, .. } if *limit == 64 * 1024),
        "{e:?}"
    );
    assert!(got <= 64 * 1024);
    agent.await.unwrap();
}

/// A transfer cancelled in the middle (its future dropped, as a deadline does) still closes
/// its guest file handle: from the background, after a resync.
#[tokio::test]
async fn a_cancelled_write_closes_its_handle() {
    let (client, mut peer) = fake::pair(quick());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.serve("guest-file-open", json!(42)).await;
        // The first chunk is never answered: the caller gives up.
        let _ = peer.expect("guest-file-write").await;
        // The client resyncs, then closes handle 42.
        peer.sync().await;
        let r = peer.expect("guest-file-close").await;
        assert_eq!(r.arguments.clone().unwrap()["handle"], 42);
        peer.reply(&r, json!({})).await;
        let _ = closed_tx.send(());
    });
    let data = vec![0u8; 1024];
    let write = client.write_file("/etc/motd", &data);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), write)
            .await
            .is_err()
    );
    tokio::time::timeout(Duration::from_secs(10), closed_rx)
        .await
        .expect("the handle was never closed")
        .unwrap();
    agent.await.unwrap();
}

/// A timeout too long to represent (`Duration::MAX`) means "no timeout", never a panic.
#[tokio::test]
async fn a_huge_timeout_does_not_panic() {
    let (client, mut peer) = fake::pair(quick().timeout(Duration::MAX));
    let agent = tokio::spawn(async move {
        peer.sync().await;
        peer.serve("guest-ping", json!({})).await;
        peer.serve("guest-ping", json!({})).await;
    });
    client
        .call_timeout(&GuestPing, Duration::MAX)
        .await
        .unwrap();
    client.ping().await.unwrap();
    agent.await.unwrap();
}
