//! Chunked file transfer through guest-file-*: the options, and the plans both clients
//! follow: the size for progress, the bound of a read, whole chunks written, and the
//! read-back that verifies a write.

use std::time::Duration;

use qga_proto::qga::{
    GuestFileOpen, GuestFileRead, GuestFileReadResult, GuestFileSeek, GuestFileSeekResult,
    GuestFileWriteResult, MAX_READ_COUNT, Whence,
};
use sha2::{Digest, Sha256};

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
    /// [`Client::with_deadline`](crate::Client::with_deadline) handle the handle's deadline bounds every call as well.
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

    pub(crate) fn chunk(&self) -> usize {
        // MAX_READ_COUNT (48 MiB) fits in usize on every supported target.
        self.chunk_size.clamp(1, MAX_READ_COUNT as usize)
    }
}

/// What `write_file_with` wrote.
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

/// A sink for the bytes of a read (the async client's is also `Send`).
pub(crate) type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>;
/// A progress callback (the async client's is also `Send`).
pub(crate) type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// `guest-file-open` of `path` with an fopen mode.
pub(crate) fn open(path: &str, mode: &str) -> GuestFileOpen {
    GuestFileOpen {
        path: path.to_owned(),
        mode: Some(mode.to_owned()),
    }
}

/// One read of a guest file handle, chunk by chunk.
#[derive(Debug)]
pub(crate) struct ReadPlan<'a> {
    path: &'a str,
    handle: i64,
    count: u64,
    limit: Option<u64>,
    done: u64,
    total: Option<u64>,
}

impl<'a> ReadPlan<'a> {
    /// A read of `path` through `handle`, in chunks of the options' size but at most
    /// `max_chunk` (what one read may bring on the client's transport).
    pub(crate) fn new(path: &'a str, handle: i64, options: &FileOptions, max_chunk: usize) -> Self {
        Self {
            path,
            handle,
            count: options.chunk().min(max_chunk) as u64,
            limit: options.max_bytes,
            done: 0,
            total: None,
        }
    }

    /// The seek to the end that tells the size, for progress.
    pub(crate) fn seek_end(&self) -> GuestFileSeek {
        GuestFileSeek {
            handle: self.handle,
            offset: 0,
            whence: Whence::End,
        }
    }

    /// Takes the answer to [`seek_end`](Self::seek_end); returns the seek back to the start
    /// to make when the size is known. A file that cannot seek (a pipe) has no size: the
    /// agent's error is not the read's.
    pub(crate) fn sized(
        &mut self,
        end: Result<GuestFileSeekResult>,
    ) -> Result<Option<GuestFileSeek>> {
        match end {
            Ok(end) => {
                self.total = u64::try_from(end.position).ok();
                Ok(Some(GuestFileSeek {
                    handle: self.handle,
                    offset: 0,
                    whence: Whence::Set,
                }))
            }
            Err(e) if e.agent_error().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reports the start, with the size when known.
    pub(crate) fn start(&self, progress: Progress<'_>) {
        progress(0, self.total);
    }

    /// The next read.
    pub(crate) fn next_read(&self) -> GuestFileRead {
        GuestFileRead {
            handle: self.handle,
            count: Some(self.count),
        }
    }

    /// Hands a chunk to `sink` within the bound; true at the end of the file.
    pub(crate) fn take(
        &mut self,
        chunk: GuestFileReadResult,
        sink: Sink<'_>,
        progress: Progress<'_>,
    ) -> Result<bool> {
        let data = &chunk.buf_b64;
        if !data.is_empty() {
            let after = self.done + data.len() as u64;
            if let Some(limit) = self.limit
                && after > limit
            {
                return Err(Error::FileTooLarge {
                    path: self.path.to_owned(),
                    limit,
                });
            }
            sink(data).map_err(Error::Local)?;
            self.done = after;
            progress(self.done, self.total);
        }
        Ok(chunk.eof)
    }

    /// Bytes read so far.
    pub(crate) fn done(&self) -> u64 {
        self.done
    }
}

/// One write of a guest file, chunk by chunk: each chunk must be written whole.
#[derive(Debug)]
pub(crate) struct WritePlan<'a> {
    path: &'a str,
    chunk: usize,
    total: u64,
    done: u64,
}

impl<'a> WritePlan<'a> {
    /// A write of `data` to `path`, in chunks of the options' size but at most `max_chunk`
    /// (what one write may carry on the client's transport).
    pub(crate) fn new(path: &'a str, data: &[u8], options: &FileOptions, max_chunk: usize) -> Self {
        Self {
            path,
            chunk: options.chunk().min(max_chunk),
            total: data.len() as u64,
            done: 0,
        }
    }

    /// Bytes per `guest-file-write`.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Reports the start.
    pub(crate) fn start(&self, progress: Progress<'_>) {
        progress(0, Some(self.total));
    }

    /// Takes the agent's answer to writing a chunk of `len` bytes.
    pub(crate) fn written(
        &mut self,
        len: usize,
        written: GuestFileWriteResult,
        progress: Progress<'_>,
    ) -> Result<()> {
        let expected = len as u64;
        if written.count != expected {
            return Err(Error::ShortWrite {
                path: self.path.to_owned(),
                offset: self.done,
                written: written.count,
                expected,
            });
        }
        self.done += expected;
        progress(self.done, Some(self.total));
        Ok(())
    }
}

/// The read-back that verifies a write: size and SHA-256.
pub(crate) struct Verify<'a> {
    path: &'a str,
    size: u64,
    sha256: [u8; 32],
    read: Option<FileOptions>,
    hasher: Sha256,
}

impl<'a> Verify<'a> {
    pub(crate) fn new(path: &'a str, data: &[u8], options: &FileOptions) -> Self {
        let size = data.len() as u64;
        Self {
            path,
            size,
            sha256: Sha256::digest(data).into(),
            // The read-back hashes without collecting; it needs no more than what was
            // written (one byte more tells a longer file).
            read: options
                .verify
                .then(|| options.clone().max_bytes(Some(size + 1))),
            hasher: Sha256::new(),
        }
    }

    /// The options of the read-back, or `None` when verification is off.
    pub(crate) fn read_options(&self) -> Option<FileOptions> {
        self.read.clone()
    }

    /// The summary of a write that is not verified.
    pub(crate) fn unverified(&self) -> FileWriteSummary {
        FileWriteSummary {
            size: self.size,
            sha256: self.sha256,
            verified: false,
        }
    }

    /// The read-back's sink.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        Ok(())
    }

    /// Compares what the read-back (`read_back`: its result) brought with what was written.
    pub(crate) fn finish(self, read_back: Result<u64>) -> Result<FileWriteSummary> {
        let actual: [u8; 32] = self.hasher.finalize().into();
        let read_back = match read_back {
            Ok(n) => n,
            Err(Error::FileTooLarge { .. }) => self.size + 1,
            Err(e) => return Err(e),
        };
        if read_back != self.size || actual != self.sha256 {
            return Err(Error::VerifyFailed {
                path: self.path.to_owned(),
                expected_size: self.size,
                actual_size: read_back,
                expected_sha256: hex::encode(self.sha256),
                actual_sha256: hex::encode(actual),
            });
        }
        Ok(FileWriteSummary {
            size: self.size,
            sha256: self.sha256,
            verified: true,
        })
    }
}
