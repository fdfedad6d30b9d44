//! Types shared by many procedures: UUIDs, domain references and typed parameters.

use crate::remote::REMOTE_STRING_MAX;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `remote_uuid`: `opaque[VIR_UUID_BUFLEN]`, 16 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the usual 8-4-4-4-12 hex form (hyphens optional, either case), as Nova and
    /// libvirt print it.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let hyphenated = match b.len() {
            32 => false,
            36 => true,
            _ => return None,
        };
        let mut digits = b.iter().enumerate().filter_map(|(i, &c)| {
            let hyphen_slot = hyphenated && matches!(i, 8 | 13 | 18 | 23);
            match (hyphen_slot, c) {
                (true, b'-') => None,
                (true, _) => Some(None),
                (false, c) => Some(hex_value(c)),
            }
        });
        let mut out = [0u8; 16];
        for byte in &mut out {
            let hi = digits.next()??;
            let lo = digits.next()??;
            *byte = hi << 4 | lo;
        }
        Some(Self(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uuid({self})")
    }
}

impl std::str::FromStr for Uuid {
    type Err = InvalidUuid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidUuid)
    }
}

/// A string that is not a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid uuid")]
pub struct InvalidUuid;

impl XdrEncode for Uuid {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.opaque_fixed(&self.0);
        Ok(())
    }
}

impl XdrDecode for Uuid {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.opaque_fixed().map(Self)
    }
}

/// A reference to a domain: `struct remote_nonnull_domain` (`remote_protocol.x`).
///
/// libvirt identifies the domain by `uuid` (and `name`); `id` is the running instance's number,
/// -1 when it is shut off.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain {
    /// `name`.
    pub name: String,
    /// `uuid`.
    pub uuid: Uuid,
    /// `id`.
    pub id: i32,
}

impl Domain {
    /// Smallest encoding: empty name (4), uuid (16), id (4).
    pub const MIN_XDR_LEN: usize = 24;
}

impl XdrEncode for Domain {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.name, REMOTE_STRING_MAX)?;
        self.uuid.encode(e)?;
        e.i32(self.id);
        Ok(())
    }
}

impl XdrDecode for Domain {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: d.string(REMOTE_STRING_MAX)?.to_owned(),
            uuid: Uuid::decode(d)?,
            id: d.i32()?,
        })
    }
}

/// The value of a typed parameter: `union remote_typed_param_value switch (int type)`, with the
/// discriminants of `virTypedParameterType` (`VIR_TYPED_PARAM_INT` = 1 ... `STRING` = 7).
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// `VIR_TYPED_PARAM_INT` (1): `int i`.
    Int(i32),
    /// `VIR_TYPED_PARAM_UINT` (2): `unsigned int ui`.
    UInt(u32),
    /// `VIR_TYPED_PARAM_LLONG` (3): `hyper l`.
    LLong(i64),
    /// `VIR_TYPED_PARAM_ULLONG` (4): `unsigned hyper ul`.
    ULLong(u64),
    /// `VIR_TYPED_PARAM_DOUBLE` (5): `double d`.
    Double(f64),
    /// `VIR_TYPED_PARAM_BOOLEAN` (6): `int b` (any non-zero value is true).
    Boolean(bool),
    /// `VIR_TYPED_PARAM_STRING` (7): `remote_nonnull_string s`.
    String(String),
}

impl TypedValue {
    /// The discriminant (`virTypedParameterType`).
    #[must_use]
    pub fn type_code(&self) -> i32 {
        match self {
            Self::Int(_) => 1,
            Self::UInt(_) => 2,
            Self::LLong(_) => 3,
            Self::ULLong(_) => 4,
            Self::Double(_) => 5,
            Self::Boolean(_) => 6,
            Self::String(_) => 7,
        }
    }

    /// The value as an unsigned 64-bit integer, if it is a non-negative integer of any width.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Int(v) => u64::try_from(v).ok(),
            Self::UInt(v) => Some(u64::from(v)),
            Self::LLong(v) => u64::try_from(v).ok(),
            Self::ULLong(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a signed 64-bit integer, if it is an integer that fits.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int(v) => Some(i64::from(v)),
            Self::UInt(v) => Some(i64::from(v)),
            Self::LLong(v) => Some(v),
            Self::ULLong(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The string, if it is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// `struct remote_typed_param`: a named value.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    /// `field`, e.g. `"hostname"` or `"fs.0.mountpoint"`.
    pub field: String,
    /// `value`.
    pub value: TypedValue,
}

impl TypedParam {
    /// Smallest encoding: empty field (4), discriminant (4), an `int` (4).
    pub const MIN_XDR_LEN: usize = 12;

    /// A parameter.
    #[must_use]
    pub fn new(field: impl Into<String>, value: TypedValue) -> Self {
        Self {
            field: field.into(),
            value,
        }
    }
}

impl XdrEncode for TypedParam {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.field, REMOTE_STRING_MAX)?;
        e.i32(self.value.type_code());
        match &self.value {
            TypedValue::Int(v) => e.i32(*v),
            TypedValue::UInt(v) => e.u32(*v),
            TypedValue::LLong(v) => e.i64(*v),
            TypedValue::ULLong(v) => e.u64(*v),
            TypedValue::Double(v) => e.f64(*v),
            TypedValue::Boolean(v) => e.i32(i32::from(*v)),
            TypedValue::String(s) => e.string(s, REMOTE_STRING_MAX)?,
        }
        Ok(())
    }
}

