//! `libvirt-compare`: the per-call latency of one agent command (guest-ping, guest-info) to
//! the same guest, in the same run, four ways:
//!
//! - ours over libvirt: `qga_client` on a [`LibvirtConnection`], `Client::call_raw`
//!   (`QEMU_DOMAIN_AGENT_COMMAND`, the call virsh makes), plus the typed `Client::ping`
//!   (`DOMAIN_GET_TIME`) as an extra row;
//! - one long-lived `virsh` reading `qemu-agent-command` lines on its standard input
//!   (libvirt's own C client, in process, one connection);
//! - one `virsh qemu-agent-command` process per call;
//! - ours on the agent's socket directly, with libvirtd stopped for that part (libvirt is the
//!   socket's only client while it runs).
//!
//! ```text
//! cargo run --release -p qga-benches --bin libvirt-compare [-- --rounds 3] [--quick]
//! ```
//!
//! It starts the private libvirtd of `qga_testing::libvirt` (root, libvirt and QEMU needed)
//! and boots the test guest as a transient domain. Each round measures every client in turn
//! (the first rotates), then stops libvirtd for the direct part and starts it again (our
//! libvirt connection reconnects by itself). Figures are medians over the rounds; ratios are
//! the median of the ratios within each round.

mod clients;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use qga_benches::stats::{median, quantile};
use qga_benches::sys;
use qga_client::Client;
use qga_client::libvirt::LibvirtConnection;
use qga_testing::libvirt::Libvirtd;
use qga_testing::vm::VmImage;

use crate::clients::{Case, VirshShell};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Ours,
    OursTyped,
    VirshShell,
    VirshPerCall,
    Direct,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Self::Ours => "ours over libvirt (call_raw)",
            Self::OursTyped => "ours over libvirt, typed ping (DOMAIN_GET_TIME)",
            Self::VirshShell => "one virsh, commands on stdin",
            Self::VirshPerCall => "one virsh process per call",
            Self::Direct => "ours on the agent socket (libvirtd stopped)",
        }
    }
}

struct Options {
    rounds: usize,
    quick: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        rounds: 3,
        quick: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => {
                let v = args.next().ok_or("--rounds needs a number")?;
                o.rounds = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("bad --rounds {v}"))?;
            }
            _ => return Err("usage: libvirt-compare [--rounds N] [--quick]".into()),
        }
    }
    Ok(o)
}

/// p50 and p99 of one client, one case, one round (ns).
type Sample = (f64, f64);

fn summary(mut v: Vec<u64>) -> Sample {
    v.sort_unstable();
    (quantile(&v, 0.5), quantile(&v, 0.99))
}

