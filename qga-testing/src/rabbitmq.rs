//! A private RabbitMQ node for tests (Debian's `rabbitmq-server`): its own node name, AMQP,
//! distribution and epmd ports on 127.0.0.1, and its mnesia, log, config, plugin and
//! feature-flag files in a temporary directory owned by the `rabbitmq` user (the Debian
//! wrapper drops to that user). The node's own epmd is started here, in the foreground on a
//! port of its own (`ERL_EPMD_PORT`), so no shared epmd is touched. Dropping the node stops
//! it with `rabbitmqctl stop` (its wrapper killed by PID if that does not work) and kills
//! that epmd by PID. `guest`/`guest` may log in from loopback, which is all tests need.
//!
//! Starting takes about 5-7 s here. A missing `rabbitmq-server` is a test failure saying how
//! to install it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_program, wait_until};

/// How long the node may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private node.
pub struct RabbitNode {
    dir: tempfile::TempDir,
    node: String,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    server: Option<Child>,
    epmd: Child,
    /// Stops the node when the test process goes away without dropping it (a node in a
    /// `static` is never dropped): it waits for its standard input, which we hold, to close.
    watcher: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn chown_rabbitmq(path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg("rabbitmq:rabbitmq")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown rabbitmq {}", path.display());
}

impl RabbitNode {
    /// Starts a node and waits until its AMQP port listens.
    ///
    /// # Panics
    ///
    /// When `rabbitmq-server` is not installed (`apt-get install rabbitmq-server`;
    /// `./scripts/test` installs it) or the node does not start (with its log).
    pub fn start() -> Self {
        find_program("rabbitmq-server", "rabbitmq-server");
        let epmd_bin = find_program("epmd", "erlang-base");
        let dir = tempfile::Builder::new()
            .prefix("rabbit-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("node dirs");
        }
        std::fs::write(dir.path().join("plugins"), "[].\n").expect("plugins file");
        std::fs::write(dir.path().join("rabbitmq.conf"), "").expect("config file");
        chown_rabbitmq(dir.path());
        let epmd_port = free_port();
        let epmd = Command::new(epmd_bin)
            .args(["-address", "127.0.0.1"])
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start epmd");
        // The node starts an epmd of its own when none answers yet: wait for ours.
        let epmd_addr = std::net::SocketAddr::from(([127, 0, 0, 1], epmd_port));
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect_timeout(&epmd_addr, Duration::from_millis(100)).is_ok()
            }),
            "epmd did not listen on {epmd_addr}"
        );
        let mut node = Self {
            node: format!("qga{}x{epmd_port}@localhost", std::process::id()),
            port: free_port(),
            dist_port: free_port(),
            epmd_port,
            dir,
            server: None,
            epmd,
            watcher: None,
        };
        node.boot();
        node.watcher = Some(node.watch());
        node
    }

    fn watch(&self) -> Child {
        let mut command = Command::new("sh");
        self.env(&mut command);
        command
            .arg("-c")
            .arg(format!(
                "cat >/dev/null; rabbitmqctl -n \"$RABBITMQ_NODENAME\" stop >/dev/null 2>&1; \
                 kill {} 2>/dev/null; \
                 for p in /proc/[0-9]*; do \
                   [ \"$(cat $p/comm 2>/dev/null)\" = epmd ] && \
                   tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx ERL_EPMD_PORT={} && \
                   kill ${{p#/proc/}}; \
                 done; rm -rf '{}'",
                self.epmd.id(),
                self.epmd_port,
                self.dir.path().display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the node's watcher")
    }

    /// Adds a virtual host `guest` may use (one per test keeps tests apart on one node).
    pub fn add_vhost(&self, vhost: &str) {
        self.ctl(&["add_vhost", vhost]);
        self.ctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]);
    }

    /// oslo.messaging's transport URL for `vhost` on this node.
    pub fn vhost_url(&self, vhost: &str) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    fn env(&self, command: &mut Command) {
        let d = self.dir.path();
        command
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d.join("ff"));
    }

    fn boot(&mut self) {
        let out = std::fs::File::create(self.dir.path().join("server.out")).expect("server log");
        let mut command = Command::new("rabbitmq-server");
        self.env(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start rabbitmq-server");
        self.server = Some(child);
        let started = Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let server = self.server.as_mut().expect("just set");
        let up = wait_until(START_TIMEOUT, || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                || server.try_wait().ok().flatten().is_some()
        });
        let listening = std::net::TcpStream::connect(addr).is_ok();
        if !up || !listening {
            panic!(
                "rabbitmq-server did not start within {:?}; its output:\n{}\nlogs:\n{}",
                started.elapsed(),
                std::fs::read_to_string(self.dir.path().join("server.out")).unwrap_or_default(),
                self.logs()
            );
        }
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node name (`rabbitmqctl -n NAME`).
    pub fn name(&self) -> &str {
        &self.node
    }

    /// oslo.messaging's transport URL for this node.
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// The node's log files, concatenated.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("log")) {
            for e in entries.flatten() {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        all
    }

    /// Runs `rabbitmqctl -n NODE ARGS...` and returns its standard output.
    ///
    /// # Panics
    ///
    /// When it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut command = Command::new("rabbitmqctl");
        self.env(&mut command);
        let out = command
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `(ready, unacknowledged)` messages of `queue` in vhost `/`, or `None` when it does
    /// not exist.
    pub fn queue_counts(&self, queue: &str) -> Option<(u64, u64)> {
        self.queue_counts_in("/", queue)
    }

    /// `(ready, unacknowledged)` messages of `queue` in `vhost`, or `None`.
    pub fn queue_counts_in(&self, vhost: &str, queue: &str) -> Option<(u64, u64)> {
        let out = self.ctl(&[
            "list_queues",
            "-p",
            vhost,
            "-q",
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [name, ready, unacked] if name == queue => {
                    Some((ready.parse().ok()?, unacked.parse().ok()?))
                }
                _ => None,
            }
        })
    }

    /// Number of consumers of `queue` in `vhost` (0 when it does not exist).
    pub fn consumers(&self, vhost: &str, queue: &str) -> u64 {
        let out = self.ctl(&[
            "list_queues",
            "-p",
            vhost,
            "-q",
            "--no-table-headers",
            "name",
            "consumers",
        ]);
        out.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f[..] {
                    [name, n] if name == queue => n.parse().ok(),
                    _ => None,
                }
            })
            .unwrap_or(0)
    }

    /// Stops the node (`rabbitmqctl stop`, else its wrapper is killed); its data stays, for
    /// [`Self::restart`].
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let mut command = Command::new("rabbitmqctl");
        self.env(&mut command);
        let _ = command
            .arg("-n")
            .arg(&self.node)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let exited = wait_until(Duration::from_secs(20), || {
            server.try_wait().ok().flatten().is_some()
        });
        if !exited {
            let _ = server.kill();
        }
        let _ = server.wait();
    }

    /// Starts a stopped node again on the same ports and data (durable queues and their
    /// persistent messages survive).
    pub fn resume(&mut self) {
        if self.server.is_none() {
            self.boot();
        }
    }

    /// [`Self::stop`], then [`Self::resume`].
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }
}

