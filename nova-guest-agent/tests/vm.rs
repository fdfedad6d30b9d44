//! The real binary against a real guest: one disposable QEMU TCG VM (busybox userland, real
//! qemu-ga on virtio-serial, see `qga_testing::vm`), so that the destructive actions run for
//! real: apply-networking in render mode reconfigures the guest's eth0, set-password changes
//! /etc/shadow. The guest's network is slirp with `restrict=on`: nothing leaves the VM.
//!
//! qemu-ga (and QEMU's chardev) serves one client at a time, so the test talks to the guest
//! directly with `qga_client` only while the daemon is not connected: before starting it, and
//! after stopping it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, config_text, uuid};
use qga_client::{Client, ExecRequest};
use qga_testing::vm::{DEFAULT_MAC, GUEST_HOSTNAME, Vm, VmImage, VmOptions};
use serde_json::{Value, json};

/// `ID=` of the guest's /etc/os-release (tests/vm/build-guest.sh).
const GUEST_OS_ID: &str = "novaguest-test";
/// The new address: inside slirp's 10.0.2.0/24, so the gateway stays reachable.
const NEW_IP: &str = "10.0.2.50";
/// slirp's gateway and DNS addresses.
const GATEWAY: &str = "10.0.2.2";
const DNS: &str = "10.0.2.3";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `sh -c script` in the guest through a fresh direct connection; returns stdout.
async fn guest_sh(client: &Client, script: &str) -> String {
    let out = client
        .exec(
            ExecRequest::new("/bin/sh")
                .args(["-c", script])
                .timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap_or_else(|e| panic!("guest-exec sh -c {script:?}: {e}"));
    assert!(
        out.status.success(),
        "sh -c {script:?} in the guest: {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn connect(socket: &Path) -> Client {
    Client::connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()))
}

fn network_data() -> Value {
    json!({
        "links": [{
            "id": "tap-vm-test-0",
            "type": "phy",
            "ethernet_mac_address": DEFAULT_MAC,
            "mtu": 1400,
            "vif_id": "6e6f7661-0000-4000-8000-000000000001"
        }],
        "networks": [{
            "id": "network0",
            "type": "ipv4",
            "link": "tap-vm-test-0",
            "ip_address": NEW_IP,
            "netmask": "255.255.255.0",
            "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": GATEWAY}],
            "network_id": "6e6f7661-0000-4000-8000-000000000002",
            "services": [{"type": "dns", "address": DNS}]
        }],
        "services": [{"type": "dns", "address": DNS}]
    })
}

