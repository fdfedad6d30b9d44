//! Test support: the real `nova-guest-agent` binary with a temporary configuration, in front
//! of real host-mode qemu-ga instances (destructive commands blocked), and a small HTTP/1.1
//! client on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use qga_testing::QemuGa;
use serde_json::Value;

pub const TOKEN: &str = "test-secret-0123456789-0123456789";

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        self.write_request(method, path, token, body)?;
        self.read_response()
    }

    pub fn write_request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        if let Some(b) = body {
            stream.write_all(b)?;
        }
        stream.flush()
    }

    pub fn read_response(&mut self) -> std::io::Result<Resp> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Resp {
    Conn::open(addr)
        .and_then(|mut c| c.send(method, path, token, body))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A uuid for guest `i`.
pub fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Several real agents, each linked as `<socks>/<uuid>.sock`.
pub struct Fleet {
    pub agents: Vec<QemuGa>,
    pub uuids: Vec<String>,
    pub socks: PathBuf,
}

impl Fleet {
    pub fn start(dir: &Path, n: usize) -> Self {
        let socks = dir.join("socks");
        std::fs::create_dir_all(&socks).unwrap();
        let mut agents = Vec::new();
        let mut uuids = Vec::new();
        for i in 0..n {
            let agent = QemuGa::start();
            let u = uuid(i);
            std::os::unix::fs::symlink(agent.socket(), socks.join(format!("{u}.sock"))).unwrap();
            agents.push(agent);
            uuids.push(u);
        }
        Self {
            agents,
            uuids,
            socks,
        }
    }

    pub fn template(&self) -> String {
        format!("{}/{{uuid}}.sock", self.socks.display())
    }
}

/// The running daemon.
pub struct Daemon {
    pub process: qga_testing::daemon::Daemon,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// The base configuration for tests; `extra` lines are appended to `[agent]`.
pub fn config_text(dir: &Path, template: &str, extra: &str) -> String {
    qga_testing::daemon::write_secret(&dir.join("token"), &format!("\n  {TOKEN}"));
    format!(
        "# test configuration\n[DEFAULT]\nhost = test-host\n\n[agent]\nlisten_address = 127.0.0.1\n\
         listen_port = 0\nauth_token_file = {}\ntransport = socket\nsocket_path_template = {template}\n\
         command_timeout = 5\n{extra}\n\n[api]\nlisten_port = 4224\n\n[keystone_authtoken]\n\
         password = not-ours\n\n[instances]\n{} = test-host project\n\n[policy]\nexec = admin\n",
        dir.join("token").display(),
        uuid(0),
    )
}

impl Daemon {
    /// Starts the binary on `config` (written to `dir/nova-guest.conf`).
    pub fn start(dir: &Path, config: &str) -> Self {
        let path = dir.join("nova-guest.conf");
        std::fs::write(&path, config).unwrap();
        let process = qga_testing::daemon::Daemon::start(
            Path::new(env!("CARGO_BIN_EXE_nova-guest-agent")),
            &path,
            &dir.join("agent.log"),
            &[("RUST_LOG", "debug")],
        );
        Self {
            addr: process.addr(),
            process,
            dir: dir.to_owned(),
            config: path,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, Some(TOKEN), None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        let body = serde_json::to_vec(body).unwrap();
        request(self.addr, "POST", path, Some(TOKEN), Some(&body))
    }

    pub fn action(&self, uuid: &str, body: &Value) -> Resp {
        self.post(&format!("/v1/instances/{uuid}/actions"), body)
    }

    /// set-password for `user` on `uuid`: 200 with the user named, and the password in no
    /// log line.
    #[track_caller]
    pub fn set_password_unlogged(&self, uuid: &str, user: &str, password: &str) {
        let r = self.action(
            uuid,
            &serde_json::json!({"set-password": {"username": user, "password": password}}),
        );
        assert_eq!(r.status, 200, "{}\n{}", r.text(), self.log());
        assert_eq!(
            r.json(),
            serde_json::json!({"set-password": {"success": true, "username": user}})
        );
        assert!(!self.log().contains(password), "the password is logged");
    }

    pub fn log(&self) -> String {
        self.process.logs()
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_owned()
    }

    pub fn signal(&self, sig: &str) {
        self.process.signal(sig);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }
}
