//! The XDR encoder.

use bytes::BufMut;

use super::{XdrError, padding};

/// Appends XDR items to a buffer (`Vec<u8>`, `BytesMut` or any other [`BufMut`]).
///
/// Limits are checked on the way out too: a string or array over its `.x` maximum is an
/// [`XdrError::TooLong`] here rather than a rejected call at the server.
pub struct Encoder<'a> {
    out: &'a mut dyn BufMut,
}

impl std::fmt::Debug for Encoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoder")
    }
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut dyn BufMut) -> Self {
        Self { out }
    }

    /// `int`.
    pub fn i32(&mut self, v: i32) {
        self.out.put_i32(v);
    }

    /// `unsigned int`.
    pub fn u32(&mut self, v: u32) {
        self.out.put_u32(v);
    }

    /// `hyper`.
    pub fn i64(&mut self, v: i64) {
        self.out.put_i64(v);
    }

    /// `unsigned hyper`.
    pub fn u64(&mut self, v: u64) {
        self.out.put_u64(v);
    }

    /// `bool` (0 or 1).
    pub fn bool(&mut self, v: bool) {
        self.out.put_u32(u32::from(v));
    }

    /// `double` (IEEE 754 binary64, big-endian).
    pub fn f64(&mut self, v: f64) {
        self.out.put_f64(v);
    }

    /// Fixed-length `opaque[N]`, zero-padded.
    pub fn opaque_fixed(&mut self, data: &[u8]) {
        self.out.put_slice(data);
        self.out.put_bytes(0, padding(data.len()));
    }

    /// Variable-length `opaque<max>`: length, bytes, zero padding.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`] if `data` is longer than `max`.
    pub fn opaque(&mut self, data: &[u8], max: u32) -> Result<(), XdrError> {
        let len = check_len(data.len(), max)?;
        self.out.put_u32(len);
        self.opaque_fixed(data);
        Ok(())
    }

    /// `string<max>`.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`] if `s` is longer than `max` bytes.
    pub fn string(&mut self, s: &str, max: u32) -> Result<(), XdrError> {
        self.opaque(s.as_bytes(), max)
    }

    /// Optional data `*T`: a bool, then the value if present.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns.
    pub fn optional<T: ?Sized>(
        &mut self,
        value: Option<&T>,
        f: impl FnOnce(&mut Self, &T) -> Result<(), XdrError>,
    ) -> Result<(), XdrError> {
        match value {
            None => {
                self.bool(false);
                Ok(())
            }
            Some(v) => {
                self.bool(true);
                f(self, v)
            }
        }
    }

    /// Variable-length array `T<max>`: count, then each element.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`] if there are more than `max` items, or whatever `f` returns.
    pub fn array<T>(
        &mut self,
        items: &[T],
        max: u32,
        mut f: impl FnMut(&mut Self, &T) -> Result<(), XdrError>,
    ) -> Result<(), XdrError> {
        let count = check_len(items.len(), max)?;
        self.out.put_u32(count);
        for item in items {
            f(self, item)?;
        }
        Ok(())
    }
}

fn check_len(len: usize, max: u32) -> Result<u32, XdrError> {
    match u32::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(XdrError::TooLong {
            offset: 0,
            len: len as u64,
            max: u64::from(max),
        }),
    }
}
