//! The `qga` binary against the real qemu-ga inside a tiny TCG guest (`qga_testing::vm`): the
//! commands that host-mode qemu-ga must refuse (set-password, fsfreeze, shutdown) and the
//! guest's real NIC. One VM for the queries and one for shutdown.

use std::time::{Duration, Instant};

use qga_testing::vm::{DEFAULT_MAC, GUEST_IP, Vm, VmImage, VmOptions};

mod support;
use support::{AGENT, Run, run_with};

/// `qga --socket <vm's agent socket> ARGS` with `stdin`.
fn qga(vm: &Vm, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = support::qga(&["--socket", vm.qga_socket().to_str().expect("UTF-8 path")]);
    cmd.args(args);
    run_with(cmd, stdin)
}

fn boot() -> Vm {
    let image = VmImage::build().unwrap_or_else(|e| panic!("cannot build the test VM: {e}"));
    let vm = Vm::boot(&image, VmOptions::default())
        .unwrap_or_else(|e| panic!("cannot boot the test VM: {e}"));
    eprintln!(
        "[boot] agent answered {:.1} s after QEMU started",
        vm.boot_time().as_secs_f64()
    );
    vm
}

/// Field 2 of `user`'s line in the guest's /etc/shadow, read with `qga exec`.
fn shadow_hash(vm: &Vm, user: &str) -> String {
    let shadow = qga(vm, &["exec", "cat", "/etc/shadow"], b"").ok().out();
    shadow
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .map(|f| f[1].to_owned())
        .unwrap_or_else(|| panic!("{user} not in /etc/shadow: {shadow}"))
}

#[test]
fn cli_set_password_fsfreeze_and_interfaces_on_one_vm() {
    let start = Instant::now();
    let vm = boot();

    // set-password: plain from stdin (one trailing newline dropped), crypted, unknown user.
    assert_eq!(shadow_hash(&vm, "tester"), "*");
    let r = qga(&vm, &["set-password", "tester"], b"cli pass 1\n").ok();
    assert_eq!(r.out(), "password set for tester\n");
    let plain = shadow_hash(&vm, "tester");
    let salt = plain.split('$').nth(2).unwrap_or_else(|| panic!("{plain}"));
    let again = qga(
        &vm,
        &["exec", "mkpasswd", "-m", "sha512", "-S", salt, "cli pass 1"],
        b"",
    )
    .ok();
    assert_eq!(
        again.out().trim(),
        plain,
        "the stored hash is not of the password sent"
    );
    let hash = qga(
        &vm,
        &["exec", "mkpasswd", "-m", "sha512", "cli pass 2"],
        b"",
    )
    .ok()
    .out();
    let r = qga(
        &vm,
        &["--json", "set-password", "--crypted", "tester"],
        hash.as_bytes(),
    )
    .ok();
    assert_eq!(r.json(), serde_json::json!({"user": "tester"}));
    assert_eq!(shadow_hash(&vm, "tester"), hash.trim());
    qga(&vm, &["set-password", "nosuchuser"], b"x\n").fails(AGENT);
    eprintln!(
        "[set-password] done at {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // fsfreeze status | freeze | thaw.
    assert_eq!(
        qga(&vm, &["fsfreeze", "status"], b"").ok().out(),
        "thawed\n"
    );
    let r = qga(&vm, &["--json", "fsfreeze", "freeze"], b"").ok();
    let frozen = r.json()["frozen"].as_i64().expect("frozen count");
    assert!(frozen >= 1, "{}", r.out());
    assert_eq!(
        qga(&vm, &["fsfreeze", "status"], b"").ok().out(),
        "frozen\n"
    );
    assert_eq!(
        qga(&vm, &["--json", "fsfreeze", "status"], b"").ok().json(),
        serde_json::json!({"status": "frozen"})
    );
    let r = qga(&vm, &["exec", "true"], b"").fails(AGENT);
    assert!(r.stderr.contains("guest-exec"), "{}", r.stderr);
    let r = qga(&vm, &["fsfreeze", "thaw"], b"").ok();
    assert!(
        r.out().starts_with("thawed ") && !r.out().starts_with("thawed 0 "),
        "{}",
        r.out()
    );
    assert_eq!(
        qga(&vm, &["fsfreeze", "status"], b"").ok().out(),
        "thawed\n"
    );
    eprintln!("[fsfreeze] done at {:.1} s", start.elapsed().as_secs_f64());

    // interfaces --json: the agent's list verbatim.
    let list = qga(&vm, &["interfaces", "--json"], b"").ok().json();
    let nic = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|i| i["hardware-address"] == DEFAULT_MAC)
        .unwrap_or_else(|| panic!("no interface with {DEFAULT_MAC}: {list}"));
    let addrs = nic["ip-addresses"].as_array().expect("ip-addresses");
    assert!(
        addrs.iter().any(|a| a["ip-address"] == GUEST_IP
            && a["prefix"] == 24
            && a["ip-address-type"] == "ipv4"),
        "{nic}"
    );
    let human = qga(&vm, &["interfaces"], b"").ok().out();
    assert!(
        human.contains(DEFAULT_MAC) && human.contains("10.0.2.15/24"),
        "{human}"
    );
    eprintln!(
        "[cli_set_password_fsfreeze_and_interfaces_on_one_vm] {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn cli_shutdown_exits_zero_and_qemu_exits() {
    let start = Instant::now();
    let vm = boot();
    let r = qga(&vm, &["shutdown"], b"").ok();
    assert_eq!(r.out(), "shutdown accepted by the agent\n");
    let status = vm.wait_exit(Duration::from_secs(90));
    assert!(
        status.is_some(),
        "QEMU still runs 90 s after qga shutdown\n{}",
        vm.console_tail(20)
    );
    assert!(
        vm.console_text().contains("shutdown: poweroff"),
        "{}",
        vm.console_tail(20)
    );
    eprintln!(
        "[cli_shutdown_exits_zero_and_qemu_exits] {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
