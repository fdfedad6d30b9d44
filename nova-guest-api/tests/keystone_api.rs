//! nova-guest-api against a REAL Keystone (PyPI keystone 30.0.0, gunicorn, sqlite, fernet),
//! started once for this test binary by `tests/keystone/start.sh`.
//!
//! Nova and Neutron are too heavy to run here: their few read-only endpoints are served by a
//! small fake written from their API references (`support::FakeCloud`), which accepts only
//! tokens Keystone validates with the `service` role. Most scenarios use a clearly labelled
//! stand-in for nova-guest-agent implementing its internal HTTP contract (`support::FakeAgent`,
//! so faults such as 409/422/504 can be produced on demand);
//! `real_agent_and_qemu_ga_end_to_end` uses the REAL nova-guest-agent binary and a real
//! host-mode qemu-ga.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use support::*;

fn actions(api: &Api, project: &str, instance: &str) -> String {
    api.url(&format!("/v1/{project}/servers/{instance}/actions"))
}

fn guest(api: &Api, project: &str, instance: &str) -> String {
    api.url(&format!("/v1/{project}/servers/{instance}/guest"))
}

fn start_default() -> (&'static Env, Api) {
    let env = env();
    let api = Api::start(&keystone_config(env, &env.keystone.url, "", 300));
    (env, api)
}

fn assert_request_id(r: &Reply) {
    let id = r
        .header("x-openstack-request-id")
        .expect("X-Openstack-Request-Id");
    assert!(
        id.starts_with("req-") && uuid::Uuid::parse_str(&id[4..]).is_ok(),
        "{id}"
    );
}

