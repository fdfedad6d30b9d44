//! The guest image: built (once, then from its cache) by `tests/vm/build-guest.sh`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{ERROR_TAIL_LINES, QEMU_BINARY, tail_lines};

const INSTALL_HINT: &str = "the test VM needs Debian bookworm packages qemu-system-x86 qemu-guest-agent busybox-static cpio kmod e2fsprogs xz-utils \
     and a kernel .deb from apt; `sudo tests/vm/build-guest.sh` installs them and builds the image \
     (or: sudo apt-get install --no-install-recommends qemu-system-x86 qemu-guest-agent busybox-static cpio kmod e2fsprogs xz-utils)";

/// The built guest: kernel, initramfs and disk template, from the build script's cache
/// directory (`$NOVA_GUEST_VM_DIR`, default `<repo>/target/vm-guest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmImage {
    /// The cache directory printed by the build script.
    pub dir: PathBuf,
    /// `vmlinux` (uncompressed ELF, PVH boot) or, failing that, `vmlinuz`.
    pub kernel: PathBuf,
    /// `initramfs.cpio.gz`.
    pub initrd: PathBuf,
    /// `disk.img`: pristine raw ext4 image; [`Vm::boot`](super::Vm::boot) copies it, never use it directly.
    pub disk_template: PathBuf,
}

impl VmImage {
    /// Runs the build script (a cache hit takes well under a second) and returns the image.
    /// The result, success or error, is computed once per process.
    ///
    /// The error says what to install or run.
    pub fn build() -> Result<Self, String> {
        static IMAGE: OnceLock<Result<VmImage, String>> = OnceLock::new();
        IMAGE.get_or_init(build_image).clone()
    }

    /// Path of `tests/vm/build-guest.sh`.
    pub fn script_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/build-guest.sh")
    }

    /// The image in an existing cache directory, without running the build script.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self, String> {
        let dir = dir.into();
        let kernel = ["vmlinux", "vmlinuz"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no vmlinux or vmlinuz in {}", dir.display()))?;
        let initrd = dir.join("initramfs.cpio.gz");
        let disk_template = dir.join("disk.img");
        for path in [&initrd, &disk_template] {
            if !path.is_file() {
                return Err(format!("{} is missing", path.display()));
            }
        }
        Ok(Self {
            dir,
            kernel,
            initrd,
            disk_template,
        })
    }

    /// The build script's `manifest.txt` (package versions and artefact checksums).
    pub fn manifest(&self) -> String {
        fs::read_to_string(self.dir.join("manifest.txt")).unwrap_or_default()
    }
}

fn build_image() -> Result<VmImage, String> {
    let script = VmImage::script_path();
    if !script.is_file() {
        return Err(format!(
            "the guest build script {} is missing (is this a checkout of the nova-guest workspace?)",
            script.display()
        ));
    }
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `bash {}`: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}); {INSTALL_HINT}\n--- last lines of its output ---\n{}{}",
            script.display(),
            output.status,
            tail_lines(&stdout, 10),
            tail_lines(&stderr, ERROR_TAIL_LINES),
        ));
    }
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| format!("`{}` printed no output directory", script.display()))?;
    let image = VmImage::from_dir(&dir)
        .map_err(|e| format!("`{}` reported {}: {e}", script.display(), dir.display()))?;
    check_qemu()?;
    Ok(image)
}

fn check_qemu() -> Result<(), String> {
    match Command::new(QEMU_BINARY)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{QEMU_BINARY} --version` failed ({}): {}; reinstall it: sudo apt-get install --no-install-recommends qemu-system-x86",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "cannot run {QEMU_BINARY}: {e}; install it: sudo apt-get install --no-install-recommends qemu-system-x86 (or run `sudo tests/vm/build-guest.sh`)"
        )),
    }
}
