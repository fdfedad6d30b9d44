//! XDR (RFC 4506) as libvirt uses it: a small encoder and a bounded, borrowing decoder.
//!
//! Every XDR item is a multiple of four bytes, big-endian. Variable-length items (opaque data,
//! strings, arrays) start with a 32-bit length or count that comes from the peer, so the
//! [`Decoder`] checks each one against the limit the `.x` file declares for that field
//! *and* against the bytes that are actually left in the packet before it allocates or slices
//! anything. Strings and opaque data are returned as slices of the input; only the typed reply
//! structs of this crate copy them out, once they are known to be in bounds.
//!
//! # Padding
//!
//! Opaque data and strings are padded with zero bytes to a multiple of four. The [`Encoder`]
//! always writes zeros. The [`Decoder`] **rejects** non-zero padding
//! ([`XdrError::NonZeroPadding`]): libvirt encodes with the system XDR library, which writes
//! zeros, so a non-zero pad byte means the packet is not what it claims to be (a framing slip or
//! a hostile peer) and decoding it further would only produce garbage with a plausible shape.
//!
//! # Why not an XDR crate
//!
//! The crates that exist were considered: `xdr-codec` (paired with `xdrgen`, unmaintained since
//! 2018, decodes from `io::Read` into owned values), `serde-xdr` and `libvirt-xdr` (serde
//! based: no way to attach a per-field maximum such as `REMOTE_DOMAIN_LIST_MAX` to a `Vec`, so a
//! count from the peer is only bounded by the packet), `fastxdr` (a code generator, tied to
//! bytes 0.5) and `facet-xdr` (a large reflection framework). None offers bounded, borrowing
//! decoding with the limits of the `.x` files, and the part of XDR libvirt needs is small, so
//! this module implements it (about 300 lines) instead.

mod decode;
mod encode;

pub use decode::Decoder;
pub use encode::Encoder;

/// Number of zero bytes that follow `len` bytes of opaque data or string to reach a multiple of
/// four.
#[must_use]
pub const fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// An error while encoding or decoding XDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XdrError {
    /// The input ended inside an item.
    #[error("xdr input ends at offset {offset}: {needed} more bytes needed, {remaining} left")]
    UnexpectedEnd {
        /// Offset of the item in the input.
        offset: usize,
        /// Bytes the item needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length or element count is above the limit of its field in the `.x` definition (or
    /// above what the remaining input can hold).
    #[error("xdr length {len} at offset {offset} exceeds the limit of {max}")]
    TooLong {
        /// Offset of the length word (0 when encoding).
        offset: usize,
        /// The length or count found.
        len: u64,
        /// The limit of the field.
        max: u64,
    },
    /// A padding byte after opaque data or a string is not zero.
    #[error("non-zero xdr padding at offset {offset}")]
    NonZeroPadding {
        /// Offset of the first padding byte.
        offset: usize,
    },
    /// An XDR `bool` other than 0 or 1.
    #[error("invalid xdr bool {value} at offset {offset}")]
    InvalidBool {
        /// Offset of the value.
        offset: usize,
        /// The value found.
        value: u32,
    },
    /// A string is not valid UTF-8.
    #[error("xdr string at offset {offset} is not valid utf-8")]
    InvalidUtf8 {
        /// Offset of the string's length word.
        offset: usize,
    },
    /// A union discriminant (or a value with a narrower range, such as `unsigned char`) that the
    /// definition does not allow.
    #[error("invalid xdr discriminant or value {value} at offset {offset}")]
    InvalidValue {
        /// Offset of the value.
        offset: usize,
        /// The value found.
        value: i64,
    },
    /// Bytes were left after the last item of a payload.
    #[error("{len} trailing bytes after the xdr payload")]
    TrailingBytes {
        /// Number of bytes left.
        len: usize,
    },
}

/// A type with an XDR encoding (the `_args`, `_ret` and `_msg` structs of the `.x` files).
pub trait XdrEncode {
    /// Appends the encoding of `self`.
    ///
    /// # Errors
    ///
    /// [`XdrError::TooLong`] if a string, opaque or array is over its `.x` limit.
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), XdrError>;
}

/// A type that can be decoded from XDR into an owned value.
pub trait XdrDecode: Sized {
    /// Decodes one value from the front of `dec`.
    ///
    /// # Errors
    ///
    /// Any [`XdrError`]: truncated input, a length over its limit, bad padding, bad UTF-8, an
    /// unknown union discriminant.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, XdrError>;
}

/// Encodes `value` into a new `Vec`.
///
/// # Errors
///
/// See [`XdrEncode::encode`].
pub fn to_vec<T: XdrEncode + ?Sized>(value: &T) -> Result<Vec<u8>, XdrError> {
    let mut out = Vec::new();
    value.encode(&mut Encoder::new(&mut out))?;
    Ok(out)
}

/// Decodes `bytes` as exactly one `T`: trailing bytes are an error.
///
/// # Errors
///
/// See [`XdrDecode::decode`], plus [`XdrError::TrailingBytes`].
pub fn from_slice<T: XdrDecode>(bytes: &[u8]) -> Result<T, XdrError> {
    let mut dec = Decoder::new(bytes);
    let value = T::decode(&mut dec)?;
    dec.finish()?;
    Ok(value)
}

/// `void` in the `.x` files: no bytes at all.
impl XdrEncode for () {
    fn encode(&self, _: &mut Encoder<'_>) -> Result<(), XdrError> {
        Ok(())
    }
}

impl XdrDecode for () {
    fn decode(_: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}

macro_rules! primitive {
    ($($ty:ty => $enc:ident),*) => {$(
        impl XdrEncode for $ty {
            fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
                e.$enc(*self);
                Ok(())
            }
        }
        impl XdrDecode for $ty {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
                d.$enc()
            }
        }
    )*};
}

// `int`, `unsigned int`, `hyper`, `unsigned hyper`, `double`. (`bool` is left out on purpose:
// libvirt's boolean fields are `int`s, decoded with `!= 0`.)
primitive!(i32 => i32, u32 => u32, i64 => i64, u64 => u64, f64 => f64);

#[cfg(test)]
mod tests;