impl XdrDecode for TypedParam {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let field = d.string(REMOTE_STRING_MAX)?.to_owned();
        let offset = d.position();
        let value = match d.i32()? {
            1 => TypedValue::Int(d.i32()?),
            2 => TypedValue::UInt(d.u32()?),
            3 => TypedValue::LLong(d.i64()?),
            4 => TypedValue::ULLong(d.u64()?),
            5 => TypedValue::Double(d.f64()?),
            6 => TypedValue::Boolean(d.i32()? != 0),
            7 => TypedValue::String(d.string(REMOTE_STRING_MAX)?.to_owned()),
            // The union has no default arm, so the length of an unknown arm is unknown.
            other => {
                return Err(XdrError::InvalidValue {
                    offset,
                    value: i64::from(other),
                });
            }
        };
        Ok(Self { field, value })
    }
}

/// Looks up a parameter by field name.
#[must_use]
pub fn find_param<'a>(params: &'a [TypedParam], field: &str) -> Option<&'a TypedValue> {
    params.iter().find(|p| p.field == field).map(|p| &p.value)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::xdr::{from_slice, to_vec};

    #[test]
    fn uuid_parse_and_display() {
        let s = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0";
        let u = Uuid::parse(s).unwrap();
        assert_eq!(u.0[0], 0x4d);
        assert_eq!(u.to_string(), s);
        assert_eq!(Uuid::parse(&s.to_uppercase()), Some(u));
        assert_eq!(Uuid::parse(&s.replace('-', "")), Some(u));
        assert_eq!(Uuid::parse("4dea22b3-1d52-d8f3-2516-782e98ab3fa"), None);
        assert_eq!(Uuid::parse("4dea22b3-1d52-d8f3-2516-782e98ab3fa00"), None);
        assert_eq!(Uuid::parse("4dea22b3-1d52-d8f3-2516-782e98ab3fag"), None);
        assert_eq!(Uuid::parse("4dea22b31d52-d8f3-2516-782e98ab3fa0"), None);
        assert!("x".parse::<Uuid>().is_err());
    }

    #[test]
    fn domain_layout() {
        let d = Domain {
            name: "vm1".into(),
            uuid: Uuid([0xab; 16]),
            id: -1,
        };
        let bytes = to_vec(&d).unwrap();
        let mut expected = vec![0, 0, 0, 3, b'v', b'm', b'1', 0];
        expected.extend([0xab; 16]);
        expected.extend([0xff; 4]);
        assert_eq!(bytes, expected);
        assert_eq!(from_slice::<Domain>(&bytes).unwrap(), d);
    }

    #[test]
    fn typed_param_layout_and_unknown_type() {
        let p = TypedParam::new("hostname", TypedValue::String("g1".into()));
        let bytes = to_vec(&p).unwrap();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 8, b'h', b'o', b's', b't', b'n', b'a', b'm', b'e', 0, 0, 0, 7, 0, 0, 0, 2,
                b'g', b'1', 0, 0
            ]
        );
        let mut bad = bytes;
        bad[15] = 8;
        assert_eq!(
            from_slice::<TypedParam>(&bad),
            Err(XdrError::InvalidValue {
                offset: 12,
                value: 8
            })
        );
        let params = [p];
        assert_eq!(
            find_param(&params, "hostname").and_then(TypedValue::as_str),
            Some("g1")
        );
        assert_eq!(TypedValue::Int(-1).as_u64(), None);
        assert_eq!(TypedValue::ULLong(u64::MAX).as_i64(), None);
        assert_eq!(TypedValue::UInt(7).as_i64(), Some(7));
    }

    pub(crate) fn typed_value() -> impl Strategy<Value = TypedValue> {
        prop_oneof![
            any::<i32>().prop_map(TypedValue::Int),
            any::<u32>().prop_map(TypedValue::UInt),
            any::<i64>().prop_map(TypedValue::LLong),
            any::<u64>().prop_map(TypedValue::ULLong),
            // NaN != NaN: keep to numbers so that equality holds.
            (-1e300f64..1e300).prop_map(TypedValue::Double),
            any::<bool>().prop_map(TypedValue::Boolean),
            ".{0,16}".prop_map(TypedValue::String),
        ]
    }

    proptest! {
        #[test]
        fn typed_params_round_trip(field in ".{0,12}", value in typed_value()) {
            let p = TypedParam::new(field, value);
            prop_assert_eq!(from_slice::<TypedParam>(&to_vec(&p).unwrap()).unwrap(), p);
        }

        #[test]
        fn domains_round_trip(name in ".{0,20}", uuid in any::<[u8; 16]>(), id in any::<i32>()) {
            let d = Domain { name, uuid: Uuid(uuid), id };
            prop_assert_eq!(from_slice::<Domain>(&to_vec(&d).unwrap()).unwrap(), d);
        }
    }
}
