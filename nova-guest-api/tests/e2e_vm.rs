//! The whole chain, end to end: a REAL Keystone, the real nova-guest-api, the real
//! nova-guest-agent and a booted VM (QEMU TCG, the real qemu-ga on virtio-serial,
//! `qga_testing::vm`), with the suite's fake Nova/Neutron describing that VM (its real MAC)
//! and a new network configuration. Everything the test checks inside the guest it checks
//! through the chain itself (the admin's `exec`), since qemu-ga serves one client at a time and
//! the agent holds it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use qga_testing::daemon::{Daemon, workspace_binary, write_secret};
use qga_testing::vm::{DEFAULT_MAC, GUEST_HOSTNAME, Vm, VmImage, VmOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

/// `ID=` of the guest's /etc/os-release (tests/vm/build-guest.sh).
const GUEST_OS_ID: &str = "novaguest-test";

struct Chain {
    /// The agent's log, shown when the test fails.
    agent_log: std::path::PathBuf,
    api: Api,
    http: Http,
    actions: String,
    guest: String,
    alice: String,
    admin: String,
}

impl Drop for Chain {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let tail = |text: String| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            eprintln!(
                "--- nova-guest-agent's log (tail):\n{}\n--- nova-guest-api's log (tail):\n{}",
                tail(std::fs::read_to_string(&self.agent_log).unwrap_or_default()),
                tail(self.api.logs())
            );
        }
    }
}

impl Chain {
    /// An action; TCG on a loaded machine is slow, so an answer gets up to 3 minutes.
    async fn act(&self, token: &str, body: Value) -> Reply {
        let h = [("x-auth-token", token)];
        self.http
            .send_within(
                Duration::from_secs(180),
                http::Method::POST,
                &self.actions,
                &h,
                Some(bytes::Bytes::from(body.to_string())),
            )
            .await
    }

