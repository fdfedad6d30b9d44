//! nova-guest-api in its embedded default mode (`auth_strategy = noauth`, the static
//! `[instances]` map) in front of the stand-in nova-guest-agent (`support::FakeAgent`), and
//! the OpenAPI document checked against the live server: every documented route and status is
//! produced here (401 is produced by `keystone_api`, 500 only by bugs) and every response
//! matches the document.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::openapi::{self, COVERED};
use support::*;

const SEED_PROJECT: &str = "f4edce581ecb4eaabbb68fea5fee5b81";
const ALPHA: &str = "alpha-project";
const STATIC_VM: &str = "aaaaaaaa-0000-4000-8000-000000000008";

fn noauth_config(agent: &FakeAgent, extra: &str) -> String {
    format!(
        "[DEFAULT]\nhost = x\n\n[api]\nlisten_address = 127.0.0.1\nlisten_port = 0\n\
         auth_strategy = noauth\nagent_url_template = http://{{host}}:{port}\n\
         allow_insecure_agent_http = true\n\
         agent_auth_token_file = {{dir}}/api-master-secret\nagent_timeout = 5\n\
         max_request_body_bytes = 65536\n\n[instances]\n{SEED_VM} = 127.0.0.1 {SEED_PROJECT}\n\
         {ALPHA_VM} = 127.0.0.1 {ALPHA}\n{ALPHA_SILENT} = 127.0.0.1 {ALPHA}\n\
         {ALPHA_AGENT_DOWN} = 127.0.0.2 {ALPHA}\n{ALPHA_DISCONNECTED} = 127.0.0.1 {ALPHA}\n\
         {ALPHA_FAILING} = 127.0.0.1 {ALPHA}\n{STATIC_VM} = 127.0.0.1 {ALPHA}\n\
         {ALPHA_SLOW} = 127.0.0.1 {ALPHA}\n{ALPHA_QUEUED} = 127.0.0.1 {ALPHA}\n\n{extra}",
        port = agent.port
    )
}

fn agent() -> &'static FakeAgent {
    static AGENT: std::sync::OnceLock<FakeAgent> = std::sync::OnceLock::new();
    AGENT.get_or_init(FakeAgent::start)
}

#[tokio::test]
async fn seed_curl_example_in_noauth_mode() {
    let agent = agent();
    let api = Api::start(&noauth_config(agent, ""));
    assert!(
        api.logs().contains("NO AUTHENTICATION"),
        "noauth is logged loudly"
    );
    let out = tokio::process::Command::new("curl")
        .args(["-g", "-i", "-sS", "-X", "POST"])
        .arg(api.url(&format!("/v1/{SEED_PROJECT}/networking/{SEED_VM}/actions")))
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-H",
            "User-Agent: nova-guest keystoneauth1/4.2.0 python-requests/2.24.0 CPython/3.6.8",
        ])
        .args(["-H", "X-Auth-Token: gAAAAABfMUVpUyiPUHTgoO5oKJqh6"])
        .args(["-d", r#"{"apply-networking": null}"#])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.to_lowercase().contains("x-openstack-request-id: req-"));
    let body: Value = serde_json::from_str(text.split_once("\n\n").unwrap().1).unwrap();
    assert_eq!(body["apply-networking"]["success"], true);
    assert_eq!(body["apply-networking"]["message"]["exitcode"], 0);
    // No Neutron here: an empty network_data.json unless a static file is configured.
    let sent = agent.last(SEED_VM).unwrap();
    assert_eq!(
        sent["apply-networking"]["network_data"],
        json!({"links": [], "networks": [], "services": []})
    );
}

#[tokio::test]
async fn static_network_data_file() {
    let agent = agent();
    let api = Api::start(&noauth_config(agent, "").replace(
        "[instances]",
        "static_network_data_template = {dir}/{uuid}.json\n\n[instances]",
    ));
    let nd = json!({"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:09"}],
                    "networks": [], "services": []});
    std::fs::write(
        api.dir.path().join(format!("{STATIC_VM}.json")),
        nd.to_string(),
    )
    .unwrap();
    let r = Http::default()
        .post(
            &api.url(&format!("/v1/{ALPHA}/servers/{STATIC_VM}/actions")),
            None,
            r#"{"apply-networking": {}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        agent.last(STATIC_VM).unwrap()["apply-networking"]["network_data"],
        nd
    );
}

