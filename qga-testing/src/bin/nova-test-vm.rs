//! Boots the test guest (see `qga_testing::vm`) for scripts such as `scripts/demo`: prints
//! `QGA=<socket>`, `QMP=<socket>` and `BOOT=<seconds>` once the guest agent answers, then keeps
//! the VM until its standard input closes (or it is killed), and stops it.

use std::io::{Read, Write};

use qga_testing::vm::{Vm, VmImage, VmOptions};

fn main() {
    let image = match VmImage::build() {
        Ok(image) => image,
        Err(e) => {
            eprintln!("nova-test-vm: {e}");
            std::process::exit(69);
        }
    };
    let vm = match Vm::boot(&image, VmOptions::default()) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("nova-test-vm: {e}");
            std::process::exit(70);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "QGA={}", vm.qga_socket().display());
    let _ = writeln!(out, "QMP={}", vm.qmp_socket().display());
    let _ = writeln!(out, "BOOT={:.1}", vm.boot_time().as_secs_f64());
    let _ = out.flush();
    drop(out);
    // Hold the VM until the caller closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(vm);
}
