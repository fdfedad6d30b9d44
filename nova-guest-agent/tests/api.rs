//! Every endpoint and action of the real binary against real host-mode qemu-ga instances.
//!
//! apply-networking runs in script mode here, pointed at a harmless script in a temp dir:
//! render mode against a host-mode agent would reconfigure this machine's network. The
//! renderers are covered by tests/golden.rs.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Daemon, Fleet, TOKEN, config_text, request, uuid};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALL_ACTIONS: &str =
    "enabled_actions = ping, set-password, inject-file, apply-networking, exec";

#[test]
fn healthz_needs_no_secret_and_everything_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &fleet.template(), ""));
    let r = request(d.addr, "GET", "/healthz", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));
    assert!(
        r.header("x-openstack-request-id")
            .unwrap()
            .starts_with("req-")
    );
    let u = &fleet.uuids[0];
    let ping = br#"{"ping": null}"#;
    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some("test-secret-0123456789x"),
    ] {
        for (method, path, body) in [
            ("GET", "/metrics".to_owned(), None),
            ("GET", "/v1/instances".to_owned(), None),
            ("GET", format!("/v1/instances/{u}/guest"), None),
            (
                "POST",
                format!("/v1/instances/{u}/actions"),
                Some(&ping[..]),
            ),
            ("GET", "/nowhere".to_owned(), None),
        ] {
            let r = request(d.addr, method, &path, token, body);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}");
            assert_eq!(r.json()["error"]["code"], "unauthorized");
            assert!(r.header("www-authenticate").is_some());
        }
    }
    // The scheme is case-insensitive and surrounding blanks are ignored.
    let mut c = common::Conn::open(d.addr).unwrap();
    let r = c
        .send("GET", "/metrics", Some(&format!("  {TOKEN} ")), None)
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(!d.log().contains(TOKEN), "the secret appears in the log");
}

