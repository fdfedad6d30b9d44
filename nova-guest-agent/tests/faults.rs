//! Faults and lifecycle: a stopped agent, SIGHUP reload, SIGTERM drain, invalid
//! configurations.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Fleet, config_text};
use serde_json::json;

#[test]
fn stopped_agent_answers_504_within_the_deadline_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(dir.path(), 2);
    let extra = "command_timeout = 1.5";
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), extra),
    );
    let (a, b) = (fleet.uuids[0].clone(), fleet.uuids[1].clone());
    assert_eq!(d.action(&a, &json!({"ping": null})).status, 200);

    fleet.agents[0].pause();
    let started = Instant::now();
    let other = std::thread::spawn({
        let addr = d.addr;
        move || {
            std::thread::sleep(Duration::from_millis(200));
            let t = Instant::now();
            let r = common::request(
                addr,
                "POST",
                &format!("/v1/instances/{b}/actions"),
                Some(common::TOKEN),
                Some(br#"{"ping": null}"#),
            );
            (r.status, t.elapsed())
        }
    });
    let r = d.action(&a, &json!({"ping": null}));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "guest_timeout");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert!(
        took < Duration::from_millis(1500 + 2000),
        "answered after {took:?}"
    );
    // Other guests are not held up by the silent one.
    let (status, other_took) = other.join().unwrap();
    assert_eq!(status, 200);
    assert!(other_took < Duration::from_millis(500), "{other_took:?}");
    // The summary reports it unreachable instead of failing.
    let r = d.get(&format!("/v1/instances/{a}/guest"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["guest"]["reachable"], false);
    assert_eq!(r.json()["guest"]["error"]["code"], "guest_timeout");

    fleet.agents[0].resume();
    fleet.agents[0].ensure_running();
    let r = d.action(&a, &json!({"ping": null}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.get(&format!("/v1/instances/{a}/guest"));
    assert_eq!(r.json()["guest"]["reachable"], true);
    let metrics = d.get("/metrics").text();
    assert!(
        metrics
            .contains("nova_guest_agent_actions_total{action=\"ping\",result=\"guest_timeout\"} 1")
    );
}

#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let u = fleet.uuids[0].clone();
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), "enabled_actions = ping"),
    );
    let exec = json!({"exec": {"path": "/bin/echo", "args": ["hi"]}});
    let inject = json!({"inject-file": {"path": "/tmp/x", "contents": ""}});
    assert_eq!(d.action(&u, &exec).status, 403);
    assert_eq!(d.action(&u, &inject).status, 403);

    std::fs::write(
        &d.config,
        config_text(
            dir.path(),
            &fleet.template(),
            "enabled_actions = ping, exec",
        ),
    )
    .unwrap();
    d.signal("HUP");
    let ok = qga_testing::wait_until(Duration::from_secs(5), || d.action(&u, &exec).status == 200);
    assert!(ok, "exec not enabled after SIGHUP; log:\n{}", d.log());
    assert_eq!(d.action(&u, &exec).json()["exec"]["out-data"], "hi\n");
    assert_eq!(d.action(&u, &inject).status, 403);

    // An invalid file is refused and the running configuration stays.
    std::fs::write(
        &d.config,
        config_text(
            dir.path(),
            &fleet.template(),
            "enabled_actions = ping\nbogus_key = 1",
        ),
    )
    .unwrap();
    d.signal("HUP");
    let logged = qga_testing::wait_until(Duration::from_secs(5), || {
        d.log().contains("configuration reload failed")
    });
    assert!(logged, "{}", d.log());
    assert!(d.log().contains("[agent] bogus_key: unknown key"));
    assert_eq!(d.action(&u, &exec).status, 200);
    let metrics = d.get("/metrics").text();
    assert!(metrics.contains("nova_guest_agent_config_reloads_total{result=\"ok\"} 1"));
    assert!(metrics.contains("nova_guest_agent_config_reloads_total{result=\"error\"} 1"));
}

#[test]
fn sigterm_drains_a_long_exec_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let u = fleet.uuids[0].clone();
    let mut d = Daemon::start(
        dir.path(),
        &config_text(
            dir.path(),
            &fleet.template(),
            "enabled_actions = ping, exec",
        ),
    );
    let addr = d.addr;
    let long = std::thread::spawn(move || {
        let started = Instant::now();
        let r = common::request(
            addr,
            "POST",
            &format!("/v1/instances/{u}/actions"),
            Some(common::TOKEN),
            Some(br#"{"exec": {"path": "/bin/sh", "args": ["-c", "sleep 1.5; echo finished"]}}"#),
        );
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(400));
    d.signal("TERM");
    // It stops accepting promptly.
    let refused = qga_testing::wait_until(Duration::from_secs(2), || {
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(refused, "still accepting connections after SIGTERM");
    let (r, took) = long.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["exec"]["out-data"], "finished\n");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon did not exit");
    assert!(status.success(), "{status:?}; log:\n{}", d.log());
    let log = d.log();
    assert!(log.contains("draining requests in flight"), "{log}");
    assert!(log.contains("drained; exiting"), "{log}");
}

fn run_with_config(dir: &std::path::Path, text: &str) -> (Option<i32>, String) {
    let path = dir.join("nova-guest.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nova-guest-agent"))
        .arg("--config-file")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The agent refuses a token file that group or others may read, or one too short to be a
/// secret, naming the file.
#[test]
fn secret_files_must_be_private_and_long() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let base = config_text(dir.path(), "/run/nova-guest-test/{uuid}.sock", "");
    let token = dir.path().join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = run_with_config(dir.path(), &base);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} may be read by group or others",
            token.display()
        )),
        "{stderr}"
    );
    qga_testing::daemon::write_secret(&token, "short-secret");
    let (code, stderr) = run_with_config(dir.path(), &base);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
}

