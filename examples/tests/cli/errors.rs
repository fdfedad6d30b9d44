//! Raw requests, timeouts, bad sockets, flags, refused destructive commands, usage errors.

use super::*;

#[test]
fn raw_returns_the_value_and_unknown_commands_fail() {
    let agent = QemuGa::start();
    let r = run(on(&agent, &["raw", r#"{"execute":"guest-get-host-name"}"#])).ok();
    assert!(r.json()["host-name"].is_string(), "{}", r.out());
    let r = run(on(
        &agent,
        &["--json", "raw", r#"{"execute":"guest-ping"}"#],
    ))
    .ok();
    assert_eq!(r.out(), "{}\n");
    let r = run(on(
        &agent,
        &[
            "raw",
            r#"{"execute":"guest-file-open","arguments":{"path":"/no/such/file"}}"#,
        ],
    ))
    .fails(AGENT);
    assert!(r.stderr.contains("/no/such/file"), "{}", r.stderr);
    let r = run(on(&agent, &["raw", r#"{"execute":"guest-nosuch"}"#])).fails(AGENT);
    assert!(r.stderr.contains("guest-nosuch"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    run(on(&agent, &["raw", "not json"])).fails(USAGE);
    run(on(
        &agent,
        &["raw", r#"{"execute":"guest-ping","bogus":1}"#],
    ))
    .fails(USAGE);
}

#[test]
fn timeout_with_a_paused_agent() {
    let mut agent = QemuGa::start();
    agent.pause();
    let r = run(on(&agent, &["--timeout", "0.5", "ping"]));
    let r2 = run(on(&agent, &["--timeout", "0.5", "exec", "--", "true"]));
    agent.resume();
    for r in [r, r2] {
        let r = r.fails(TIMEOUT);
        assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
        assert!(r.elapsed >= Duration::from_millis(500), "{:?}", r.elapsed);
        assert!(r.stderr.contains("timed out"), "{}", r.stderr);
        assert!(r.stderr.contains("another client"), "{}", r.stderr);
    }
    // The agent may have exited after we hung up with its replies unread.
    agent.ensure_running();
    run(on(&agent, &["--timeout", "0.5", "ping"])).ok();
}

#[test]
fn a_huge_timeout_is_a_usage_error_not_a_panic() {
    for t in ["1e19", "1e300", "inf", "31536001"] {
        let r = run(qga(&[
            "--socket",
            "/nonexistent.sock",
            "--timeout",
            t,
            "ping",
        ]))
        .fails(USAGE);
        assert!(
            r.stderr.contains("too long") || r.stderr.contains("not a number"),
            "{t}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

#[test]
fn bad_socket_path_names_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-agent.sock");
    let r = run(qga(&["--socket", path_str(&path), "ping"])).fails(UNAVAILABLE);
    assert!(r.stderr.contains(path_str(&path)), "{}", r.stderr);
    let r = run(qga(&["--qmp", path_str(&path), "qmp", "status"])).fails(UNAVAILABLE);
    assert!(r.stderr.contains(path_str(&path)), "{}", r.stderr);
}

#[test]
fn global_flags_before_and_after_the_subcommand_and_qga_socket() {
    let agent = QemuGa::start();
    let socket = path_str(agent.socket());
    let before = run(qga(&[
        "--json",
        "--timeout",
        "3",
        "--socket",
        socket,
        "hostname",
    ]))
    .ok();
    assert!(before.json()["host-name"].is_string());
    let after = run(qga(&[
        "hostname", "--socket", socket, "--json", "-t", "2.5",
    ]))
    .ok();
    assert_eq!(after.json(), before.json());
    let mut env = qga(&["--json", "hostname"]);
    env.env("QGA_SOCKET", socket);
    assert_eq!(run(env).ok().json(), before.json());
    let r = run(qga(&["hostname"])).fails(USAGE);
    assert!(r.stderr.contains("--socket"), "{}", r.stderr);
}

#[test]
fn set_password_is_refused_and_never_shows_the_password() {
    let agent = QemuGa::start();
    let password = "Hunter2-extremely-secret-9f1c";
    for extra in [&[][..], &["--crypted"][..]] {
        let mut args = vec!["-vv", "set-password", "root"];
        args.extend_from_slice(extra);
        let mut cmd = on(&agent, &args);
        cmd.env("RUST_LOG", "trace");
        let r = run_with(cmd, format!("{password}\n").as_bytes()).fails(AGENT);
        assert!(r.stderr.contains("guest-set-user-password"), "{}", r.stderr);
        assert!(r.stderr.contains("disabled"), "{}", r.stderr);
        assert!(
            r.stderr.contains("DEBUG"),
            "logging was not on: {}",
            r.stderr
        );
        assert!(!r.out().contains(password), "password on stdout");
        assert!(!r.stderr.contains(password), "password on stderr");
        // The base64 form that travels on the wire must not leak either.
        let b64 = qga_proto::base64::encode(password.as_bytes());
        assert!(
            !r.stderr.contains(&b64[..b64.len() - 4]),
            "encoded password on stderr"
        );
    }
    run_with(on(&agent, &["set-password", "root"]), b"").fails(USAGE);
    // Never from the command line.
    run(on(&agent, &["set-password", "root", password])).fails(USAGE);
}

#[test]
fn shutdown_is_refused_by_the_blocked_agent() {
    let agent = QemuGa::start();
    for args in [&["shutdown"][..], &["shutdown", "--mode", "reboot"][..]] {
        let r = run(on(&agent, args)).fails(AGENT);
        assert!(r.stderr.contains("guest-shutdown"), "{}", r.stderr);
        assert!(r.stderr.contains("disabled"), "{}", r.stderr);
    }
    run(on(&agent, &["shutdown", "--mode", "explode"])).fails(USAGE);
    run(on(&agent, &["ping"])).ok();
}

#[test]
fn usage_errors_exit_64_and_help_lists_the_exit_codes() {
    let help = run(qga(&["--help"])).ok().out();
    for code in ["64", "69", "70", "74", "75", "128+N"] {
        assert!(help.contains(code), "{code} missing in --help");
    }
    for args in [
        &["bogus"][..],
        &[][..],
        &["--socket", "/x", "exec"][..],
        &["--timeout", "abc", "--socket", "/x", "ping"][..],
        &["--timeout", "0", "--socket", "/x", "ping"][..],
        &["--socket", "/x", "ping", "extra"][..],
        &["qmp", "status"][..],
        &["--qmp", "/x", "ping"][..],
        &["--qmp", "/x", "--socket", "/y", "qmp", "status"][..],
    ] {
        let r = run(qga(args));
        assert_eq!(r.code, USAGE, "{args:?}: {}", r.stderr);
    }
}
