//! The [`Call`] trait: one type per procedure, with its program, number and reply type.

use std::time::Duration;

use bytes::Bytes;

use crate::packet::{EncodeError, Header, encode_with};
use crate::xdr::{XdrDecode, XdrEncode, XdrError, from_slice};

/// A procedure that can be called: the `_args` struct of the `.x` file, with the numbers of
/// its `enum remote_procedure` (or `qemu_procedure`) entry and its `_ret` type.
pub trait Call: XdrEncode {
    /// The program (`REMOTE_PROGRAM`, `QEMU_PROGRAM`).
    const PROGRAM: u32;
    /// The program's version.
    const VERSION: u32;
    /// The procedure number.
    const PROCEDURE: i32;
    /// The procedure's name in the `.x` file, e.g. `REMOTE_PROC_CONNECT_OPEN`.
    const NAME: &'static str;
    /// How long a caller should wait for the reply by default. Calls that reach the guest
    /// agent wait on it inside libvirt; the long ones say so here.
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// The decoded reply (`()` for procedures without a `_ret` struct).
    type Reply: XdrDecode;

    /// Decodes the payload of a successful reply, which must hold exactly one `Reply`.
    ///
    /// # Errors
    ///
    /// Any [`XdrError`].
    fn decode_reply(payload: &[u8]) -> Result<Self::Reply, XdrError> {
        from_slice(payload)
    }

    /// Encodes this call as a whole packet with `serial`, at most `max_len` bytes long.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if an argument breaks its `.x` limit or the packet is too large.
    fn encode_packet(&self, serial: u32, max_len: u32) -> Result<Bytes, EncodeError> {
        let header = Header::call(Self::PROGRAM, Self::VERSION, Self::PROCEDURE, serial);
        encode_with(&header, self, max_len)
    }
}

/// Implements [`Call`] for an args type:
/// `call!(Type => Reply, PROGRAM, VERSION, PROCEDURE, "NAME" [, timeout = secs])`.
macro_rules! call {
    ($ty:ty => $reply:ty, $prog:expr, $vers:expr, $proc:expr, $name:literal $(, timeout = $secs:expr)?) => {
        impl $crate::call::Call for $ty {
            const PROGRAM: u32 = $prog;
            const VERSION: u32 = $vers;
            const PROCEDURE: i32 = $proc;
            const NAME: &'static str = $name;
            $(const TIMEOUT: ::std::time::Duration = ::std::time::Duration::from_secs($secs);)?
            type Reply = $reply;
        }
    };
}

/// Implements [`XdrEncode`] and [`XdrDecode`] for a unit struct whose `_args` are `void`.
macro_rules! void_args {
    ($ty:ty) => {
        impl $crate::xdr::XdrEncode for $ty {
            fn encode(
                &self,
                _: &mut $crate::xdr::Encoder<'_>,
            ) -> Result<(), $crate::xdr::XdrError> {
                Ok(())
            }
        }
        impl $crate::xdr::XdrDecode for $ty {
            fn decode(_: &mut $crate::xdr::Decoder<'_>) -> Result<Self, $crate::xdr::XdrError> {
                Ok(Self)
            }
        }
    };
}

pub(crate) use {call, void_args};
