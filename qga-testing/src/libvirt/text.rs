//! Text that libvirt reads or prints: the domain XML, the taint lines of the domain log, the
//! messages of `virsh dominfo`, and guest-exec's base64 output.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::DomainOptions;
use crate::vm::{AGENT_PORT_NAME, VmImage};

pub(super) fn decode_output(data: &Value) -> Result<String, String> {
    use base64::Engine as _;
    match data.as_str() {
        None => Ok(String::new()),
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("guest-exec-status output is not base64: {e}")),
    }
}

pub(super) fn parse_taints(log: &str, id: u32) -> Vec<String> {
    let marker = format!("Domain id={id} is tainted: ");
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        if let Some(pos) = line.find(&marker) {
            let flag = line[pos + marker.len()..].trim().to_owned();
            if !out.contains(&flag) {
                out.push(flag);
            }
        }
    }
    out
}

pub(super) fn parse_messages(dominfo: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_messages = false;
    for line in dominfo.lines() {
        if let Some(rest) = line.strip_prefix("Messages:") {
            in_messages = true;
            out.push(rest.trim().to_owned());
        } else if in_messages && line.starts_with(' ') && !line.trim().is_empty() {
            out.push(line.trim().to_owned());
        } else {
            in_messages = false;
        }
    }
    out
}

/// Escapes text for an XML attribute value or element content.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The domain XML: TCG (`type='qemu'`), direct kernel boot as in `vm.rs`, the disk as virtio,
/// user-mode virtio NIC, serial console to a file, and the agent channel with no source path
/// (libvirt creates the socket under `/var/lib/libvirt/qemu/channel/target/`).
pub(super) fn domain_xml(
    name: &str,
    image: &VmImage,
    disk: &Path,
    console: &Path,
    options: &DomainOptions,
) -> String {
    let path = |p: &Path| xml_escape(&p.to_string_lossy());
    let mut cmdline = String::from("console=ttyS0 quiet panic=-1");
    for word in &options.append {
        let _ = write!(cmdline, " {word}");
    }
    format!(
        r#"<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <interface type='user'>
      <mac address='{mac}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <target type='virtio' name='{AGENT_PORT_NAME}'/>
    </channel>
    <memballoon model='none'/>
  </devices>
</domain>
"#,
        name = xml_escape(name),
        memory = options.memory_mib,
        kernel = path(&image.kernel),
        initrd = path(&image.initrd),
        cmdline = xml_escape(&cmdline),
        disk = path(disk),
        mac = xml_escape(&options.mac),
        console = path(console),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_tcg_with_agent_channel_and_escaped_paths() {
        let image = VmImage {
            dir: "/i".into(),
            kernel: "/i/vmlinux".into(),
            initrd: "/i/init'rd".into(),
            disk_template: "/i/disk.img".into(),
        };
        let options = DomainOptions {
            append: vec!["qga.verbose=1".into()],
            ..DomainOptions::default()
        };
        let xml = domain_xml(
            "d",
            &image,
            Path::new("/s/disk.img"),
            Path::new("/s/c&.log"),
            &options,
        );
        assert!(xml.starts_with("<domain type='qemu'>"));
        assert!(!xml.contains("kvm"));
        assert!(xml.contains("<target type='virtio' name='org.qemu.guest_agent.0'/>"));
        assert!(xml.contains("<mac address='52:54:00:12:34:56'/>"));
        assert!(xml.contains("<initrd>/i/init&apos;rd</initrd>"));
        assert!(xml.contains("<source path='/s/c&amp;.log'/>"));
        assert!(xml.contains("<cmdline>console=ttyS0 quiet panic=-1 qga.verbose=1</cmdline>"));
    }

    #[test]
    fn exec_output_is_decoded() {
        assert_eq!(decode_output(&Value::from("aGk=")).unwrap(), "hi");
        assert_eq!(decode_output(&Value::Null).unwrap(), "");
        assert!(decode_output(&Value::from("!")).is_err());
    }

    #[test]
    fn taints_are_read_for_this_domain_id_once_each() {
        let log = "2026-12-07 09:17:17.507+0000: Domain id=1 is tainted: high-privileges\n\
                   2026-12-07 09:17:18.000+0000: Domain id=2 is tainted: custom-argv\n\
                   2026-12-07 09:17:26.187+0000: Domain id=1 is tainted: custom-ga-command\n\
                   2026-12-07 09:17:27.000+0000: Domain id=1 is tainted: custom-ga-command\n";
        assert_eq!(
            parse_taints(log, 1),
            ["high-privileges", "custom-ga-command"]
        );
        assert_eq!(parse_taints(log, 3), Vec::<String>::new());
    }

    #[test]
    fn dominfo_messages_are_parsed() {
        let info = "Security DOI:   0\n\
                    Messages:       tainted: running with undesirable elevated privileges\n\
                    \x20               tainted: custom guest agent control commands issued\n";
        assert_eq!(
            parse_messages(info),
            [
                "tainted: running with undesirable elevated privileges",
                "tainted: custom guest agent control commands issued"
            ]
        );
    }
}
