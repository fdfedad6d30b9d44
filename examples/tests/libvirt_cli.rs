//! `qga --libvirt DOMAIN` against a real libvirtd (`qga_testing::libvirt`) with the test guest
//! as a transient domain: one daemon, one boot. The commands served by libvirt's dedicated
//! calls come first and must leave the domain untainted; the raw ones follow; shutdown (a
//! dedicated call too) ends the domain.
//!
//! Needs root, QEMU and libvirt (`apt-get install libvirt-daemon-system libvirt-clients`, which
//! ./scripts/test does); without them it fails with that hint.

use std::time::{Duration, Instant};

use qga_testing::libvirt::Libvirtd;
use qga_testing::vm::{DEFAULT_MAC, GUEST_IP, VmImage};

mod support;
use support::{AGENT, NO_DOMAIN, Run, UNAVAILABLE, USAGE, run_with};

/// `qga ARGS` with `stdin`.
fn qga(args: &[&str], stdin: &[u8]) -> Run {
    run_with(support::qga(args), stdin)
}

#[test]
fn qga_through_libvirt() {
    let start = Instant::now();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let libvirtd = Libvirtd::start().unwrap_or_else(|e| panic!("{e}"));
    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = libvirtd.socket_path().to_str().expect("UTF-8").to_owned();
    let name = domain.name().to_owned();
    let on = |extra: &[&str], stdin: &[u8]| {
        let mut args = vec!["--libvirt-socket", &socket, "--libvirt", &name];
        args.extend_from_slice(extra);
        qga(&args, stdin)
    };

    // Dedicated calls: ping, hostname, osinfo, time, users, set-password, fsfreeze.
    assert_eq!(on(&["ping"], b"").ok().out(), "ok\n");
    // By UUID, and the global flags after the subcommand.
    let uuid = domain.uuid().to_owned();
    qga(
        &["ping", "--libvirt", &uuid, "--libvirt-socket", &socket],
        b"",
    )
    .ok();
    assert!(!on(&["hostname"], b"").ok().out().trim().is_empty());
    assert!(on(&["osinfo"], b"").ok().out().contains("novaguest-test"));
    on(&["time"], b"").ok();
    on(&["users"], b"").ok();
    let human = on(&["interfaces"], b"").ok().out();
    assert!(
        human.contains(DEFAULT_MAC) && human.contains(&format!("{GUEST_IP}/24")),
        "{human}"
    );
    let r = on(&["set-password", "tester"], b"cli-libvirt-pw\n").ok();
    assert_eq!(r.out(), "password set for tester\n");
    on(&["set-password", "nosuchuser"], b"x\n").fails(AGENT);
    let r = on(&["--json", "fsfreeze", "freeze"], b"").ok();
    assert!(
        r.json()["frozen"].as_i64().is_some_and(|n| n >= 1),
        "{}",
        r.out()
    );
    assert!(
        on(&["fsfreeze", "thaw"], b"")
            .ok()
            .out()
            .starts_with("thawed ")
    );
    let taints = domain.taints();
    assert!(
        !taints.iter().any(|t| t == "custom-ga-command"),
        "{taints:?}"
    );

    // Raw commands.
    let info = on(&["--json", "info"], b"").ok().json();
    assert!(
        info["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("7.2")),
        "{info}"
    );
    assert_eq!(
        on(&["--json", "raw", r#"{"execute":"guest-ping"}"#], b"")
            .ok()
            .out(),
        "{}\n"
    );
    let shadow = on(&["exec", "grep", "^tester:", "/etc/shadow"], b"")
        .ok()
        .out();
    assert!(shadow.starts_with("tester:$6$"), "{shadow}");
    let r = on(
        &["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        b"",
    );
    assert_eq!(
        (r.code, r.out().as_str(), r.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("blob");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).expect("write local");
    let local_s = local.to_str().expect("UTF-8");
    on(&["put", local_s, "/tmp/cli-blob"], b"").ok();
    let back = dir.path().join("back");
    on(
        &["get", "/tmp/cli-blob", back.to_str().expect("UTF-8")],
        b"",
    )
    .ok();
    assert!(std::fs::read(&back).expect("read back") == data);
    assert!(domain.taints().iter().any(|t| t == "custom-ga-command"));

    // Errors: an unknown domain (by name and by UUID), libvirt's socket missing, qmp.
    for missing in ["no-such-domain", "6b1c1a2e-0000-4000-8000-000000000000"] {
        let r = qga(
            &["--libvirt-socket", &socket, "--libvirt", missing, "ping"],
            b"",
        )
        .fails(NO_DOMAIN);
        assert!(
            r.stderr.contains(missing) && r.stderr.contains("not found"),
            "{}",
            r.stderr
        );
    }
    let r = qga(
        &[
            "--libvirt-socket",
            "/no/such/libvirt-sock",
            "--libvirt",
            &name,
            "ping",
        ],
        b"",
    )
    .fails(UNAVAILABLE);
    assert!(r.stderr.contains("/no/such/libvirt-sock"), "{}", r.stderr);
    on(&["qmp", "status"], b"").fails(USAGE);

    // Shutdown through the dedicated call; the transient domain goes away.
    assert_eq!(
        on(&["shutdown"], b"").ok().out(),
        "shutdown accepted by the agent\n"
    );
    let gone = qga_testing::wait_until(Duration::from_secs(90), || domain.state() != "running");
    assert!(gone, "{name} still runs 90 s after qga shutdown");
    let r = on(&["ping"], b"");
    assert!(
        r.code == NO_DOMAIN || r.code == UNAVAILABLE,
        "{:?}",
        r.stderr
    );
    eprintln!(
        "[qga_through_libvirt] {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
