//! Parsers for the value types both daemons use. Each returns what is wrong in a few words;
//! [`crate::Section::parse`] adds the value that was found.

use std::time::Duration;

/// `true`/`false` (also yes/no, on/off, 1/0), case-insensitive, as oslo.config.
///
/// # Errors
///
/// Anything else.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Seconds, fractions allowed, within `min..=max`.
///
/// # Errors
///
/// Not a number, or out of range.
pub fn seconds(v: &str, min: f64, max: f64) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| "expected a number of seconds".to_owned())?;
    if !secs.is_finite() || secs < min || secs > max {
        return Err(format!("must be between {min} and {max} seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// A whole number within `min..=max`.
///
/// # Errors
///
/// Not a whole number, or out of range.
pub fn count<T>(v: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let n: T = v
        .parse()
        .map_err(|_| "expected a whole number".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// A comma- or line-separated list, blanks dropped.
pub fn list(v: &str) -> Vec<String> {
    v.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One of `choices`, named in the error.
///
/// # Errors
///
/// Anything else.
pub fn choice<T: Copy>(v: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("expected {} or {last}", rest.join(", "))
                }
                _ => format!("expected {}", names.concat()),
            }
        })
}

/// Log output format, `[*] log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    ///
    /// # Errors
    ///
    /// Anything else.
    pub fn parse(v: &str) -> Result<Self, String> {
        choice(v, &[("text", Self::Text), ("json", Self::Json)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(boolean("Yes"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("maybe").is_err());
        assert_eq!(seconds("1.5", 0.1, 10.0), Ok(Duration::from_millis(1500)));
        assert!(seconds("soon", 0.1, 10.0).is_err());
        assert!(seconds("inf", 0.1, 10.0).is_err());
        assert!(seconds("11", 0.1, 10.0).unwrap_err().contains("between"));
        assert_eq!(count::<u64>("7", 1, 9), Ok(7));
        assert!(count::<usize>("-1", 1, 9).is_err());
        assert!(count::<usize>("10", 1, 9).is_err());
        assert_eq!(list("a, b\nc,,"), ["a", "b", "c"]);
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert_eq!(
            LogFormat::parse("xml").unwrap_err(),
            "expected text or json"
        );
    }
}
