//! Real traffic through the public API: every reply quoted in the protocol notes (§4.2, §8
//! T1–T12) and a few captured from qemu-ga 7.2.22 and QEMU 7.2.22 on the development machine,
//! framed by `FrameDecoder` and decoded as the reply to the command that produced it.

use bytes::{Bytes, BytesMut};
use qga_proto::codec::{Frame, FrameDecoder, FrameError};
use qga_proto::message::{ErrorBody, ErrorClass, QmpMessage, Reply};
use qga_proto::qga::*;
use qga_proto::qmp::{self, KnownEvent, RunState, ShutdownCause};
use qga_proto::sync::{Handshake, Progress};
use qga_proto::{Command, Empty};
use serde_json::{Value, json};

/// Frames of `wire` decoded in one piece, then EOF.
fn frames(wire: &[u8]) -> Vec<Result<Frame, FrameError>> {
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

/// The messages of `wire`, which must frame without errors.
fn messages(wire: &[u8]) -> Vec<Bytes> {
    frames(wire)
        .into_iter()
        .filter_map(|f| match f.expect("real traffic frames cleanly") {
            Frame::Message(m) => Some(m),
            Frame::Sentinel => None,
        })
        .collect()
}

/// Every reply in `wire`, decoded as replies to `C`.
fn replies<C: Command>(wire: &[u8]) -> Vec<Reply<C::Response>> {
    messages(wire)
        .iter()
        .map(|m| Reply::from_slice(m).expect("decodes as the command's reply"))
        .collect()
}

/// The single reply in `wire`.
fn reply<C: Command>(wire: &[u8]) -> Reply<C::Response> {
    let mut all = replies::<C>(wire);
    assert_eq!(all.len(), 1, "one reply expected");
    all.remove(0)
}

fn ok<C: Command>(wire: &[u8]) -> C::Response
where
    C::Response: std::fmt::Debug,
{
    reply::<C>(wire).into_result().expect("a return value")
}

fn err<C: Command>(wire: &[u8]) -> ErrorBody
where
    C::Response: std::fmt::Debug,
{
    reply::<C>(wire).into_result().expect_err("an error reply")
}

const STRAY: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";
const STRAY_DESC: &str = "JSON parse error, stray '\u{FFFD}'";

#[test]
fn t1_sync_delimited_raw_bytes() {
    let wire = [STRAY, b"\xff{\"return\": 123456789}\n"].concat();
    let f = frames(&wire);
    assert_eq!(f.len(), 3);
    assert_eq!(f[1], Ok(Frame::Sentinel));
    let all = replies::<GuestSyncDelimited>(&wire);
    let e = all[0].clone().into_result().unwrap_err();
    assert_eq!(
        (e.class, e.desc.as_str()),
        (ErrorClass::GenericError, STRAY_DESC)
    );
    assert_eq!(all[0].id(), None);
    assert_eq!(all[1].clone().into_result(), Ok(123456789));

    assert_eq!(ok::<GuestSyncDelimited>(b"\xff{\"return\": 42}\n"), 42);
    let r = reply::<GuestSyncDelimited>(b"\xff{\"return\": 5, \"id\": \"s5\"}\n");
    assert_eq!(r.id(), Some(&json!("s5")));
    assert_eq!(r.into_result(), Ok(5));
    // A failed sync has no sentinel.
    let wire: &[u8] = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'id', expected: integer\"}}\n";
    assert!(frames(wire).iter().all(|f| f != &Ok(Frame::Sentinel)));
    assert_eq!(
        err::<GuestSyncDelimited>(wire).desc,
        "Invalid parameter type for 'id', expected: integer"
    );
}

#[test]
fn t2_id_echo_and_unknown_command() {
    let r = reply::<GuestPing>(b"{\"return\": {}, \"id\": {\"k\": [1, 2]}}\n");
    assert_eq!(r.id(), Some(&json!({"k": [1, 2]})));
    assert_eq!(r.into_result(), Ok(Empty {}));
    let r = reply::<GuestPing>(b"{\"id\": 7, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-nosuch has not been found\"}}\n");
    assert_eq!(r.id(), Some(&json!(7)));
    let e = r.into_result().unwrap_err();
    assert_eq!(e.class, ErrorClass::CommandNotFound);
    assert_eq!(e.desc, "The command guest-nosuch has not been found");
    assert_eq!(ok::<GuestPing>(b"{\"return\": {}}\n"), Empty {});
}

/// `guest-info` as qemu-ga 7.2.22 sent it, 15 commands blocked with `-b`.
const GUEST_INFO: &str = include_str!("data/guest-info-7.2.22.json");

#[test]
fn t3_guest_info() {
    let info = ok::<GuestInfo>(GUEST_INFO.as_bytes());
    assert_eq!(info.version, "7.2.22");
    assert_eq!(info.supported_commands.len(), 42);
    let no_reply: Vec<_> = info
        .supported_commands
        .iter()
        .filter(|c| !c.success_response)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        no_reply,
        [
            "guest-suspend-hybrid",
            "guest-suspend-ram",
            "guest-suspend-disk",
            "guest-shutdown"
        ]
    );
    assert!(info.is_enabled("guest-exec"));
    assert!(!info.is_enabled("guest-get-devices"));
    assert!(!info.is_enabled("guest-fsfreeze-freeze"));
    assert!(info.command("guest-fsfreeze-freeze").is_some());
    assert!(info.command("guest-get-load").is_none());
    // Every command of 7.2 is in the catalogue.
    for c in &info.supported_commands {
        assert!(ALL_COMMANDS.contains(&c.name.as_str()), "{}", c.name);
    }
}

