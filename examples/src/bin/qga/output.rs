//! Writing results: JSON documents, aligned tables, sizes and times.

use std::io::Write as _;

use crate::error::CliError;

/// Writes bytes to stdout and flushes.
pub(crate) fn stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::local("cannot write to stdout", e))
}

/// Writes bytes to stderr.
pub(crate) fn stderr(bytes: &[u8]) -> Result<(), CliError> {
    let mut err = std::io::stderr().lock();
    err.write_all(bytes)
        .and_then(|()| err.flush())
        .map_err(|e| CliError::local("cannot write to stderr", e))
}

/// Writes a line to stdout.
pub(crate) fn line(text: &str) -> Result<(), CliError> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    stdout(&bytes)
}

/// Prints one JSON document on one line (`--json`).
pub(crate) fn json(value: &serde_json::Value) -> Result<(), CliError> {
    line(&value.to_string())
}

/// Prints JSON indented, for people.
pub(crate) fn json_pretty(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    line(&text)
}

/// Converts a reply to JSON; the reply types in qga-proto always serialise.
pub(crate) fn encode_failed(e: serde_json::Error) -> CliError {
    CliError::Other {
        code: crate::cli::exit::IO,
        message: format!("cannot encode the reply as JSON: {e}"),
    }
}

/// A table with a header row, columns padded to the widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                text.push_str(&format!("{cell:<pad$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `1536` → `1.5 KiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Precision loss is fine for display.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Nanoseconds since the epoch as RFC 3339 UTC, `2026-12-01T19:41:22.123456789Z`; a time
/// before 1970 (a guest's clock may say anything) as the raw count.
pub(crate) fn utc_from_ns(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(ns) => humantime::format_rfc3339_nanos(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns),
        )
        .to_string(),
        Err(_) => format!("{} ns before 1970", ns.unsigned_abs()),
    }
}

/// Fractional seconds since the epoch (guest-get-users) as RFC 3339 UTC to the second.
pub(crate) fn utc_from_secs(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    // Login times fit i64 nanoseconds until 2262.
    #[allow(clippy::cast_possible_truncation)]
    let ns = (secs * 1e9) as i64;
    let text = utc_from_ns(ns);
    // Drop the fraction: `...:22.123456789Z` → `...:22Z`.
    match text.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(utc_from_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc_from_ns(1_795_348_020_058_666_000),
            "2026-11-22T11:47:00.058666000Z"
        );
        assert_eq!(
            utc_from_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(utc_from_ns(-1), "1 ns before 1970");
        assert_eq!(utc_from_ns(i64::MIN), "9223372036854775808 ns before 1970");
        assert_eq!(utc_from_ns(i64::MAX), "2262-04-11T23:47:16.854775807Z");
        assert_eq!(utc_from_secs(1.5), "1970-01-01T00:00:01Z");
    }

    #[test]
    fn sizes_and_tables() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
    }
}