fn fmt(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(64);
        }
    };
    let (calls, per_process) = if o.quick { (40, 5) } else { (300, 30) };
    let started = Instant::now();
    let load_before = sys::load_average();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let libvirtd = Libvirtd::start().unwrap_or_else(|e| panic!("{e}"));
    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = domain.name().to_owned();
    let uri = libvirtd.uri();
    let agent_socket = domain.agent_socket_path().expect("agent socket in dumpxml");
    let version = libvirtd.virsh_ok(&["version"]).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let libvirt = rt
        .block_on(
            LibvirtConnection::builder()
                .socket(libvirtd.socket_path())
                .connect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let client: Client = rt
        .block_on(
            Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_libvirt(&libvirt, name.as_str()),
        )
        .unwrap_or_else(|e| panic!("{e}"));

    let mut samples: HashMap<(Who, Case), Vec<Sample>> = HashMap::new();
    let order = [Who::Ours, Who::VirshShell, Who::VirshPerCall];
    for round in 0..o.rounds {
        let mut shell = VirshShell::start(&uri);
        for case in Case::ALL {
            for k in 0..order.len() {
                let who = order[(k + round) % order.len()];
                let v = match who {
                    Who::Ours => clients::ours(&rt, &client, case, 10, calls),
                    Who::VirshShell => shell.measure(&name, case, 5, calls),
                    _ => clients::virsh_per_call(&uri, &name, case, 1, per_process),
                };
                samples.entry((who, case)).or_default().push(summary(v));
            }
        }
        let v = clients::ours_typed_ping(&rt, &client, 10, calls);
        samples
            .entry((Who::OursTyped, Case::Ping))
            .or_default()
            .push(summary(v));
        drop(shell);
        // The direct socket: free only while libvirtd is stopped.
        libvirtd.stop();
        for case in Case::ALL {
            let v = clients::direct(&rt, &agent_socket, case, 10, calls);
            samples
                .entry((Who::Direct, case))
                .or_default()
                .push(summary(v));
        }
        libvirtd.start_again().unwrap_or_else(|e| panic!("{e}"));
        domain
            .wait_agent(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        // Our connection reconnects by itself; wait for it before the next round.
        let deadline = Instant::now() + Duration::from_secs(30);
        while rt.block_on(client.ping()).is_err() {
            assert!(Instant::now() < deadline, "no reconnect after the restart");
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "round {} done at {:.1} s",
            round + 1,
            started.elapsed().as_secs_f64()
        );
    }
    report(
        &o,
        calls,
        per_process,
        &samples,
        &version,
        &load_before,
        libvirt.stats().sessions,
        started,
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    o: &Options,
    calls: usize,
    per_process: usize,
    samples: &HashMap<(Who, Case), Vec<Sample>>,
    version: &str,
    load_before: &str,
    sessions: u64,
    started: Instant,
) {
    let med = |who, case, p99: bool| -> f64 {
        let v: Vec<f64> = samples
            .get(&(who, case))
            .map(|s| s.iter().map(|x| if p99 { x.1 } else { x.0 }).collect())
            .unwrap_or_default();
        median(&v)
    };
    // The median over rounds of a ratio taken within each round.
    let ratio = |a: Who, b: Who, case: Case| -> f64 {
        let (Some(x), Some(y)) = (samples.get(&(a, case)), samples.get(&(b, case))) else {
            return f64::NAN;
        };
        let r: Vec<f64> = x.iter().zip(y).map(|(x, y)| x.0 / y.0).collect();
        median(&r)
    };
    println!("## libvirt transport: per-call latency, one guest, one run\n");
    println!(
        "{} CPUs ({}), load average {load_before} before, {} after. {}. {} rounds; per round \
         and case {calls} timed calls per client ({per_process} for the virsh process per call); \
         our libvirt connection opened {sessions} sessions (one per libvirtd start). compare ran \
         {:.1} s.\n",
        sys::nproc(),
        sys::cpu_model(),
        sys::load_average(),
        version.lines().collect::<Vec<_>>().join(", "),
        o.rounds,
        started.elapsed().as_secs_f64()
    );
    println!("| client | guest-ping p50 | guest-ping p99 | guest-info p50 | guest-info p99 |");
    println!("|---|---|---|---|---|");
    for who in [
        Who::Direct,
        Who::Ours,
        Who::OursTyped,
        Who::VirshShell,
        Who::VirshPerCall,
    ] {
        let cell = |case, p99| {
            let v = med(who, case, p99);
            if v.is_nan() { "–".to_owned() } else { fmt(v) }
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            who.label(),
            cell(Case::Ping, false),
            cell(Case::Ping, true),
            cell(Case::Info, false),
            cell(Case::Info, true)
        );
    }
    println!();
    for case in Case::ALL {
        let vs_shell = ratio(Who::Ours, Who::VirshShell, case);
        let vs_proc = ratio(Who::VirshPerCall, Who::Ours, case);
        let vs_direct = ratio(Who::Ours, Who::Direct, case);
        println!(
            "- {}: ours / one virsh on stdin = **{vs_shell:.2}×** (goal ≤ 1.20: {}); a virsh \
             process per call / ours = **{vs_proc:.1}×** (goal ≥ 8: {}); ours over libvirt / \
             direct socket = {vs_direct:.2}×",
            case.name(),
            if vs_shell <= 1.2 { "met" } else { "MISSED" },
            if vs_proc >= 8.0 { "met" } else { "MISSED" },
        );
    }
}
