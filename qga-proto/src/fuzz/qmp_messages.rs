//! Target `qmp_messages`: QMP classification and event typing never panic.

use bytes::BytesMut;

use super::drain;
use crate::codec::{Frame, FrameDecoder};
use crate::message::QmpMessage;
use crate::qmp::{KnownEvent, TimedEvent};

/// Target `qmp_messages`: arbitrary bytes through the decoder, [`QmpMessage::from_slice`] and
/// [`KnownEvent::from_event`]. Must never panic; an event keeps its name and time.
pub fn qmp_messages(data: &[u8]) {
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    drain(&mut decoder, &mut buf, true, &mut out);
    for frame in out {
        let Ok(Frame::Message(bytes)) = frame else {
            continue;
        };
        match QmpMessage::from_slice(&bytes) {
            Ok(QmpMessage::Event(event)) => {
                let timed = TimedEvent::from(event.clone());
                assert_eq!(timed.name, event.event);
                assert_eq!(timed.timestamp, event.timestamp);
                let known = KnownEvent::from_event(event.clone());
                match (&known, event.event.as_str()) {
                    (KnownEvent::Stop, "STOP")
                    | (KnownEvent::Resume, "RESUME")
                    | (KnownEvent::Suspend, "SUSPEND")
                    | (
                        KnownEvent::Shutdown(_)
                        | KnownEvent::Reset(_)
                        | KnownEvent::VserportChange(_),
                        _,
                    ) => {}
                    (KnownEvent::Other(kept), _) => assert_eq!(kept, &event),
                    (other, name) => panic!("{name} typed as {other:?}"),
                }
                let _ = format!("{known:?}");
            }
            Ok(QmpMessage::Greeting(greeting)) => {
                let _ = greeting.qmp.version.qemu.to_string();
            }
            Ok(QmpMessage::Reply(reply)) => {
                let _ = format!("{reply:?}");
                if let Err(error) = reply.into_result() {
                    let _ = error.to_string();
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}
