//! One daemon's view of the configuration file: its sections, typed values read with their
//! lines, and every problem collected so that one run reports all of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigErrors};
use crate::ini::{self, Entry};
use crate::layout::{self, Daemon};
use crate::secret::Secret;

/// The sections `daemon` reads, from one file.
#[derive(Debug)]
pub struct Document {
    file: PathBuf,
    sections: BTreeMap<&'static str, Vec<Entry>>,
    errors: Vec<ConfigError>,
}

impl Document {
    /// Reads and parses `file` for `daemon`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or [`Document::parse`] fails.
    pub fn load(file: &Path, daemon: Daemon) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigErrors(vec![ConfigError::file(file, format!("cannot read: {e}"))])
        })?;
        Self::parse(file, &text, daemon)
    }

    /// Parses configuration text as if read from `file` (which names it in errors and anchors
    /// relative paths). Syntax errors end it at once; unknown sections and keys are collected
    /// with the errors found later.
    ///
    /// # Errors
    ///
    /// Every syntax error.
    pub fn parse(file: &Path, text: &str, daemon: Daemon) -> Result<Self, ConfigErrors> {
        let parsed = ini::parse(text).map_err(|syntax| {
            ConfigErrors(
                syntax
                    .into_iter()
                    .map(|e| ConfigError {
                        file: file.to_owned(),
                        line: Some(e.line),
                        section: None,
                        key: None,
                        message: e.message,
                    })
                    .collect(),
            )
        })?;
        let mut doc = Self {
            file: file.to_owned(),
            sections: BTreeMap::new(),
            errors: Vec::new(),
        };
        for section in parsed {
            let Some(spec) = layout::section(&section.name) else {
                doc.errors.push(ConfigError {
                    file: file.to_owned(),
                    line: Some(section.line),
                    section: Some(section.name.clone()),
                    key: None,
                    message: format!(
                        "unknown section (nova-guest reads {})",
                        layout::all_sections()
                    ),
                });
                continue;
            };
            if !spec.read_by(daemon) {
                continue;
            }
            let entries = doc.sections.entry(spec.name).or_default();
            for entry in section.entries {
                match spec.keys {
                    Some(keys) if !keys.contains(&entry.key.as_str()) => {
                        doc.errors.push(ConfigError {
                            file: file.to_owned(),
                            line: Some(entry.line),
                            section: Some(section.name.clone()),
                            key: Some(entry.key.clone()),
                            message: format!("unknown key (known keys: {})", keys.join(", ")),
                        });
                    }
                    _ => entries.push(entry),
                }
            }
        }
        Ok(doc)
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The reader of section `name` (empty when the file does not have it).
    pub fn section(&mut self, name: &'static str) -> Section<'_> {
        Section {
            file: &self.file,
            name,
            entries: self.sections.remove(name).unwrap_or_default(),
            errors: &mut self.errors,
        }
    }

    /// True while no problem was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Ends reading: every problem found, or none.
    ///
    /// # Errors
    ///
    /// Everything collected.
    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// The entries of one section, and typed reads of them. A bad value is recorded (naming file,
/// line, section and key) and the default is returned, so reading goes on.
#[derive(Debug)]
pub struct Section<'d> {
    file: &'d Path,
    name: &'static str,
    entries: Vec<Entry>,
    errors: &'d mut Vec<ConfigError>,
}

impl Section<'_> {
    /// Records a problem with `key` (on `entry`'s line when given).
    pub fn error(&mut self, entry: Option<&Entry>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: entry.map(|e| e.line),
            section: Some(self.name.to_owned()),
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    /// The entry of `key`; the last occurrence wins, as in oslo.config.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// Every entry in file order (for sections whose keys are data).
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.clone()
    }

    /// The value of `key` unless it is absent or empty.
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }

    /// The value of `key`, recording an error (`is required {why}`) when absent or empty.
    pub fn required(&mut self, key: &str, why: &str) -> String {
        match self.string(key) {
            Some(v) => v,
            None => {
                let entry = self.get(key).cloned();
                self.error(entry.as_ref(), key, format!("is required {why}"));
                String::new()
            }
        }
    }

    /// Parses `key` with `parse`, or returns `default` when the key is absent or bad (a bad
    /// value is recorded with what was found).
    pub fn parse<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        let Some(entry) = self.get(key).cloned() else {
            return default;
        };
        match parse(&entry.value) {
            Ok(v) => v,
            Err(message) => {
                self.error(
                    Some(&entry),
                    key,
                    format!("{message} (got {:?})", entry.value),
                );
                default
            }
        }
    }

    /// `listen_address` (default any IPv4 address) and `listen_port` (default `port`; 0 means
    /// any free port) as one socket address.
    pub fn listen(&mut self, port: u16) -> std::net::SocketAddr {
        let address = self.parse(
            "listen_address",
            std::net::IpAddr::from([0, 0, 0, 0]),
            |v| {
                v.parse()
                    .map_err(|_| "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::".into())
            },
        );
        let port = self.parse("listen_port", port, |v| {
            v.parse()
                .map_err(|_| "expected a port number 0-65535 (0: any free port)".into())
        });
        std::net::SocketAddr::new(address, port)
    }

    /// `header_timeout` (seconds, 0.1-3600) and `max_connections` (1-1,000,000): the bounds
    /// both daemons put on client connections.
    pub fn connection_limits(&mut self, max_connections: usize) -> (std::time::Duration, usize) {
        let header_timeout =
            self.parse("header_timeout", std::time::Duration::from_secs(10), |v| {
                crate::values::seconds(v, 0.1, 3600.0)
            });
        let max_connections = self.parse("max_connections", max_connections, |v| {
            crate::values::count(v, 1, 1_000_000)
        });
        (header_timeout, max_connections)
    }

    /// A path, relative ones taken from the configuration file's directory.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.string(key).map(|v| relative_to(self.file, &v))
    }

    /// Reads the secret in the file named by `key` (surrounding whitespace trimmed). A missing
    /// key (with `why` in the message), an unreadable file, a file that group or others may
    /// read, and a secret shorter than [`MIN_SECRET_LEN`] bytes are recorded and give an empty
    /// secret.
    pub fn secret_file(&mut self, key: &str, why: &str) -> (PathBuf, Secret) {
        let Some(entry) = self.get(key).cloned() else {
            self.error(None, key, format!("is required: {why}"));
            return (PathBuf::new(), Secret::new(""));
        };
        let path = relative_to(self.file, &entry.value);
        match read_secret(&path) {
            Ok(secret) => (path, secret),
            Err(message) => {
                self.error(Some(&entry), key, message);
                (path, Secret::new(""))
            }
        }
    }
}