#[test]
fn invalid_configurations_refuse_to_start_naming_file_section_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_text(dir.path(), "/run/nova-guest-test/{uuid}.sock", "");
    let (code, _) = run_with_config(dir.path(), &base);
    assert_eq!(code, Some(0));
    let file = dir.path().join("nova-guest.conf");
    let file = file.display();
    for (extra, needle) in [
        (
            "listen_prot = 1",
            format!("{file}:12: [agent] listen_prot: unknown key"),
        ),
        (
            "command_timeout = fast",
            "[agent] command_timeout: expected a number of seconds".into(),
        ),
        (
            "enabled_actions = ping, reboot",
            "[agent] enabled_actions: unknown action \"reboot\"".into(),
        ),
        (
            "transport = qmp",
            "[agent] transport: expected libvirt or socket".into(),
        ),
        (
            "libvirt_socket = relative/sock",
            "[agent] libvirt_socket: expected an absolute path".into(),
        ),
        (
            "apply_networking_mode = magic",
            "[agent] apply_networking_mode: expected render or script".into(),
        ),
        (
            "listen_port = 70000",
            "[agent] listen_port: expected a port number".into(),
        ),
        (
            "tls_cert_file = /nonexistent.pem",
            "tls_cert_file and tls_key_file must be set together".into(),
        ),
    ] {
        let text = base.replace(
            "command_timeout = 5\n",
            &format!("command_timeout = 5\n{extra}\n"),
        );
        let (code, stderr) = run_with_config(dir.path(), &text);
        assert_eq!(code, Some(78), "{extra}: {stderr}");
        assert!(stderr.contains(&needle), "{extra}: {stderr}");
    }
    let (code, stderr) = run_with_config(dir.path(), &format!("{base}\n[DEFAULT]\nmystery = 1\n"));
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains("[DEFAULT] mystery: unknown key"),
        "{stderr}"
    );
    let (code, stderr) = run_with_config(dir.path(), &format!("{base}\n[agnet]\n"));
    assert_eq!(code, Some(78));
    assert!(stderr.contains("[agnet]: unknown section"), "{stderr}");
    let (code, stderr) = run_with_config(
        dir.path(),
        &base.replace(
            &dir.path().join("token").display().to_string(),
            "/nonexistent/token",
        ),
    );
    assert_eq!(code, Some(78));
    assert!(
        stderr.contains("[agent] auth_token_file: cannot read /nonexistent/token"),
        "{stderr}"
    );
    // Without --check-config too: the daemon does not start.
    let out = Command::new(env!("CARGO_BIN_EXE_nova-guest-agent"))
        .arg("--config-file")
        .arg(dir.path().join("missing.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.conf: cannot read"));
    let out = Command::new(env!("CARGO_BIN_EXE_nova-guest-agent"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config-file <PATH>"));
}

/// Anyone on the network: a connection that says nothing, or stops inside its request head,
/// is closed after `header_timeout`; connections over `max_connections` are refused at once
/// (raw sockets; the checks are shared with nova-guest-api's test).
#[test]
fn silent_and_excess_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        dir.path(),
        "/run/nova-guest-test/{uuid}.sock",
        "header_timeout = 1.5\nmax_connections = 4",
    );
    let d = Daemon::start(dir.path(), &text);
    qga_testing::daemon::check_connection_limits(d.addr, Duration::from_millis(1500), 4);
}

/// One stuck guest cannot starve the host: 100 concurrent requests to a SIGSTOPped guest take
/// no host-wide operation slot while they wait, and past `max_queued_per_guest` they are
/// refused with 429 and Retry-After at once; a ping to a healthy guest on the same agent
/// meanwhile answers 200 within 1 s.
#[test]
fn a_stuck_guest_does_not_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(dir.path(), 2);
    let d = Daemon::start(
        dir.path(),
        &config_text(
            dir.path(),
            &fleet.template(),
            "command_timeout = 3\nmax_concurrent_operations = 16",
        ),
    );
    let (stuck, healthy) = (fleet.uuids[0].clone(), fleet.uuids[1].clone());
    assert_eq!(d.action(&stuck, &json!({"ping": null})).status, 200);
    fleet.agents[0].pause();
    let started = Instant::now();
    let flood: Vec<_> = (0..100)
        .map(|_| {
            let (addr, stuck) = (d.addr, stuck.clone());
            std::thread::spawn(move || {
                let r = common::request(
                    addr,
                    "POST",
                    &format!("/v1/instances/{stuck}/actions"),
                    Some(common::TOKEN),
                    Some(br#"{"ping": null}"#),
                );
                (r.status, r.header("retry-after").map(str::to_owned))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = d.action(&healthy, &json!({"ping": null}));
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        took < Duration::from_secs(1),
        "the healthy guest waited {took:?}"
    );
    let results: Vec<(u16, Option<String>)> =
        flood.into_iter().map(|h| h.join().unwrap()).collect();
    let refused = results.iter().filter(|(s, _)| *s == 429).count();
    assert!(
        refused >= 100 - 8,
        "only {refused} of 100 refused: {results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, retry)| retry.as_deref() == Some("1"))
    );
    assert!(
        results.iter().all(|(s, _)| [429, 504, 409].contains(s)),
        "{results:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3 * 8 + 5));
    fleet.agents[0].resume();
    fleet.agents[0].ensure_running();
    assert_eq!(d.action(&stuck, &json!({"ping": null})).status, 200);
}
