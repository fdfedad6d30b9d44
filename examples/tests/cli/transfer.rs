//! exec, and cat/get/put.

use super::*;

#[test]
fn exec_feeds_stdin_from_dash_and_from_a_file() {
    let agent = QemuGa::start();
    let input = b"hello\0world\n\xff";
    let r = run_with(on(&agent, &["exec", "--stdin", "-", "--", "cat"]), input).ok();
    assert_eq!(r.stdout, input);
    let file = agent.scratch().join("stdin.bin");
    let data = pseudo_random(300_000);
    std::fs::write(&file, &data).expect("write");
    let r = run(on(
        &agent,
        &["exec", "--stdin", path_str(&file), "--", "cat"],
    ))
    .ok();
    assert_eq!(r.stdout.len(), data.len());
    assert!(r.stdout == data, "stdin from a file came back different");
    // Without --stdin the program's stdin is /dev/null, not ours.
    let r = run_with(on(&agent, &["exec", "--", "cat"]), b"not for the guest").ok();
    assert!(r.stdout.is_empty(), "{:?}", r.out());
    let missing = agent.scratch().join("missing");
    run(on(
        &agent,
        &["exec", "--stdin", path_str(&missing), "--", "cat"],
    ))
    .fails(IO);
}

#[test]
fn exec_env_replaces_the_environment() {
    let agent = QemuGa::start();
    let r = run(on(
        &agent,
        &[
            "exec",
            "--env",
            "FOO=bar baz",
            "-e",
            "X=1=2",
            "--",
            "/usr/bin/env",
        ],
    ))
    .ok();
    let mut lines: Vec<String> = r.out().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["FOO=bar baz", "X=1=2"]);
    run(on(&agent, &["exec", "--env", "NOEQUALS", "--", "true"])).fails(USAGE);
}

#[test]
fn exec_propagates_exit_codes_and_signals() {
    let agent = QemuGa::start();
    assert_eq!(
        run(on(&agent, &["exec", "--", "sh", "-c", "exit 7"])).code,
        7
    );
    assert_eq!(run(on(&agent, &["exec", "sh", "-c", "exit 0"])).code, 0);
    assert_eq!(
        run(on(&agent, &["exec", "--", "sh", "-c", "kill -TERM $$"])).code,
        143
    );
    let r = run(on(&agent, &["--json", "exec", "--", "sh", "-c", "exit 3"]));
    assert_eq!(r.code, 3);
    let json = r.json();
    assert_eq!(json["exitcode"], 3);
    assert!(json["signal"].is_null() && json["pid"].is_i64(), "{json}");
    let r = run(on(&agent, &["exec", "--", "/no/such/program"])).fails(AGENT);
    assert!(r.stderr.contains("/no/such/program"), "{}", r.stderr);
}

#[test]
fn exec_passes_stdout_and_stderr_bytes_exactly() {
    let agent = QemuGa::start();
    let script = r"printf 'a\000b\377\n'; printf 'err\000x' >&2";
    let r = run(on(&agent, &["exec", "--", "sh", "-c", script])).ok();
    assert_eq!(r.stdout, b"a\0b\xff\n");
    assert_eq!(r.stderr.as_bytes(), "err\0x".as_bytes());
    let json = run(on(&agent, &["--json", "exec", "--", "sh", "-c", script]))
        .ok()
        .json();
    let out = qga_proto::base64::decode(json["out-data"].as_str().expect("out-data").as_bytes())
        .expect("base64");
    assert_eq!(out, b"a\0b\xff\n");
    assert_eq!(json["out-truncated"], false);
}