#[test]
fn ping_guest_summary_listing_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 3);
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &fleet.template(), ""));
    for u in &fleet.uuids {
        let r = d.action(u, &json!({"ping": null}));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), json!({"ping": {"success": true}}));
    }
    let r = d.action(&fleet.uuids[0], &json!({"ping": {}}));
    assert_eq!(r.status, 200);

    let r = d.get(&format!("/v1/instances/{}/guest", fleet.uuids[1]));
    assert_eq!(r.status, 200, "{}", r.text());
    let g = &r.json()["guest"];
    assert_eq!(g["reachable"], true);
    assert_eq!(g["instance"], fleet.uuids[1]);
    assert_eq!(g["host"], "test-host");
    assert!(g["agent"]["version"].as_str().unwrap().contains('.'));
    let commands: Vec<&str> = g["agent"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(commands.contains(&"guest-ping"));
    assert!(
        !commands.contains(&"guest-set-user-password"),
        "blocked commands are not enabled"
    );
    assert_eq!(g["windows"], false);
    assert!(g["os"]["kernel-release"].is_string(), "{g}");
    assert!(g["hostname"].is_string());
    assert!(
        g["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "lo")
    );
    assert_eq!(
        g["actions"],
        json!(["apply-networking", "set-password", "inject-file", "ping"])
    );

    let r = d.get("/v1/instances");
    assert_eq!(r.status, 200);
    let list = r.json();
    assert_eq!(list["host"], "test-host");
    let instances = list["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{list}");
    for (i, entry) in instances.iter().enumerate() {
        assert_eq!(entry["uuid"], uuid(i));
        assert_eq!(entry["reachable"], true, "{entry}");
    }

    let m = d.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for needle in [
        "nova_guest_agent_http_requests_total{route=\"/v1/instances/{uuid}/actions\",method=\"POST\",status=\"200\"} 4",
        "nova_guest_agent_actions_total{action=\"ping\",result=\"ok\"} 4",
        "nova_guest_agent_guest_operation_seconds_count{operation=\"ping\"} 4",
        "nova_guest_agent_guest_operation_seconds_bucket{operation=\"guest\",le=\"+Inf\"} 1",
        "nova_guest_agent_guest_connections 3",
        "nova_guest_agent_requests_in_flight 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

#[test]
fn missing_socket_bad_ids_routes_and_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &fleet.template(), ""));
    let missing = uuid(99);
    let r = d.action(&missing, &json!({"ping": null}));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "instance_not_found");
    let r = d.get(&format!("/v1/instances/{missing}/guest"));
    assert_eq!(r.status, 404);

    // A socket file nobody listens on: present but refusing.
    let dead = uuid(98);
    let path = fleet.socks.join(format!("{dead}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let r = d.action(&dead, &json!({"ping": null}));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "guest_unavailable");
    let r = d.get(&format!("/v1/instances/{dead}/guest"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["guest"]["reachable"], false);
    assert_eq!(r.json()["guest"]["error"]["code"], "guest_unavailable");

    let r = d.action("not-a-uuid", &json!({"ping": null}));
    assert_eq!(r.status, 400);
    let r = d.get("/v1/instances/..%2F..%2Fetc/guest");
    assert_eq!(r.status, 400);
    let r = d.get("/v2/nothing");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    let r = d.get(&format!("/v1/instances/{}/actions", fleet.uuids[0]));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));

    let u = &fleet.uuids[0];
    let path = format!("/v1/instances/{u}/actions");
    for (body, needle) in [
        (&b"{not json"[..], "not a JSON object"),
        (b"{}", "exactly one member"),
        (br#"{"ping": null, "exec": {}}"#, "exactly one member"),
        (br#"{"reboot": null}"#, "unknown action"),
        (br#"{"inject-file": {"path": 1}}"#, "inject-file"),
        (br#"{"apply-networking": null}"#, "apply-networking"),
    ] {
        let r = request(d.addr, "POST", &path, Some(TOKEN), Some(body));
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(r.json()["error"]["code"], "bad_request");
        assert!(r.text().contains(needle), "{}", r.text());
    }
    // Exec is disabled by default.
    let r = d.action(u, &json!({"exec": {"path": "/bin/true"}}));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "action_disabled");
}

#[test]
fn set_password_maps_the_blocked_command_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &fleet.template(), ""));
    let u = &fleet.uuids[0];
    let secret = "Sup3r-Secret-Pa55word";
    for body in [
        json!({"set-password": {"username": "nobody", "password": secret}}),
        // Without a username the OS decides (root on Linux).
        json!({"set-password": {"password": secret}}),
        json!({"set-password": {"password": secret, "crypted": true}}),
    ] {
        let r = d.action(u, &body);
        assert_eq!(r.status, 422, "{}", r.text());
        let e = r.json();
        assert_eq!(e["error"]["code"], "guest_command_failed");
        assert_eq!(e["error"]["class"], "CommandNotFound");
        assert!(
            e["error"]["desc"]
                .as_str()
                .unwrap()
                .contains("guest-set-user-password")
        );
        assert!(!r.text().contains(secret));
    }
    let r = d.action(u, &json!({"set-password": {"password": "a\nb"}}));
    assert_eq!(r.status, 400);
    let r = d.action(
        u,
        &json!({"set-password": {"password": secret, "crypted": secret}}),
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains(secret));
    let log = d.log();
    assert!(log.contains("request done"), "{log}");
    assert!(!log.contains(secret), "the password appears in the log");
    assert!(
        !log.contains(&B64.encode(secret)),
        "the encoded password appears in the log"
    );
}