#[test]
fn t4_blocked_command() {
    let e = err::<GuestGetTimezone>(b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-get-timezone has been disabled\"}}\n");
    assert_eq!(e.class, ErrorClass::CommandNotFound);
    assert_eq!(
        e.to_string(),
        "CommandNotFound: Command guest-get-timezone has been disabled"
    );
    // Captured with the command enabled.
    let tz = ok::<GuestGetTimezone>(b"{\"return\": {\"zone\": \"UTC\", \"offset\": 0}}\n");
    assert_eq!((tz.zone.as_deref(), tz.offset), (Some("UTC"), 0));
}

#[test]
fn t5_malformed_input_replies() {
    let descs = [
        "JSON parse error, expecting value",
        "JSON parse error, invalid keyword 'abc'",
        "QMP input must be a JSON object",
        "QMP input lacks member 'execute'",
        "QMP input member 'bogus' is unexpected",
        "JSON parse error, duplicate key",
    ];
    let mut wire = Vec::new();
    for d in descs {
        wire.extend_from_slice(
            format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{d}\"}}}}\n")
                .as_bytes(),
        );
    }
    let all = replies::<GuestPing>(&wire);
    assert_eq!(all.len(), descs.len());
    for (r, d) in all.into_iter().zip(descs) {
        assert_eq!(r.id(), None);
        assert_eq!(r.into_result().unwrap_err().desc, d);
    }
    let r = reply::<GuestPing>(b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}\n");
    assert_eq!(r.id(), Some(&json!(1)));
    // Two requests in one write, two replies in one read.
    let all = replies::<GuestPing>(b"{\"return\": {}}\n{\"return\": {}, \"id\": 2}\n");
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].id(), all[1].id()), (None, Some(&json!(2))));
}

