//! The qmp commands against a real QEMU.

use super::*;

#[test]
fn qmp_status_and_raw_query_version() {
    let qemu = QemuQmp::start();
    let socket = path_str(qemu.socket());
    let status = run(qga(&["--qmp", socket, "qmp", "status"])).ok().out();
    assert!(
        ["running\n", "paused\n", "prelaunch\n"].contains(&status.as_str()),
        "{status}"
    );
    let json = run(qga(&["--qmp", socket, "--json", "qmp", "status"]))
        .ok()
        .json();
    assert!(json["running"].is_boolean(), "{json}");
    assert_eq!(
        format!("{}\n", json["status"].as_str().expect("status")),
        status
    );
    let version = run(qga(&[
        "--qmp",
        socket,
        "qmp",
        "raw",
        r#"{"execute":"query-version"}"#,
    ]))
    .ok()
    .json();
    assert!(
        version["qemu"]["major"].as_u64().expect("major") >= 2,
        "{version}"
    );
    let r = run(qga(&[
        "--qmp",
        socket,
        "qmp",
        "raw",
        r#"{"execute":"no-such-command"}"#,
    ]))
    .fails(AGENT);
    assert!(r.stderr.contains("no-such-command"), "{}", r.stderr);
}

#[test]
fn qmp_events_times_out_without_events() {
    let qemu = QemuQmp::start();
    let socket = path_str(qemu.socket());
    let r = run(qga(&[
        "--qmp",
        socket,
        "qmp",
        "events",
        "--count",
        "1",
        "--timeout",
        "1",
    ]))
    .fails(TIMEOUT);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    assert!(r.stdout.is_empty());
}

/// QEMU with two QMP monitors, killed on drop.
struct TwoMonitors {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    child: Child,
}

impl TwoMonitors {
    fn start() -> Self {
        let qemu = find_program("qemu-system-x86_64", "qemu-system-x86");
        let dir = tempfile::Builder::new()
            .prefix("qmp2-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let (a, b) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
        let monitor = |p: &Path| format!("unix:{},server=on,wait=off", p.display());
        let child = Command::new(qemu)
            .args(["-machine", "none", "-display", "none", "-nodefaults"])
            .args([
                "-no-user-config",
                "-qmp",
                &monitor(&a),
                "-qmp",
                &monitor(&b),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn qemu-system-x86_64");
        let mut qemu = Self {
            _dir: dir,
            a,
            b,
            child,
        };
        let (a, b) = (qemu.a.clone(), qemu.b.clone());
        let child = &mut qemu.child;
        let up = wait_until(Duration::from_secs(20), || {
            (a.exists() && b.exists()) || child.try_wait().ok().flatten().is_some()
        });
        assert!(up && a.exists() && b.exists(), "QEMU did not start");
        qemu
    }
}

impl Drop for TwoMonitors {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn qmp_events_prints_stop_and_resume() {
    let qemu = TwoMonitors::start();
    let a = path_str(&qemu.a);
    let b = path_str(&qemu.b);
    let mut cmd = qga(&[
        "-v",
        "--qmp",
        a,
        "qmp",
        "events",
        "--count",
        "2",
        "--timeout",
        "20",
    ]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qga");
    let stderr = child.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("stderr line");
            if line.contains("listening for QMP events") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    // Subscribed once it says so: events from then on reach it.
    let ready = ready_rx.recv_timeout(Duration::from_secs(20));
    if ready.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("qga qmp events never got ready: {:?}", log.join());
    }
    run(qga(&["--qmp", b, "qmp", "raw", r#"{"execute":"stop"}"#])).ok();
    run(qga(&["--qmp", b, "qmp", "raw", r#"{"execute":"cont"}"#])).ok();
    let pid = child.id();
    let done = wait_until(Duration::from_secs(30), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !done {
        qga_testing::signal(pid, "KILL");
    }
    let status = child.wait().expect("wait");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let log = log.join().expect("stderr reader");
    assert!(done && status.success(), "{status:?}: {stdout} / {log:?}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event name"))
        .collect();
    assert_eq!(names, ["STOP", "RESUME"], "{stdout}");
    for e in &events {
        assert!(
            e["timestamp"]["seconds"].as_i64().expect("seconds") > 0,
            "{e}"
        );
    }
}
