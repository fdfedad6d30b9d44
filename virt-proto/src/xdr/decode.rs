//! The bounded, borrowing XDR decoder.

use super::{XdrError, padding};

/// Reads XDR items from the front of a byte slice.
///
/// Nothing is allocated here except by [`Decoder::array`], which first checks the count against
/// the field's maximum and against the bytes left (each element takes at least
/// `min_item_len` bytes), so a lying count can never make it reserve more than the packet could
/// describe.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `input`.
    #[must_use]
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// Offset of the next item.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet decoded.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// The bytes not yet decoded, without consuming them.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        &self.input[self.pos..]
    }

    /// Checks that the whole input was used.
    ///
    /// # Errors
    ///
    /// [`XdrError::TrailingBytes`] if bytes are left.
    pub fn finish(self) -> Result<(), XdrError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(XdrError::TrailingBytes { len }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(XdrError::UnexpectedEnd {
                offset: self.pos,
                needed: n,
                remaining,
            });
        }
        let out = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn word(&mut self) -> Result<[u8; 4], XdrError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    fn dword(&mut self) -> Result<[u8; 8], XdrError> {
        let b = self.take(8)?;
        Ok([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// `int`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`].
    pub fn i32(&mut self) -> Result<i32, XdrError> {
        Ok(i32::from_be_bytes(self.word()?))
    }

    /// `unsigned int`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`].
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        Ok(u32::from_be_bytes(self.word()?))
    }

    /// `hyper`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`].
    pub fn i64(&mut self) -> Result<i64, XdrError> {
        Ok(i64::from_be_bytes(self.dword()?))
    }

    /// `unsigned hyper`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`].
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        Ok(u64::from_be_bytes(self.dword()?))
    }

    /// `double`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`].
    pub fn f64(&mut self) -> Result<f64, XdrError> {
        Ok(f64::from_be_bytes(self.dword()?))
    }

    /// `bool`: exactly 0 or 1.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`], [`XdrError::InvalidBool`].
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        let offset = self.pos;
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError::InvalidBool { offset, value }),
        }
    }

    /// rpcgen's `unsigned char` and `unsigned short`, which travel as a full `unsigned int`;
    /// values above `max` are rejected.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`], [`XdrError::InvalidValue`].
    pub fn u32_at_most(&mut self, max: u32) -> Result<u32, XdrError> {
        let offset = self.pos;
        let v = self.u32()?;
        if v > max {
            return Err(XdrError::InvalidValue {
                offset,
                value: i64::from(v),
            });
        }
        Ok(v)
    }

    fn padding(&mut self, len: usize) -> Result<(), XdrError> {
        let offset = self.pos;
        let pad = self.take(padding(len))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(XdrError::NonZeroPadding { offset });
        }
        Ok(())
    }

    /// Fixed-length `opaque[N]`.
    ///
    /// # Errors
    ///
    /// [`XdrError::UnexpectedEnd`], [`XdrError::NonZeroPadding`].
    pub fn opaque_fixed<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        self.padding(N)?;
        Ok(out)
    }

    /// Reads a length word and checks it against `max` and the remaining input.
    fn length(&mut self, max: u32) -> Result<usize, XdrError> {
        let offset = self.pos;
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong {
                offset,
                len: u64::from(len),
                max: u64::from(max),
            });
        }
        // u32 always fits in usize on the targets libvirt runs on (32 and 64 bit).
        Ok(len as usize)
    }

    /// Variable-length `opaque<max>`, borrowed from the input.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`], [`XdrError::UnexpectedEnd`], [`XdrError::NonZeroPadding`].
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let len = self.length(max)?;
        let data = self.take(len)?;
        self.padding(len)?;
        Ok(data)
    }

    /// `string<max>`, borrowed from the input; must be UTF-8.
    ///
    /// libvirt's strings are C strings from XML, JSON or the guest agent, all UTF-8 in practice;
    /// [`Decoder::string_bytes`] reads one without the check.
    ///
    /// # Errors
    ///
    /// As [`Decoder::opaque`], plus [`XdrError::InvalidUtf8`].
    pub fn string(&mut self, max: u32) -> Result<&'a str, XdrError> {
        let offset = self.pos;
        let bytes = self.opaque(max)?;
        std::str::from_utf8(bytes).map_err(|_| XdrError::InvalidUtf8 { offset })
    }

    /// `string<max>` as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`Decoder::opaque`].
    pub fn string_bytes(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        self.opaque(max)
    }

    /// Optional data `*T`.
    ///
    /// # Errors
    ///
    /// [`XdrError::InvalidBool`] for a bad presence flag, or whatever `f` returns.
    pub fn optional<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Option<T>, XdrError> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Variable-length array `T<max>`. `min_item_len` is the smallest encoding of one element
    /// (4 for an `int` or an empty string, 24 for a domain with an empty name, ...): the count
    /// is rejected unless `count * min_item_len` bytes are left, before anything is allocated.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`] for a count over `max` or over what the input can hold, or
    /// whatever `f` returns.
    pub fn array<T>(
        &mut self,
        max: u32,
        min_item_len: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Vec<T>, XdrError> {
        let offset = self.pos;
        let count = self.length(max)?;
        let fits = self.remaining() / min_item_len.max(1);
        if count > fits {
            return Err(XdrError::TooLong {
                offset,
                len: count as u64,
                max: fits as u64,
            });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(f(self)?);
        }
        Ok(out)
    }
}