#[test]
fn t6_ff_mid_stream_replies() {
    let wire = [STRAY, b"{\"return\": {}, \"id\": 7}\n"].concat();
    let all = replies::<GuestPing>(&wire);
    assert_eq!(all[0].clone().into_result().unwrap_err().desc, STRAY_DESC);
    assert_eq!(all[1].id(), Some(&json!(7)));
    let wire = STRAY.repeat(3);
    let all = replies::<GuestPing>(&wire);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.id().is_none()));
    let wire = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\"ab\\uFFFD'\"}}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\n";
    let all = replies::<GuestPing>(wire);
    assert_eq!(
        all[0].clone().into_result().unwrap_err().desc,
        "JSON parse error, stray '\"ab\u{FFFD}'"
    );
}

#[test]
fn t7_exec_and_status_variants() {
    assert_eq!(
        ok::<GuestExec>(b"{\"return\": {\"pid\": 12419}}\n").pid,
        12419
    );
    let s = ok::<GuestExecStatus>(b"{\"return\": {\"exitcode\": 0, \"out-data\": \"aGkK\", \"out-truncated\": false, \"exited\": true}}\n");
    assert!(s.exited);
    assert_eq!(s.exitcode, Some(0));
    assert_eq!(s.out_data.as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(s.out_truncated, Some(false));
    assert_eq!((s.err_data, s.err_truncated, s.signal), (None, None, None));

    let e = err::<GuestExecStatus>(
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter 'pid'\"}}\n",
    );
    assert_eq!(e.class, ErrorClass::GenericError);

    // Still running: only `exited`.
    let s = ok::<GuestExecStatus>(b"{\"return\": {\"exited\": false}}\n");
    assert_eq!(s, ExecStatus::default());

    let s = ok::<GuestExecStatus>(b"{\"return\": {\"exitcode\": 3, \"err-data\": \"ZXJyCg==\", \"out-data\": \"b3V0Cg==\", \"err-truncated\": false, \"out-truncated\": false, \"exited\": true}}\n");
    assert_eq!(s.exitcode, Some(3));
    assert_eq!(s.out_data.as_deref(), Some(&b"out\n"[..]));
    assert_eq!(s.err_data.as_deref(), Some(&b"err\n"[..]));
    assert_eq!(
        (s.out_truncated, s.err_truncated),
        (Some(false), Some(false))
    );

    // Killed by a signal: no exit code.
    let s = ok::<GuestExecStatus>(b"{\"return\": {\"signal\": 9, \"exited\": true}}\n");
    assert_eq!((s.exited, s.signal, s.exitcode), (true, Some(9), None));
    assert_eq!(s.out_data, None);

    let e = err::<GuestExec>(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'capture-output', expected: boolean\"}}\n");
    assert!(e.desc.contains("capture-output"));
}

#[test]
fn t8_largest_exec_status_fits_the_default_limit() {
    // 16 MiB of 'a' on stdout (the capture cap), truncated, as one 22.4 MB line.
    let out = qga_proto::base64::encode(&vec![b'a'; EXEC_CAPTURE_LIMIT]);
    let wire = format!(
        "{{\"return\": {{\"exitcode\": 0, \"err-data\": \"dGFpbAo=\", \"out-data\": \"{out}\", \"err-truncated\": false, \"out-truncated\": true, \"exited\": true}}}}\n"
    );
    assert_eq!(wire.len(), 22_369_755);
    let s = ok::<GuestExecStatus>(wire.as_bytes());
    assert_eq!(s.out_data.map(|d| d.len()), Some(EXEC_CAPTURE_LIMIT));
    assert_eq!(s.out_truncated, Some(true));
    assert_eq!(s.err_data.as_deref(), Some(&b"tail\n"[..]));
}

#[test]
fn t9_file_round_trip() {
    assert_eq!(ok::<GuestFileOpen>(b"{\"return\": 1000}\n"), 1000);
    let w = ok::<GuestFileWrite<'_>>(b"{\"return\": {\"count\": 13, \"eof\": false}}\n");
    assert_eq!((w.count, w.eof), (13, false));
    assert_eq!(ok::<GuestFileFlush>(b"{\"return\": {}}\n"), Empty {});
    let s = ok::<GuestFileSeek>(b"{\"return\": {\"eof\": false, \"position\": 0}}\n");
    assert_eq!((s.position, s.eof), (0, false));
    let reads = replies::<GuestFileRead>(
        b"{\"return\": {\"count\": 5, \"buf-b64\": \"aGVsbG8=\", \"eof\": false}}\n\
          {\"return\": {\"count\": 11, \"buf-b64\": \"AP93b3JsZApBQkM=\", \"eof\": true}}\n\
          {\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": true}}\n",
    );
    let reads: Vec<_> = reads
        .into_iter()
        .map(|r| r.into_result().unwrap())
        .collect();
    assert_eq!(
        (reads[0].count, &reads[0].buf_b64[..], reads[0].eof),
        (5, &b"hello"[..], false)
    );
    assert_eq!(
        (reads[1].count, &reads[1].buf_b64[..], reads[1].eof),
        (11, &b"\x00\xffworld\nABC"[..], true)
    );
    assert_eq!(
        (reads[2].count, reads[2].buf_b64.len(), reads[2].eof),
        (0, 0, true)
    );
    let e = err::<GuestFileRead>(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"value '50331649' is invalid for argument count\"}}\n");
    assert!(e.desc.contains("50331649"));
    assert_eq!(ok::<GuestFileClose>(b"{\"return\": {}}\n"), Empty {});
    let e = err::<GuestFileClose>(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"handle '1000' has not been found\"}}\n");
    assert_eq!(e.desc, "handle '1000' has not been found");
}

