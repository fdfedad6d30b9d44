//! A small INI reader with the semantics of oslo.config (and of nova-guest-agent's reader, so
//! both daemons read `/etc/nova-guest/nova-guest.conf` the same way):
//!
//! - `[section]` headers; a section may appear more than once (its keys are merged).
//! - `key = value` or `key: value` (split at the first `=` or `:`); surrounding whitespace is
//!   trimmed and one pair of matching quotes around the whole value is removed.
//! - Lines starting with `#` or `;` are comments; there are no inline comments.
//! - An indented line right after a key continues its value (joined with a newline).

use std::fmt;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, as written.
    pub key: String,
    /// The value, trimmed and unquoted.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A `[section]` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// Its entries in file order.
    pub entries: Vec<Entry>,
}

/// A syntax error on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses INI text into sections in file order.
///
/// # Errors
///
/// Every line that is neither blank, a comment, a header, a key nor a continuation.
pub fn parse(text: &str) -> Result<Vec<Section>, Vec<SyntaxError>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut errors = Vec::new();
    let mut in_value = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            in_value = false;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) && in_value {
            if let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
                if !entry.value.is_empty() {
                    entry.value.push('\n');
                }
                entry.value.push_str(&unquote(trimmed));
            }
            continue;
        }
        in_value = false;
        if let Some(rest) = trimmed.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.trim().is_empty() => sections.push(Section {
                    name: name.trim().to_owned(),
                    line,
                    entries: Vec::new(),
                }),
                _ => errors.push(SyntaxError {
                    line,
                    message: format!("malformed section header {trimmed:?}"),
                }),
            }
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            errors.push(SyntaxError {
                line,
                message: "expected `key = value`, a `[section]` header or a comment".into(),
            });
            continue;
        };
        let key = trimmed[..at].trim();
        if key.is_empty() {
            errors.push(SyntaxError {
                line,
                message: "a key is missing before the `=`".into(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            errors.push(SyntaxError {
                line,
                message: format!("key {key:?} appears before any [section] header"),
            });
            continue;
        };
        section.entries.push(Entry {
            key: key.to_owned(),
            value: unquote(trimmed[at + 1..].trim()),
            line,
        });
        in_value = true;
    }
    if errors.is_empty() {
        Ok(sections)
    } else {
        Err(errors)
    }
}

fn unquote(value: &str) -> String {
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        value[1..value.len() - 1].to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_continuations_quotes() {
        let text = "# c\n[api]\nlisten_port: 4224\nagent_url_template = http://{host}:4225\n\
                    [policy]\nping = reader,\n    member\nx = \"a b\"\n[api]\ny=\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].entries[0].value, "4224");
        assert_eq!(s[0].entries[1].value, "http://{host}:4225");
        assert_eq!(s[1].entries[0].value, "reader,\nmember");
        assert_eq!(s[1].entries[1].value, "a b");
        assert_eq!(s[2].entries[0].line, 10);
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse("k = v\n[ok]\njunk\n[bad\n = x\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
    }
}
