//! Keystone's timestamps (`2026-11-22T13:01:22.000000Z`, ISO 8601 in UTC, optional
//! fraction, `Z` or an offset) to `SystemTime`, without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `SystemTime` as oslo.messaging writes a notification's `timestamp`
/// (`str(datetime.utcnow())`: `2026-05-01 12:00:00.123456`, UTC).
pub fn format_oslo(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]` (no zone means UTC).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits.min(9)];
        nanos = f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            let (oh, om) = r.split_once(':').unwrap_or((r.get(..2)?, r.get(2..)?));
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-22 13:01",
            "2026-11-22T13:01:22.Z",
            "x",
        ] {
            assert_eq!(unix(bad), None, "{bad}");
        }
    }
}