#[test]
fn t9b_and_t10_error_floods_decode() {
    let wire = [STRAY, b"\xff{\"return\": 777}\n"].concat();
    assert_eq!(
        replies::<GuestSyncDelimited>(&wire)[1]
            .clone()
            .into_result(),
        Ok(777)
    );
    for d in [
        "JSON nesting depth limit exceeded",
        "JSON token count limit exceeded",
        "JSON token size limit exceeded",
    ] {
        let wire = format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{d}\"}}}}\n");
        assert_eq!(err::<GuestPing>(wire.as_bytes()).desc, d);
    }
}

#[test]
fn notes_4_2_information_replies() {
    let os = ok::<GuestGetOsinfo>(b"{\"return\": {\"name\": \"Debian GNU/Linux\", \"kernel-release\": \"6.18.44-fc-v669\", \"version\": \"12 (bookworm)\", \"pretty-name\": \"Debian GNU/Linux 12 (bookworm)\", \"version-id\": \"12\", \"kernel-version\": \"#1 SMP PREEMPT_DYNAMIC @0\", \"machine\": \"x86_64\", \"id\": \"debian\"}}\n");
    assert_eq!(os.id.as_deref(), Some("debian"));
    assert_eq!(os.version_id.as_deref(), Some("12"));
    assert_eq!(os.machine.as_deref(), Some("x86_64"));
    assert_eq!((&os.variant, &os.variant_id), (&None, &None));
    assert!(!os.is_windows());

    assert_eq!(
        ok::<GuestGetHostName>(b"{\"return\": {\"host-name\": \"vm\"}}\n").host_name,
        "vm"
    );
    assert_eq!(ok::<GuestGetUsers>(b"{\"return\": []}\n"), vec![]);
    let users = ok::<GuestGetUsers>(
        b"{\"return\": [{\"user\": \"root\", \"login-time\": 1795348020.5}]}\n",
    );
    assert_eq!(
        (users[0].user.as_str(), users[0].login_time),
        ("root", 1795348020.5)
    );
    assert_eq!(
        ok::<GuestGetTime>(b"{\"return\": 1795348020058666000}\n"),
        1795348020058666000
    );
    assert_eq!(
        ok::<GuestFsfreezeStatus>(b"{\"return\": \"thawed\"}\n"),
        FsfreezeStatus::Thawed
    );

    let fs = ok::<GuestGetFsinfo>(b"{\"return\": [{\"name\": \"vda\", \"total-bytes\": 97572749312, \"mountpoint\": \"/\", \"disk\": [{\"bus-type\": \"virtio\", \"bus\": 0, \"unit\": 0, \"pci-controller\": {\"bus\": 0, \"slot\": 2, \"domain\": 0, \"function\": 0}, \"dev\": \"/dev/vda\", \"target\": 0}], \"used-bytes\": 15201939456, \"type\": \"ext4\"}]}\n");
    assert_eq!(
        (fs[0].mountpoint.as_str(), fs[0].fs_type.as_str()),
        ("/", "ext4")
    );
    assert_eq!(
        (fs[0].total_bytes, fs[0].used_bytes),
        (Some(97572749312), Some(15201939456))
    );
    assert_eq!(fs[0].total_bytes_privileged, None);
    let disk = &fs[0].disk[0];
    assert_eq!(disk.bus_type, GuestDiskBusType::Virtio);
    assert_eq!(
        (disk.pci_controller.slot, disk.dev.as_deref()),
        (2, Some("/dev/vda"))
    );

    let disks = ok::<GuestGetDisks>(b"{\"return\": [{\"name\": \"/dev/vda\", \"dependencies\": [], \"partition\": false, \"address\": {\"bus-type\": \"virtio\", \"bus\": 0, \"unit\": 0, \"pci-controller\": {\"bus\": 0, \"slot\": 2, \"domain\": 0, \"function\": 0}, \"dev\": \"/dev/vda\", \"target\": 0}}]}\n");
    assert_eq!(
        (disks[0].name.as_str(), disks[0].partition),
        ("/dev/vda", false)
    );
    assert_eq!(disks[0].dependencies.as_deref(), Some(&[][..]));
    assert_eq!(
        disks[0].address.as_ref().map(|a| a.bus_type.clone()),
        Some(GuestDiskBusType::Virtio)
    );

    let cpus = ok::<GuestGetCpustats>(b"{\"return\": [{\"cpu\": 0, \"guestnice\": 0, \"idle\": 944810, \"steal\": 1100, \"iowait\": 2630, \"system\": 44520, \"guest\": 0, \"nice\": 25030, \"irq\": 0, \"type\": \"linux\", \"user\": 178070, \"softirq\": 140}, {\"cpu\": 1, \"guestnice\": 0, \"idle\": 889360, \"steal\": 1090, \"iowait\": 25920, \"system\": 55630, \"guest\": 0, \"nice\": 32940, \"irq\": 0, \"type\": \"linux\", \"user\": 189760, \"softirq\": 700}]}\n");
    assert_eq!(cpus.len(), 2);
    assert_eq!(
        (cpus[1].kind.as_str(), cpus[1].cpu, cpus[1].user),
        ("linux", Some(1), Some(189760))
    );
    assert_eq!(cpus[0].softirq, Some(140));

    let vcpus = ok::<GuestGetVcpus>(b"{\"return\": [{\"online\": true, \"can-offline\": true, \"logical-id\": 1}, {\"online\": true, \"can-offline\": false, \"logical-id\": 0}]}\n");
    assert_eq!(
        (vcpus[1].logical_id, vcpus[1].can_offline),
        (0, Some(false))
    );
    assert_eq!(
        ok::<GuestGetMemoryBlockInfo>(b"{\"return\": {\"size\": 134217728}}\n").size,
        134217728
    );
}

