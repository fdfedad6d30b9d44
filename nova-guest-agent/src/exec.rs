//! A guest program's result in the contract's shape.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nova_guest_contract::reply::ExecResult;
use nova_guest_contract::request::OutputEncoding;
use qga_client::{ExecOutput, ExitStatus};

/// The result of a guest program in the original nova-guest's shape: `exited`, `exitcode`,
/// `signal` (0 when not killed), the truncation flags and `out-data`/`err-data`. A program
/// killed by a signal has `exitcode: null`.
pub fn result(out: &ExecOutput, encoding: OutputEncoding) -> ExecResult {
    let (exitcode, signal) = match out.status {
        ExitStatus::Code(c) => (Some(c), Some(0)),
        ExitStatus::Signal(s) => (None, Some(s)),
        ExitStatus::Unknown => (None, None),
    };
    let data = |bytes: &[u8]| match encoding {
        OutputEncoding::Text => String::from_utf8_lossy(bytes).into_owned(),
        OutputEncoding::Base64 => B64.encode(bytes),
    };
    ExecResult {
        exited: true,
        exitcode,
        signal,
        out_truncated: out.stdout_truncated,
        err_truncated: out.stderr_truncated,
        out_data: data(&out.stdout),
        err_data: data(&out.stderr),
    }
}