    /// `sh -c script` in the guest through the API (an admin's exec); its stdout.
    async fn sh(&self, script: &str) -> String {
        let r = self
            .act(
                &self.admin,
                json!({"exec": {"path": "/bin/sh", "args": ["-c", script], "timeout": 150}}),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "{script}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let out = &r.json()["exec"];
        assert_eq!(out["exitcode"], 0, "{script}: {out}");
        out["out-data"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_chain_on_a_booted_vm() {
    let started = Instant::now();
    let env = env();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let vm = Vm::boot(&image, VmOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("VM booted in {:?}", vm.boot_time());

    // The compute host's agent, in front of the VM's agent socket and QMP (for presence).
    let dir = tempfile::tempdir().unwrap();
    let socks = dir.path().join("socks");
    std::fs::create_dir_all(&socks).unwrap();
    std::os::unix::fs::symlink(vm.qga_socket(), socks.join(format!("{E2E_VM}.sock"))).unwrap();
    std::os::unix::fs::symlink(vm.qmp_socket(), socks.join(format!("{E2E_VM}.qmp"))).unwrap();
    write_secret(
        &dir.path().join("agent-token"),
        &agent_token_for("127.0.0.1"),
    );
    let agent_config = dir.path().join("nova-guest.conf");
    std::fs::write(
        &agent_config,
        format!(
            "[DEFAULT]\nhost = 127.0.0.1\n\n[agent]\nlisten_address = 127.0.0.1\nlisten_port = 0\n\
             auth_token_file = {d}/agent-token\ntransport = socket\nsocket_path_template = {d}/socks/{{uuid}}.sock\n\
             qmp_socket_path_template = {d}/socks/{{uuid}}.qmp\n\
             enabled_actions = ping, set-password, inject-file, apply-networking, exec\n\
             apply_networking_mode = render\ncommand_timeout = 170\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let agent = Daemon::start(
        &workspace_binary("nova-guest-agent", "nova-guest-agent"),
        &agent_config,
        &dir.path().join("agent.log"),
        &[("RUST_LOG", "info")],
    );
    let api = Api::start(
        &keystone_config(env, &env.keystone.url, "", 300)
            .replace(
                &format!(":{}", env.agent.port),
                &format!(":{}", agent.addr().port()),
            )
            .replace("agent_timeout = 5\n", "agent_timeout = 175\n"),
    );
    let alpha = env.keystone.project("alpha");
    let chain = Chain {
        agent_log: agent.log_path().to_owned(),
        actions: api.url(&format!("/v1/{alpha}/servers/{E2E_VM}/actions")),
        guest: api.url(&format!("/v1/{alpha}/servers/{E2E_VM}/guest")),
        http: Http::default(),
        alice: env.keystone.token("alice").await,
        admin: env.keystone.system_admin_token().await,
        api,
    };
    let step = |what: &str, t: Instant| eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());

    // 1. The seed's curl example, verbatim but for the address.
    let t = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args(["-g", "-i", "-sS", "-X", "POST"])
        .arg(
            chain
                .api
                .url(&format!("/v1/{alpha}/networking/{E2E_VM}/actions")),
        )
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-H",
            "User-Agent: nova-guest keystoneauth1/4.2.0 python-requests/2.24.0 CPython/3.6.8",
        ])
        .args(["-H", &format!("X-Auth-Token: {}", chain.alice)])
        .args(["-d", r#"{"apply-networking": null}"#])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}\n{}", agent.logs());
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["apply-networking"]["success"], true, "{body}");
    step("apply-networking", t);
    // The new address on the NIC with the VM's MAC, in guest-network-get-interfaces.
    let r = chain.http.get(&chain.guest, Some(&chain.alice)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let g = r.json()["guest"].clone();
    let nic = qga_testing::vm::nic_with_mac(&g["interfaces"], DEFAULT_MAC)
        .unwrap_or_else(|| panic!("no interface with {DEFAULT_MAC}: {g}"))
        .clone();
    assert!(nic.to_string().contains(E2E_IP), "{nic}");
    assert!(
        !nic.to_string().contains("10.0.2.15"),
        "the old address stays: {nic}"
    );
    // GET .../guest: the VM's OS and hostname too (and no compute host name).
    assert_eq!(g["os"]["id"], GUEST_OS_ID, "{g}");
    assert_eq!(g["hostname"], GUEST_HOSTNAME, "{g}");
    assert!(g.get("host").is_none());
    let name = nic["name"].as_str().unwrap().to_owned();
    // The MTU (qemu-ga does not report it) and the route, read inside the guest.
    let mtu = chain.sh(&format!("cat /sys/class/net/{name}/mtu")).await;
    assert_eq!(mtu.trim(), E2E_MTU.to_string());
    let routes = chain.sh("ip route").await;
    assert!(
        routes.contains(&format!("{E2E_ROUTE} via 10.0.2.2")),
        "{routes}"
    );
    assert!(routes.contains("default via 10.0.2.2"), "{routes}");

    // 2. set-password without a password: generated, returned once, in effect.
    let t = Instant::now();
    let r = chain
        .act(
            &chain.alice,
            json!({"set-password": {"username": "tester"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let password = r.json()["set-password"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    step("set-password", t);
    let shadow = chain.sh("grep '^tester:' /etc/shadow").await;
    let hash = shadow.split(':').nth(1).unwrap().to_owned();
    let salt = hash.split('$').nth(2).unwrap();
    let ours = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, &password])
        .output()
        .expect("openssl (Debian package openssl)");
    assert_eq!(String::from_utf8_lossy(&ours.stdout).trim(), hash);
    assert!(!chain.api.logs().contains(&password) && !agent.logs().contains(&password));

    // 3. inject-file of 5 MiB, checked inside the guest.
    let t = Instant::now();
    let data: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = chain
        .act(
            &chain.alice,
            json!({"inject-file": {"path": "/tmp/blob.bin",
                "contents": base64::engine::general_purpose::STANDARD.encode(&data)}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sha = hex::encode(Sha256::digest(&data));
    assert_eq!(r.json()["inject-file"]["sha256"], sha);
    step("inject-file 5 MiB", t);
    let inside = chain
        .sh("sha256sum /tmp/blob.bin; stat -c %s:%a /tmp/blob.bin")
        .await;
    assert!(inside.contains(&sha), "{inside}");
    assert!(inside.contains(&format!("{}:600", data.len())), "{inside}");

    // 4. The guest agent killed inside the VM: 409 at once (QMP presence), 200 once back.
    let ping = json!({"ping": null});
    chain
        .sh("(sleep 0.5; kill -KILL $(pidof qemu-ga)) >/dev/null 2>&1 &")
        .await;
    let down = Instant::now();
    let mut fast_409 = None;
    while down.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let r = chain.act(&chain.alice, ping.clone()).await;
        if r.status == 409 {
            fast_409 = Some(t.elapsed());
            break;
        }
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = fast_409.unwrap_or_else(|| panic!("no 409 while the agent was down"));
    assert!(took < Duration::from_secs(1), "the 409 took {took:?}");
    let mut back = false;
    while down.elapsed() < Duration::from_secs(60) {
        if chain.act(&chain.alice, ping.clone()).await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the guest agent did not come back");
    step("agent killed, 409, then back", down);

    // 5. The VM shut down: 409, not a hang.
    chain.sh("(sleep 0.5; poweroff -f) >/dev/null 2>&1 &").await;
    assert!(
        vm.wait_exit(Duration::from_secs(60)).is_some(),
        "the VM did not stop"
    );
    let t = Instant::now();
    let r = chain.act(&chain.alice, ping.clone()).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let r = chain.act(&chain.alice, ping).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    eprintln!(
        "the whole chain in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