#[test]
fn notes_4_2_network_interfaces() {
    let ifs = ok::<GuestNetworkGetInterfaces>(b"{\"return\": [{\"name\": \"lo\", \"ip-addresses\": [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"127.0.0.1\", \"prefix\": 8}, {\"ip-address-type\": \"ipv6\", \"ip-address\": \"::1\", \"prefix\": 128}], \"statistics\": {\"tx-packets\": 31, \"tx-errs\": 0, \"rx-bytes\": 3293, \"rx-dropped\": 0, \"rx-packets\": 31, \"rx-errs\": 0, \"tx-bytes\": 3293, \"tx-dropped\": 0}, \"hardware-address\": \"00:00:00:00:00:00\"}, {\"name\": \"ifb0\", \"hardware-address\": \"72:e6:d2:69:2b:75\"}, {\"name\": \"eth0\", \"ip-addresses\": [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"192.0.2.2\", \"prefix\": 24}, {\"ip-address-type\": \"ipv6\", \"ip-address\": \"fd00::2\", \"prefix\": 64}], \"statistics\": {\"tx-packets\": 6422, \"tx-errs\": 0, \"rx-bytes\": 390369956, \"rx-dropped\": 0, \"rx-packets\": 11154, \"rx-errs\": 0, \"tx-bytes\": 607167, \"tx-dropped\": 0}, \"hardware-address\": \"02:fc:00:00:00:01\"}]}\n");
    assert_eq!(ifs.len(), 3);
    let lo = &ifs[0];
    assert_eq!(lo.ip_addresses[1].ip_address_type, IpAddressType::Ipv6);
    assert_eq!(
        (
            lo.ip_addresses[1].ip_address.as_str(),
            lo.ip_addresses[1].prefix
        ),
        ("::1", 128)
    );
    assert_eq!(lo.statistics.map(|s| s.rx_bytes), Some(3293));
    // An interface without addresses has no `ip-addresses` member at all.
    let ifb0 = &ifs[1];
    assert!(ifb0.ip_addresses.is_empty());
    assert_eq!(ifb0.statistics, None);
    assert!(ifb0.has_mac("72:E6:D2:69:2B:75"));
    assert_eq!(ifs[2].ip_addresses[0].ip_address, "192.0.2.2");
    assert_eq!(ifs[2].statistics.map(|s| s.tx_packets), Some(6422));
}

