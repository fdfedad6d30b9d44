//! The INI syntax, in the style of oslo.config, keeping line numbers for error messages.
//!
//! - `[section]` headers; a section may appear more than once (its keys are merged).
//! - `key = value` or `key: value`; surrounding whitespace is trimmed, and one pair of matching
//!   quotes around the whole value is removed, as oslo.config does.
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

/// A syntax error.
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
/// Every line that is neither a comment, a header, a key nor a continuation.
pub fn parse(text: &str) -> Result<Vec<Section>, Vec<SyntaxError>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut errors = Vec::new();
    // True while the previous non-blank line was a key (so an indented line continues it).
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
        let indented = raw.starts_with([' ', '\t']);
        if indented && in_value {
            if let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
                if !entry.value.is_empty() {
                    entry.value.push('\n');
                }
                entry.value.push_str(&unquote(trimmed));
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            in_value = false;
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
        let split = trimmed.find(['=', ':']);
        let Some(at) = split else {
            in_value = false;
            errors.push(SyntaxError {
                line,
                message: "expected `key = value`, a `[section]` header or a comment".into(),
            });
            continue;
        };
        let key = trimmed[..at].trim();
        let value = trimmed[at + 1..].trim();
        if key.is_empty() {
            in_value = false;
            errors.push(SyntaxError {
                line,
                message: "a key is missing before the `=`".into(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            in_value = false;
            errors.push(SyntaxError {
                line,
                message: format!("key {key:?} appears before any [section] header"),
            });
            continue;
        };
        section.entries.push(Entry {
            key: key.to_owned(),
            value: unquote(value),
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

/// Removes one pair of matching quotes around the whole value.
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && bytes[0] == bytes[bytes.len() - 1]
        && (bytes[0] == b'"' || bytes[0] == b'\'')
    {
        value[1..value.len() - 1].to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_and_continuations() {
        let text = "# top\n[DEFAULT]\nhost = compute-1\n\n[agent]\n; c\nlisten_port: 4225\n\
                    enabled_actions = ping,\n    exec\nquoted = \"a b\"\n[agent]\nx=\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "DEFAULT");
        assert_eq!(s[0].entries[0].value, "compute-1");
        assert_eq!(s[0].entries[0].line, 3);
        assert_eq!(s[1].entries[0].key, "listen_port");
        assert_eq!(s[1].entries[0].value, "4225");
        assert_eq!(s[1].entries[1].value, "ping,\nexec");
        assert_eq!(s[1].entries[2].value, "a b");
        assert_eq!(s[2].entries[0].value, "");
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse("key = before\n[ok]\njunk line\n[bad\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4]);
    }

    #[test]
    fn crlf_and_values_with_colons() {
        let s = parse("[a]\r\nlisten_address = ::1\r\nt = /run/{uuid}.sock\r\n").unwrap();
        assert_eq!(s[0].entries[0].value, "::1");
        assert_eq!(s[0].entries[1].value, "/run/{uuid}.sock");
    }
}
