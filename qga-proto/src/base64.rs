//! Base64 payloads (`buf-b64`, `input-data`, `out-data`, `password`): standard alphabet with
//! padding, as qemu-ga uses in both directions.
//!
//! [`Base64Bytes`] decodes straight from the borrowed JSON string into its buffer, with no
//! intermediate string. Neither type prints its contents in `Debug`: they carry file data,
//! command output and passwords.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Owned bytes that travel as a base64 string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

/// Borrowed bytes that are sent as a base64 string, encoded while serialising (no encoded copy
/// is built).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Base64Slice<'a>(pub &'a [u8]);

impl Base64Bytes {
    /// Takes the decoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::ops::Deref for Base64Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for Base64Bytes {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl fmt::Debug for Base64Slice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Slice({} bytes)", self.0.len())
    }
}

fn serialize_b64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&base64::display::Base64Display::new(bytes, &STANDARD))
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_b64(&self.0, serializer)
    }
}

impl Serialize for Base64Slice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_b64(self.0, serializer)
    }
}

/// Decodes standard base64; also used for `&str` fields outside serde.
///
/// # Errors
///
/// [`base64::DecodeError`] on characters outside the alphabet or bad padding.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, ::base64::DecodeError> {
    // The base64 crate is the reference. SIMD (the base64-simd crate, which picks AVX2, SSSE3,
    // NEON or its scalar fallback at run time) only speeds up the common case, a long valid
    // payload (command output, file data): it decodes every group of four but the last, which
    // may hold padding, and the base64 crate decodes the last group, and the whole text
    // whenever anything is wrong, so that errors and edge cases are exactly the crate's.
    if text.len() < FAST_MIN_LEN || text.len() % 4 != 0 {
        return reference_decode(text);
    }
    let (body, last) = text.split_at(text.len() - 4);
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    // Without padding, `=` is outside the alphabet: the body is whole groups of four.
    if base64_simd::STANDARD_NO_PAD
        .decode_append(body, &mut out)
        .is_err()
        || STANDARD.decode_vec(last, &mut out).is_err()
    {
        return reference_decode(text);
    }
    Ok(out)
}

fn reference_decode(text: &[u8]) -> Result<Vec<u8>, ::base64::DecodeError> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    STANDARD.decode_vec(text, &mut out)?;
    Ok(out)
}

/// Shorter texts go straight to the base64 crate.
const FAST_MIN_LEN: usize = 64;

/// Encodes as standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

struct B64Visitor;

impl Visitor<'_> for B64Visitor {
    type Value = Base64Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        decode(v.as_bytes())
            .map(Base64Bytes)
            .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(B64Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_debug_hides_contents() {
        let b = Base64Bytes(b"secret\x00\xff".to_vec());
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"c2VjcmV0AP8=\"");
        let back: Base64Bytes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        assert_eq!(format!("{b:?}"), "Base64Bytes(8 bytes)");
        assert_eq!(
            serde_json::to_string(&Base64Slice(b"hi\n")).unwrap(),
            "\"aGkK\""
        );
    }

    #[test]
    fn rejects_bad_base64() {
        let err = serde_json::from_str::<Base64Bytes>("\"a*b=\"").unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
        assert!(serde_json::from_str::<Base64Bytes>("12").is_err());
    }

    #[test]
    fn fast_path_agrees_with_the_base64_crate() {
        let data: Vec<u8> = (0..600u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let text = STANDARD.encode(&data[..len]);
            assert_eq!(decode(text.as_bytes()).unwrap(), &data[..len], "len {len}");
            // A bad byte anywhere, padding in the middle, a truncated text: the crate's error.
            let mut bad = text.clone().into_bytes();
            if !bad.is_empty() {
                // Padding just before the last group (the end of what SIMD decodes) too.
                let before_last = bad.len().saturating_sub(5);
                for (at, byte) in [
                    (0, b'*'),
                    (bad.len() / 2, b'='),
                    (before_last, b'='),
                    (bad.len() - 1, b'\n'),
                ] {
                    let saved = bad[at];
                    bad[at] = byte;
                    assert_eq!(decode(&bad), STANDARD.decode(&bad), "len {len} at {at}");
                    bad[at] = saved;
                }
                let cut = &text.as_bytes()[..text.len() - 1];
                assert_eq!(decode(cut), STANDARD.decode(cut), "len {len} cut");
            }
        }
        // Non-canonical trailing bits in the last group are the crate's error too.
        let text = format!("{}QR==", "A".repeat(96));
        assert_eq!(decode(text.as_bytes()), STANDARD.decode(&text));
        assert!(decode(text.as_bytes()).is_err());
    }

    #[test]
    fn a_large_payload_round_trips() {
        let data: Vec<u8> = (0..(3 << 20) + 7u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let text = STANDARD.encode(&data);
        assert_eq!(decode(text.as_bytes()).unwrap(), data);
        let mut bad = text.into_bytes();
        bad[1 << 20] = b'-';
        assert_eq!(decode(&bad), STANDARD.decode(&bad));
    }

    proptest::proptest! {
        #[test]
        fn any_text_decodes_as_the_base64_crate_does(
            text in proptest::collection::vec(
                proptest::sample::select(b"AQgw+/9=az\n*".to_vec()), 0..300),
        ) {
            proptest::prop_assert_eq!(decode(&text), STANDARD.decode(&text));
        }
    }

    #[test]
    fn escaped_json_string_still_decodes() {
        // A peer may escape '/' as "\/"; the visitor then gets an unescaped copy.
        let back: Base64Bytes = serde_json::from_str("\"\\/w==\"").unwrap();
        assert_eq!(back.0, vec![0xff]);
    }
}
