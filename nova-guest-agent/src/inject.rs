//! inject-file: a file written into the guest so that it is either all there or not changed.
//!
//! On a Linux guest whose agent runs programs (guest-exec), the contents go to a temporary
//! file beside the target, created 0600 by `mktemp` under `umask 077`, are read back and
//! compared, get their mode (the one asked for; else an existing target's mode and owner;
//! else 0600), and are renamed over the target, which is atomic on one filesystem. A write
//! cut off by the deadline leaves the target as it was, and the temporary file is removed
//! from the background. Without guest-exec (or on Windows, where qemu-ga has no rename) the
//! file is written in place: a write cut off then leaves it truncated, and a `mode` cannot be
//! set (refused with 422). Guest file handles are closed on every path by qga-client.

use std::time::Duration;

use nova_guest_contract::reply::InjectFileResult;
use qga_client::{Client, ExecRequest, FileOptions};

use crate::error::{ApiError, ErrorCode};
use crate::guests::Guest;

/// Time each clean-up call gets once the operation's deadline is gone.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

fn guest_err(e: qga_client::Error) -> ApiError {
    ApiError::from_guest(&e)
}

/// Writes `contents` to `path` in the guest; see the module docs.
///
/// # Errors
///
/// The guest's errors; 422 when a `mode` cannot be applied in this guest.
pub async fn write(
    guest: &mut Guest<'_>,
    path: &str,
    contents: &[u8],
    mode: Option<&str>,
) -> Result<InjectFileResult, ApiError> {
    let windows = guest.os().await.map_err(guest_err)?.windows;
    if windows || !guest.can_exec().await.map_err(guest_err)? {
        if mode.is_some() {
            return Err(ApiError::new(
                ErrorCode::GuestCommandFailed,
                "inject-file: a mode can only be set in a Linux guest whose agent runs programs \
                 (guest-exec)",
            ));
        }
        tracing::info!("inject-file written in place: no guest-exec to rename a temporary file");
        return in_place(&guest.client, path, contents).await;
    }
    let made = guest
        .client
        .exec(ExecRequest::new("/bin/sh").args([
            "-c",
            "set -e; umask 077; d=$(dirname -- \"$1\"); b=$(basename -- \"$1\"); \
             mktemp \"$d/.$b.nova-guest.XXXXXXXX\"",
            "sh",
            path,
        ]))
        .await
        .map_err(guest_err)?;
    let tmp = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    if !made.status.success() || !tmp.starts_with('/') || tmp.contains('\n') {
        return Err(ApiError::new(
            ErrorCode::GuestCommandFailed,
            format!(
                "inject-file: cannot create a temporary file beside {path}: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ),
        ));
    }
    // From here the temporary file is removed unless it was renamed, also if this future is
    // dropped at the deadline.
    let mut leftover = Leftover {
        client: Some(guest.unbounded.clone()),
        path: tmp.clone(),
    };
    let summary = guest
        .client
        .write_file_with(&tmp, contents, &FileOptions::default(), &mut |_, _| {})
        .await
        .map_err(guest_err)?;
    let placed = guest
        .client
        .exec(ExecRequest::new("/bin/sh").args([
            "-c",
            "set -e; t=$1; f=$2; m=$3; \
             if [ -n \"$m\" ]; then chmod \"$m\" \"$t\"; \
             elif [ -e \"$f\" ]; then chmod \"$(stat -c %a \"$f\")\" \"$t\"; \
             chown \"$(stat -c %u:%g \"$f\")\" \"$t\" 2>/dev/null || true; fi; \
             mv -f \"$t\" \"$f\"",
            "sh",
            &tmp,
            path,
            mode.unwrap_or(""),
        ]))
        .await
        .map_err(guest_err)?;
    if !placed.status.success() {
        return Err(ApiError::new(
            ErrorCode::GuestCommandFailed,
            format!(
                "inject-file: cannot put the file in place at {path}: {}",
                String::from_utf8_lossy(&placed.stderr).trim()
            ),
        ));
    }
    leftover.client = None;
    Ok(InjectFileResult {
        size: summary.size,
        sha256: summary.sha256_hex(),
    })
}

async fn in_place(
    client: &Client,
    path: &str,
    contents: &[u8],
) -> Result<InjectFileResult, ApiError> {
    let summary = client
        .write_file_with(path, contents, &FileOptions::default(), &mut |_, _| {})
        .await
        .map_err(guest_err)?;
    Ok(InjectFileResult {
        size: summary.size,
        sha256: summary.sha256_hex(),
    })
}

/// A temporary file to remove from the background unless disarmed (`client` taken).
struct Leftover {
    client: Option<Client>,
    path: String,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let path = std::mem::take(&mut self.path);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let client = client.with_deadline(tokio::time::Instant::now() + CLEANUP_TIMEOUT);
            let rm = ExecRequest::new("rm").args(["-f", "--", path.as_str()]);
            match client.exec(rm).await {
                Ok(out) if out.status.success() => {
                    tracing::debug!("removed the temporary file of an unfinished inject-file");
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        "could not remove the temporary file of an unfinished inject-file"
                    );
                }
            }
        });
    }
}
