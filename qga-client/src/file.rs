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
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK,
            verify: true,
            call_timeout: None,
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

    /// Closes a handle, whatever happened before; errors are only logged.
    async fn close_quietly(&self, handle: i64) {
        if let Err(e) = self.call(&GuestFileClose { handle }).await {
            tracing::debug!(handle, error = %e, "closing a guest file handle failed");
        }
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
        let result = self.read_handle(handle, options, progress, sink).await;
        self.close_quietly(handle).await;
        result
    }

    async fn read_handle(
        &self,
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
        let count = Some(options.chunk() as u64);
        loop {
            let chunk = self
                .file_call(&GuestFileRead { handle, count }, options)
                .await?;
            if !chunk.buf_b64.is_empty() {
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
        let result = async {
            progress(0, Some(total));
            let mut done = 0usize;
            for chunk in data.chunks(options.chunk()) {
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
        }
        .await;
        self.close_quietly(handle).await;
        result?;
        let sha256: [u8; 32] = Sha256::digest(data).into();
        if !options.verify {
            return Ok(FileWriteSummary {
                size: total,
                sha256,
                verified: false,
            });
        }
        let mut hasher = Sha256::new();
        let read_back = self
            .read_file_with(path, options, &mut |_, _| {}, &mut |chunk| {
                hasher.update(chunk);
                Ok(())
            })
            .await?;
        let actual: [u8; 32] = hasher.finalize().into();
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
