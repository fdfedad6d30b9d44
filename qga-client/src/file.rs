//! Chunked file transfer through guest-file-*.

use std::time::Duration;

use qga_proto::qga::{
    GuestFileClose, GuestFileFlush, GuestFileOpen, GuestFileRead, GuestFileSeek, GuestFileWrite,
    MAX_READ_COUNT, Whence,
};
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::error::{Error, Result};

/// Default bytes per guest-file-read / guest-file-write call (4 MiB).
pub const DEFAULT_CHUNK: usize = 4 * 1024 * 1024;

/// Options for file transfers.
#[derive(Debug, Clone)]
#[must_use]
pub struct FileOptions {
    /// Bytes per call (clamped to 1 B ..= 48 MiB).
    pub chunk_size: usize,
    /// After a write, read the file back and compare size and SHA-256 (default true).
    pub verify: bool,
    /// Deadline of each call; default: the client's default timeout. On a
    /// [`Client::with_deadline`] handle the handle's deadline bounds every call as well.
    pub call_timeout: Option<Duration>,
    /// Most bytes a read may bring (reads and write verification): past it the read stops
    /// with [`Error::FileTooLarge`], so a guest that never reports the end of a file cannot
    /// make the host collect without bound. `None`: no bound (for a sink that does not
    /// collect). Default: [`DEFAULT_MAX_READ`].
    pub max_bytes: Option<u64>,
}

/// The default bound of a read: 1 GiB.
pub const DEFAULT_MAX_READ: u64 = 1 << 30;

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK,
            verify: true,
            call_timeout: None,
            max_bytes: Some(DEFAULT_MAX_READ),
        }
    }
}

impl FileOptions {
    /// Sets the chunk size.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Turns read-back verification on or off.
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Sets the deadline of each call.
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = Some(t);
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, max: Option<u64>) -> Self {
        self.max_bytes = max;
        self
    }

    fn chunk(&self) -> usize {
        // MAX_READ_COUNT (48 MiB) fits in usize on every supported target.
        self.chunk_size.clamp(1, MAX_READ_COUNT as usize)
    }
}

/// What [`Client::write_file_with`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWriteSummary {
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the data.
    pub sha256: [u8; 32],
    /// Whether the file was read back and matched.
    pub verified: bool,
}

impl FileWriteSummary {
    /// The SHA-256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Progress callback: bytes done so far and the total when known.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(u64, Option<u64>) + Send);

impl Client {
    async fn file_call<C: qga_proto::Command>(
        &self,
        command: &C,
        options: &FileOptions,
    ) -> Result<C::Response> {
        match options.call_timeout {
            Some(t) => self.call_timeout(command, t).await,
            None => self.call(command).await,
        }
    }

    /// Runs `work` on an open guest file handle and closes it on every path: after success
    /// or error on this connection, and, when `work` is cancelled (its future dropped) or
    /// this handle's deadline leaves no time, from a background task on the same connection
    /// without the deadline. A handle left open would stay open in the guest agent until it
    /// restarts.
    async fn with_handle<T>(
        &self,
        handle: i64,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let guard = HandleGuard {
            client: Some(self.without_deadline()),
            handle,
        };
        let result = work.await;
        guard.close(self).await;
        result
    }

