//! What the client needs from a running domain's XML ([`DomainGetXmlDesc`]): the state of
//! the guest agent's channel.
//!
//! libvirt writes the live state of a virtio channel into its target element,
//! `<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>` (or
//! `'disconnected'`), from QEMU's `VSERPORT_CHANGE` events: the same information as the agent
//! lifecycle event, available at any time. [`agent_channel_state`] finds it with a small
//! scanner over the text, not an XML parser: it looks at `<target` start tags only, reads
//! their quoted attributes, and never allocates. Malformed input gives `None`.
//!
//! [`DomainGetXmlDesc`]: super::domain::DomainGetXmlDesc

/// The guest agent's virtio-serial port name.
pub const AGENT_CHANNEL_NAME: &str = "org.qemu.guest_agent.0";

/// The `state` of a virtio channel target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelState {
    /// `connected`: the guest has the port open (the agent runs).
    Connected,
    /// `disconnected`: nobody in the guest has it open.
    Disconnected,
}

/// The state of the guest agent channel in a domain's live XML. `None` when the domain has no
/// agent channel, or libvirt does not report its state (a shut-off domain; QEMU without
/// `VSERPORT_CHANGE`).
#[must_use]
pub fn agent_channel_state(xml: &str) -> Option<ChannelState> {
    channel_state(xml, AGENT_CHANNEL_NAME)
}

/// The state of the virtio channel named `name`.
#[must_use]
pub fn channel_state(xml: &str, name: &str) -> Option<ChannelState> {
    let mut rest = xml;
    while let Some(at) = rest.find("<target") {
        let after = &rest[at + "<target".len()..];
        // `<targetfoo` is another element.
        if !after.starts_with(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>') {
            rest = after;
            continue;
        }
        let end = after.find('>')?;
        let tag = &after[..end];
        if attribute(tag, "type") == Some("virtio") && attribute(tag, "name") == Some(name) {
            return match attribute(tag, "state")? {
                "connected" => Some(ChannelState::Connected),
                "disconnected" => Some(ChannelState::Disconnected),
                _ => None,
            };
        }
        rest = &after[end..];
    }
    None
}

/// The value of `name="…"` or `name='…'` among a start tag's attributes.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim_end();
        let value_part = rest[eq + 1..].trim_start();
        let quote = value_part.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let close = value_part[1..].find(quote)?;
        let value = &value_part[1..=close];
        if key == name {
            return Some(value);
        }
        rest = &value_part[close + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "<domain type='qemu' id='1'>\n  <devices>\n    <serial type='file'>\n      \
        <target type='isa-serial' port='0'/>\n    </serial>\n    <channel type='unix'>\n      \
        <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-vm/org.qemu.guest_agent.0'/>\n      \
        <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>\n      \
        <alias name='channel0'/>\n    </channel>\n  </devices>\n</domain>\n";

    #[test]
    fn finds_the_agent_channel() {
        assert_eq!(agent_channel_state(LIVE), Some(ChannelState::Connected));
        let down = LIVE.replace("'connected'", "'disconnected'");
        assert_eq!(agent_channel_state(&down), Some(ChannelState::Disconnected));
        let double = r#"<target name="org.qemu.guest_agent.0" type="virtio" state="connected">"#;
        assert_eq!(agent_channel_state(double), Some(ChannelState::Connected));
        assert_eq!(channel_state(LIVE, "com.redhat.spice.0"), None);
    }

    #[test]
    fn no_state_or_malformed() {
        let inactive = LIVE.replace(" state='connected'", "");
        assert_eq!(agent_channel_state(&inactive), None);
        for bad in [
            "<target type='virtio' name='org.qemu.guest_agent.0' state='connected'",
            "<target type=virtio name='org.qemu.guest_agent.0' state='connected'/>",
            "<target type='virtio' name='org.qemu.guest_agent.0' state='connected/>",
            "<targets type='virtio' name='org.qemu.guest_agent.0' state='connected'/>",
            "<target type='virtio' name='org.qemu.guest_agent.0' state='weird'/>",
            "<target",
            "<target =",
            "<target a='",
            "",
        ] {
            assert_eq!(agent_channel_state(bad), None, "{bad}");
        }
    }
}
