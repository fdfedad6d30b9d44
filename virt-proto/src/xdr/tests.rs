use proptest::prelude::*;

use super::*;

fn enc(f: impl FnOnce(&mut Encoder<'_>) -> Result<(), XdrError>) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut Encoder::new(&mut out)).unwrap();
    out
}

#[test]
fn integers_are_big_endian() {
    let out = enc(|e| {
        e.i32(-2);
        e.u32(0x0102_0304);
        e.i64(-1);
        e.u64(0x0102_0304_0506_0708);
        e.bool(true);
        Ok(())
    });
    assert_eq!(
        out,
        [
            0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
            2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1
        ]
    );
    let mut d = Decoder::new(&out);
    assert_eq!(d.i32().unwrap(), -2);
    assert_eq!(d.u32().unwrap(), 0x0102_0304);
    assert_eq!(d.i64().unwrap(), -1);
    assert_eq!(d.u64().unwrap(), 0x0102_0304_0506_0708);
    assert!(d.bool().unwrap());
    d.finish().unwrap();
}

#[test]
fn strings_are_padded_with_zeros() {
    let out = enc(|e| e.string("abcde", 16));
    assert_eq!(out, [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
    assert_eq!(Decoder::new(&out).string(16).unwrap(), "abcde");
    // A multiple of four has no padding; the empty string is just its length.
    assert_eq!(enc(|e| e.string("abcd", 4)).len(), 8);
    assert_eq!(enc(|e| e.string("", 4)), [0, 0, 0, 0]);
    assert_eq!(enc(|e| e.opaque(&[], 0)), [0, 0, 0, 0]);
}

#[test]
fn double_round_trips() {
    let out = enc(|e| {
        e.f64(1.5);
        Ok(())
    });
    assert_eq!(out, 1.5f64.to_be_bytes());
    assert_eq!(Decoder::new(&out).f64().unwrap(), 1.5);
}

#[test]
fn non_zero_padding_is_rejected() {
    let bytes = [0, 0, 0, 1, b'a', 0, 1, 0];
    assert_eq!(
        Decoder::new(&bytes).string(8),
        Err(XdrError::NonZeroPadding { offset: 5 })
    );
    let fixed = [1, 2, 3, 0];
    assert_eq!(Decoder::new(&fixed).opaque_fixed::<3>().unwrap(), [1, 2, 3]);
    assert_eq!(
        Decoder::new(&[1, 2, 3, 4]).opaque_fixed::<3>(),
        Err(XdrError::NonZeroPadding { offset: 3 })
    );
}

#[test]
fn lengths_are_checked_against_the_limit_and_the_input() {
    // Over the field's limit: rejected before looking at the data.
    let over = [0, 0, 0, 9];
    assert_eq!(
        Decoder::new(&over).string(8),
        Err(XdrError::TooLong {
            offset: 0,
            len: 9,
            max: 8
        })
    );
    // Within the limit but longer than the input.
    let short = [0, 0, 0, 8, b'a'];
    assert_eq!(
        Decoder::new(&short).string(8),
        Err(XdrError::UnexpectedEnd {
            offset: 4,
            needed: 8,
            remaining: 1
        })
    );
    // An array count the input cannot hold is refused before allocating.
    let count = [0, 0, 0x40, 0, 0, 0, 0, 1];
    let r = Decoder::new(&count).array(16384, 4, Decoder::u32);
    assert_eq!(
        r,
        Err(XdrError::TooLong {
            offset: 0,
            len: 16384,
            max: 1
        })
    );
    let r = Decoder::new(&[0, 0, 0, 3]).array(2, 4, Decoder::u32);
    assert!(matches!(r, Err(XdrError::TooLong { len: 3, max: 2, .. })));
}

#[test]
fn encoder_enforces_limits() {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    assert!(matches!(
        e.string("abc", 2),
        Err(XdrError::TooLong { len: 3, max: 2, .. })
    ));
    assert!(
        e.array(&[1u32, 2, 3], 2, |e, v| {
            e.u32(*v);
            Ok(())
        })
        .is_err()
    );
}

#[test]
fn invalid_values() {
    assert_eq!(
        Decoder::new(&[0, 0, 0, 2]).bool(),
        Err(XdrError::InvalidBool {
            offset: 0,
            value: 2
        })
    );
    assert_eq!(
        Decoder::new(&[0, 0, 1, 0]).u32_at_most(255),
        Err(XdrError::InvalidValue {
            offset: 0,
            value: 256
        })
    );
    assert_eq!(
        Decoder::new(&[0, 0, 0, 2, 0xc3, 0x28, 0, 0]).string(8),
        Err(XdrError::InvalidUtf8 { offset: 0 })
    );
    assert_eq!(
        from_slice::<()>(&[0]),
        Err(XdrError::TrailingBytes { len: 1 })
    );
    assert!(matches!(
        Decoder::new(&[0, 0]).u32(),
        Err(XdrError::UnexpectedEnd {
            needed: 4,
            remaining: 2,
            ..
        })
    ));
}

#[test]
fn optional_and_array() {
    let out = enc(|e| {
        e.optional(Some("x"), |e, s| e.string(s, 4))?;
        e.optional(None::<&str>, |e, s| e.string(s, 4))?;
        e.array(&["a", "bc"], 4, |e, s| e.string(s, 4))
    });
    let mut d = Decoder::new(&out);
    assert_eq!(d.optional(|d| d.string(4)).unwrap(), Some("x"));
    assert_eq!(d.optional(|d| d.string(4)).unwrap(), None);
    assert_eq!(d.array(4, 4, |d| d.string(4)).unwrap(), ["a", "bc"]);
    d.finish().unwrap();
}

proptest! {
    #[test]
    fn primitives_round_trip(
        a in any::<i32>(), b in any::<u32>(), c in any::<i64>(), d in any::<u64>(),
        f in any::<f64>(), t in any::<bool>(), s in ".{0,40}",
        o in proptest::collection::vec(any::<u8>(), 0..40),
        v in proptest::collection::vec(any::<u32>(), 0..10),
        opt in proptest::option::of(".{0,8}"),
    ) {
        let out = enc(|e| {
            e.i32(a); e.u32(b); e.i64(c); e.u64(d); e.f64(f); e.bool(t);
            e.string(&s, 1024)?;
            e.opaque(&o, 64)?;
            e.array(&v, 10, |e, x| { e.u32(*x); Ok(()) })?;
            e.optional(opt.as_deref(), |e, x| e.string(x, 64))
        });
        prop_assert_eq!(out.len() % 4, 0);
        let mut dec = Decoder::new(&out);
        prop_assert_eq!(dec.i32().unwrap(), a);
        prop_assert_eq!(dec.u32().unwrap(), b);
        prop_assert_eq!(dec.i64().unwrap(), c);
        prop_assert_eq!(dec.u64().unwrap(), d);
        prop_assert_eq!(dec.f64().unwrap().to_bits(), f.to_bits());
        prop_assert_eq!(dec.bool().unwrap(), t);
        prop_assert_eq!(dec.string(1024).unwrap(), s.as_str());
        prop_assert_eq!(dec.opaque(64).unwrap(), &o[..]);
        prop_assert_eq!(dec.array(10, 4, Decoder::u32).unwrap(), v);
        prop_assert_eq!(dec.optional(|d| d.string(64)).unwrap(), opt.as_deref());
        dec.finish().unwrap();
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut d = Decoder::new(&bytes);
        let _ = d.string(16);
        let _ = d.array(1000, 4, |d| d.opaque(8).map(<[u8]>::len));
        let _ = d.optional(Decoder::u64);
    }
}
