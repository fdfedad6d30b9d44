//! The security review's items on nova-guest-api, each with the test that proves it, against
//! the REAL Keystone of `support` (started once for this binary), the fake Nova/Neutron and
//! the labelled stand-in agent (`support::FakeAgent`), and for per-host tokens the REAL
//! nova-guest-agent in front of a real host-mode qemu-ga.

mod support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use support::*;

fn actions(api: &Api, project: &str, instance: &str) -> String {
    api.url(&format!("/v1/{project}/servers/{instance}/actions"))
}

fn guest(api: &Api, project: &str, instance: &str) -> String {
    api.url(&format!("/v1/{project}/servers/{instance}/guest"))
}

/// Item 1: another project's port naming my instance (even with my MAC) never configures my
/// guest; neither does a non-compute port of my own project.
#[tokio::test]
async fn only_the_instances_own_compute_ports_reach_the_guest() {
    let env = env();
    let api = Api::start(&keystone_config(env, &env.keystone.url, "", 300));
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let r = Http::default()
        .post(
            &actions(&api, &alpha, ALPHA_VM),
            Some(&alice),
            r#"{"apply-networking": null}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sent = env.agent.last(ALPHA_VM).unwrap();
    let nd = &sent["apply-networking"]["network_data"];
    let links = nd["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{nd}");
    assert_eq!(
        links[0]["vif_id"], "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
        "{nd}"
    );
    let text = nd.to_string();
    for foreign in [
        "10.0.0.66",
        "10.0.0.67",
        "10.0.0.3",
        "evil-port",
        "dhcp-port",
    ] {
        assert!(!text.contains(foreign), "{foreign} in {text}");
    }
    let logs = api.logs();
    assert!(
        logs.contains("Neutron port dropped") && logs.contains("dhcp-port"),
        "{logs}"
    );
}

/// Item 2: cross-project access only for a cloud admin (system scope, or an admin of a
/// project in `admin_project_ids`); the per-action rules bind admins too.
#[tokio::test]
async fn only_cloud_admins_cross_projects_and_policy_binds_admins() {
    let env = env();
    let http = Http::default();
    let beta = env.keystone.project("beta");
    let ping = r#"{"ping": null}"#;
    let api = Api::start(&keystone_config(env, &env.keystone.url, "", 300));
    let project_admin = env.keystone.admin_token().await;
    let r = http
        .post(&actions(&api, &beta, BETA_VM), Some(&project_admin), ping)
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error("forbidden").contains("not scoped to project"));
    let system_admin = env.keystone.system_admin_token().await;
    let r = http
        .post(&actions(&api, &beta, BETA_VM), Some(&system_admin), ping)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The admin project listed: its admins are cloud admins.
    let admin_project = {
        let r = http
            .send(
                http::Method::GET,
                &format!("{}/v3/auth/tokens", env.keystone.url),
                &[
                    ("x-auth-token", &project_admin),
                    ("x-subject-token", &project_admin),
                ],
                None,
            )
            .await;
        r.json()["token"]["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let listed = Api::start(&keystone_config(
        env,
        &env.keystone.url,
        &format!("admin_project_ids = {admin_project}"),
        300,
    ));
    let r = http
        .post(
            &actions(&listed, &beta, BETA_VM),
            Some(&project_admin),
            ping,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // An operator turns exec (and ping) off for everyone: admins included.
    let closed = Api::start(&format!(
        "{}\n[policy]\nexec =\nping = member\n",
        keystone_config(env, &env.keystone.url, "", 300)
    ));
    let r = http
        .post(
            &actions(&closed, &beta, BETA_VM),
            Some(&system_admin),
            r#"{"exec": {"path": "/bin/true"}}"#,
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error("forbidden").contains("exec"));
    // The admin's implied member role still passes `ping = member`.
    let r = http
        .post(&actions(&closed, &beta, BETA_VM), Some(&system_admin), ping)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Item 3: tenant-visible text names the instance and the reason only; metrics are on their
/// own listener; links follow `public_endpoint`.
#[tokio::test]
async fn tenants_do_not_learn_the_infrastructure() {
    let env = env();
    let http = Http::default();
    let api = Api::start(&keystone_config(
        env,
        &env.keystone.url,
        "public_endpoint = https://guest.example.com:13224/",
        300,
    ));
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let r = http.get(&guest(&api, &alpha, ALPHA_VM), Some(&alice)).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["guest"].get("host").is_none(), "{}", r.json());
    assert!(!String::from_utf8_lossy(&r.body).contains("compute-a"));
    // (The 404/409 mappings are unit-tested in agent.rs with a leaky agent message.)
    for (vm, status) in [(ALPHA_AGENT_DOWN, 503), (ALPHA_SILENT, 504)] {
        let r = http
            .post(
                &actions(&api, &alpha, vm),
                Some(&alice),
                r#"{"ping": null}"#,
            )
            .await;
        assert_eq!(r.status, status, "{vm}");
        let body = String::from_utf8_lossy(&r.body);
        for leak in [
            "127.0.0.",
            "nova-guest-agent on host",
            "socket",
            "4225",
            "http://",
        ] {
            assert!(!body.contains(leak), "{vm}: {leak:?} in {body}");
        }
    }
    // ...while the log keeps the details, with the request id.
    assert!(api.logs().contains("host=\"127.0.0.2\""), "{}", api.logs());
    let r = http.get(&api.url("/metrics"), None).await;
    assert_eq!(r.status, 404);
    let m = http.get(&api.metrics_url(), None).await;
    assert_eq!(m.status, 200);
    assert!(String::from_utf8_lossy(&m.body).contains("nova_guest_api_requests_total"));
    let v = http
        .send(
            http::Method::GET,
            &api.url("/"),
            &[("host", "evil.example.net")],
            None,
        )
        .await
        .json();
    assert_eq!(
        v["versions"][0]["links"][0]["href"],
        "https://guest.example.com:13224/v1/"
    );
}

/// Item 4: a generated password whose set-password reached the guest agent without an answer
/// is returned in the error body, saying it may or may not be in effect; a password the
/// caller chose is not echoed.
#[tokio::test]
async fn a_generated_password_is_never_lost() {
    let env = env();
    let api = Api::start(&keystone_config(env, &env.keystone.url, "", 300));
    let http = Http::default();
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_SILENT),
            Some(&alice),
            r#"{"set-password": null}"#,
        )
        .await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let password = body["gatewayTimeout"]["password"].as_str().unwrap();
    assert!(password.len() >= 16, "{body}");
    assert!(
        body["gatewayTimeout"]["message"]
            .as_str()
            .unwrap()
            .contains("may or may not be in effect")
    );
    // The agent was sent exactly that password.
    let sent = env.agent.last(ALPHA_SILENT).unwrap();
    assert_eq!(sent["set-password"]["password"], password);
    assert!(!api.logs().contains(password));
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_SILENT),
            Some(&alice),
            r#"{"set-password": {"password": "Chosen-by-alice-1"}}"#,
        )
        .await;
    assert_eq!(r.status, 504);
    assert!(r.json()["gatewayTimeout"].get("password").is_none());
    // Not ambiguous (a ping): no password anywhere.
    let r = http
        .post(
            &actions(&api, &alpha, ALPHA_SILENT),
            Some(&alice),
            r#"{"ping": null}"#,
        )
        .await;
    assert_eq!(r.status, 504);
    assert!(r.json()["gatewayTimeout"].get("password").is_none());
}

