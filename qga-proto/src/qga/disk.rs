//! Disks, filesystems and disk statistics.

use serde::{Deserialize, Serialize};

open_enum! {
    /// Bus of a disk.
    pub enum GuestDiskBusType {
        /// IDE.
        Ide = "ide",
        /// Floppy.
        Fdc = "fdc",
        /// SCSI.
        Scsi = "scsi",
        /// virtio.
        Virtio = "virtio",
        /// Xen.
        Xen = "xen",
        /// USB.
        Usb = "usb",
        /// UML.
        Uml = "uml",
        /// SATA.
        Sata = "sata",
        /// SD card.
        Sd = "sd",
        /// Unknown.
        Unknown = "unknown",
        /// FireWire.
        Ieee1394 = "ieee1394",
        /// SSA.
        Ssa = "ssa",
        /// Fibre channel.
        Fibre = "fibre",
        /// RAID.
        Raid = "raid",
        /// iSCSI.
        Iscsi = "iscsi",
        /// SAS.
        Sas = "sas",
        /// MMC.
        Mmc = "mmc",
        /// Virtual.
        Virtual = "virtual",
        /// File-backed virtual.
        FileBackedVirtual = "file-backed-virtual",
        /// NVMe.
        Nvme = "nvme",
    }
}

/// PCI address; members are -1 when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPciAddress {
    /// Domain.
    pub domain: i64,
    /// Bus.
    pub bus: i64,
    /// Slot.
    pub slot: i64,
    /// Function.
    pub function: i64,
}

/// s390 channel address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestCcwAddress {
    /// Channel subsystem id.
    pub cssid: i64,
    /// Subchannel set id.
    pub ssid: i64,
    /// Subchannel number.
    pub subchno: i64,
    /// Device number.
    pub devno: i64,
}

/// Where a disk sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDiskAddress {
    /// Controller address.
    pub pci_controller: GuestPciAddress,
    /// Bus type.
    pub bus_type: GuestDiskBusType,
    /// Bus number.
    pub bus: i64,
    /// Target.
    pub target: i64,
    /// Unit.
    pub unit: i64,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Device node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// s390 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccw_address: Option<GuestCcwAddress>,
}

/// `guest-get-disks` (5.2+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetDisks;
command!(
    GuestGetDisks,
    "guest-get-disks",
    Vec<GuestDiskInfo>,
    HAS_ARGUMENTS = false
);

/// One disk or partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDiskInfo {
    /// Device name (`"/dev/vda"`).
    pub name: String,
    /// True for a partition.
    pub partition: bool,
    /// Devices this one is built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<GuestDiskAddress>,
    /// Alias (device-mapper name and such).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// SMART data (7.1+); kept as JSON since its shape depends on the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<serde_json::Value>,
}

/// `guest-get-fsinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetFsinfo;
command!(
    GuestGetFsinfo,
    "guest-get-fsinfo",
    Vec<GuestFilesystemInfo>,
    HAS_ARGUMENTS = false
);

/// One mounted filesystem (network filesystems are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFilesystemInfo {
    /// Device name.
    pub name: String,
    /// Mount point.
    pub mountpoint: String,
    /// Filesystem type.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Bytes in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Capacity for unprivileged users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Capacity for privileged users (9.1+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes_privileged: Option<u64>,
    /// Disks underneath.
    #[serde(default)]
    pub disk: Vec<GuestDiskAddress>,
}

/// `guest-get-diskstats` (7.1+, Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetDiskstats;
command!(
    GuestGetDiskstats,
    "guest-get-diskstats",
    Vec<GuestDiskStatsInfo>,
    HAS_ARGUMENTS = false
);

/// Statistics of one block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDiskStatsInfo {
    /// Device name.
    pub name: String,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Counters.
    pub stats: GuestDiskStats,
}

/// Counters of [`GuestDiskStatsInfo`]; each is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GuestDiskStats {
    /// Sectors read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_sectors: Option<u64>,
    /// Reads completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ios: Option<u64>,
    /// Reads merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_merges: Option<u64>,
    /// Sectors written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_sectors: Option<u64>,
    /// Writes completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_ios: Option<u64>,
    /// Writes merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_merges: Option<u64>,
    /// Sectors discarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_sectors: Option<u64>,
    /// Discards completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_ios: Option<u64>,
    /// Discards merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_merges: Option<u64>,
    /// Flushes completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_ios: Option<u64>,
    /// Time reading (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ticks: Option<u64>,
    /// Time writing (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_ticks: Option<u64>,
    /// Time discarding (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_ticks: Option<u64>,
    /// Time flushing (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_ticks: Option<u64>,
    /// I/Os in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ios_pgr: Option<u64>,
    /// Time doing I/O (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_ticks: Option<u64>,
    /// Weighted time doing I/O (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_ticks: Option<u64>,
}