/// The epmd processes serving `port` (started by us or, racing ours, by the node): found by
/// the `ERL_EPMD_PORT` in their environment, which only our nodes use.
fn epmd_pids(port: u16) -> Vec<u32> {
    let want = format!("ERL_EPMD_PORT={port}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "epmd")
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes()))
        })
        .collect()
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
        for pid in epmd_pids(self.epmd_port) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        if let Some(mut w) = self.watcher.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node starts, takes a vhost, survives a restart with its durable queue, and leaves
    /// nothing behind: no node, no epmd on its port, no directory.
    #[test]
    fn private_node_lifecycle() {
        let mut node = RabbitNode::start();
        node.add_vhost("v1");
        assert_eq!(node.queue_counts_in("v1", "nope"), None);
        assert!(node.vhost_url("v1").ends_with("/v1"));
        node.restart();
        assert!(
            node.ctl(&["list_vhosts", "-q"]).contains("v1"),
            "kept over a restart"
        );
        let (port, epmd_port) = (node.port(), node.epmd_port);
        let dir = node.dir.path().to_owned();
        assert!(!epmd_pids(epmd_port).is_empty());
        drop(node);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(
            wait_until(Duration::from_secs(5), || epmd_pids(epmd_port).is_empty()),
            "its epmd is gone"
        );
        assert!(!dir.exists());
    }
}
