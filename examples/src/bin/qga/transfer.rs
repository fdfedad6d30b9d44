//! Commands that move bytes: exec, cat, get and put.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use qga_client::{ExecRequest, ExitStatus, FileOptions};
use serde_json::json;

use crate::Ctx;
use crate::cli::{ExecArgs, exit};
use crate::error::CliError;
use crate::output;

/// Runs a guest program; returns its exit code (128+N for signal N).
pub(crate) async fn exec(ctx: &Ctx, args: ExecArgs) -> Result<u8, CliError> {
    let ExecArgs {
        stdin,
        env,
        command,
    } = args;
    let mut words = command.into_iter();
    let Some(program) = words.next() else {
        return Err(CliError::Usage("exec needs a program".into()));
    };
    let mut request = ExecRequest::new(program).args(words);
    for (key, value) in &env {
        request = request.env(key, value);
    }
    // Local input is read before the clock starts.
    if let Some(source) = stdin {
        request = request.stdin(read_local(&source)?);
    }
    let result = ctx
        .within("guest-exec", async {
            // The client's deadline bounds the program itself too.
            Ok(ctx.connect().await?.exec(request).await?)
        })
        .await?;
    let code = match result.status {
        ExitStatus::Code(c) => u8::try_from(c).unwrap_or(1),
        ExitStatus::Signal(s) => u8::try_from(128 + s.clamp(0, 127)).unwrap_or(255),
        ExitStatus::Unknown => exit::AGENT,
    };
    if ctx.json {
        let (exitcode, signal) = match result.status {
            ExitStatus::Code(c) => (Some(c), None),
            ExitStatus::Signal(s) => (None, Some(s)),
            ExitStatus::Unknown => (None, None),
        };
        output::json(&json!({
            "pid": result.pid,
            "exitcode": exitcode,
            "signal": signal,
            "out-data": qga_proto::base64::encode(&result.stdout),
            "err-data": qga_proto::base64::encode(&result.stderr),
            "out-truncated": result.stdout_truncated,
            "err-truncated": result.stderr_truncated,
        }))?;
    } else {
        output::stdout(&result.stdout)?;
        output::stderr(&result.stderr)?;
    }
    for (truncated, stream) in [
        (result.stdout_truncated, "stdout"),
        (result.stderr_truncated, "stderr"),
    ] {
        if truncated {
            output::stderr(
                format!(
                    "qga: warning: guest {stream} output truncated by the agent (it keeps at \
                     most 16 MiB per stream)\n"
                )
                .as_bytes(),
            )?;
        }
    }
    if result.status == ExitStatus::Unknown {
        output::stderr(b"qga: the agent reported neither an exit code nor a signal\n")?;
    }
    Ok(code)
}

/// A file's bytes, or our stdin's for `-`.
fn read_local(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| CliError::local("cannot read stdin", e))?;
    } else {
        data = std::fs::read(path)
            .map_err(|e| CliError::local(format!("cannot read {}", path.display()), e))?;
    }
    Ok(data)
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Feeds the library's progress callback to a bar.
fn on_progress(bar: &ProgressBar) -> impl FnMut(u64, Option<u64>) + Send + '_ {
    move |done, total| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
    }
}

/// The largest file `cat --json` holds in memory (64 MiB); `cat` streams any size.
const JSON_CAT_MAX: u64 = 64 << 20;

/// Prints a guest file to stdout (as it arrives), or as base64 in a JSON document.
pub(crate) async fn cat(ctx: &Ctx, guest_path: &str) -> Result<(), CliError> {
    let mut collected = Vec::new();
    let json = ctx.json;
    let result = ctx
        .within("guest-file-read", async {
            let client = ctx.connect().await?;
            let mut sink = |chunk: &[u8]| {
                if json {
                    collected.extend_from_slice(chunk);
                    Ok(())
                } else {
                    let mut out = std::io::stdout();
                    out.write_all(chunk).and_then(|()| out.flush())
                }
            };
            // Streamed to stdout as it arrives, whatever its size; the JSON form holds the
            // whole file in memory, so it is bounded.
            let options =
                FileOptions::default().max_bytes(if json { Some(JSON_CAT_MAX) } else { None });
            Ok(client
                .read_file_with(guest_path, &options, &mut |_, _| {}, &mut sink)
                .await?)
        })
        .await;
    let size = name_local(result, "cannot write to stdout")?;
    if json {
        output::json(&json!({
            "path": guest_path,
            "size": size,
            "data-b64": qga_proto::base64::encode(&collected),
        }))?;
    }
    Ok(())
}

