//! Keystone's timestamps (`2026-11-22T13:01:22.000000Z`, ISO 8601 in UTC, optional
//! fraction, `Z` or an offset) to `SystemTime`, and oslo.messaging's form of the time, with
//! humantime's RFC 3339 reader and writer.

use std::time::{Duration, SystemTime};

/// `SystemTime` as oslo.messaging writes a notification's `timestamp`
/// (`str(datetime.utcnow())`: `2026-05-01 12:00:00.123456`, UTC).
pub fn format_oslo(t: SystemTime) -> String {
    let t = t.max(SystemTime::UNIX_EPOCH);
    // `2026-05-01T12:00:00.123456Z`
    let mut text = humantime::format_rfc3339_micros(t).to_string();
    text.pop();
    text.replace('T', " ")
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]` (no zone means UTC).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    // humantime reads the UTC forms; an offset is taken off here.
    let (local, offset) = match s.get(19..).and_then(|rest| rest.rfind(['+', '-'])) {
        Some(at) => {
            let (local, zone) = s.split_at(19 + at);
            let east = zone.starts_with('+');
            let zone = &zone[1..];
            let (h, m) = zone
                .split_once(':')
                .or_else(|| Some((zone.get(..2)?, zone.get(2..)?)))?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            (local, (east, Duration::from_secs(h * 3600 + m * 60)))
        }
        None => (s, (true, Duration::ZERO)),
    };
    // A fraction has digits (humantime takes a bare `.` too).
    if let Some(frac) = local.get(19..).and_then(|r| r.strip_prefix('.')) {
        if !frac.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
    }
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    match offset {
        (true, by) => t.checked_sub(by),
        (false, by) => t.checked_add(by),
    }
    .filter(|t| *t >= SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn oslo_format_round_trips() {
        let t = UNIX_EPOCH + Duration::from_micros(1_777_636_800_123_456);
        let s = format_oslo(t);
        assert_eq!(s, "2026-05-01 12:00:00.123456");
        assert_eq!(parse_timestamp(&s), Some(t));
    }

    fn unix(s: &str) -> Option<f64> {
        parse_timestamp(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
    }

    #[test]
    fn keystone_forms() {
        assert_eq!(unix("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(unix("2026-11-22T13:01:22.000000Z"), Some(1_795_352_482.0));
        assert_eq!(unix("2000-02-29T12:00:00.5Z"), Some(951_825_600.5));
        assert_eq!(unix("2000-02-29T13:00:00+01:00"), Some(951_825_600.0));
        assert_eq!(unix("2000-02-29T12:00:00"), Some(951_825_600.0));
        assert_eq!(unix("2000-02-29T07:00:00-05:00"), Some(951_825_600.0));
        assert_eq!(unix("2000-02-29T13:30:00.25+0130"), Some(951_825_600.25));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-22 13:01",
            "2026-11-22T13:01:22.Z",
            "2026-11-22T13:01:22+1:00",
            "2026-11-22T13:01:22+24:00",
            "1969-12-31T23:59:59Z",
            "x",
        ] {
            assert_eq!(unix(bad), None, "{bad}");
        }
    }
}