#[test]
fn guest_summary_apply_networking_and_set_password_on_a_real_vm() {
    let started = Instant::now();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let vm = Vm::boot(&image, VmOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("VM booted in {:?}", vm.boot_time());
    let rt = runtime();

    // Before: the shadow entry of `tester`, straight from the guest.
    let shadow_before = rt.block_on(async {
        let client = connect(vm.qga_socket()).await;
        let shadow = guest_sh(&client, "grep '^tester:' /etc/shadow").await;
        client.disconnect().await;
        shadow
    });
    assert!(shadow_before.starts_with("tester:"), "{shadow_before}");

    let dir = tempfile::tempdir().unwrap();
    let socks = dir.path().join("socks");
    std::fs::create_dir_all(&socks).unwrap();
    let u = uuid(0);
    std::os::unix::fs::symlink(vm.qga_socket(), socks.join(format!("{u}.sock"))).unwrap();
    let template = format!("{}/{{uuid}}.sock", socks.display());
    // TCG is slow: give each operation room.
    let config = config_text(
        dir.path(),
        &template,
        "enabled_actions = ping, set-password, apply-networking",
    )
    .replace("command_timeout = 5\n", "command_timeout = 90\n");
    let mut d = Daemon::start(dir.path(), &config);

    // GET .../guest: the VM's OS, hostname and its NIC.
    let r = d.get(&format!("/v1/instances/{u}/guest"));
    assert_eq!(r.status, 200, "{}", r.text());
    let g = &r.json()["guest"];
    assert_eq!(g["reachable"], true, "{g}");
    assert_eq!(g["instance"], u.as_str());
    assert_eq!(g["windows"], false);
    assert_eq!(g["os"]["id"], GUEST_OS_ID, "{g}");
    assert_eq!(g["hostname"], GUEST_HOSTNAME, "{g}");
    let commands = g["agent"]["commands"].as_array().unwrap();
    assert!(commands.contains(&json!("guest-set-user-password")), "{g}");
    let nic = qga_testing::vm::nic_with_mac(&g["interfaces"], DEFAULT_MAC)
        .unwrap_or_else(|| panic!("no interface with {DEFAULT_MAC}: {g}"));
    assert!(nic.to_string().contains("10.0.2.15"), "{nic}");

    // apply-networking, render mode (the default).
    let t = Instant::now();
    let r = d.action(
        &u,
        &json!({"apply-networking": {"network_data": network_data()}}),
    );
    eprintln!("apply-networking took {:?}", t.elapsed());
    assert_eq!(r.status, 200, "{}\n{}", r.text(), d.log());
    let body = r.json();
    let msg = &body["apply-networking"]["message"];
    assert_eq!(body["apply-networking"]["success"], true, "{body:#}");
    assert_eq!(msg["exited"], true, "{body:#}");
    assert_eq!(msg["exitcode"], 0, "{body:#}");
    let out = msg["out-data"].as_str().unwrap();
    assert!(out.contains("links: eth0"), "{out}");
    assert!(out.contains("network stack: none"), "{out}");
    assert!(out.contains("apply-networking: done"), "{out}");
    // No step failed softly on busybox: the only warning is about the missing stack.
    assert_eq!(
        msg["err-data"],
        "apply-networking: warning: no known network stack: the configuration lasts until the next boot\n",
        "{body:#}"
    );

    // set-password for tester.
    d.set_password_unlogged(&u, "tester", "n0va-Guest-test!");

    // Stop the daemon so that the guest's one agent connection is free again.
    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        d.log()
    );

    rt.block_on(async {
        let client = connect(vm.qga_socket()).await;
        let ifaces = client.network_interfaces().await.unwrap();
        let eth = ifaces
            .iter()
            .find(|i| i.has_mac(DEFAULT_MAC))
            .unwrap_or_else(|| panic!("no interface with {DEFAULT_MAC}: {ifaces:?}"));
        assert_eq!(eth.name, "eth0");
        let v4: Vec<(String, u32)> = eth
            .ip_addresses
            .iter()
            .filter(|a| !a.ip_address.contains(':'))
            .map(|a| (a.ip_address.clone(), a.prefix))
            .collect();
        assert_eq!(v4, vec![(NEW_IP.to_owned(), 24)], "{eth:?}");

        let mtu = guest_sh(&client, "cat /sys/class/net/eth0/mtu").await;
        assert_eq!(mtu.trim(), "1400");
        let routes = guest_sh(&client, "ip -4 route show").await;
        assert!(
            routes.contains(&format!("default via {GATEWAY} dev eth0")),
            "{routes}"
        );
        let resolv = guest_sh(&client, "cat /etc/resolv.conf").await;
        assert!(
            resolv
                .lines()
                .any(|l| l.trim() == format!("nameserver {DNS}")),
            "{resolv}"
        );
        // The script's private mktemp -d directory is gone.
        let left = guest_sh(
            &client,
            "ls -d \"${TMPDIR:-/tmp}\"/nova-guest-net.* /tmp/nova-guest-net.* 2>/dev/null; true",
        )
        .await;
        assert_eq!(left.trim(), "", "the rendered script was left in the guest");

        let shadow_after = guest_sh(&client, "grep '^tester:' /etc/shadow").await;
        assert_ne!(shadow_after, shadow_before);
        let hash = shadow_after.split(':').nth(1).unwrap();
        assert!(hash.starts_with("$6$"), "{shadow_after}");
        client.disconnect().await;
    });
    drop(vm);
    eprintln!("whole test took {:?}", started.elapsed());
}