/// Names a failing local sink: the library hands its error back as `Error::Local`.
fn name_local<T>(result: Result<T, CliError>, what: &str) -> Result<T, CliError> {
    match result {
        Err(CliError::Agent(qga_client::Error::Local(e))) => Err(CliError::local(what, e)),
        other => other,
    }
}

/// Copies a guest file to `local`. A regular file (or a new one) is written through a
/// temporary file beside it, renamed once complete, so that a failed copy leaves nothing
/// half-written; anything else that exists (a device, a FIFO, a symbolic link) is written
/// in place.
pub(crate) async fn get(ctx: &Ctx, guest_path: &str, local: &Path) -> Result<(), CliError> {
    let in_place = std::fs::symlink_metadata(local).is_ok_and(|m| !m.is_file());
    let target = if in_place {
        local.to_owned()
    } else {
        temp_beside(local)
    };
    let file = if in_place {
        std::fs::OpenOptions::new().write(true).open(&target)
    } else {
        std::fs::File::create(&target)
    }
    .map_err(|e| CliError::local(format!("cannot create {}", target.display()), e))?;
    let cannot_write = format!("cannot write {}", target.display());
    let mut writer = std::io::BufWriter::new(file);
    let bar = progress_bar();
    let result = ctx
        .within("guest-file-read", async {
            let client = ctx.connect().await?;
            let mut sink = |chunk: &[u8]| writer.write_all(chunk);
            Ok(client
                .read_file_with(
                    guest_path,
                    // Streamed to the local file: any size (the disk is the bound).
                    &FileOptions::default().max_bytes(None),
                    &mut on_progress(&bar),
                    &mut sink,
                )
                .await?)
        })
        .await;
    bar.finish_and_clear();
    let finished = name_local(result, &cannot_write).and_then(|size| {
        let file = writer
            .into_inner()
            .map_err(|e| CliError::local(&cannot_write, e.into_error()))?;
        if !in_place {
            file.sync_all()
                .map_err(|e| CliError::local(&cannot_write, e))?;
            std::fs::rename(&target, local).map_err(|e| {
                let what = format!("cannot rename {} to {}", target.display(), local.display());
                CliError::local(what, e)
            })?;
        }
        Ok(size)
    });
    let size = match finished {
        Ok(size) => size,
        Err(e) => {
            if !in_place {
                let _ = std::fs::remove_file(&target);
            }
            return Err(e);
        }
    };
    if ctx.json {
        output::json(&json!({
            "path": guest_path,
            "local": local.display().to_string(),
            "size": size,
        }))
    } else {
        output::line(&format!(
            "copied {guest_path} to {} ({size} bytes)",
            local.display()
        ))
    }
}

/// `dir/.name.qga-PID.part` next to `path`, so that the final rename stays on one
/// filesystem.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.qga-{}.part", std::process::id()))
}

/// Copies `local` into the guest and verifies it by reading it back.
pub(crate) async fn put(ctx: &Ctx, local: &Path, guest_path: &str) -> Result<(), CliError> {
    let data = read_local(local)?;
    let bar = progress_bar();
    let result = ctx
        .within("guest-file-write", async {
            let client = ctx.connect().await?;
            Ok(client
                .write_file_with(
                    guest_path,
                    &data,
                    &FileOptions::default(),
                    &mut on_progress(&bar),
                )
                .await?)
        })
        .await;
    bar.finish_and_clear();
    let summary = result?;
    if ctx.json {
        output::json(&json!({
            "path": guest_path,
            "local": local.display().to_string(),
            "size": summary.size,
            "sha256": summary.sha256_hex(),
            "verified": summary.verified,
        }))
    } else {
        output::line(&format!(
            "copied {} to {guest_path} ({} bytes, sha256 {}, verified)",
            local.display(),
            summary.size,
            summary.sha256_hex()
        ))
    }
}