/// Item 8: tokens are validated before a request slot is taken, rejections are cached, one
/// token is validated once however many requests present it at a time, and strings that
/// cannot be tokens never reach Keystone: a flood of 2,000 garbage tokens costs a bounded
/// number of Keystone calls (counted by the proxy) while valid requests are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_costs_no_slots_and_few_keystone_calls() {
    let env = env();
    let proxy = CountingProxy::start(&env.keystone.url).await;
    let api = Api::start(&keystone_config(
        env,
        &proxy.url,
        "max_concurrent_requests = 4",
        300,
    ));
    let alice = env.keystone.token("alice").await;
    let alpha = env.keystone.project("alpha");
    let url = actions(&api, &alpha, ALPHA_VM);
    let http = Http::default();
    assert_eq!(
        http.post(&url, Some(&alice), r#"{"ping": null}"#)
            .await
            .status,
        200
    );
    let before = proxy.validations.load(SeqCst);
    // One plausible-looking garbage token (Fernet-like length and alphabet), 1,000 times, and
    // 1,000 strings that cannot be tokens.
    let plausible = format!("gAAAAAB{}", "x".repeat(176));
    // 64 at a time (the client's own connections stay under max_connections).
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..2_000usize {
        let (task_http, task_url) = (http.clone(), url.clone());
        let permit = gate.clone().acquire_owned().await.unwrap();
        let token = if i % 2 == 0 {
            plausible.clone()
        } else {
            format!("not a token {i}")
        };
        tasks.push(tokio::spawn(async move {
            let status = task_http
                .post(&task_url, Some(&token), r#"{"ping": null}"#)
                .await
                .status;
            drop(permit);
            status
        }));
        if i % 64 == 63 {
            // Meanwhile the valid caller is served.
            let t = Instant::now();
            let r = http.post(&url, Some(&alice), r#"{"ping": null}"#).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let calls = proxy.validations.load(SeqCst) - before;
    assert!(calls <= 2, "{calls} Keystone validations for the flood");
}

/// Item 9: bodies are bounded before the caller's right to the action is known: 1 MiB unless
/// the caller may inject files; the networking route is checked against its one action
/// before a byte is read.
#[tokio::test]
async fn bodies_are_bounded_by_what_the_caller_may_do() {
    let env = env();
    let api = Api::start(&keystone_config(
        env,
        &env.keystone.url,
        "max_request_body_bytes = 8388608",
        300,
    ));
    let http = Http::default();
    let alpha = env.keystone.project("alpha");
    let rita = env.keystone.token("rita").await;
    let alice = env.keystone.token("alice").await;
    let two_mib = format!(
        r#"{{"inject-file": {{"path": "/tmp/x", "contents": "{}"}}}}"#,
        "A".repeat(2 << 20)
    );
    // A reader may not inject files: 413 from the announced length, nothing read.
    let r = http
        .post(&actions(&api, &alpha, ALPHA_VM), Some(&rita), &two_mib)
        .await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("connection"), Some("close"));
    // A member may: the body is read and the file goes through.
    let r = http
        .post(&actions(&api, &alpha, ALPHA_VM), Some(&alice), &two_mib)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The networking route takes apply-networking only: a reader is refused before reading.
    let net = api.url(&format!("/v1/{alpha}/networking/{ALPHA_VM}/actions"));
    let r = http
        .post(&net, Some(&rita), r#"{"apply-networking": null}"#)
        .await;
    assert_eq!(r.status, 403);
    let r = http.post(&net, Some(&alice), &two_mib).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
}

/// Item 6: each compute host's agent holds its own token and accepts no other: the same real
/// agent reached under another host name gets that name's token and refuses it.
#[test]
fn each_agent_accepts_only_its_own_token() {
    let other = "eeeeeeee-0000-4000-8000-000000000012";
    let agent = real_agent::RealAgent::start(REAL_VM, "");
    let config = format!(
        "{}\n[api]\nlisten_address = 127.0.0.1\nlisten_port = 0\nauth_strategy = noauth\n\
         agent_url_template = http://{{host}}:{port}\nallow_insecure_agent_http = true\n\
         agent_auth_token_file = {dir}/api-master-secret\n\n[instances]\n\
         {REAL_VM} = 127.0.0.1 p\n{other} = localhost p\n",
        std::fs::read_to_string(&agent.config).unwrap(),
        port = agent.addr.port(),
        dir = agent.dir.path().display(),
    );
    let api = Api::start(&config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ours, theirs) = rt.block_on(async {
        let http = Http::default();
        let ping = r#"{"ping": null}"#;
        (
            http.post(
                &api.url(&format!("/v1/p/servers/{REAL_VM}/actions")),
                None,
                ping,
            )
            .await,
            http.post(
                &api.url(&format!("/v1/p/servers/{other}/actions")),
                None,
                ping,
            )
            .await,
        )
    });
    assert_eq!(ours.status, 200, "{}", String::from_utf8_lossy(&ours.body));
    assert_eq!(
        theirs.status,
        503,
        "{}",
        String::from_utf8_lossy(&theirs.body)
    );
    assert!(agent.logs().contains("401"), "{}", agent.logs());
    // The token the operator installs is the one the API derives.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_nova-guest-api"))
        .arg("--config-file")
        .arg(&api.config)
        .args(["--print-agent-token", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        agent_token_for("127.0.0.1")
    );
}
