//! Load: many guests in parallel with per-guest order, a 64 MiB inject-file, and the ping
//! throughput and latency of the agent in front of fast (host-mode) guests.

mod common;

use std::sync::{Arc, Barrier};

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Conn, Daemon, Fleet, TOKEN, config_text};
use serde_json::json;
use sha2::{Digest, Sha256};

#[test]
fn hundred_concurrent_requests_over_ten_guests_keep_per_guest_order() {
    const GUESTS: usize = 10;
    const PER_GUEST: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), GUESTS);
    let d = Daemon::start(
        dir.path(),
        &config_text(
            dir.path(),
            &fleet.template(),
            // All ten requests of a guest wait for it at once.
            "enabled_actions = ping, exec\ncommand_timeout = 20\nmax_queued_per_guest = 10",
        ),
    );
    let files: Vec<_> = fleet
        .agents
        .iter()
        .map(|a| a.scratch().join("order"))
        .collect();
    // Within a guest, request k is sent once the daemon has queued request k-1 for that
    // guest (its "queued for the guest" debug line), so they arrive in k order however loaded
    // the machine is; each takes longer than the gap (exec + polling), so they queue. The
    // guests run side by side.
    let log_path = d.log_path();
    let queued = |uuid: &str| {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("queued for the guest") && l.contains(uuid))
            .count()
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (g, (u, file)) in fleet.uuids.iter().zip(&files).enumerate() {
            let mut previous: Option<std::sync::mpsc::Receiver<()>> = None;
            for k in 0..PER_GUEST {
                let (tx, rx) = std::sync::mpsc::channel();
                let wait_for = previous.replace(rx);
                let (addr, u, file) = (d.addr, u.clone(), file.clone());
                let queued = &queued;
                handles.push(s.spawn(move || {
                    let mut conn = Conn::open(addr).unwrap();
                    if let Some(rx) = wait_for {
                        rx.recv().unwrap();
                    }
                    let body = json!({"exec": {"path": "/bin/sh",
                        "args": ["-c", format!("echo {k} >> '{}'; sleep 0.02", file.display())]}});
                    conn.write_request(
                        "POST",
                        &format!("/v1/instances/{u}/actions"),
                        Some(TOKEN),
                        Some(&serde_json::to_vec(&body).unwrap()),
                    )
                    .unwrap();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while queued(&u) <= k && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    let _ = tx.send(());
                    (g, k, conn.read_response().unwrap())
                }));
            }
        }
        for h in handles {
            let (g, k, r) = h.join().unwrap();
            assert_eq!(r.status, 200, "guest {g} request {k}: {}", r.text());
            assert_eq!(r.json()["exec"]["exitcode"], 0);
        }
    });
    let took = started.elapsed();
    for (g, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let order: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
        if order != (0..PER_GUEST).collect::<Vec<_>>() {
            let log = d.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&fleet.uuids[g]))
                .collect();
            panic!(
                "guest {g} ran them in the order {order:?}; its log:\n{}",
                lines.join("\n")
            );
        }
    }
    println!("100 exec requests over 10 guests in {took:?}");
    let metrics = d.get("/metrics").text();
    assert!(
        metrics.contains("nova_guest_agent_actions_total{action=\"exec\",result=\"ok\"} 100"),
        "{metrics}"
    );
}

#[test]
fn inject_file_of_64_mib_with_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), 1);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), "command_timeout = 120"),
    );
    let size = 64 * 1024 * 1024;
    let mut data = vec![0u8; size];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let expected = Sha256::digest(&data);
    let target = fleet.agents[0].scratch().join("big.bin");
    let body = serde_json::to_vec(
        &json!({"inject-file": {"path": target, "contents": B64.encode(&data)}}),
    )
    .unwrap();
    let started = Instant::now();
    let r = common::request(
        d.addr,
        "POST",
        &format!("/v1/instances/{}/actions", fleet.uuids[0]),
        Some(TOKEN),
        Some(&body),
    );
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        r.json(),
        json!({"inject-file": {"size": size, "sha256": hex}})
    );
    assert_eq!(Sha256::digest(std::fs::read(&target).unwrap()), expected);
    println!(
        "inject-file 64 MiB (written and read back) in {took:?}: {:.1} MiB/s",
        64.0 / took.as_secs_f64()
    );
    // One byte over max_file_size is refused before anything is written.
    let too_big = serde_json::to_vec(&json!({"inject-file": {"path": target,
        "contents": B64.encode(vec![0u8; size + 1])}}))
    .unwrap();
    let r = common::request(
        d.addr,
        "POST",
        &format!("/v1/instances/{}/actions", fleet.uuids[0]),
        Some(TOKEN),
        Some(&too_big),
    );
    assert_eq!(r.status, 413, "{}", r.text());
}

/// Requests/s and latency percentiles of `ping` through the agent: 2,000 requests at
/// 16-way concurrency (keep-alive connections) spread over 4 host-mode agents. Run with
/// `--nocapture` to see the numbers.
#[test]
fn ping_throughput_and_latency() {
    const AGENTS: usize = 4;
    const CLIENTS: usize = 16;
    const TOTAL: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), AGENTS);
    // 16 clients over 4 guests: up to 16 requests may wait for one guest.
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &fleet.template(), "max_queued_per_guest = 16"),
    );
    for u in &fleet.uuids {
        assert_eq!(d.action(u, &json!({"ping": null})).status, 200);
    }
    let d = Arc::new(d);
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let mut handles = Vec::new();
    for c in 0..CLIENTS {
        let barrier = barrier.clone();
        let addr = d.addr;
        let uuids = fleet.uuids.clone();
        handles.push(std::thread::spawn(move || {
            let mut conn = Conn::open(addr).unwrap();
            let mut latencies = Vec::with_capacity(TOTAL / CLIENTS);
            barrier.wait();
            for i in 0..TOTAL / CLIENTS {
                let u = &uuids[(c + i) % AGENTS];
                let t = Instant::now();
                let r = conn
                    .send(
                        "POST",
                        &format!("/v1/instances/{u}/actions"),
                        Some(TOKEN),
                        Some(br#"{"ping": null}"#),
                    )
                    .unwrap();
                latencies.push(t.elapsed());
                assert_eq!(r.status, 200, "{}", r.text());
            }
            latencies
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let took = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "ping through nova-guest-agent: {} requests, {CLIENTS} clients, {AGENTS} agents: \
         {:.0} requests/s, p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        all.len(),
        all.len() as f64 / took.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all[all.len() - 1]
    );
    assert_eq!(all.len(), TOTAL);
}
