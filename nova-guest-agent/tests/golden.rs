//! The apply-networking renderers against golden files in `tests/golden/<case>/`:
//! `network_data.json` in; `linux.sh` (the whole script), one file per Linux stack (the
//! persistence part) and `windows.ps1` out. `UPDATE_GOLDEN=1 cargo test --test golden`
//! rewrites them; review the diff.
//!
//! The Linux scripts are also checked by `sh -n` with every shell here, and run for real in a
//! throw-away network and mount namespace (veth devices with the MACs of network_data, a tmpfs
//! over /etc), once per stack. Nothing there can reach this machine's network or /etc.

use std::path::{Path, PathBuf};
use std::process::Command;

use nova_guest_agent::netdata::{self, NetworkData};
use nova_guest_agent::render::persist::{self, Stack};
use nova_guest_agent::render::{linux, windows};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("network_data.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "golden cases missing");
    cases
}

fn load(case: &Path) -> NetworkData {
    let text = std::fs::read_to_string(case.join("network_data.json")).unwrap();
    netdata::parse(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Compares with (or, with UPDATE_GOLDEN=1, writes) a golden file.
fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run UPDATE_GOLDEN=1 cargo test -p nova-guest-agent --test golden",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendering at line {}:\n  golden:   {:?}\n  rendered: {:?}\n\
             (UPDATE_GOLDEN=1 rewrites the golden files)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn linux_scripts_and_every_stack_match_the_golden_files() {
    for case in cases() {
        let net = load(&case);
        check(&case.join("linux.sh"), &linux::render(&net));
        for stack in Stack::ALL {
            check(
                &case.join(format!("{}.txt", stack.name())),
                &persist::render(stack, &net),
            );
        }
    }
}

#[test]
fn windows_scripts_match_the_golden_files() {
    for case in cases() {
        let net = load(&case);
        match windows::render(&net) {
            Ok(script) => check(&case.join("windows.ps1"), &script),
            Err(e) => {
                assert!(e.contains("vlan"), "{e}");
                assert!(!case.join("windows.ps1").exists());
            }
        }
    }
}

#[test]
fn linux_scripts_parse_in_every_shell() {
    let shells: Vec<&str> = ["/bin/sh", "/usr/bin/dash", "/bin/bash", "/usr/bin/busybox"]
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect();
    assert!(
        shells.len() >= 2,
        "need at least two shells, found {shells:?}"
    );
    for case in cases() {
        let script = case.join("linux.sh");
        for shell in &shells {
            let mut cmd = Command::new(shell);
            if shell.ends_with("busybox") {
                cmd.arg("sh");
            }
            let out = cmd.arg("-n").arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "{shell} -n {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Runs a case's script in a new network and mount namespace with veth devices carrying the
/// links' MACs, for one stack; returns what the namespace looks like afterwards.
fn run_in_namespace(case: &Path, net: &NetworkData, stack: &str) -> String {
    let mut setup = String::from(
        "set -e\nmount -t tmpfs none /etc\nmount -t sysfs sysfs /sys\n\
         echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad\n",
    );
    for (i, link) in net.links.iter().enumerate() {
        setup.push_str(&format!(
            "ip link add veth{i} address {} type veth peer name peer{i}\nip link set peer{i} up\n",
            link.mac
        ));
    }
    setup.push_str(&format!(
        "set +e\nNOVA_GUEST_NET_STACK={stack} NOVA_GUEST_NO_RELOAD=1 sh {}\necho \"exit=$?\"\n\
         echo '--- addr'; ip -br addr\necho '--- link'; ip -o link | sed 's/^[0-9]*: //'\n\
         echo '--- route'; ip -4 route; ip -6 route | grep -v fe80\n\
         echo '--- files'; find /etc -type f | sort\n\
         echo '--- resolv.conf'; cat /etc/resolv.conf 2>/dev/null; true\n",
        case.join("linux.sh").display()
    ));
    let out = Command::new("unshare")
        .args(["--net", "--mount", "sh", "-c", &setup])
        .output()
        .expect("unshare (util-linux) is needed: apt-get install util-linux");
    let text = qga_testing::daemon::output_text(&out);
    assert!(out.status.success(), "namespace setup failed:\n{text}");
    text
}

#[test]
fn linux_script_configures_a_namespace_for_every_stack() {
    let case = golden_dir().join("static");
    let net = load(&case);
    for stack in Stack::ALL.map(Stack::name).into_iter().chain(["none"]) {
        let out = run_in_namespace(&case, &net, stack);
        let has = |needle: &str| {
            assert!(
                out.contains(needle),
                "{stack}: {needle:?} missing in\n{out}"
            )
        };
        has("exit=0");
        has(&format!("network stack: {stack}"));
        has("apply-networking: done");
        has("192.0.2.10/24");
        has("2001:db8::10/64");
        has("203.0.113.20/28");
        has("mtu 1450");
        has("default via 192.0.2.1 dev veth0");
        has("198.51.100.0/24 via 192.0.2.254 dev veth0");
        has("default via 2001:db8::1 dev veth0");
        has("nameserver 192.0.2.53\nnameserver 2001:db8::53");
        let file = match stack {
            "netplan" => "/etc/netplan/90-nova-guest.yaml",
            "networkmanager" => {
                "/etc/NetworkManager/system-connections/nova-guest-veth0.nmconnection"
            }
            "networkd" => "/etc/systemd/network/05-nova-guest-veth0.network",
            "ifcfg" => "/etc/sysconfig/network-scripts/ifcfg-veth0",
            "ifupdown" => "/etc/network/interfaces.d/50-nova-guest",
            _ => "/etc/resolv.conf",
        };
        has(file);
    }
    // A MAC that is not there fails before anything is changed.
    let mut missing = net.clone();
    missing.links[1].mac = "fa:16:3e:99:99:99".into();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("linux.sh"), linux::render(&missing)).unwrap();
    let out = run_in_namespace(dir.path(), &net, "none");
    assert!(
        out.contains("no interface has MAC address fa:16:3e:99:99:99"),
        "{out}"
    );
    assert!(out.contains("exit=1"), "{out}");
    assert!(
        !out.contains("192.0.2.10"),
        "changed before failing:\n{out}"
    );
}

#[test]
fn dhcp_case_in_a_namespace() {
    let case = golden_dir().join("dhcp");
    let net = load(&case);
    let out = run_in_namespace(&case, &net, "networkd");
    assert!(out.contains("exit=0"), "{out}");
    assert!(out.contains("mtu 1500"), "{out}");
    assert!(
        out.contains("/etc/systemd/network/05-nova-guest-veth0.network"),
        "{out}"
    );
}
