//! The message bus of the notification tests: one private RabbitMQ node per test binary
//! (`qga_testing::rabbitmq::RabbitNode`), a virtual host per test so that tests do not see
//! each other's notifications, Neutron's notifications published by the real oslo.messaging
//! `Notifier` (`tests/notifications/publish.py`, run with the Keystone venv's Python, which
//! has oslo.messaging), and results read by a real oslo.messaging notification listener
//! (`tests/notifications/listen.py`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use qga_testing::rabbitmq::RabbitNode;
use serde_json::{Value, json};

/// The node shared by the binary's tests.
pub fn node() -> &'static RabbitNode {
    static NODE: OnceLock<RabbitNode> = OnceLock::new();
    NODE.get_or_init(RabbitNode::start)
}

fn python() -> PathBuf {
    // The venv the Keystone of `super::env()` runs from (built by tests/keystone/start.sh).
    super::env();
    super::target_dir().join("keystone-venv/bin/python")
}

fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/notifications")
        .join(name)
}

/// A vhost of its own on a node.
pub struct Bus {
    pub vhost: String,
    pub url: String,
    node: &'static RabbitNode,
}

impl Bus {
    /// A fresh vhost `name` on the shared node.
    pub fn new(name: &str) -> Self {
        Self::on(node(), name)
    }

    pub fn on(node: &'static RabbitNode, name: &str) -> Self {
        node.add_vhost(name);
        Self {
            vhost: name.to_owned(),
            url: node.vhost_url(name),
            node,
        }
    }

    /// `(ready, unacked)` of `queue`.
    pub fn counts(&self, queue: &str) -> Option<(u64, u64)> {
        self.node.queue_counts_in(&self.vhost, queue)
    }

    pub fn consumers(&self, queue: &str) -> u64 {
        self.node.consumers(&self.vhost, queue)
    }

    pub fn publisher(&self) -> Publisher {
        Publisher::start(&self.url)
    }

    pub fn listener(&self, pool: &str) -> Listener {
        Listener::start(&self.url, pool)
    }
}

/// oslo.messaging's Notifier, as Neutron sets it up.
pub struct Publisher {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Publisher {
    pub fn start(url: &str) -> Self {
        let mut child = Command::new(python())
            .arg(script("publish.py"))
            .arg(url)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start publish.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &Value) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert!(answer.starts_with("ok "), "publish.py: {answer:?}");
    }

    /// `Notifier.info(ctxt, event_type, payload)`.
    pub fn notify(&mut self, event_type: &str, payload: Value) {
        self.send(&json!({"event_type": event_type, "payload": payload}));
    }

    /// A raw body on Neutron's exchange (for malformed messages).
    pub fn raw(&mut self, body: &str) {
        self.send(&json!({ "raw": body }));
    }

    /// `port.update.end` for a compute port of `instance` in `project`.
    pub fn port_update(&mut self, instance: &str, project: &str) {
        self.notify("port.update.end", port_payload(instance, project));
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `{"port": {...}}` as Neutron's API shows a compute port.
pub fn port_payload(instance: &str, project: &str) -> Value {
    json!({"port": {"id": format!("port-{instance}"), "name": "", "network_id": "net-1",
        "tenant_id": project, "project_id": project, "mac_address": "fa:16:3e:00:00:01",
        "admin_state_up": true, "status": "ACTIVE", "device_id": instance,
        "device_owner": "compute:nova", "binding:vif_type": "ovs",
        "fixed_ips": [{"subnet_id": "sub-4", "ip_address": "10.0.0.7"}],
        "extra_dhcp_opts": [], "security_groups": [], "allowed_address_pairs": []}})
}

/// A real oslo.messaging notification listener on our results exchange.
pub struct Listener {
    child: Child,
    pub seen: Arc<Mutex<Vec<Value>>>,
}

impl Listener {
    pub fn start(url: &str, pool: &str) -> Self {
        let mut child = Command::new(python())
            .arg(script("listen.py"))
            .arg(url)
            .arg("nova-guest")
            .arg(pool)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start listen.py");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "listen.py did not start");
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str(&line) {
                    s.lock().unwrap().push(v);
                }
            }
        });
        Self { child, seen }
    }

    /// Waits until a notification matches `pred`.
    pub fn wait_for(&self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + within;
        loop {
            if let Some(v) = self.seen.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            assert!(
                Instant::now() < end,
                "no such result notification in {within:?}; seen: {:?}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Notifications about `instance` so far.
    pub fn about(&self, instance: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["payload"]["instance_id"] == instance)
            .cloned()
            .collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