#[test]
fn inject_file_writes_and_verifies_by_reading_back() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &fleet.template(), ""));
    let target = fleet.agents[0].scratch().join("injected.bin");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = d.action(
        &fleet.uuids[0],
        &json!({"inject-file": {"path": target, "contents": B64.encode(&data)}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"inject-file": {"size": data.len(), "sha256": hex(&Sha256::digest(&data))}})
    );
    assert_eq!(std::fs::read(&target).unwrap(), data);
    // A directory that does not exist: the agent's error.
    let r = d.action(
        &fleet.uuids[0],
        &json!({"inject-file": {"path": "/nonexistent-dir/x", "contents": "aGk="}}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "guest_command_failed");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent-dir/x"),
        "{}",
        r.text()
    );
    assert!(!d.log().contains(&B64.encode(&data[..60])));
}

/// inject-file through a temporary file renamed into place: a new file is 0600 unless a mode
/// is asked for, an existing one keeps its mode, nothing is left beside it, and a write cut
/// off by the deadline leaves the target as it was (and its temporary file is removed).
#[test]
fn inject_file_is_atomic_private_and_keeps_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), "command_timeout = 1"),
    );
    let scratch = fleet.agents[0].scratch();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let inject = |path: &std::path::Path, data: &[u8], extra: Value| {
        let mut body = json!({"inject-file": {"path": path, "contents": B64.encode(data)}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body["inject-file"][k] = v;
            }
        }
        d.action(&fleet.uuids[0], &body)
    };
    let leftovers = || {
        std::fs::read_dir(&scratch)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".nova-guest."))
            .count()
    };
    // New: 0600.
    let secret = scratch.join("secret.txt");
    assert_eq!(inject(&secret, b"s3cret", json!({})).status, 200);
    assert_eq!(std::fs::read(&secret).unwrap(), b"s3cret");
    assert_eq!(mode(&secret), 0o600);
    // Asked for.
    let motd = scratch.join("motd");
    let r = inject(&motd, b"hello\n", json!({"mode": "0644"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mode(&motd), 0o644);
    // Existing: keeps its mode.
    let conf = scratch.join("app.conf");
    std::fs::write(&conf, b"old").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(inject(&conf, b"new", json!({})).status, 200);
    assert_eq!(std::fs::read(&conf).unwrap(), b"new");
    assert_eq!(mode(&conf), 0o640);
    assert_eq!(leftovers(), 0);
    // A bad mode is the caller's mistake.
    assert_eq!(inject(&conf, b"x", json!({"mode": "999"})).status, 400);
    // Cut off by the 1 s deadline: 48 MiB through a host-mode agent take several seconds.
    let big = vec![b'z'; 48 << 20];
    let r = inject(&conf, &big, json!({}));
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(
        std::fs::read(&conf).unwrap(),
        b"new",
        "the target is unchanged"
    );
    assert!(
        qga_testing::wait_until(std::time::Duration::from_secs(20), || leftovers() == 0),
        "the temporary file was not removed"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn exec_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), ALL_ACTIONS),
    );
    let u = &fleet.uuids[0];
    let r = d.action(
        u,
        &json!({"exec": {"path": "/bin/sh", "args": ["-c", "echo out-marker; cat; echo err >&2; exit 3"],
                         "input": B64.encode("from-stdin\n")}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"exec": {"exited": true, "exitcode": 3, "signal": 0, "out-truncated": false,
                        "err-truncated": false, "out-data": "out-marker\nfrom-stdin\n", "err-data": "err\n"}})
    );
    let r = d.action(
        u,
        &json!({"exec": {"path": "/bin/sh", "args": ["-c", "kill -9 $$"]}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["exec"]["signal"], 9);
    assert_eq!(r.json()["exec"]["exitcode"], Value::Null);
    let r = d.action(
        u,
        &json!({"exec": {"path": "/bin/printf", "args": ["\\377"], "output": "base64"}}),
    );
    assert_eq!(r.json()["exec"]["out-data"], "/w==");
    let r = d.action(u, &json!({"exec": {"path": "/no/such/program"}}));
    assert_eq!(r.status, 422);
    let r = d.action(
        u,
        &json!({"exec": {"path": "/bin/sleep", "args": ["10"], "timeout": 0.5}}),
    );
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "guest_timeout");
    let log = d.log();
    assert!(
        !log.contains("out-marker"),
        "exec arguments or output in the log"
    );
    assert!(!log.contains("from-stdin"));
}

