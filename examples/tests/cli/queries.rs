//! The information commands, in human and `--json` form.

use super::*;

#[test]
fn ping_prints_ok_and_json() {
    let agent = QemuGa::start();
    assert_eq!(run(on(&agent, &["ping"])).ok().out(), "ok\n");
    assert_eq!(
        run(on(&agent, &["--json", "ping"])).ok().json(),
        serde_json::json!({})
    );
}

#[test]
fn info_json_lists_every_command_with_the_blocked_ones_disabled() {
    let agent = QemuGa::start();
    let info = run(on(&agent, &["info", "--json"])).ok().json();
    let version = info["version"].as_str().expect("version");
    assert!(version.contains('.'), "{version}");
    let commands = info["commands"].as_array().expect("commands");
    assert!(commands.len() >= 40, "{}", commands.len());
    let entry = |name: &str| {
        commands
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    };
    assert_eq!(BLOCKED_RPCS.len(), 14);
    for name in BLOCKED_RPCS {
        assert_eq!(
            entry(name)["enabled"],
            false,
            "{name} must show as disabled"
        );
    }
    assert_eq!(entry("guest-ping")["enabled"], true);
    assert_eq!(entry("guest-ping")["success-response"], true);
    assert_eq!(entry("guest-shutdown")["success-response"], false);
    for c in commands {
        assert!(
            c["enabled"].is_boolean() && c["success-response"].is_boolean(),
            "{c}"
        );
    }
    let human = run(on(&agent, &["info"])).ok().out();
    assert!(
        human.contains(version) && human.contains("guest-ping"),
        "{human}"
    );
    let shutdown_line = human
        .lines()
        .find(|l| l.starts_with("guest-shutdown "))
        .expect("guest-shutdown row");
    assert!(shutdown_line.contains("no"), "{shutdown_line}");
}

#[test]
fn osinfo_human_and_json() {
    let agent = QemuGa::start();
    let os = run(on(&agent, &["--json", "osinfo"])).ok().json();
    assert_eq!(os["machine"], std::env::consts::ARCH);
    let release = os["kernel-release"].as_str().expect("kernel-release");
    let human = run(on(&agent, &["osinfo"])).ok().out();
    let line = human
        .lines()
        .find(|l| l.starts_with("kernel-release:"))
        .unwrap_or_else(|| panic!("{human}"));
    assert!(line.ends_with(release), "{line}");
}

#[test]
fn hostname_human_and_json() {
    let agent = QemuGa::start();
    let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let expected = expected.trim();
    assert_eq!(
        run(on(&agent, &["hostname"])).ok().out().trim_end(),
        expected
    );
    let json = run(on(&agent, &["hostname", "--json"])).ok().json();
    assert_eq!(json["host-name"], expected);
}

#[test]
fn interfaces_human_and_json() {
    let agent = QemuGa::start();
    let list = run(on(&agent, &["--json", "interfaces"])).ok().json();
    let lo = list
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["name"] == "lo")
        .expect("lo");
    let addrs = lo["ip-addresses"].as_array().expect("lo addresses");
    assert!(
        addrs
            .iter()
            .any(|a| a["ip-address"] == "127.0.0.1" && a["prefix"] == 8),
        "{lo}"
    );
    let human = run(on(&agent, &["interfaces"])).ok().out();
    assert!(human.starts_with("NAME"), "{human}");
    let lo_line = human
        .lines()
        .find(|l| l.starts_with("lo "))
        .expect("lo row");
    assert!(lo_line.contains("127.0.0.1/8"), "{lo_line}");
}

#[test]
fn users_human_and_json() {
    let agent = QemuGa::start();
    let users = run(on(&agent, &["--json", "users"])).ok().json();
    let users = users.as_array().expect("array");
    let human = run(on(&agent, &["users"])).ok().out();
    if users.is_empty() {
        assert_eq!(human, "no users logged in\n");
    } else {
        for u in users {
            let name = u["user"].as_str().expect("user");
            assert!(human.contains(name), "{human}");
        }
    }
}

#[test]
fn fsinfo_human_and_json() {
    let agent = QemuGa::start();
    let list = run(on(&agent, &["--json", "fsinfo"])).ok().json();
    let list = list.as_array().expect("array");
    let human = run(on(&agent, &["fsinfo"])).ok().out();
    assert!(human.starts_with("MOUNTPOINT"), "{human}");
    assert_eq!(human.lines().count(), list.len() + 1, "{human}");
    for fs in list {
        let mountpoint = fs["mountpoint"].as_str().expect("mountpoint");
        assert!(fs["type"].is_string(), "{fs}");
        assert!(
            human
                .lines()
                .any(|l| l.starts_with(&format!("{mountpoint} "))),
            "{mountpoint} missing in {human}"
        );
    }
}

#[test]
fn time_human_and_json() {
    let agent = QemuGa::start();
    let json = run(on(&agent, &["--json", "time"])).ok().json();
    let ns = json["nanoseconds"].as_i64().expect("nanoseconds");
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let host = i64::try_from(host).expect("fits");
    assert!((ns - host).abs() < 60_000_000_000, "{ns} vs {host}");
    let utc = json["utc"].as_str().expect("utc");
    assert!(utc.ends_with('Z') && utc.len() == 30, "{utc}");
    let human = run(on(&agent, &["time"])).ok().out();
    // `2026-12-01T19:47:38.576777000Z (1796154458576777000 ns since the epoch)`
    let (stamp, rest) = human.split_once(" (").unwrap_or_else(|| panic!("{human}"));
    let human_ns: i64 = rest
        .strip_suffix(" ns since the epoch)\n")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{human}"));
    assert!((human_ns - ns).abs() < 60_000_000_000, "{human} vs {ns}");
    assert_eq!(stamp.len(), 30, "{stamp}");
    assert_eq!(stamp[..4], utc[..4], "{stamp} vs {utc}");
}

#[test]
fn fsfreeze_status_is_thawed_and_freeze_and_thaw_are_refused() {
    let agent = QemuGa::start();
    assert_eq!(
        run(on(&agent, &["fsfreeze", "status"])).ok().out(),
        "thawed\n"
    );
    let json = run(on(&agent, &["--json", "fsfreeze", "status"]))
        .ok()
        .json();
    assert_eq!(json["status"], "thawed");
    for action in ["freeze", "thaw"] {
        let r = run(on(&agent, &["fsfreeze", action])).fails(AGENT);
        assert!(r.stderr.contains("disabled"), "{}", r.stderr);
    }
}