#[tokio::test]
async fn seed_curl_example_verbatim() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let token = env.keystone.token("alice").await;
    let project = env.keystone.project("alpha");
    // The README's command, only the address and project id being this cloud's.
    let out = tokio::process::Command::new("curl")
        .args(["-g", "-i", "-sS", "-X", "POST"])
        .arg(api.url(&format!("/v1/{project}/networking/{SEED_VM}/actions")))
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-H",
            "User-Agent: nova-guest keystoneauth1/4.2.0 python-requests/2.24.0 CPython/3.6.8",
        ])
        .args(["-H", &format!("X-Auth-Token: {token}")])
        .args(["-d", r#"{"apply-networking": null}"#])
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let (head, body) = text.split_once("\n\n").expect("headers and body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{text}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("content-length"), body.len().to_string());
    let rid = header("x-openstack-request-id");
    assert!(rid.starts_with("req-") && uuid::Uuid::parse_str(&rid[4..]).is_ok());
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        json!({"apply-networking": {"success": true, "message": {"exited": true, "exitcode": 0,
            "signal": 0, "out-truncated": false, "err-truncated": false, "out-data": "",
            "err-data": ""}}})
    );
    // The agent got the instance's network_data.json rendered from (fake) Neutron.
    let sent = env.agent.last(SEED_VM).unwrap();
    let nd = &sent["apply-networking"]["network_data"];
    assert_eq!(
        nd["links"],
        json!([{"id": "tap1f2e3d4c-5b", "vif_id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
                "type": "ovs", "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:01"}])
    );
    assert_eq!(nd["networks"][0]["type"], "ipv4");
    assert_eq!(nd["networks"][0]["ip_address"], "10.0.0.5");
    assert_eq!(nd["networks"][0]["netmask"], "255.255.255.0");
    assert_eq!(
        nd["networks"][0]["routes"],
        json!([{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
               {"network": "172.16.0.0", "netmask": "255.240.0.0", "gateway": "10.0.0.254"}])
    );
    assert_eq!(nd["networks"][1]["type"], "ipv6_slaac");
    assert_eq!(
        nd["services"],
        json!([{"type": "dns", "address": "10.0.0.2"}])
    );
    // Neither the token nor anything secret is logged.
    assert!(!api.logs().contains(&token));
}

#[tokio::test]
async fn missing_garbage_expired_and_revoked_tokens_are_401() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let project = env.keystone.project("alpha");
    let url = actions(&api, &project, ALPHA_VM);
    let doc = openapi::document();
    let path = format!("/v1/{project}/servers/{ALPHA_VM}/actions");
    let expect_401 = |r: Reply, what: &str| {
        if what.contains("guest") {
            openapi::check(&doc, "GET", &path.replace("/actions", "/guest"), &r);
        } else {
            openapi::check(&doc, "POST", &path, &r);
        }
        assert_eq!(
            r.status,
            401,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some(format!("Keystone uri=\"{}/v3\"", env.keystone.url).as_str()),
            "{what}"
        );
        assert_request_id(&r);
        assert!(r.error("unauthorized").contains("requires authentication"));
    };
    expect_401(http.post(&url, None, r#"{"ping": null}"#).await, "no token");
    expect_401(
        http.get(&guest(&api, &project, ALPHA_VM), None).await,
        "no token (guest)",
    );
    expect_401(
        http.post(&url, Some("gAAAAABgarbage-token"), r#"{"ping": null}"#)
            .await,
        "garbage",
    );

    let revoked = env.keystone.token("alice").await;
    env.keystone.revoke(&revoked).await;
    expect_401(
        http.post(&url, Some(&revoked), r#"{"ping": null}"#).await,
        "revoked",
    );

    // Two short-lived tokens: one never seen before it expires, one used (and cached) while
    // valid — the cache must not outlive the token.
    let unseen = env.keystone.short_lived_token("alice", 6).await;
    let cached = env.keystone.short_lived_token("alice", 6).await;
    let r = http.post(&url, Some(&cached), r#"{"ping": null}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    tokio::time::sleep(Duration::from_secs(7)).await;
    expect_401(
        http.post(&url, Some(&unseen), r#"{"ping": null}"#).await,
        "expired",
    );
    expect_401(
        http.post(&url, Some(&cached), r#"{"ping": null}"#).await,
        "expired, cached",
    );
}

#[tokio::test]
async fn projects_and_instances_of_others() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let (alpha, beta) = (env.keystone.project("alpha"), env.keystone.project("beta"));
    // alice on bob's project.
    let r = http
        .post(
            &actions(&api, &beta, BETA_VM),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.error("forbidden").contains("not scoped to project"));
    // alice on her project, but bob's instance: not found, existence not leaked.
    let r = http
        .post(
            &actions(&api, &alpha, BETA_VM),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.error("itemNotFound").contains(BETA_VM));
    let r = http.get(&guest(&api, &alpha, BETA_VM), Some(&alice)).await;
    assert_eq!(r.status, 404);
    // Unknown instance and a malformed id.
    let unknown = "cccccccc-0000-4000-8000-000000000099";
    let r = http
        .post(
            &actions(&api, &alpha, unknown),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = http
        .post(
            &actions(&api, &alpha, "not-a-uuid"),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    // bob on his own.
    let bob = env.keystone.token("bob").await;
    let r = http
        .post(
            &actions(&api, &beta, BETA_VM),
            Some(&bob),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ping": {"success": true}}));
    // A cloud admin (system-scoped) may act on any project, but the instance must belong to
    // the URL's project; a project-scoped admin only on its own (tests/security.rs has more).
    let admin = env.keystone.system_admin_token().await;
    let r = http
        .post(
            &actions(&api, &beta, BETA_VM),
            Some(&admin),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = http
        .post(
            &actions(&api, &alpha, BETA_VM),
            Some(&admin),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    let project_admin = env.keystone.admin_token().await;
    let r = http
        .post(
            &actions(&api, &beta, BETA_VM),
            Some(&project_admin),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn reader_may_look_but_not_act() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let rita = env.keystone.token("rita").await;
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    for body in [
        r#"{"apply-networking": null}"#,
        r#"{"set-password": {"password": "x"}}"#,
        r#"{"inject-file": {"path": "/tmp/x", "contents": ""}}"#,
        r#"{"exec": {"path": "/bin/true"}}"#,
    ] {
        let r = http.post(&url, Some(&rita), body).await;
        assert_eq!(r.status, 403, "{body}");
        assert!(r.error("forbidden").starts_with("Policy doesn't allow"));
    }
    let r = http.post(&url, Some(&rita), r#"{"ping": null}"#).await;
    assert_eq!(r.status, 200);
    let r = http.get(&guest(&api, &alpha, ALPHA_VM), Some(&rita)).await;
    assert_eq!(r.status, 200);
    let g = r.json();
    assert_eq!(g["guest"]["agent"]["version"], "7.2.22");
    assert_eq!(g["guest"]["hostname"], "vm-1");
    assert!(g["guest"]["os"].is_object() && g["guest"]["interfaces"].is_array());
    // exec is admin-only by default, even for members.
    let alice = env.keystone.token("alice").await;
    let r = http
        .post(&url, Some(&alice), r#"{"exec": {"path": "/bin/true"}}"#)
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn instance_state_and_agent_faults() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let before = env
        .agent
        .log
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_SHUTOFF),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.error("conflict").contains("SHUTOFF"));
    assert_eq!(
        env.agent
            .log
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        before,
        "nothing reaches the agent for an instance that is not ACTIVE"
    );
    let started = Instant::now();
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_AGENT_DOWN),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 503);
    assert!(r.error("serviceUnavailable").contains("unavailable"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_SILENT),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 504);
    r.error("gatewayTimeout");
    // The guest refusing a command is the guest agent's error, shown to the caller.
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_VM),
            Some(&alice),
            r#"{"set-password": {"username": "nobody-here", "password": "pw"}}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.error("unprocessableEntity").contains("does not exist"));
}

#[tokio::test]
async fn bad_bodies_are_400_with_a_useful_message() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    for (body, expected) in [
        ("{\"ping\": nul", "Malformed request body"),
        ("", "Malformed request body"),
        (r#"{"reboot": null}"#, "Unknown action \"reboot\""),
        (
            r#"{"ping": null, "apply-networking": null}"#,
            "Only one action per request",
        ),
        (
            r#"{"set-password": {"password": 42}}"#,
            "\"password\" must be a string, got a number",
        ),
        (
            r#"{"set-password": "hunter2"}"#,
            "expected an object, got a string",
        ),
        (
            r#"{"inject-file": {"path": "/x", "contents": 7}}"#,
            "must be a base64 string",
        ),
        (
            r#"{"inject-file": {"path": "/x", "contents": "%%"}}"#,
            "not valid base64",
        ),
        (r#"{"ping": true}"#, "takes no arguments"),
        ("[1, 2]", "must be a JSON object"),
    ] {
        let r = http.post(&url, Some(&alice), body).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let m = r.error("badRequest");
        assert!(m.contains(expected), "{body}: {m}");
        assert_request_id(&r);
    }
    // The seed's route takes apply-networking only.
    let r = http
        .post(
            &api.url(&format!("/v1/{alpha}/networking/{ALPHA_VM}/actions")),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn oversized_bodies_are_413_early_and_while_streaming() {
    let _quiet = QUIET.read().await;
    let env = env();
    let api = Api::start(&keystone_config(
        env,
        &env.keystone.url,
        "max_request_body_bytes = 65536",
        300,
    ));
    let http = Http::default();
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    let big = format!(
        r#"{{"inject-file": {{"path": "/tmp/f", "contents": "{}"}}}}"#,
        "A".repeat(70_000)
    );
    // Announced: refused before the token is even looked at.
    let r = http.post(&url, None, &big).await;
    assert_eq!(r.status, 413);
    assert!(r.error("requestEntityTooLarge").contains("65536"));
    assert_request_id(&r);
    // Streamed (chunked, no Content-Length): refused once the limit is crossed.
    let alice = env.keystone.token("alice").await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args([
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-H", &format!("X-Auth-Token: {alice}")])
        .args(["--data-binary", &big])
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
    // Under the limit is fine.
    let small = r#"{"inject-file": {"path": "/tmp/f", "contents": "aGVsbG8="}}"#;
    let r = http.post(&url, Some(&alice), small).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"inject-file": {"size": 5, "sha256":
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}})
    );
}

#[tokio::test]
async fn set_password_generates_one_and_returns_it_once() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    let r = http
        .post(&url, Some(&alice), r#"{"set-password": {}}"#)
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let password = body["set-password"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 20);
    assert_eq!(body["set-password"]["success"], true);
    assert_eq!(body["set-password"]["username"], "root");
    let sent = env.agent.last(ALPHA_VM).unwrap();
    assert_eq!(sent["set-password"]["password"], password.as_str());
    // Given a password, none is returned.
    let r = http
        .post(
            &url,
            Some(&alice),
            r#"{"set-password": {"username": "ubuntu", "password": "S3cret-pw!"}}"#,
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"set-password": {"success": true, "username": "ubuntu"}})
    );
    let logs = api.logs();
    assert!(!logs.contains(&password) && !logs.contains("S3cret-pw!") && !logs.contains(&alice));
}

#[tokio::test]
async fn token_cache_spares_keystone_and_the_service_token_is_renewed_on_401() {
    let _quiet = QUIET.read().await;
    let env = env();
    let proxy = CountingProxy::start(&env.keystone.url).await;
    let api = Api::start(&keystone_config(env, &proxy.url, "", 300));
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    use std::sync::atomic::Ordering::SeqCst;
    let r = http.post(&url, Some(&alice), r#"{"ping": null}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(proxy.validations.load(SeqCst), 1);
    assert_eq!(proxy.authentications.load(SeqCst), 1, "one service token");
    for _ in 0..5 {
        let r = http.get(&guest(&api, &alpha, ALPHA_VM), Some(&alice)).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        proxy.validations.load(SeqCst),
        1,
        "cached: Keystone not asked again"
    );
    // Keystone stops accepting our service token: re-authenticate once and retry.
    let rita = env.keystone.token("rita").await;
    proxy.fail_next_validations.store(1, SeqCst);
    let r = http.get(&guest(&api, &alpha, ALPHA_VM), Some(&rita)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        proxy.validations.load(SeqCst),
        3,
        "failed once, then retried"
    );
    assert_eq!(proxy.authentications.load(SeqCst), 2, "a new service token");
    // Without the cache every request is validated.
    let proxy0 = CountingProxy::start(&env.keystone.url).await;
    let api0 = Api::start(&keystone_config(env, &proxy0.url, "", 0));
    for _ in 0..3 {
        let r = http
            .get(&guest(&api0, &alpha, ALPHA_VM), Some(&alice))
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(proxy0.validations.load(SeqCst), 3);
    // Keystone down: 503, not 401.
    drop(proxy0);
    let api_down = Api::start(&keystone_config(env, "http://127.0.0.1:9", "", 0));
    let r = http
        .get(&guest(&api_down, &alpha, ALPHA_VM), Some(&alice))
        .await;
    assert_eq!(r.status, 503);
    r.error("serviceUnavailable");
}

#[tokio::test]
async fn request_ids_unauthenticated_routes_and_lifecycle() {
    let _quiet = QUIET.read().await;
    let (env, mut api) = start_default();
    let http = Http::default();
    let alpha = env.keystone.project("alpha");
    // A trusted caller's (role service) request id is kept; a user's is replaced.
    let service = env
        .keystone
        .token_for(
            "nova-guest",
            &env.keystone.password("nova-guest"),
            "service",
            "default",
        )
        .await;
    let admin = env.keystone.system_admin_token().await;
    let alice = env.keystone.token("alice").await;
    let mine = format!("req-{}", uuid::Uuid::new_v4());
    let url = guest(&api, &alpha, ALPHA_VM);
    let r = http
        .send(
            Method::GET,
            &url,
            &[("x-auth-token", &admin), ("x-openstack-request-id", &mine)],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-openstack-request-id"), Some(mine.as_str()));
    let r = http
        .send(
            Method::GET,
            &url,
            &[("x-auth-token", &alice), ("x-openstack-request-id", &mine)],
            None,
        )
        .await;
    assert_ne!(r.header("x-openstack-request-id"), Some(mine.as_str()));
    assert_request_id(&r);
    // The service user's token is project-scoped to `service`: it is not alpha's.
    let r = http.get(&url, Some(&service)).await;
    assert_eq!(r.status, 403);
    // No token needed for these.
    for (path, status) in [
        ("/", 200),
        ("/v1/", 200),
        ("/v1", 200),
        ("/v1/openapi.json", 200),
        ("/healthz", 200),
        // Metrics are the operator's: not on the public port.
        ("/metrics", 404),
        ("/nope", 404),
    ] {
        let r = http.get(&api.url(path), None).await;
        assert_eq!(r.status, status, "{path}");
        assert_request_id(&r);
    }
    let v = http.get(&api.url("/"), None).await.json();
    assert_eq!(v["versions"][0]["id"], "v1.0");
    assert_eq!(v["versions"][0]["links"][0]["href"], api.url("/v1/"));
    let m = String::from_utf8_lossy(&http.get(&api.metrics_url(), None).await.body).into_owned();
    assert!(
        m.contains("nova_guest_api_requests_total{route=\"guest\",code=\"200\"}"),
        "{m}"
    );
    assert!(
        m.contains("nova_guest_api_token_cache_total{result=\"miss\"}"),
        "{m}"
    );
    let r = http
        .send(Method::DELETE, &url, &[("x-auth-token", &alice)], None)
        .await;
    assert_eq!(r.status, 405);

    // SIGHUP: a changed policy applies to new requests; a broken file keeps the old one.
    let rita = env.keystone.token("rita").await;
    let ping = actions(&api, &alpha, ALPHA_VM);
    assert_eq!(
        http.post(&ping, Some(&rita), r#"{"ping": null}"#)
            .await
            .status,
        200
    );
    let text = std::fs::read_to_string(&api.config).unwrap();
    std::fs::write(&api.config, format!("{text}\n[policy]\nping = member\n")).unwrap();
    api.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !api.logs().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload: {}", api.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        http.post(&ping, Some(&rita), r#"{"ping": null}"#)
            .await
            .status,
        403
    );
    std::fs::write(
        &api.config,
        format!("{text}\n[policy]\nping = member\nbogus = x\n"),
    )
    .unwrap();
    api.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !api.logs().contains("reload failed") {
        assert!(
            Instant::now() < deadline,
            "no reload failure: {}",
            api.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        http.post(&ping, Some(&rita), r#"{"ping": null}"#)
            .await
            .status,
        403
    );

    // SIGTERM: exits 0.
    let status = api.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(api.logs().contains("shutting down"));
}

async fn load(
    api: &Api,
    token: &str,
    project: &str,
    clients: usize,
    per_client: usize,
) -> (f64, Duration, Duration) {
    let url = actions(api, project, ALPHA_VM);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (url, token) = (url.clone(), token.to_owned());
        tasks.spawn(async move {
            let http = Http::default();
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let r = http
                    .send(
                        Method::POST,
                        &url,
                        &[("x-auth-token", &token)],
                        Some(Bytes::from_static(b"{\"ping\": null}")),
                    )
                    .await;
                assert_eq!(r.status, 200);
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

/// Measures requests/s, p50 and p99 at 64 concurrent clients (ping, fast fake guest), with a
/// warm token cache and with the cache off. Bounded: a fixed number of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_64_clients_warm_cache_and_cache_off() {
    let _quiet = QUIET.write().await;
    let env = env();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let warm = Api::start(&keystone_config(env, &env.keystone.url, "", 300));
    load(&warm, &alice, &alpha, 4, 5).await; // warm the cache and the service token
    let (rps, p50, p99) = load(&warm, &alice, &alpha, 64, 150).await;
    println!(
        "MEASURE warm cache: 64 clients x 150 requests: {rps:.0} req/s, p50 {p50:?}, p99 {p99:?}"
    );
    drop(warm);
    let cold = Api::start(&keystone_config(env, &env.keystone.url, "", 0));
    let (rps0, p50_0, p99_0) = load(&cold, &alice, &alpha, 64, 4).await;
    println!(
        "MEASURE cache off (token_cache_time = 0): 64 clients x 4 requests: {rps0:.0} req/s, p50 {p50_0:?}, p99 {p99_0:?}"
    );
    assert!(rps > rps0, "the cache helps");
}

/// End to end with the REAL nova-guest-agent and a real host-mode qemu-ga: Keystone (real),
/// Nova/Neutron (fake), agent and guest agent (real). Both daemons read one shared file.
#[tokio::test]
async fn real_agent_and_qemu_ga_end_to_end() {
    let _quiet = QUIET.read().await;
    let env = env();
    let mut agent = real_agent::RealAgent::start(REAL_VM, "");
    // The API's sections go into the same file, pointing at the agent's port.
    let api_text = keystone_config(env, &env.keystone.url, "", 300)
        .replace(
            &format!(":{}", env.agent.port),
            &format!(":{}", agent.addr.port()),
        )
        .replace(
            "[DEFAULT]\nhost = ignored-by-the-api\n\n[agent]\nlisten_port = 4225\n",
            "",
        )
        .replace("{dir}", &agent.dir.path().display().to_string());
    let shared = format!(
        "{}\n{api_text}",
        std::fs::read_to_string(&agent.config).unwrap()
    );
    let api = Api::start(&shared);
    let http = Http::default();
    let doc = openapi::document();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let act = format!("/v1/{alpha}/servers/{REAL_VM}/actions");
    let gst = format!("/v1/{alpha}/servers/{REAL_VM}/guest");

    let r = http
        .post(&api.url(&act), Some(&alice), r#"{"ping": null}"#)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"ping": {"success": true}}));
    openapi::check(&doc, "POST", &act, &r);

    let r = http.get(&api.url(&gst), Some(&alice)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    openapi::check(&doc, "GET", &gst, &r);
    let g = r.json();
    assert_eq!(g["guest"]["reachable"], true);
    assert!(!g["guest"]["agent"]["version"].as_str().unwrap().is_empty());
    assert!(
        g["guest"]["agent"]["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "guest-ping")
    );

    // The seed's route; the harmless script receives the network_data rendered from Neutron.
    let net = format!("/v1/{alpha}/networking/{REAL_VM}/actions");
    let r = http
        .post(
            &api.url(&net),
            Some(&alice),
            r#"{"apply-networking": null}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    openapi::check(&doc, "POST", &net, &r);
    assert_eq!(
        r.json(),
        json!({"apply-networking": {"success": true, "message": {"exited": true, "exitcode": 0,
            "signal": 0, "out-truncated": false, "err-truncated": false, "out-data": "applied\n",
            "err-data": ""}}})
    );
    let applied: Value = serde_json::from_slice(&std::fs::read(&agent.applied).unwrap()).unwrap();
    assert_eq!(
        applied["links"][0]["ethernet_mac_address"],
        "fa:16:3e:00:00:01"
    );
    assert_eq!(applied["networks"][0]["ip_address"], "10.0.0.5");

    // inject-file, read back by the agent; the file really is there.
    let target = agent.qga.scratch().join("injected.txt");
    let body = json!({"inject-file": {"path": target, "contents": "aGVsbG8gZ3Vlc3QK"}});
    let r = http
        .post(&api.url(&act), Some(&alice), &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["inject-file"]["size"], 12);
    assert_eq!(std::fs::read(&target).unwrap(), b"hello guest\n");

    // set-password is blocked in this host-mode qemu-ga: the guest agent's refusal comes back,
    // and the generated password is in no log.
    let r = http
        .post(&api.url(&act), Some(&alice), r#"{"set-password": {}}"#)
        .await;
    assert!(
        matches!(r.status, 403 | 422),
        "{} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    openapi::check(&doc, "POST", &act, &r);

    // A silent guest agent (SIGSTOP): 504 within the agent's deadline; then fine again.
    agent.qga.pause();
    let started = Instant::now();
    let r = http
        .post(&api.url(&act), Some(&alice), r#"{"ping": null}"#)
        .await;
    agent.qga.resume();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http
            .post(&api.url(&act), Some(&alice), r#"{"ping": null}"#)
            .await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // nova-guest-agent down: 503.
    agent.process.kill();
    let r = http
        .post(&api.url(&act), Some(&alice), r#"{"ping": null}"#)
        .await;
    assert_eq!(r.status, 503);
    let logs = format!("{}{}", api.logs(), agent.logs());
    assert!(!logs.contains(&alice), "no token in logs");
}

/// schemathesis against the Keystone-mode server with alice's token (project mismatches,
/// unknown instances, bad bodies, ...): no server errors, everything as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_with_a_keystone_token() {
    let _quiet = QUIET.read().await;
    let (env, api) = start_default();
    let alice = env.keystone.token("alice").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/run.sh");
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("schemathesis-venv");
    let out = tokio::process::Command::new(&script)
        .arg(api.url("/v1/openapi.json"))
        .arg("25")
        .arg(format!("X-Auth-Token: {alice}"))
        .env("SCHEMATHESIS_VENV", venv)
        .output()
        .await
        .expect("run schemathesis");
    let text = qga_testing::daemon::output_text(&out);
    assert!(out.status.success(), "schemathesis failed:\n{text}");
}