#[test]
fn apply_networking_in_script_mode_has_the_original_shape() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let script = dir.path().join("apply-network-config");
    let out = dir.path().join("network_data.json");
    qga_testing::daemon::recording_script(&script, &out, "echo \"applied $#\"\necho note >&2");
    let extra = format!(
        "apply_networking_mode = script\napply_networking_script = {}",
        script.display()
    );
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), &extra),
    );
    let network_data = json!({
        "links": [{"id": "tap0", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:01", "mtu": 1450}],
        "networks": [{"id": "n0", "type": "ipv4", "link": "tap0", "ip_address": "192.0.2.10",
                      "netmask": "255.255.255.0", "routes": [], "network_id": "x"}],
        "services": [{"type": "dns", "address": "192.0.2.53"}]
    });
    let r = d.action(
        &fleet.uuids[0],
        &json!({"apply-networking": {"network_data": network_data}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"apply-networking": {"success": true, "message": {"exited": true, "exitcode": 0,
            "signal": 0, "out-truncated": false, "err-truncated": false,
            "out-data": "applied 1\n", "err-data": "note\n"}}})
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written, network_data);

    // A failing script is a result, not an error.
    std::fs::write(&script, "#!/bin/sh\necho broken >&2\nexit 2\n").unwrap();
    let r = d.action(
        &fleet.uuids[0],
        &json!({"apply-networking": {"network_data": network_data}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["apply-networking"]["success"], false);
    assert_eq!(r.json()["apply-networking"]["message"]["exitcode"], 2);
    assert_eq!(
        r.json()["apply-networking"]["message"]["err-data"],
        "broken\n"
    );
}

#[test]
fn sockets_found_by_domain_name() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let names = dir.path().join("by-name");
    std::fs::create_dir_all(&names).unwrap();
    std::os::unix::fs::symlink(
        fleet.agents[0].socket(),
        names.join("instance-0000002a.qga"),
    )
    .unwrap();
    let template = format!("{}/{{name}}.qga", names.display());
    let d = Daemon::start(dir.path(), &config_text(dir.path(), &template, ""));
    let u = &fleet.uuids[0];
    let r = d.action(u, &json!({"ping": null}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("?name="));
    let r = d.post(
        &format!("/v1/instances/{u}/actions?name=instance-0000002a"),
        &json!({"ping": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = d.post(
        &format!("/v1/instances/{u}/actions?name=../x"),
        &json!({"ping": null}),
    );
    assert_eq!(r.status, 400);
    let list = d.get("/v1/instances").json();
    assert_eq!(list["instances"][0]["name"], "instance-0000002a");
    assert_eq!(list["instances"][0]["uuid"], Value::Null);
    assert_eq!(list["instances"][0]["reachable"], true);
}

#[test]
fn tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed: apt-get install openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extra = format!(
        "tls_cert_file = {}\ntls_key_file = {}",
        cert.display(),
        key.display()
    );
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), &extra),
    );
    let url = format!(
        "https://127.0.0.1:{}/v1/instances/{}/actions",
        d.addr.port(),
        fleet.uuids[0]
    );
    for http in ["--http1.1", "--http2"] {
        let out = std::process::Command::new("curl")
            .args(["-sS", http, "--cacert"])
            .arg(&cert)
            .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"ping": null}"#,
            ])
            .arg(&url)
            .output()
            .expect("curl is needed: apt-get install curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body, json!({"ping": {"success": true}}), "{http}");
    }
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = common::Conn::open(d.addr).and_then(|mut c| c.send("GET", "/healthz", None, None));
    assert!(plain.is_err());
}
