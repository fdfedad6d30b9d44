//! `socket_path_template`: where the agent socket of an instance is, from its uuid and/or its
//! libvirt domain name, and the reverse (which instances have a socket on this host).

use std::path::{Component, Path, PathBuf};

/// Most directory entries looked at while listing instances, per directory.
const MAX_DIR_ENTRIES: usize = 100_000;

/// A placeholder in the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Uuid,
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template such as `/run/qemu-server/{name}.qga` or `/run/nova-guest/{uuid}.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketTemplate {
    raw: String,
    /// The path components, each a sequence of text and placeholders.
    components: Vec<Vec<Piece>>,
}

/// A socket found while listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The instance uuid, when the template has `{uuid}`.
    pub uuid: Option<String>,
    /// The domain name, when the template has `{name}`.
    pub name: Option<String>,
    /// The socket path.
    pub path: PathBuf,
}

impl SocketTemplate {
    /// Parses a template.
    ///
    /// # Errors
    ///
    /// A text saying why: not absolute, no placeholder, an unknown `{placeholder}`, or a
    /// placeholder in a `..` component.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err("must be an absolute path".into());
        }
        let mut components = Vec::new();
        for part in raw.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return Err(format!("must not contain a {part:?} component"));
            }
            let mut pieces = Vec::new();
            let mut rest = part;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    pieces.push(Piece::Text(rest[..open].to_owned()));
                }
                let Some(close) = rest[open..].find('}') else {
                    return Err("has a `{` without a matching `}`".into());
                };
                let var = match &rest[open + 1..open + close] {
                    "uuid" => Var::Uuid,
                    "name" => Var::Name,
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}} (use {{uuid}} and/or {{name}})"
                        ));
                    }
                };
                if matches!(pieces.last(), Some(Piece::Var(_))) {
                    return Err("two placeholders must be separated by some text".into());
                }
                pieces.push(Piece::Var(var));
                rest = &rest[open + close + 1..];
            }
            if rest.contains('}') {
                return Err("has a `}` without a matching `{`".into());
            }
            if !rest.is_empty() {
                pieces.push(Piece::Text(rest.to_owned()));
            }
            components.push(pieces);
        }
        let template = Self {
            raw: raw.to_owned(),
            components,
        };
        if !template.uses_uuid() && !template.uses_name() {
            return Err("must contain {uuid} and/or {name}".into());
        }
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn uses(&self, var: Var) -> bool {
        self.components
            .iter()
            .flatten()
            .any(|p| *p == Piece::Var(var))
    }

    /// True when the template has `{uuid}`.
    pub fn uses_uuid(&self) -> bool {
        self.uses(Var::Uuid)
    }

    /// True when the template has `{name}`: callers must then pass the domain name.
    pub fn uses_name(&self) -> bool {
        self.uses(Var::Name)
    }

    /// The socket path of an instance. `uuid` must be a validated uuid and `name` a validated
    /// domain name ([`valid_name`]); returns `None` when the template needs a name and none
    /// was given.
    pub fn path(&self, uuid: &str, name: Option<&str>) -> Option<PathBuf> {
        let mut path = PathBuf::from("/");
        for component in &self.components {
            let mut text = String::new();
            for piece in component {
                match piece {
                    Piece::Text(t) => text.push_str(t),
                    Piece::Var(Var::Uuid) => text.push_str(uuid),
                    Piece::Var(Var::Name) => text.push_str(name?),
                }
            }
            path.push(text);
        }
        Some(path)
    }

    /// Every socket path on this host that fits the template, with the uuid and name read back
    /// from it. Directories that do not exist or cannot be read give nothing.
    pub fn discover(&self) -> Vec<Found> {
        let mut found = Vec::new();
        self.walk(PathBuf::from("/"), 0, None, None, &mut found);
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    fn walk(
        &self,
        dir: PathBuf,
        depth: usize,
        uuid: Option<String>,
        name: Option<String>,
        out: &mut Vec<Found>,
    ) {
        let Some(component) = self.components.get(depth) else {
            out.push(Found {
                uuid,
                name,
                path: dir,
            });
            return;
        };
        let last = depth + 1 == self.components.len();
        if let [Piece::Text(text)] = component.as_slice() {
            let next = dir.join(text);
            if last && !is_socket_like(&next) {
                return;
            }
            self.walk(next, depth + 1, uuid, name, out);
            return;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let mut vars = Vec::new();
            if !match_pieces(component, file_name, &mut vars) {
                continue;
            }
            let mut uuid = uuid.clone();
            let mut name = name.clone();
            let mut consistent = true;
            for (var, value) in vars {
                let slot = match var {
                    Var::Uuid => &mut uuid,
                    Var::Name => &mut name,
                };
                match slot {
                    Some(prev) if *prev != value => consistent = false,
                    _ => *slot = Some(value),
                }
            }
            let next = entry.path();
            if consistent && (!last || is_socket_like(&next)) {
                self.walk(next, depth + 1, uuid, name, out);
            }
        }
    }
}

/// A UNIX socket, or a symlink to one (tests and some deployments link sockets into place).
fn is_socket_like(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Matches `text` against pieces (text and placeholders), collecting placeholder values.
fn match_pieces(pieces: &[Piece], text: &str, vars: &mut Vec<(Var, String)>) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(t), rest)) => text
            .strip_prefix(t.as_str())
            .is_some_and(|tail| match_pieces(rest, tail, vars)),
        Some((Piece::Var(var), rest)) => {
            // Try every split point, shortest value first.
            for end in (1..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                let value = &text[..end];
                let ok = match var {
                    Var::Uuid => valid_uuid(value),
                    Var::Name => valid_name(value),
                };
                if !ok {
                    continue;
                }
                let mark = vars.len();
                vars.push((*var, value.to_owned()));
                if match_pieces(rest, &text[end..], vars) {
                    return true;
                }
                vars.truncate(mark);
            }
            false
        }
    }
}

/// An instance uuid as Nova writes it: 8-4-4-4-12 hex digits (either case).
pub fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A libvirt domain name usable in a path: 1 to 255 of `A-Z a-z 0-9 . _ -`, not `.` or `..`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && Path::new(s).components().count() == 1
        && matches!(Path::new(s).components().next(), Some(Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "b6b4177b-3ca1-4d0f-a3a4-ad46d82a6f62";

    #[test]
    fn parse_and_render() {
        let t = SocketTemplate::parse("/run/qemu-server/{name}.qga").unwrap();
        assert!(t.uses_name() && !t.uses_uuid());
        assert_eq!(t.path(U, None), None);
        assert_eq!(
            t.path(U, Some("instance-0000001a")).unwrap(),
            PathBuf::from("/run/qemu-server/instance-0000001a.qga")
        );
        let t = SocketTemplate::parse("/var/lib/x/domain-{name}/{uuid}.sock").unwrap();
        assert_eq!(
            t.path(U, Some("vm")).unwrap(),
            PathBuf::from(format!("/var/lib/x/domain-vm/{U}.sock"))
        );
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "run/{uuid}",
            "/run/x.sock",
            "/run/{id}.sock",
            "/run/{uuid",
            "/run/uuid}",
            "/run/{uuid}{name}",
            "/run/../{uuid}",
        ] {
            assert!(SocketTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation() {
        assert!(valid_uuid(U));
        assert!(valid_uuid(&U.to_uppercase()));
        assert!(!valid_uuid("b6b4177b3ca14d0fa3a4ad46d82a6f62"));
        assert!(!valid_uuid("../../../../etc/passwd-0000-0000-000"));
        assert!(valid_name("instance-0000001a"));
        for bad in ["", ".", "..", "a/b", "a b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn discover_finds_sockets_and_reads_vars_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join(format!("domain-vm1-{U}"));
        std::fs::create_dir_all(&d).unwrap();
        let sock = d.join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::fs::write(dir.path().join("not-a-domain"), "").unwrap();
        let t = SocketTemplate::parse(&format!(
            "{}/domain-{{name}}-{{uuid}}/agent.sock",
            dir.path().display()
        ))
        .unwrap();
        let found = t.discover();
        assert_eq!(
            found,
            vec![Found {
                uuid: Some(U.into()),
                name: Some("vm1".into()),
                path: sock
            }]
        );
    }
}
