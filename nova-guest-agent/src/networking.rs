//! apply-networking: render mode (write a rendered script into the guest, run it, remove it)
//! and script mode (run the configured guest script with base64(network_data), as the
//! original nova-guest did).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nova_guest_contract::reply::ApplyNetworkingResult;
use nova_guest_contract::request::OutputEncoding;
use qga_client::{ExecOutput, ExecRequest, FileOptions};
use serde_json::Value;

use crate::config::{Config, NetworkingMode};
use crate::error::ApiError;
use crate::guests::Guest;
use crate::{netdata, render};

/// Windows' PowerShell, as the original nova-guest ran it.
const POWERSHELL: &str = "powershell.exe";
const POWERSHELL_ARGS: &[&str] = &[
    "-NoProfile",
    "-NonInteractive",
    "-ExecutionPolicy",
    "Bypass",
    "-File",
];

fn guest_err(e: qga_client::Error) -> ApiError {
    ApiError::from_guest(&e)
}

/// The result in the original nova-guest's shape: `success` (exit code 0) and `message`.
fn result(out: &ExecOutput) -> ApplyNetworkingResult {
    ApplyNetworkingResult {
        success: out.status.success(),
        message: crate::exec::result(out, OutputEncoding::Text),
    }
}

/// Applies network_data.json in the guest.
///
/// # Errors
///
/// 400 when network_data cannot be rendered; the guest's errors otherwise. A script that
/// runs and fails is not an error: it gives `success: false` with its output.
pub async fn apply(
    guest: &mut Guest<'_>,
    config: &Config,
    network_data: &Value,
) -> Result<ApplyNetworkingResult, ApiError> {
    let windows = guest.os().await.map_err(guest_err)?.windows;
    match config.apply_networking_mode {
        NetworkingMode::Script => {
            let encoded = B64.encode(
                serde_json::to_vec(network_data)
                    .map_err(|e| ApiError::internal(format!("cannot encode network_data: {e}")))?,
            );
            let request = if windows {
                ExecRequest::new(POWERSHELL)
                    .args(POWERSHELL_ARGS.iter().copied())
                    .arg(config.apply_networking_script_windows.clone())
                    .arg(encoded)
            } else {
                ExecRequest::new(config.apply_networking_script.clone()).arg(encoded)
            };
            let out = guest.client.exec(request).await.map_err(guest_err)?;
            Ok(result(&out))
        }
        NetworkingMode::Render => {
            let net = netdata::parse(network_data)
                .map_err(|e| ApiError::bad_request(format!("network_data: {e}")))?;
            if windows {
                let script = render::windows::render(&net).map_err(ApiError::bad_request)?;
                run_windows(guest, &script).await
            } else {
                run_linux(guest, &render::linux::render(&net)).await
            }
        }
    }
}

/// Linux: a private directory from `mktemp -d` (mode 0700: guest-file-open creates files
/// 0666, which must not be reachable by other users), the script in it, `sh` on it, and the
/// directory removed.
async fn run_linux(guest: &mut Guest<'_>, script: &str) -> Result<ApplyNetworkingResult, ApiError> {
    let made = guest
        .client
        .exec(ExecRequest::new("mktemp").args(["-d", "-t", "nova-guest-net.XXXXXXXX"]))
        .await
        .map_err(guest_err)?;
    let dir = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    if !made.status.success() || !dir.starts_with('/') || dir.contains('\n') {
        return Err(ApiError::new(
            crate::error::ErrorCode::GuestCommandFailed,
            format!(
                "mktemp -d failed in the guest: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ),
        ));
    }
    let path = format!("{dir}/apply-network.sh");
    let outcome = async {
        let options = FileOptions::default();
        guest
            .client
            .write_file_with(&path, script.as_bytes(), &options, &mut |_, _| {})
            .await
            .map_err(guest_err)?;
        guest
            .client
            .exec(ExecRequest::new("/bin/sh").arg(path.clone()))
            .await
            .map_err(guest_err)
    }
    .await;
    let cleanup = guest
        .client
        .exec(ExecRequest::new("rm").args(["-rf", "--", dir.as_str()]))
        .await;
    if let Err(e) = cleanup {
        tracing::warn!(error = %e, "could not remove the apply-networking script from the guest");
    }
    Ok(result(&outcome?))
}

/// Windows: the script in `C:\Windows\Temp` (readable by administrators only), run with
/// powershell.exe, then removed.
async fn run_windows(
    guest: &mut Guest<'_>,
    script: &str,
) -> Result<ApplyNetworkingResult, ApiError> {
    let path = format!(
        r"C:\Windows\Temp\nova-guest-net-{:016x}.ps1",
        fastrand::u64(..)
    );
    let options = FileOptions::default();
    guest
        .client
        .write_file_with(&path, script.as_bytes(), &options, &mut |_, _| {})
        .await
        .map_err(guest_err)?;
    let outcome = guest
        .client
        .exec(
            ExecRequest::new(POWERSHELL)
                .args(POWERSHELL_ARGS.iter().copied())
                .arg(path.clone()),
        )
        .await
        .map_err(guest_err);
    let cleanup = guest
        .client
        .exec(
            ExecRequest::new(POWERSHELL)
                .args(["-NoProfile", "-NonInteractive", "-Command"])
                .arg(format!("Remove-Item -LiteralPath '{path}' -Force")),
        )
        .await;
    if let Err(e) = cleanup {
        tracing::warn!(error = %e, "could not remove the apply-networking script from the guest");
    }
    Ok(result(&outcome?))
}
