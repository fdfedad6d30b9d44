//! The private libvirtd harness against the real test guest: one libvirtd, one boot, every
//! check in order (taint checks come before the first `qemu-agent-command`).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use qga_testing::libvirt::Libvirtd;
use qga_testing::vm::{DEFAULT_MAC, GUEST_IP, VmImage};
use qga_testing::wait_until;
use serde_json::json;

const CUSTOM_GA: &str = "custom-ga-command";

#[test]
fn libvirtd_boots_the_guest_and_survives_agent_kill_and_restart() {
    let host_run_libvirt = Path::new("/run/libvirt").exists();
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let libvirtd = Libvirtd::start().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("libvirtd answered {:?} after spawn", libvirtd.start_time());
    assert!(libvirtd.socket_path().ends_with("sock/libvirt-sock"));
    assert_ne!(libvirtd.pid(), 0);
    let version = libvirtd.virsh_ok(&["version"]).unwrap();
    assert!(version.contains("Running hypervisor: QEMU"), "{version}");
    assert_eq!(
        Path::new("/run/libvirt").exists(),
        host_run_libvirt,
        "the host's /run/libvirt changed"
    );

    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = domain.name().to_owned();
    eprintln!(
        "{name} {}: virsh create to first agent answer {:?}",
        domain.uuid(),
        domain.boot_time().unwrap()
    );
    assert_eq!(domain.uuid().len(), 36);
    assert_eq!(
        libvirtd.virsh_ok(&["domuuid", &name]).unwrap(),
        domain.uuid()
    );
    assert_eq!(domain.state(), "running");
    assert!(
        domain
            .console_tail(50)
            .contains("nova-init: starting qemu-ga")
    );
    let agent_socket = domain.agent_socket_path().expect("agent socket in dumpxml");
    assert!(
        agent_socket.starts_with(libvirtd.dir()),
        "{}",
        agent_socket.display()
    );
    assert!(agent_socket.exists(), "{}", agent_socket.display());

    // Dedicated agent APIs: none of them taints the domain.
    let taints = domain.taints();
    assert!(taints.iter().any(|t| t == "high-privileges"), "{taints:?}");
    let time = libvirtd.virsh_ok(&["domtime", &name]).unwrap();
    let guest_time: u64 = time.trim_start_matches("Time: ").parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        guest_time.abs_diff(now) < 120,
        "guest {guest_time}, host {now}"
    );
    libvirtd
        .virsh_ok(&["set-user-password", &name, "tester", "harness-pw-1"])
        .unwrap();
    let info = libvirtd.virsh_ok(&["guestinfo", &name]).unwrap();
    assert!(info.contains("novaguest-test"), "{info}");
    let addrs = libvirtd
        .virsh_ok(&["domifaddr", "--source", "agent", &name])
        .unwrap();
    assert!(
        addrs.contains(DEFAULT_MAC) && addrs.contains(GUEST_IP),
        "{addrs}"
    );
    assert!(
        !domain.taints().iter().any(|t| t == CUSTOM_GA),
        "{:?}",
        domain.taints()
    );
    assert!(!domain.messages().iter().any(|m| m.contains("guest agent")));

    // qemu-agent-command: works, and taints.
    assert_eq!(
        domain
            .agent_command(&json!({"execute": "guest-ping"}))
            .unwrap(),
        json!({})
    );
    let ga_info = domain
        .agent_command(&json!({"execute": "guest-info"}))
        .unwrap();
    assert!(ga_info["version"].as_str().unwrap().starts_with("7.2"));
    assert!(ga_info["supported_commands"].as_array().unwrap().len() > 30);
    assert!(domain.taints().iter().any(|t| t == CUSTOM_GA));
    assert!(
        domain
            .messages()
            .contains(&"tainted: custom guest agent control commands issued".to_owned()),
        "{:?}",
        domain.messages()
    );
    assert!(libvirtd.log_text().contains(&format!(
        "name='{name}' uuid={} is tainted: {CUSTOM_GA}",
        domain.uuid()
    )));
    let shadow = domain.exec("grep '^tester:' /etc/shadow").unwrap();
    assert!(shadow.success(), "{shadow:?}");
    assert!(shadow.stdout.starts_with("tester:$6$"), "{shadow:?}");

    // Agent kill: the agent-lifecycle events, and what a call gets while the agent is down.
    let events_path = libvirtd.dir().join("agent-events.txt");
    let mut watcher = Command::new("virsh")
        .args(["-c", &libvirtd.uri(), "event", "--domain", &name])
        .args(["--event", "agent-lifecycle", "--loop", "--timeout", "60"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&events_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // There is nothing to observe when virsh has registered its callback; 1 s is ample.
    thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    domain.kill_agent().unwrap();
    let mut down_error = None;
    while killed.elapsed() < Duration::from_secs(10) {
        match domain.agent_command(&json!({"execute": "guest-ping"})) {
            Ok(_) => thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                down_error = Some((killed.elapsed(), e));
                break;
            }
        }
    }
    let (first_error_after, down_error) = down_error.expect("guest-ping kept working");
    eprintln!("agent killed; after {first_error_after:?}: {down_error}");
    assert!(
        down_error.contains("Guest agent is not responding"),
        "{down_error}"
    );
    let back = domain.wait_agent(Duration::from_secs(60)).unwrap();
    eprintln!("agent answered again {:?} after the kill", killed.elapsed());
    let events = || fs::read_to_string(&events_path).unwrap_or_default();
    let both = wait_until(Duration::from_secs(10), || {
        events().contains("state: 'disconnected'") && events().contains("state: 'connected'")
    });
    let _ = watcher.kill();
    let _ = watcher.wait();
    eprintln!("events:\n{}", events());
    assert!(both, "no agent-lifecycle events: {:?}", events());
    assert!(
        events().contains(&format!(
            "event 'agent-lifecycle' for domain '{name}': state: 'disconnected' reason: 'channel event'"
        )),
        "{}",
        events()
    );
    assert!(back < Duration::from_secs(60));

    // libvirtd restart under the running domain.
    let old_pid = libvirtd.pid();
    let restart = libvirtd.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(libvirtd.pid(), old_pid);
    assert_eq!(domain.state(), "running");
    assert_eq!(
        libvirtd.virsh_ok(&["domuuid", &name]).unwrap(),
        domain.uuid()
    );
    assert_eq!(
        libvirtd.virsh_ok(&["domid", &name]).unwrap(),
        domain.id().to_string()
    );
    let reconnect = domain.wait_agent(Duration::from_secs(60)).unwrap();
    assert_eq!(
        domain
            .agent_command(&json!({"execute": "guest-ping"}))
            .unwrap(),
        json!({})
    );
    eprintln!("libvirtd restart: answered {restart:?} after SIGTERM, agent {reconnect:?} later");
    assert!(domain.messages().iter().any(|m| m.contains("guest agent")));

    let ns_pid = libvirtd.namespace_pid();
    let daemon_pid = libvirtd.pid();
    let marker = libvirtd.dir().to_string_lossy().into_owned();
    drop(domain);
    drop(libvirtd);
    for pid in [ns_pid, daemon_pid] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still there"
        );
    }
    assert!(
        processes_mentioning(&marker).is_empty(),
        "left running: {:?}",
        processes_mentioning(&marker)
    );
    assert_eq!(Path::new("/run/libvirt").exists(), host_run_libvirt);
}

/// Pids whose command line mentions `text` (QEMU's holds the domain's disk path).
fn processes_mentioning(text: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(text)
                .then_some(pid)
        })
        .collect()
}