    /// Reads a whole guest file into memory.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] when it cannot be opened or read; else as for [`Client::call`].
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.read_file_with(
            path,
            &FileOptions::default(),
            &mut |_, _| {},
            &mut |chunk| {
                data.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await?;
        Ok(data)
    }

    /// Reads a guest file chunk by chunk, handing each chunk to `sink` and reporting progress.
    /// Returns the number of bytes read.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] when it cannot be opened or read, [`Error::Local`] when `sink` fails;
    /// else as for [`Client::call`].
    pub async fn read_file_with(
        &self,
        path: &str,
        options: &FileOptions,
        progress: ProgressFn<'_>,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<u64> {
        let open = GuestFileOpen {
            path: path.to_owned(),
            mode: Some("rb".into()),
        };
        let handle = self.file_call(&open, options).await?;
        self.with_handle(
            handle,
            self.read_handle(path, handle, options, progress, sink),
        )
        .await
    }

    async fn read_handle(
        &self,
        path: &str,
        handle: i64,
        options: &FileOptions,
        progress: ProgressFn<'_>,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<u64> {
        // The size, for progress; a file that cannot seek (a pipe) has none.
        let total = match self
            .file_call(
                &GuestFileSeek {
                    handle,
                    offset: 0,
                    whence: Whence::End,
                },
                options,
            )
            .await
        {
            Ok(end) => {
                self.file_call(
                    &GuestFileSeek {
                        handle,
                        offset: 0,
                        whence: Whence::Set,
                    },
                    options,
                )
                .await?;
                u64::try_from(end.position).ok()
            }
            Err(e) if e.agent_error().is_some() => None,
            Err(e) => return Err(e),
        };
        progress(0, total);
        let mut done = 0u64;
        let count = Some(options.chunk().min(self.max_chunks().0) as u64);
        loop {
            let chunk = self
                .file_call(&GuestFileRead { handle, count }, options)
                .await?;
            if !chunk.buf_b64.is_empty() {
                if let Some(limit) = options.max_bytes
                    && done + chunk.buf_b64.len() as u64 > limit
                {
                    return Err(Error::FileTooLarge {
                        path: path.to_owned(),
                        limit,
                    });
                }
                sink(&chunk.buf_b64).map_err(Error::Local)?;
                done += chunk.buf_b64.len() as u64;
                progress(done, total);
            }
            if chunk.eof {
                return Ok(done);
            }
        }
    }

    /// Writes `data` to a guest file (created or truncated), then reads it back to verify.
    ///
    /// # Errors
    ///
    /// As for [`write_file_with`](Self::write_file_with).
    pub async fn write_file(&self, path: &str, data: &[u8]) -> Result<FileWriteSummary> {
        self.write_file_with(path, data, &FileOptions::default(), &mut |_, _| {})
            .await
    }

    /// Writes `data` to a guest file in chunks, reporting progress, and (unless turned off)
    /// reads it back and compares size and SHA-256.
    ///
    /// # Errors
    ///
    /// [`Error::VerifyFailed`] when the read-back differs; [`Error::ShortWrite`] when the agent
    /// wrote less than a whole chunk (a full disk); [`Error::Agent`] when the file cannot be
    /// opened or written; else as for [`Client::call`].
    pub async fn write_file_with(
        &self,
        path: &str,
        data: &[u8],
        options: &FileOptions,
        progress: ProgressFn<'_>,
    ) -> Result<FileWriteSummary> {
        let open = GuestFileOpen {
            path: path.to_owned(),
            mode: Some("wb".into()),
        };
        let handle = self.file_call(&open, options).await?;
        let total = data.len() as u64;
        let work = async {
            progress(0, Some(total));
            let mut done = 0usize;
            for chunk in data.chunks(options.chunk().min(self.max_chunks().1)) {
                let written = self
                    .file_call(&GuestFileWrite::new(handle, chunk), options)
                    .await?;
                if written.count != chunk.len() as u64 {
                    return Err(Error::ShortWrite {
                        path: path.to_owned(),
                        offset: done as u64,
                        written: written.count,
                        expected: chunk.len() as u64,
                    });
                }
                done += chunk.len();
                progress(done as u64, Some(total));
            }
            self.file_call(&GuestFileFlush { handle }, options).await?;
            Ok(())
        };
        self.with_handle(handle, work).await?;
        let sha256: [u8; 32] = Sha256::digest(data).into();
        if !options.verify {
            return Ok(FileWriteSummary {
                size: total,
                sha256,
                verified: false,
            });
        }
        let mut hasher = Sha256::new();
        // The read-back hashes without collecting; it needs no more than what was written
        // (one byte more tells a longer file).
        let verify_options = options.clone().max_bytes(Some(total + 1));
        let read_back = self
            .read_file_with(path, &verify_options, &mut |_, _| {}, &mut |chunk| {
                hasher.update(chunk);
                Ok(())
            })
            .await;
        let actual: [u8; 32] = hasher.finalize().into();
        let read_back = match read_back {
            Ok(n) => n,
            Err(Error::FileTooLarge { .. }) => total + 1,
            Err(e) => return Err(e),
        };
        if read_back != total || actual != sha256 {
            return Err(Error::VerifyFailed {
                path: path.to_owned(),
                expected_size: total,
                actual_size: read_back,
                expected_sha256: hex::encode(sha256),
                actual_sha256: hex::encode(actual),
            });
        }
        Ok(FileWriteSummary {
            size: total,
            sha256,
            verified: true,
        })
    }
}

/// Closes a guest file handle when dropped without [`HandleGuard::close`] (the work was
/// cancelled): from a background task, on the connection without its deadline.
struct HandleGuard {
    client: Option<Client>,
    handle: i64,
}

impl HandleGuard {
    /// Closes the handle now on `on` (the caller's handle, with its deadline); when that has
    /// no time left, in the background.
    async fn close(mut self, on: &Client) {
        let handle = self.handle;
        match on.call(&GuestFileClose { handle }).await {
            Ok(_) => {
                self.client = None;
            }
            Err(e) if e.is_timeout() => {
                tracing::debug!(handle, "no time left to close a guest file handle here");
            }
            Err(e) => {
                tracing::debug!(handle, error = %e, "closing a guest file handle failed");
                self.client = None;
            }
        }
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let handle = self.handle;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = client.call(&GuestFileClose { handle }).await {
                        tracing::debug!(handle, error = %e, "closing a guest file handle failed");
                    }
                });
            }
            Err(_) => tracing::debug!(handle, "no runtime to close a guest file handle"),
        }
    }
}