#[test]
fn unknown_members_and_enum_values_still_decode() {
    let s = ok::<GuestExecStatus>(b"{\"return\": {\"exited\": true, \"exitcode\": 0, \"new-member\": {\"a\": [1]}}, \"id\": 1, \"extra\": null}\n");
    assert_eq!((s.exited, s.exitcode), (true, Some(0)));
    assert_eq!(
        ok::<GuestFsfreezeStatus>(b"{\"return\": \"half-frozen\"}\n"),
        FsfreezeStatus::Other("half-frozen".into())
    );
    let ifs = ok::<GuestNetworkGetInterfaces>(b"{\"return\": [{\"name\": \"x\", \"ip-addresses\": [{\"ip-address-type\": \"ipv7\", \"ip-address\": \"?\", \"prefix\": 1, \"scope\": \"link\"}], \"mtu\": 1500}]}\n");
    assert_eq!(
        ifs[0].ip_addresses[0].ip_address_type,
        IpAddressType::Other("ipv7".into())
    );
    let disks = ok::<GuestGetDisks>(b"{\"return\": [{\"name\": \"/dev/x\", \"partition\": true, \"address\": {\"bus-type\": \"cxl\", \"bus\": 0, \"unit\": 0, \"pci-controller\": {\"bus\": -1, \"slot\": -1, \"domain\": -1, \"function\": -1}, \"target\": 0}, \"smart\": {\"type\": \"nvme\", \"x\": 1}}]}\n");
    let address = disks[0].address.as_ref().unwrap();
    assert_eq!(address.bus_type, GuestDiskBusType::Other("cxl".into()));
    assert_eq!(address.pci_controller.domain, -1);
    assert!(disks[0].smart.is_some());
    let os =
        ok::<GuestGetOsinfo>(b"{\"return\": {\"id\": \"mswindows\", \"brand-new\": [1, 2]}}\n");
    assert!(os.is_windows());
    let e = err::<GuestPing>(
        b"{\"error\": {\"class\": \"QgaCommandFailed\", \"desc\": \"old agent\", \"data\": {}}}\n",
    );
    assert_eq!(e.class, ErrorClass::Other("QgaCommandFailed".into()));
    let st = ok::<qmp::QueryStatus>(
        b"{\"return\": {\"status\": \"future-state\", \"running\": false, \"new\": 1}}\r\n",
    );
    assert_eq!(st.status, RunState::Other("future-state".into()));
    assert_eq!(st.singlestep, None);
}

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n";

