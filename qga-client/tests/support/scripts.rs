//! Fake-agent scripts that both clients' tests run (`fake_peer.rs`, `hostile_guest.rs` for
//! the async client, `blocking_fake_peer.rs` for the blocking one): one script per fault,
//! whatever stream the fake agent sits on.

#![allow(dead_code)] // Each test binary uses some of them.

use qga_testing::fake::FakeAgent;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};

/// Garbage, a 5 MiB stale reply and a cut-short one before the sentinel; then a ping.
pub(crate) async fn stale_replies_before_the_sentinel<S: AsyncRead + AsyncWrite + Unpin>(
    mut peer: FakeAgent<S>,
) {
    let id = peer.expect_sync().await;
    peer.reply_bytes(b"garbage \x01\x02 not json }}}{{[\n")
        .await;
    let stale = format!(
        "{{\"return\": {{\"count\": 1, \"buf-b64\": \"{}\", \"eof\": false}}, \"id\": 1}}\n",
        "A".repeat(5 * 1024 * 1024)
    );
    peer.reply_bytes(stale.as_bytes()).await;
    peer.reply_bytes(b"{\"return\": {}, \"id\": \"old\"}\n{\"return\": 4")
        .await; // cut short
    peer.answer_sync(id).await;
    peer.serve("guest-ping", json!({})).await;
}

/// A sync reply with another id, then ours without a sentinel, then ours properly; then the
/// host name `vm1`.
pub(crate) async fn old_sync_ids<S: AsyncRead + AsyncWrite + Unpin>(mut peer: FakeAgent<S>) {
    let id = peer.expect_sync().await;
    peer.sentinel_and_sync_reply(id + 1).await;
    // Our id without a sentinel in front is not trusted either.
    peer.reply_bytes(format!("{{\"return\": {id}}}\n").as_bytes())
        .await;
    peer.sentinel_and_sync_reply(id).await;
    peer.serve("guest-get-host-name", json!({"host-name": "vm1"}))
        .await;
}

/// A guest-info reply (version 9.9.9) written one byte per write.
pub(crate) async fn a_reply_one_byte_at_a_time<S: AsyncRead + AsyncWrite + Unpin>(
    mut peer: FakeAgent<S>,
) {
    peer.sync().await;
    let r = peer.request().await;
    let text = format!(
        "{{\"return\": {{\"version\": \"9.9.9\", \"supported_commands\": [{{\"name\": \"guest-ping\", \"enabled\": true, \"success-response\": true}}]}}, \"id\": {}}}\r\n",
        r.id.unwrap()
    );
    peer.write_slowly(text.as_bytes()).await;
}

/// A file (handle 7) whose size is unknown and whose end never comes; returns once the client
/// closed the handle.
pub(crate) async fn a_file_that_never_ends<S: AsyncRead + AsyncWrite + Unpin>(
    mut peer: FakeAgent<S>,
) {
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
}

/// After the sync, a reply that opens a string and never ends it: 1 MiB without a newline
/// (the client's limit is below that). Then a new sync and a ping.
pub(crate) async fn a_flood_without_newlines<S: AsyncRead + AsyncWrite + Unpin>(
    mut peer: FakeAgent<S>,
) {
    peer.sync().await;
    let _ = peer.request().await;
    peer.reply_bytes(b"{\"return\": \"").await;
    for _ in 0..64 {
        peer.reply_bytes(&[b'x'; 16 * 1024]).await;
    }
    // The client gave up on this reply; it resyncs on the next call.
    peer.sync().await;
    peer.serve("guest-ping", json!({})).await;
}