#[tokio::test]
async fn openapi_document_matches_the_live_server() {
    let agent = agent();
    let doc = openapi::document();
    let api = Api::start(&noauth_config(agent, ""));
    // A second instance whose policy denies everything to members, for the 403s.
    let strict = Api::start(&noauth_config(
        agent,
        "[policy]\nguest = admin\napply-networking = admin\nping = admin\n\
         fleet-apply-networking = admin\n",
    ));
    // And one that waits one second for request bodies, for the 408s.
    let slow = Api::start(&noauth_config(agent, "").replace(
        "max_request_body_bytes = 65536\n",
        "max_request_body_bytes = 65536\nbody_timeout = 1\n",
    ));
    let http = Http::default();
    let served = http.get(&api.url("/v1/openapi.json"), None).await;
    assert_eq!(serde_json::from_slice::<Value>(&served.body).unwrap(), doc);

    let act = |vm: &str| format!("/v1/{ALPHA}/servers/{vm}/actions");
    let net = |vm: &str| format!("/v1/{ALPHA}/networking/{vm}/actions");
    let gst = |vm: &str| format!("/v1/{ALPHA}/servers/{vm}/guest");
    let fleet = format!("/v1/{ALPHA}/networking/actions");
    let unknown = "cccccccc-0000-4000-8000-000000000099";
    let fleet_ids = format!(
        r#"{{"apply-networking": {{"instance_ids": ["{ALPHA_VM}", "{unknown}", "{ALPHA_AGENT_DOWN}"]}}}}"#
    );
    let big = format!(
        r#"{{"inject-file": {{"path": "/x", "contents": "{}"}}}}"#,
        "A".repeat(70_000)
    );
    let cases: Vec<(&Api, &str, String, Option<String>, u16)> = vec![
        (&api, "GET", "/".into(), None, 200),
        (&api, "GET", "/v1/".into(), None, 200),
        (&api, "GET", "/v1/openapi.json".into(), None, 200),
        (&api, "GET", "/healthz".into(), None, 200),
        // actions
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"ping": null}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"apply-networking": null}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"set-password": {}}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"set-password": {"password": "pw"}}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"inject-file": {"path": "/tmp/x", "contents": "aGk="}}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"reboot": null}"#.into()),
            400,
        ),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"exec": {"path": "/bin/true"}}"#.into()),
            403,
        ),
        (
            &api,
            "POST",
            act(unknown),
            Some(r#"{"ping": null}"#.into()),
            404,
        ),
        (&api, "GET", act(ALPHA_VM), None, 405),
        (
            &api,
            "POST",
            act(ALPHA_DISCONNECTED),
            Some(r#"{"ping": null}"#.into()),
            409,
        ),
        (&api, "POST", act(ALPHA_VM), Some(big.clone()), 413),
        (
            &api,
            "POST",
            act(ALPHA_VM),
            Some(r#"{"set-password": {"username": "nobody-here"}}"#.into()),
            422,
        ),
        (
            &api,
            "POST",
            act(ALPHA_AGENT_DOWN),
            Some(r#"{"ping": null}"#.into()),
            503,
        ),
        (
            &api,
            "POST",
            act(ALPHA_SILENT),
            Some(r#"{"ping": null}"#.into()),
            504,
        ),
        (
            &api,
            "POST",
            act(ALPHA_QUEUED),
            Some(r#"{"ping": null}"#.into()),
            429,
        ),
        (
            &api,
            "POST",
            net(ALPHA_QUEUED),
            Some(r#"{"apply-networking": null}"#.into()),
            429,
        ),
        (&api, "GET", gst(ALPHA_QUEUED), None, 429),
        // the original route
        (
            &api,
            "POST",
            net(ALPHA_VM),
            Some(r#"{"apply-networking": null}"#.into()),
            200,
        ),
        (
            &api,
            "POST",
            net(ALPHA_VM),
            Some(r#"{"ping": null}"#.into()),
            400,
        ),
        (
            &strict,
            "POST",
            net(ALPHA_VM),
            Some(r#"{"apply-networking": null}"#.into()),
            403,
        ),
        (
            &api,
            "POST",
            net(unknown),
            Some(r#"{"apply-networking": null}"#.into()),
            404,
        ),
        (&api, "PUT", net(ALPHA_VM), None, 405),
        (
            &api,
            "POST",
            net(ALPHA_DISCONNECTED),
            Some(r#"{"apply-networking": null}"#.into()),
            409,
        ),
        (&api, "POST", net(ALPHA_VM), Some(big.clone()), 413),
        (
            &api,
            "POST",
            net(ALPHA_FAILING),
            Some(r#"{"apply-networking": null}"#.into()),
            422,
        ),
        (
            &api,
            "POST",
            net(ALPHA_AGENT_DOWN),
            Some(r#"{"apply-networking": null}"#.into()),
            503,
        ),
        (
            &api,
            "POST",
            net(ALPHA_SILENT),
            Some(r#"{"apply-networking": null}"#.into()),
            504,
        ),
        // fleet apply
        (&api, "POST", fleet.clone(), Some(fleet_ids.clone()), 200),
        (
            &api,
            "POST",
            fleet.clone(),
            Some(r#"{"apply-networking": {"network_id": "net-1"}}"#.into()),
            400,
        ),
        (
            &api,
            "POST",
            fleet.clone(),
            Some(r#"{"apply-networking": {}}"#.into()),
            400,
        ),
        (&strict, "POST", fleet.clone(), Some(fleet_ids.clone()), 403),
        (&api, "GET", fleet.clone(), None, 405),
        (&api, "POST", fleet.clone(), Some(big.clone()), 413),
        // guest
        (&api, "GET", gst(ALPHA_VM), None, 200),
        (&strict, "GET", gst(ALPHA_VM), None, 403),
        (&api, "GET", gst(unknown), None, 404),
        (&api, "GET", gst("not-a-uuid"), None, 404),
        (&api, "POST", gst(ALPHA_VM), Some("{}".into()), 405),
        (&api, "GET", gst(ALPHA_DISCONNECTED), None, 409),
        (&api, "GET", gst(ALPHA_AGENT_DOWN), None, 503),
        (&api, "GET", gst(ALPHA_SILENT), None, 504),
        // another project's instance is not found
        (
            &api,
            "GET",
            format!("/v1/other-project/servers/{ALPHA_VM}/guest"),
            None,
            404,
        ),
    ];
    for (server, method, path, body, status) in cases {
        let r = http
            .send(
                method.parse().unwrap(),
                &server.url(&path),
                &[],
                body.map(bytes::Bytes::from),
            )
            .await;
        assert_eq!(
            r.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        openapi::check(&doc, method, &path, &r);
    }
    // A fleet apply's per-instance results, in the order given.
    let r = http
        .send(
            http::Method::POST,
            &api.url(&fleet),
            &[],
            Some(bytes::Bytes::from(fleet_ids.clone())),
        )
        .await;
    let out = &r.json()["apply-networking"];
    assert_eq!((&out["succeeded"], &out["failed"]), (&json!(1), &json!(2)));
    assert_eq!(out["results"][1]["error"]["code"], 404);
    assert_eq!(out["results"][2]["error"]["code"], 503);
    // 503 for a fleet apply: every request slot taken (a slow ping holds the only one).
    let busy = Api::start(
        &noauth_config(agent, "")
            .replace("[instances]", "max_concurrent_requests = 1\n\n[instances]"),
    );
    let slow_url = busy.url(&act(ALPHA_SLOW));
    let holder = tokio::spawn(async move {
        Http::default()
            .post(&slow_url, None, r#"{"ping": null}"#)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = http
        .send(
            http::Method::POST,
            &busy.url(&fleet),
            &[],
            Some(bytes::Bytes::from(fleet_ids.clone())),
        )
        .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    openapi::check(&doc, "POST", &fleet, &r);
    assert_eq!(holder.await.unwrap().status, 200);
    // 408: a body that stops arriving (raw socket: the client sends half of it).
    for path in [act(ALPHA_VM), net(ALPHA_VM), fleet.clone()] {
        let r = slow_body(&slow, &path);
        assert_eq!(
            r.status,
            408,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        openapi::check(&doc, "POST", &path, &r);
    }
    let covered = COVERED.lock().unwrap().clone();
    let missing: BTreeSet<_> = openapi::documented(&doc)
        .into_iter()
        .filter(|(_, _, s)| *s != 401 && *s != 500)
        .filter(|k| !covered.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but never produced: {missing:?}"
    );
}

/// POSTs `path` announcing 100 bytes of body and sending 10, then reads the answer.
fn slow_body(api: &Api, path: &str) -> Reply {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"ping\": "
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers = http::HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.insert(k, v);
        }
    }
    Reply {
        status,
        headers,
        body: bytes::Bytes::from(body.to_owned()),
    }
}

#[test]
fn help_and_invalid_configurations() {
    let bin = env!("CARGO_BIN_EXE_nova-guest-api");
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config-file"));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\nhost = compute-1\n[agent]\nanything = 1\n[api]\nlisten_port = lots\n\
         colour = blue\nagent_auth_token_file = /nonexistent/token\n[keystone_authtoken]\n\
         username = x\n[policy]\nreboot = member\n[instances]\nnot-a-uuid = host project\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("--config-file")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        ":6: [api] listen_port: expected a port number 0-65535 (0: any free port) (got \"lots\")",
        ":7: [api] colour: unknown key",
        ":8: [api] agent_auth_token_file: cannot read /nonexistent/token",
        "[keystone_authtoken] auth_url: is required",
        ":12: [policy] reboot: unknown action",
        ":14: [instances] not-a-uuid: is not an instance uuid",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("anything"),
        "the agent's keys are not ours to judge"
    );
    // Plain http to the agents only when asked for; a readable master secret never.
    let secret = dir.path().join("master");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let conf = dir.path().join("http.conf");
    std::fs::write(
        &conf,
        format!(
            "[api]\nauth_strategy = noauth\nagent_url_template = http://{{host}}:4225\n\
             agent_auth_token_file = {}\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("--config-file")
        .arg(&conf)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agent_url_template: is plain http"), "{err}");
    assert!(err.contains("may be read by group or others"), "{err}");
    let missing = Command::new(bin)
        .arg("--config-file")
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(78));
}

/// schemathesis (PyPI, cached venv under target/) against the live server: generated
/// requests for every operation; no undocumented 5xx, every status, header, content type and
/// body as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_against_the_live_server() {
    let agent = agent();
    let api = Api::start(&noauth_config(agent, ""));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/run.sh");
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("schemathesis-venv");
    let out = tokio::process::Command::new(&script)
        .arg(api.url("/v1/openapi.json"))
        .arg("100")
        .env("SCHEMATHESIS_VENV", venv)
        .output()
        .await
        .expect("run schemathesis");
    let text = qga_testing::daemon::output_text(&out);
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    println!(
        "{}",
        text.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
}

/// `max_concurrent_requests` bounds the requests in flight (others wait up to 2 s, then 503;
/// health checks are not counted), and SIGTERM lets a request in flight finish, then exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_concurrency_and_graceful_shutdown() {
    let agent = agent();
    let slow = format!("/v1/{ALPHA}/servers/{ALPHA_SLOW}/actions");
    let api = Api::start(
        &noauth_config(agent, "")
            .replace("[instances]", "max_concurrent_requests = 1\n\n[instances]"),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let url = api.url(&slow);
        tasks.spawn(async move { Http::default().post(&url, None, r#"{"ping": null}"#).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = Http::default().get(&api.url("/healthz"), None).await;
    assert_eq!(health.status, 200, "health checks are not queued");
    let mut statuses = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        if r.status == 503 {
            assert!(r.error("serviceUnavailable").contains("Too many requests"));
        }
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 503, 503]);

    let mut api = Api::start(&noauth_config(agent, ""));
    let url = api.url(&slow);
    let in_flight =
        tokio::spawn(async move { Http::default().post(&url, None, r#"{"ping": null}"#).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = api.terminate(Duration::from_secs(10));
        (s, api.logs())
    })
    .await
    .unwrap();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the request in flight finished");
    assert!(status.0.success(), "{:?}\n{}", status.0, status.1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the request"
    );
}

/// Anyone on the network: a connection that says nothing, or stops inside its request head,
/// is closed after `header_timeout`; connections over `max_connections` are refused at once
/// (raw sockets; the checks are shared with nova-guest-agent's test).
#[test]
fn silent_and_excess_connections_are_closed() {
    let api = Api::start(&noauth_config(agent(), "").replace(
        "max_request_body_bytes = 65536\n",
        "max_request_body_bytes = 65536\nheader_timeout = 1.5\nmax_connections = 4\n",
    ));
    qga_testing::daemon::check_connection_limits(api.addr, Duration::from_millis(1500), 4);
}
