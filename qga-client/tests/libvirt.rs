//! The libvirt transport against a real libvirtd (`qga_testing::libvirt`: a private daemon in
//! its own namespaces) and the real test guest as a transient domain. One daemon, one boot,
//! every check in order: the dedicated calls and their taint check come before the first raw
//! agent command; the agent kill, the keepalive and the daemon restart come last.
//!
//! Needs root, QEMU and libvirt (`apt-get install libvirt-daemon-system libvirt-clients`, which
//! ./scripts/test does); without them it fails with that hint.

use std::time::Duration;

use qga_client::libvirt::{AgentState, DomainRef, KeepaliveConfig, LibvirtConnection, proto};
use qga_client::proto::RawCommand;
use qga_client::proto::qga::FsfreezeStatus;
use qga_client::{Client, Error, ExecRequest};
use qga_testing::libvirt::{Libvirtd, LibvirtdOptions};
use qga_testing::vm::{DEFAULT_MAC, GUEST_IP, VmImage};
use serde_json::json;
use tokio::time::Instant;

const CUSTOM_GA: &str = "custom-ga-command";

/// The daemon pings its clients after 1 s of silence and drops one after 3 s without an
/// answer: the keepalive check below needs only seconds.
const SERVER_KEEPALIVE: (u32, u32) = (1, 2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn sh(client: &Client, script: &str) -> String {
    let out = client
        .exec(ExecRequest::new("/bin/sh").args(["-c", script]))
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {out:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_agent(
    libvirt: &LibvirtConnection,
    uuid: proto::Uuid,
    state: AgentState,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    let mut rx = libvirt.watch_agent(uuid);
    let reached = tokio::time::timeout(limit, rx.wait_for(|s| *s == state))
        .await
        .map(|r| r.is_ok());
    assert!(
        reached == Ok(true),
        "agent not {state:?} within {limit:?} (now {:?})",
        *rx.borrow()
    );
    start.elapsed()
}

#[test]
fn libvirt_transport_against_a_real_libvirtd() {
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let options = LibvirtdOptions {
        keepalive: Some(SERVER_KEEPALIVE),
    };
    let libvirtd = Libvirtd::start_with(&options).unwrap_or_else(|e| panic!("{e}"));
    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = domain.name().to_owned();
    let uuid = proto::Uuid::parse(domain.uuid()).expect("uuid");
    let rt = runtime();

    // Our own pings only after a minute: below, the daemon's pings (answered) keep it alive.
    let libvirt = rt
        .block_on(
            LibvirtConnection::builder()
                .socket(libvirtd.socket_path())
                .keepalive(Some(KeepaliveConfig {
                    interval: Duration::from_secs(60),
                    count: 5,
                }))
                .connect(),
        )
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let stats = libvirt.stats();
    assert_eq!(stats.sessions, 1);
    assert!(stats.events, "event registration: {stats:?}");
    assert!(libvirt.lib_version().is_some_and(|v| v.0 >= 1));

    // Unknown domains, by name and by UUID.
    rt.block_on(async {
        for missing in ["no-such-domain", "00000000-1111-2222-3333-444444444444"] {
            let e = Client::builder()
                .connect_libvirt(&libvirt, missing)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::DomainNotFound { .. }), "{e:?}");
            assert!(
                e.to_string().contains(missing) && e.to_string().contains("not found"),
                "{e}"
            );
        }
    });

    let client = rt
        .block_on(
            Client::builder()
                .timeout(Duration::from_secs(20))
                .connect_libvirt(&libvirt, name.as_str()),
        )
        .expect("client by name");
    let by_uuid = rt
        .block_on(libvirt.client(DomainRef::Uuid(uuid)))
        .expect("client by uuid");

    // Dedicated calls first: none of them may taint the domain.
    rt.block_on(async {
        client.ping().await.expect("ping");
        by_uuid.ping().await.expect("ping by uuid");
        client.sync().await.expect("sync is libvirt's job");
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let guest_ns = client.time().await.expect("time");
        assert!(
            (guest_ns - now_ns).abs() < 120_000_000_000,
            "guest {guest_ns} host {now_ns}"
        );
        let os = client.osinfo().await.expect("osinfo");
        assert_eq!(os.id.as_deref(), Some("novaguest-test"), "{os:?}");
        assert!(os.kernel_release.is_some());
        assert!(!client.hostname().await.expect("hostname").is_empty());
        client.users().await.expect("users");
        let fs = client.fsinfo().await.expect("fsinfo");
        assert!(fs.iter().any(|f| f.mountpoint == "/mnt/data"), "{fs:?}");
        let nics = client.network_interfaces().await.expect("interfaces");
        assert!(
            nics.iter().any(|n| n.has_mac(DEFAULT_MAC)
                && n.ip_addresses.iter().any(|a| a.ip_address == GUEST_IP)),
            "{nics:?}"
        );
        client
            .set_user_password("tester", b"libvirt-pw-1", false)
            .await
            .expect("set_user_password");
        let guard = client
            .fsfreeze(None, Duration::from_secs(60))
            .await
            .expect("fsfreeze");
        assert!(guard.frozen() >= 1, "{}", guard.frozen());
        assert!(guard.thaw().await.expect("thaw") >= 1);
        let e = client
            .set_user_password("nosuchuser", b"x", false)
            .await
            .unwrap_err();
        assert!(e.agent_error().is_some(), "{e:?}");
    });
    let taints = domain.taints();
    assert!(
        !taints.iter().any(|t| t == CUSTOM_GA),
        "a dedicated call tainted: {taints:?}"
    );

    // Raw agent commands: they work and taint.
    rt.block_on(async {
        let info = client.info().await.expect("info");
        assert!(info.version.starts_with("7.2"), "{}", info.version);
        let raw = client
            .call_raw(&RawCommand::new("guest-ping"))
            .await
            .expect("raw ping");
        assert_eq!(raw, json!({}));
        let e = client
            .call_raw(&RawCommand::new("guest-no-such-command"))
            .await
            .unwrap_err();
        assert!(e.is_command_not_found(), "{e:?}");
        // The password set above, through the dedicated call.
        let shadow = sh(&client, "grep '^tester:' /etc/shadow").await;
        assert!(shadow.starts_with("tester:$6$"), "{shadow}");
        // A file larger than one libvirt chunk, there and back.
        let data: Vec<u8> = (0..5 * 1024 * 1024 + 17)
            .map(|i: u32| (i * 7 + i / 251) as u8)
            .collect();
        let summary = client
            .write_file("/tmp/libvirt-roundtrip", &data)
            .await
            .expect("write_file");
        assert!(summary.verified);
        let back = client
            .read_file("/tmp/libvirt-roundtrip")
            .await
            .expect("read_file");
        assert!(back == data, "read back {} bytes", back.len());
        let sum = sh(&client, "sha256sum /tmp/libvirt-roundtrip").await;
        assert!(sum.starts_with(&summary.sha256_hex()), "{sum}");
        assert_eq!(
            client.fsfreeze_status().await.unwrap(),
            FsfreezeStatus::Thawed
        );
    });
    assert!(domain.taints().iter().any(|t| t == CUSTOM_GA));

    // libvirt's own client still works while ours runs: we never touch the channel.
    let ours = rt.spawn({
        let client = client.clone();
        async move {
            for _ in 0..30 {
                client.call_raw(&RawCommand::new("guest-ping")).await?;
            }
            Ok::<(), Error>(())
        }
    });
    for _ in 0..3 {
        let pong = domain
            .agent_command(&json!({"execute": "guest-ping"}))
            .unwrap_or_else(|e| panic!("virsh qemu-agent-command: {e}"));
        assert_eq!(pong, json!({}));
    }
    rt.block_on(ours).unwrap().expect("our pings beside virsh");

    // The listing.
    let listed = rt
        .block_on(libvirt.running_domains())
        .expect("running_domains");
    let me = listed.iter().find(|d| d.uuid == uuid).expect("listed");
    assert_eq!(
        (me.name.as_str(), me.agent),
        (name.as_str(), AgentState::Connected)
    );
    assert!(me.state.is_running());

    // The agent killed in the guest: the lifecycle event makes calls fail at once, then the
    // agent comes back (the guest's init restarts it after 1 s).
    rt.block_on(async {
        assert_eq!(client.libvirt_agent_state(), Some(AgentState::Connected));
        let kill = json!({"path": "/bin/sh", "arg": ["-c", "sleep 0.3; kill -KILL $(pidof qemu-ga)"]});
        client
            .call_raw(&RawCommand::new("guest-exec").with_arguments(kill))
            .await
            .expect("spawn the kill");
        let down = wait_agent(&libvirt, uuid, AgentState::Disconnected, Duration::from_secs(20)).await;
        let start = Instant::now();
        let e = client.ping().await.unwrap_err();
        let fast = start.elapsed();
        assert!(matches!(e, Error::NotConnected), "{e:?}");
        assert!(fast < Duration::from_millis(50), "NotConnected after {fast:?}");
        let e = client.set_user_password("tester", b"y", false).await.unwrap_err();
        assert!(matches!(e, Error::NotConnected), "{e:?}");
        let back = wait_agent(&libvirt, uuid, AgentState::Connected, Duration::from_secs(60)).await;
        client.ping().await.expect("ping after the agent came back");
        eprintln!("agent down event {down:?} after the kill call; NotConnected in {fast:?}; back {back:?} later");
    });

    // Keepalive: idle well past the daemon's interval and count; its pings are answered.
    rt.block_on(async {
        let before = libvirt.stats();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let after = libvirt.stats();
        assert_eq!(after.sessions, before.sessions, "{before:?} -> {after:?}");
        assert!(after.connected);
        assert!(
            after.pongs_sent >= before.pongs_sent + 2,
            "{before:?} -> {after:?}"
        );
        client.ping().await.expect("ping after idling");
        // Our own pings, on a second connection that pings first.
        let pinging = LibvirtConnection::builder()
            .socket(libvirtd.socket_path())
            .keepalive(Some(KeepaliveConfig {
                interval: Duration::from_millis(400),
                count: 3,
            }))
            .connect()
            .await
            .expect("second connection");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let s = pinging.stats();
        assert!(s.pings_sent >= 3 && s.connected && s.sessions == 1, "{s:?}");
        pinging
            .client(name.as_str())
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    });

    // libvirtd restarted under the connected client: it reconnects by itself.
    let restart = libvirtd.restart().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(60) {
            match client.ping().await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        assert!(last.is_none(), "no ping after the restart: {last:?}");
        let s = libvirt.stats();
        assert_eq!(s.sessions, 2, "{s:?}");
        assert!(s.connected && s.events);
        eprintln!(
            "libvirtd restart took {restart:?}; ping through the new session {:?} later",
            start.elapsed()
        );
        client.info().await.expect("raw command after the restart");
    });
    drop(by_uuid);
    drop(client);
    drop(libvirt);
    drop(rt);
    drop(domain);
}
