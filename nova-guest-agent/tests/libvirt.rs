//! The real binary with `transport = libvirt` in front of a real libvirtd
//! (`qga_testing::libvirt`) and the real test guest as a transient domain: the actions run
//! for real inside the guest, through libvirt, while libvirt's own client (`virsh`, which the
//! checks below use to look inside the guest) keeps working beside the daemon.
//!
//! Needs root, QEMU and libvirt (`apt-get install libvirt-daemon-system libvirt-clients`, which
//! ./scripts/test does); without them it fails with that hint.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Daemon, config_text};
use qga_testing::libvirt::Libvirtd;
use qga_testing::vm::{DEFAULT_MAC, GUEST_HOSTNAME, VmImage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const GUEST_OS_ID: &str = "novaguest-test";
const NEW_IP: &str = "10.0.2.50";
const GATEWAY: &str = "10.0.2.2";
const DNS: &str = "10.0.2.3";
const CUSTOM_GA: &str = "custom-ga-command";

fn network_data() -> Value {
    json!({
        "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": DEFAULT_MAC, "mtu": 1400,
                   "vif_id": "6e6f7661-0000-4000-8000-000000000001"}],
        "networks": [{"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": NEW_IP,
                      "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": GATEWAY}],
                      "network_id": "6e6f7661-0000-4000-8000-000000000002",
                      "services": [{"type": "dns", "address": DNS}]}],
        "services": [{"type": "dns", "address": DNS}]
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn agent_daemon_through_libvirt() {
    let started = Instant::now();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let libvirtd = Libvirtd::start().unwrap_or_else(|e| panic!("{e}"));
    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let u = domain.uuid().to_owned();
    let in_guest = |script: &str| {
        let out = domain
            .exec(script)
            .unwrap_or_else(|e| panic!("virsh guest-exec {script:?}: {e}"));
        assert!(out.success(), "{script:?}: {out:?}");
        out.stdout
    };

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "transport = libvirt\nlibvirt_socket = {}\n\
         enabled_actions = ping, set-password, inject-file, apply-networking",
        libvirtd.socket_path().display()
    );
    // socket_path_template is not used with libvirt; TCG is slow: room for each operation.
    let config = config_text(dir.path(), "/nonexistent/{uuid}.sock", &extra)
        .replace("command_timeout = 5\n", "command_timeout = 90\n");
    let mut d = Daemon::start(dir.path(), &config);

    // ping and set-password: libvirt's dedicated calls, no taint.
    let r = d.action(&u, &json!({"ping": {}}));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), d.log());
    assert_eq!(r.json(), json!({"ping": {"success": true}}));
    d.set_password_unlogged(&u, "tester", "n0va-libvirt-test!");
    let taints = domain.taints();
    assert!(!taints.iter().any(|t| t == CUSTOM_GA), "{taints:?}");

    // The listing: the domain, its agent connected, reachable.
    let list = d.get("/v1/instances").json();
    let me = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["uuid"] == u.as_str())
        .unwrap_or_else(|| panic!("{u} not listed: {list}"))
        .clone();
    assert_eq!(me["name"], domain.name(), "{me}");
    assert_eq!(
        (
            &me["transport"],
            &me["agent"],
            &me["state"],
            &me["reachable"]
        ),
        (
            &json!("libvirt"),
            &json!("connected"),
            &json!("running"),
            &json!(true)
        ),
        "{me}"
    );

    // An unknown instance.
    let r = d.action("6b1c1a2e-0000-4000-8000-000000000000", &json!({"ping": {}}));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "instance_not_found");

    // GET .../guest (guest-info is a raw command: the taint starts here).
    let r = d.get(&format!("/v1/instances/{u}/guest"));
    assert_eq!(r.status, 200, "{}", r.text());
    let g = &r.json()["guest"];
    assert_eq!(g["reachable"], true, "{g}");
    assert_eq!(g["os"]["id"], GUEST_OS_ID, "{g}");
    assert_eq!(g["hostname"], GUEST_HOSTNAME, "{g}");
    assert!(
        qga_testing::vm::nic_with_mac(&g["interfaces"], DEFAULT_MAC).is_some(),
        "{g}"
    );

    // set-password really changed /etc/shadow (checked with virsh, beside the daemon).
    let shadow = in_guest("grep '^tester:' /etc/shadow");
    assert!(shadow.starts_with("tester:$6$"), "{shadow}");

    // inject-file: 300 KiB, several libvirt chunks.
    let data: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 253) as u8).collect();
    let r = d.action(
        &u,
        &json!({"inject-file": {"path": "/tmp/injected.bin", "contents": B64.encode(&data)}}),
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), d.log());
    let sum = hex(&Sha256::digest(&data));
    assert_eq!(
        r.json(),
        json!({"inject-file": {"size": data.len(), "sha256": sum}})
    );
    let inside = in_guest("sha256sum /tmp/injected.bin");
    assert!(inside.starts_with(&sum), "{inside}");

    // apply-networking, render mode.
    let t = Instant::now();
    let r = d.action(
        &u,
        &json!({"apply-networking": {"network_data": network_data()}}),
    );
    eprintln!("apply-networking took {:?}", t.elapsed());
    assert_eq!(r.status, 200, "{}\n{}", r.text(), d.log());
    let msg = &r.json()["apply-networking"]["message"];
    assert_eq!(
        (&msg["exited"], &msg["exitcode"]),
        (&json!(true), &json!(0)),
        "{msg}"
    );
    assert!(
        msg["out-data"]
            .as_str()
            .unwrap()
            .contains("apply-networking: done"),
        "{msg}"
    );
    let addrs = in_guest("ip -4 addr show dev eth0; cat /sys/class/net/eth0/mtu; ip -4 route");
    assert!(addrs.contains(&format!("inet {NEW_IP}/24")), "{addrs}");
    assert!(addrs.contains("\n1400\n"), "{addrs}");
    assert!(
        addrs.contains(&format!("default via {GATEWAY} dev eth0")),
        "{addrs}"
    );

    // The agent killed in the guest: 409 at once, then back.
    domain.kill_agent().unwrap();
    let down = qga_testing::wait_until(Duration::from_secs(20), || {
        let r = d.action(&u, &json!({"ping": {}}));
        r.status == 409
    });
    assert!(down, "ping never saw the agent down");
    let t = Instant::now();
    let r = d.action(&u, &json!({"ping": {}}));
    let fast = t.elapsed();
    assert!(r.status == 409 || r.status == 200, "{}", r.text());
    if r.status == 409 {
        assert!(fast < Duration::from_millis(500), "409 after {fast:?}");
    }
    let back = qga_testing::wait_until(Duration::from_secs(60), || {
        d.action(&u, &json!({"ping": {}})).status == 200
    });
    assert!(back, "the agent did not come back\n{}", d.log());

    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        d.log()
    );
    eprintln!("whole test took {:?}", started.elapsed());
}