/// The shortest secret a daemon accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Reads a secret file: only its owner may read it, and it must hold at least
/// [`MIN_SECRET_LEN`] bytes once surrounding whitespace is trimmed.
///
/// # Errors
///
/// What is wrong, naming the file.
pub fn read_secret(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} may be read by group or others (mode {mode:03o}): `chmod 600 {shown}`"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "{shown} holds a secret of {} bytes; at least {MIN_SECRET_LEN} are needed              (e.g. `openssl rand -hex 32 > {shown}`)",
            secret.len()
        ));
    }
    Ok(Secret::new(secret))
}

/// Resolves a path relative to the configuration file's directory.
pub fn relative_to(file: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_daemon_reads_its_sections_and_both_report_unknown_ones() {
        let text = "[DEFAULT]\nhost = c1\n[agent]\nlisten_port = 1\nbogus = 2\n[api]\nnope = 3\n\
                    [policy]\nexec = admin\n[agnet]\n";
        let file = Path::new("/etc/x.conf");
        let mut agent = Document::parse(file, text, Daemon::Agent).unwrap();
        assert_eq!(agent.section("agent").string("listen_port").unwrap(), "1");
        assert_eq!(agent.section("DEFAULT").string("host").unwrap(), "c1");
        let e = agent.finish().unwrap_err().to_string();
        assert!(
            e.contains("/etc/x.conf:5: [agent] bogus: unknown key"),
            "{e}"
        );
        assert!(e.contains(":10: [agnet]: unknown section"), "{e}");
        assert!(
            !e.contains("nope"),
            "the API's keys are not the agent's business: {e}"
        );
        let mut api = Document::parse(file, text, Daemon::Api).unwrap();
        assert_eq!(api.section("policy").entries().len(), 1);
        assert!(api.section("agent").entries().is_empty());
        let e = api.finish().unwrap_err().to_string();
        assert!(e.contains(":7: [api] nope: unknown key"), "{e}");
        assert!(!e.contains("bogus"), "{e}");
    }

    #[test]
    fn typed_reads_record_errors_with_the_value() {
        let mut doc = Document::parse(
            Path::new("/etc/x.conf"),
            "[agent]\ncommand_timeout = soon\ncommand_timeout = 2\nlog_format = xml\n",
            Daemon::Agent,
        )
        .unwrap();
        let mut s = doc.section("agent");
        let t = s.parse("command_timeout", std::time::Duration::ZERO, |v| {
            crate::values::seconds(v, 0.1, 10.0)
        });
        assert_eq!(t, std::time::Duration::from_secs(2), "the last one wins");
        s.parse(
            "log_format",
            crate::LogFormat::Text,
            crate::LogFormat::parse,
        );
        s.required("auth_token_file", "(a test)");
        let e = doc.finish().unwrap_err().to_string();
        assert!(
            e.contains(":4: [agent] log_format: expected text or json (got \"xml\")"),
            "{e}"
        );
        assert!(
            e.contains("[agent] auth_token_file: is required (a test)"),
            "{e}"
        );
    }

    #[test]
    fn secret_files_must_be_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let good = "0123456789abcdef0123456789abcdef";
        std::fs::write(&file, format!("  {good}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&file).unwrap_err();
        assert!(
            e.contains("may be read by group or others (mode 644)"),
            "{e}"
        );
        assert!(e.contains(&file.display().to_string()), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&file).unwrap().expose(), good);
        std::fs::write(&file, "short\n").unwrap();
        let e = read_secret(&file).unwrap_err();
        assert!(e.contains("a secret of 5 bytes; at least 32"), "{e}");
        std::fs::write(&file, " \n").unwrap();
        assert!(read_secret(&file).unwrap_err().contains("is empty"));
        assert!(
            read_secret(&dir.path().join("none"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn relative_paths_start_at_the_file() {
        assert_eq!(
            relative_to(Path::new("/etc/nova-guest/x.conf"), "token"),
            Path::new("/etc/nova-guest/token")
        );
        assert_eq!(relative_to(Path::new("x.conf"), "/abs"), Path::new("/abs"));
    }
}
