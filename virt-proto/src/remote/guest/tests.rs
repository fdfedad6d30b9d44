use super::*;
use crate::call::Call;
use crate::types::{TypedValue, Uuid};
use crate::xdr::{from_slice, to_vec};

fn dom() -> Domain {
    Domain {
        name: "vm".into(),
        uuid: Uuid([0x11; 16]),
        id: 1,
    }
}

#[test]
fn numbers() {
    assert_eq!(DomainGetHostname::PROCEDURE, 277);
    assert_eq!(DomainFsfreeze::PROCEDURE, 335);
    assert_eq!(DomainFsthaw::PROCEDURE, 336);
    assert_eq!(DomainGetTime::PROCEDURE, 337);
    assert_eq!(DomainSetTime::PROCEDURE, 338);
    assert_eq!(DomainInterfaceAddresses::PROCEDURE, 353);
    assert_eq!(DomainSetUserPassword::PROCEDURE, 357);
    assert_eq!(DomainGetGuestInfo::PROCEDURE, 418);
    assert_eq!(DomainAuthorizedSshKeysGet::PROCEDURE, 424);
    assert_eq!(DomainAuthorizedSshKeysSet::PROCEDURE, 425);
    assert_eq!(DomainFsfreeze::TIMEOUT.as_secs(), 120);
}

#[test]
fn password_is_redacted_and_encoded() {
    let call = DomainSetUserPassword {
        dom: dom(),
        user: Some("root".into()),
        password: Some("hunter2".into()),
        flags: 0,
    };
    let shown = format!("{call:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let bytes = to_vec(&call).unwrap();
    // dom (28) + user (4 + 4 + 4) + password (4 + 4 + 8) + flags (4).
    assert_eq!(bytes.len(), 28 + 12 + 16 + 4);
    assert_eq!(from_slice::<DomainSetUserPassword>(&bytes).unwrap(), call);
}

#[test]
fn guest_info_decodes_every_value_type() {
    let params = TypedParams(vec![
        TypedParam::new("user.count", TypedValue::UInt(1)),
        TypedParam::new("user.0.name", TypedValue::String("root".into())),
        TypedParam::new("user.0.login-time", TypedValue::ULLong(1_700_000_000_000)),
        TypedParam::new("timezone.offset", TypedValue::Int(-3600)),
        TypedParam::new("fs.0.used-bytes", TypedValue::LLong(-1)),
        TypedParam::new("load.1m", TypedValue::Double(0.25)),
        TypedParam::new("x.flag", TypedValue::Boolean(true)),
        TypedParam::new("hostname", TypedValue::String("guest".into())),
    ]);
    let bytes = to_vec(&params).unwrap();
    let back = DomainGetGuestInfo::decode_reply(&bytes).unwrap();
    assert_eq!(back, params);
    assert_eq!(
        back.get("hostname").and_then(TypedValue::as_str),
        Some("guest")
    );
    assert_eq!(back.get("user.count").and_then(TypedValue::as_u64), Some(1));
    // Over REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX.
    assert!(DomainGetGuestInfo::decode_reply(&[0, 0, 0x08, 0x01]).is_err());
}

#[test]
fn interface_addresses_round_trip() {
    let ifaces = Interfaces(vec![
        Interface {
            name: "lo".into(),
            hwaddr: Some("00:00:00:00:00:00".into()),
            addrs: vec![IpAddr {
                kind: IpAddr::IPV4,
                addr: "127.0.0.1".into(),
                prefix: 8,
            }],
        },
        Interface {
            name: "eth0".into(),
            hwaddr: None,
            addrs: vec![],
        },
    ]);
    let bytes = to_vec(&ifaces).unwrap();
    assert_eq!(
        DomainInterfaceAddresses::decode_reply(&bytes).unwrap(),
        ifaces
    );
    let args = DomainInterfaceAddresses {
        dom: dom(),
        source: addr_source::AGENT,
        flags: 0,
    };
    assert_eq!(&to_vec(&args).unwrap()[28..], [0, 0, 0, 1, 0, 0, 0, 0]);
}

#[test]
fn fsfreeze_time_keys_hostname() {
    let f = DomainFsfreeze {
        dom: dom(),
        mountpoints: vec!["/".into(), "/var".into()],
        flags: 0,
    };
    assert_eq!(
        from_slice::<DomainFsfreeze>(&to_vec(&f).unwrap()).unwrap(),
        f
    );
    assert_eq!(DomainFsthaw::decode_reply(&[0, 0, 0, 2]).unwrap(), 2);
    let too_many = DomainFsfreeze {
        mountpoints: vec![String::new(); 257],
        ..f
    };
    assert!(to_vec(&too_many).is_err());

    let t = GuestTime {
        seconds: -5,
        nseconds: 999_999_999,
    };
    assert_eq!(
        DomainGetTime::decode_reply(&to_vec(&t).unwrap()).unwrap(),
        t
    );
    let set = DomainSetTime {
        dom: dom(),
        seconds: 1,
        nseconds: 2,
        flags: TIME_SYNC,
    };
    assert_eq!(
        &to_vec(&set).unwrap()[28..],
        [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1]
    );

    let keys = SshKeys(vec!["ssh-ed25519 AAAA a@b".into()]);
    assert_eq!(
        DomainAuthorizedSshKeysGet::decode_reply(&to_vec(&keys).unwrap()).unwrap(),
        keys
    );
    let set = DomainAuthorizedSshKeysSet {
        dom: dom(),
        user: "root".into(),
        keys,
        flags: ssh_keys_flags::APPEND,
    };
    assert_eq!(
        from_slice::<DomainAuthorizedSshKeysSet>(&to_vec(&set).unwrap()).unwrap(),
        set
    );
    let h = DomainGetHostname::decode_reply(&[0, 0, 0, 1, b'g', 0, 0, 0]).unwrap();
    assert_eq!(h.0, "g");
}

mod props {
    use proptest::prelude::*;

    use super::*;
    use crate::types::tests::typed_value;

    fn ip() -> impl Strategy<Value = IpAddr> {
        (0..2i32, "[0-9a-f:.]{0,20}", 0..129u32).prop_map(|(kind, addr, prefix)| IpAddr {
            kind,
            addr,
            prefix,
        })
    }

    fn iface() -> impl Strategy<Value = Interface> {
        (
            "[a-z0-9]{0,8}",
            proptest::option::of("[0-9a-f:]{17}"),
            proptest::collection::vec(ip(), 0..4),
        )
            .prop_map(|(name, hwaddr, addrs)| Interface {
                name,
                hwaddr,
                addrs,
            })
    }

    proptest! {
        #[test]
        fn guest_info_round_trips(
            params in proptest::collection::vec((".{0,12}", typed_value()), 0..12),
        ) {
            let params = TypedParams(
                params.into_iter().map(|(f, v)| TypedParam::new(f, v)).collect(),
            );
            let bytes = to_vec(&params).unwrap();
            prop_assert_eq!(DomainGetGuestInfo::decode_reply(&bytes).unwrap(), params);
        }

        #[test]
        fn interfaces_round_trip(ifaces in proptest::collection::vec(iface(), 0..4)) {
            let ifaces = Interfaces(ifaces);
            let bytes = to_vec(&ifaces).unwrap();
            prop_assert_eq!(DomainInterfaceAddresses::decode_reply(&bytes).unwrap(), ifaces);
        }

        #[test]
        fn truncated_replies_are_errors(
            ifaces in proptest::collection::vec(iface(), 1..3),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = to_vec(&Interfaces(ifaces)).unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(DomainInterfaceAddresses::decode_reply(&bytes[..cut]).is_err());
        }
    }
}