#[test]
fn exec_reports_truncated_output() {
    let agent = QemuGa::start();
    let r = run(on(
        &agent,
        &["exec", "--", "head", "-c", "20000000", "/dev/zero"],
    ))
    .ok();
    assert_eq!(r.stdout.len(), 16 * 1024 * 1024);
    assert!(r.stdout.iter().all(|b| *b == 0));
    assert!(r.stderr.contains("output truncated"), "{}", r.stderr);
    assert!(r.stderr.contains("stdout"), "{}", r.stderr);
    let small = run(on(
        &agent,
        &["exec", "--", "head", "-c", "1000", "/dev/zero"],
    ))
    .ok();
    assert_eq!(small.stdout.len(), 1000);
    assert!(!small.stderr.contains("truncated"), "{}", small.stderr);
}

/// put, get and cat of `data`, all compared by SHA-256.
fn round_trip(agent: &QemuGa, data: &[u8]) {
    let dir = agent.scratch();
    let local = dir.join("local.bin");
    let guest = dir.join("guest.bin");
    let back = dir.join("back.bin");
    std::fs::write(&local, data).expect("write");
    let want = sha256(data);
    let put = run(on(agent, &["put", path_str(&local), path_str(&guest)])).ok();
    assert!(put.out().contains(&want), "{}", put.out());
    // Host mode: the guest's file system is ours.
    assert_eq!(sha256(&std::fs::read(&guest).expect("guest file")), want);
    let json = run(on(
        agent,
        &["--json", "put", path_str(&local), path_str(&guest)],
    ))
    .ok()
    .json();
    assert_eq!(json["sha256"], want.as_str());
    assert_eq!(json["size"], data.len());
    assert_eq!(json["verified"], true);
    run(on(agent, &["get", path_str(&guest), path_str(&back)])).ok();
    assert_eq!(sha256(&std::fs::read(&back).expect("local copy")), want);
    let cat = run(on(agent, &["cat", path_str(&guest)])).ok();
    assert_eq!(cat.stdout.len(), data.len());
    assert_eq!(sha256(&cat.stdout), want);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scratch")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cat_get_put_round_trip_a_few_mib() {
    let agent = QemuGa::start();
    // Not a multiple of the 4 MiB chunk.
    round_trip(&agent, &pseudo_random(5 * 1024 * 1024 + 12_345));
}

#[test]
fn cat_get_put_round_trip_an_empty_file() {
    let agent = QemuGa::start();
    round_trip(&agent, b"");
    let json = run(on(
        &agent,
        &[
            "--json",
            "cat",
            path_str(&agent.scratch().join("guest.bin")),
        ],
    ))
    .ok()
    .json();
    assert_eq!(json["size"], 0);
    assert_eq!(json["data-b64"], "");
}

#[test]
fn get_of_a_missing_file_leaves_nothing_behind() {
    let agent = QemuGa::start();
    let dir = agent.scratch();
    let local = dir.join("never.bin");
    let r = run(on(
        &agent,
        &["get", path_str(&dir.join("missing")), path_str(&local)],
    ))
    .fails(AGENT);
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
    let entries: Vec<_> = std::fs::read_dir(&dir).expect("scratch").collect();
    assert!(entries.is_empty(), "{entries:?}");
    run(on(
        &agent,
        &["put", path_str(&local), path_str(&dir.join("x"))],
    ))
    .fails(IO);
}

#[test]
fn get_writes_through_a_symbolic_link_and_cat_names_a_failing_stdout() {
    let agent = QemuGa::start();
    let dir = agent.scratch();
    let guest = dir.join("source.bin");
    let data = pseudo_random(100_000);
    std::fs::write(&guest, &data).expect("write");
    let real = dir.join("real.bin");
    std::fs::write(&real, b"old").expect("write");
    let link = dir.join("link.bin");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    run(on(&agent, &["get", path_str(&guest), path_str(&link)])).ok();
    let meta = std::fs::symlink_metadata(&link).expect("link");
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert!(std::fs::read(&real).expect("real") == data);

    // A local write failure is named as such, not as a connection error.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut cmd = on(&agent, &["cat", path_str(&guest)]);
    cmd.stdout(full);
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(IO), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
}