#[test]
fn t11_qmp_session() {
    let QmpMessage::Greeting(g) = QmpMessage::from_slice(&messages(GREETING)[0]).unwrap() else {
        panic!("not a greeting")
    };
    assert_eq!(g.qmp.version.qemu.to_string(), "7.2.22");
    assert_eq!(g.qmp.version.package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
    assert_eq!(g.qmp.capabilities, ["oob"]);

    let r = reply::<qmp::QueryVersion>(b"{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n");
    assert_eq!(r.id(), Some(&json!(1)));
    assert_eq!(
        r.into_result().unwrap_err().class,
        ErrorClass::CommandNotFound
    );
    let r = reply::<qmp::QmpCapabilities>(b"{\"return\": {}, \"id\": \"neg\"}\r\n");
    assert_eq!(r.id(), Some(&json!("neg")));
    let r = reply::<qmp::QueryVersion>(b"{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"id\": {\"any\": \"json\"}}\r\n");
    assert_eq!(r.id(), Some(&json!({"any": "json"})));
    let v = r.into_result().unwrap();
    assert_eq!((v.qemu.major, v.qemu.minor, v.qemu.micro), (7, 2, 22));
    for (wire, id, class) in [
        (&b"{\"id\": 4, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-command has not been found\"}}\r\n"[..], Some(json!(4)), ErrorClass::CommandNotFound),
        (b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n", None, ErrorClass::GenericError),
        (b"{\"id\": 7, \"error\": {\"class\": \"GenericError\", \"desc\": \"The command query-status does not support OOB\"}}\r\n", Some(json!(7)), ErrorClass::GenericError),
    ] {
        let r = reply::<qmp::QueryStatus>(wire);
        assert_eq!(r.id(), id.as_ref());
        assert_eq!(r.into_result().unwrap_err().class, class);
    }
    let st = ok::<qmp::QueryStatus>(b"{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": 3}\r\n");
    assert_eq!(
        (st.status, st.running, st.singlestep),
        (RunState::Running, true, Some(false))
    );
    let hmp = ok::<qmp::HumanMonitorCommand>(
        b"{\"return\": \"7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\\r\\n\", \"id\": 6}\r\n",
    );
    assert_eq!(hmp, "7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n");
}

#[test]
fn t11_events_before_replies_with_crlf_then_eof() {
    let wire = b"{\"timestamp\": {\"seconds\": 1795348828, \"microseconds\": 339949}, \"event\": \"STOP\"}\r\n{\"return\": {}, \"id\": 10}\r\n\
                 {\"timestamp\": {\"seconds\": 1795348829, \"microseconds\": 12}, \"event\": \"RESUME\"}\r\n{\"return\": {}, \"id\": 12}\r\n\
                 {\"timestamp\": {\"seconds\": 1795348830, \"microseconds\": 7}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n{\"return\": {}, \"id\": \"bye\"}\r\n";
    let all: Vec<_> = messages(wire)
        .iter()
        .map(|m| QmpMessage::from_slice(m).unwrap())
        .collect();
    assert_eq!(all.len(), 6);
    let events: Vec<_> = all
        .iter()
        .filter_map(|m| match m {
            QmpMessage::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(events[0].timestamp.seconds, 1795348828);
    assert_eq!(events[0].timestamp.microseconds, 339949);
    assert_eq!(KnownEvent::from_event(events[0].clone()), KnownEvent::Stop);
    assert_eq!(
        KnownEvent::from_event(events[1].clone()),
        KnownEvent::Resume
    );
    let KnownEvent::Shutdown(info) = KnownEvent::from_event(events[2].clone()) else {
        panic!("SHUTDOWN not typed")
    };
    assert_eq!(
        (info.guest, info.reason),
        (false, ShutdownCause::HostQmpQuit)
    );
    let ids: Vec<_> = all
        .iter()
        .filter_map(|m| match m {
            QmpMessage::Reply(r) => r.id().cloned(),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [json!(10), json!(12), json!("bye")]);
    // Each reply is an empty object, for the command that caused it.
    let r: Reply<Empty> = Reply::from_slice(&messages(wire)[5]).unwrap();
    assert_eq!(r.into_result(), Ok(Empty {}));
    // An event is not a reply.
    assert!(Reply::<Value>::from_slice(&messages(wire)[0]).is_err());
}

/// What T12 left in the pipe before the agent's sentinel: the unread guest-info and ping
/// replies and the error provoked by our 0xFF.
fn t12_wire() -> Vec<u8> {
    [
        GUEST_INFO.as_bytes(),
        b"{\"return\": {}, \"id\": \"old\"}\n",
        STRAY,
        b"\xff{\"return\": 987654321}\n",
    ]
    .concat()
}

#[test]
fn t12_handshake_with_stale_output() {
    let wire = t12_wire();
    for max in [qga_proto::codec::DEFAULT_MAX_MESSAGE_LEN, 1024, 21] {
        let mut decoder = FrameDecoder::with_max_message_len(max);
        let mut hs = Handshake::start(987654321, &mut decoder);
        assert_eq!(
            &hs.request()[..],
            b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":987654321}}\n"
        );
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            hs.advance(&mut decoder, &mut buf),
            Progress::Synced,
            "max {max}"
        );
        assert_eq!(&buf[..], b"\n");
        assert_eq!(hs.stale_replies(), 0);
    }
    // One byte at a time, then the next reply decodes normally.
    let mut decoder = FrameDecoder::new();
    let mut hs = Handshake::start(987654321, &mut decoder);
    let mut buf = BytesMut::new();
    let mut progress = Vec::new();
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        progress.push(hs.advance(&mut decoder, &mut buf));
    }
    // Synced exactly when the closing brace of our reply arrived, and from then on.
    let first = progress.iter().position(|p| *p == Progress::Synced);
    assert_eq!(first, Some(wire.len() - 2));
    assert!(
        progress[wire.len() - 2..]
            .iter()
            .all(|p| *p == Progress::Synced)
    );
    buf.extend_from_slice(b"{\"return\": {}}\n");
    let Some(Frame::Message(m)) = decoder.decode(&mut buf).unwrap() else {
        panic!("no reply after sync")
    };
    assert_eq!(
        Reply::<Empty>::from_slice(&m).unwrap().into_result(),
        Ok(Empty {})
    );
}

#[test]
fn t12_sentinel_reply_of_an_earlier_sync_is_skipped() {
    let wire = [
        &t12_wire()[..t12_wire().len() - 23],
        b"\xff{\"return\": 123456789}\n",
        STRAY,
        b"\xff{\"return\": 987654321}\n",
    ]
    .concat();
    let mut decoder = FrameDecoder::new();
    let mut hs = Handshake::start(987654321, &mut decoder);
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(hs.advance(&mut decoder, &mut buf), Progress::Synced);
    assert_eq!(hs.stale_replies(), 1);
    // Our id without a sentinel in front is not trusted.
    let mut decoder = FrameDecoder::new();
    let mut hs = Handshake::start(987654321, &mut decoder);
    let mut buf = BytesMut::from(&b"{\"return\": 987654321}\n"[..]);
    assert_eq!(hs.advance(&mut decoder, &mut buf), Progress::Pending);
}
