//! Chunked file transfer, blocking. The options and the plans (size, bound, whole chunks,
//! verification) are in `crate::logic::file`.

use std::time::Duration;

use qga_proto::qga::{GuestFileClose, GuestFileFlush, GuestFileWrite};

use super::Client;
use crate::error::Result;
use crate::logic::file::{FileOptions, FileWriteSummary, ReadPlan, Verify, WritePlan, open};

/// Closes a guest file handle when the transfer unwinds (a sink that panicked) without
/// having closed it.
struct HandleGuard<'a> {
    client: &'a Client,
    handle: Option<i64>,
}

impl Drop for HandleGuard<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle {
            self.client.orphan(handle);
        }
    }
}

impl Client {
    fn file_call<C: qga_proto::Command>(
        &self,
        command: &C,
        options: &FileOptions,
    ) -> Result<C::Response> {
        match options.call_timeout {
            Some(t) => self.call_timeout(command, t),
            None => self.call(command),
        }
    }

    /// Runs `work` on an open guest file handle and closes it on every path. When this
    /// handle's deadline leaves no time to close it, the next call on the connection does
    /// (within its own deadline): a handle left open would stay open in the guest agent
    /// until it restarts.
    fn with_handle<T>(&self, handle: i64, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut guard = HandleGuard {
            client: self,
            handle: Some(handle),
        };
        let result = work();
        guard.handle = None;
        self.close_handle(handle, self.config().default_timeout);
        result
    }

    /// Closes a guest file handle within `timeout`; a handle that runs out of time is left
    /// for the next call.
    pub(super) fn close_handle(&self, handle: i64, timeout: Duration) {
        match self.call_timeout(&GuestFileClose { handle }, timeout) {
            Ok(_) => {}
            Err(e) if e.is_timeout() => {
                tracing::debug!(handle, "no time left to close a guest file handle here");
                self.orphan(handle);
            }
            Err(e) => tracing::debug!(handle, error = %e, "closing a guest file handle failed"),
        }
    }

    fn orphan(&self, handle: i64) {
        self.shared
            .orphans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
    }

    /// Reads a whole guest file into memory.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when it cannot be opened or read; else as for
    /// [`Client::call`].
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        let options = FileOptions::default();
        self.read_file_with(path, &options, &mut |_, _| {}, &mut |chunk| {
            data.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(data)
    }

    /// Reads a guest file chunk by chunk, handing each chunk to `sink` and reporting progress.
    /// Returns the number of bytes read.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`](crate::Error::Agent) when it cannot be opened or read,
    /// [`Error::Local`](crate::Error::Local) when `sink` fails,
    /// [`Error::FileTooLarge`](crate::Error::FileTooLarge) past
    /// [`FileOptions::max_bytes`]; else as for [`Client::call`].
    /// Unlike the async client's, `progress` and `sink` need not be `Send`.
    pub fn read_file_with(
        &self,
        path: &str,
        options: &FileOptions,
        progress: &mut impl FnMut(u64, Option<u64>),
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64> {
        let handle = self.file_call(&open(path, "rb"), options)?;
        let mut plan = ReadPlan::new(path, handle, options, usize::MAX);
        self.with_handle(handle, || {
            if let Some(rewind) = plan.sized(self.file_call(&plan.seek_end(), options))? {
                self.file_call(&rewind, options)?;
            }
            plan.start(progress);
            while !plan.take(self.file_call(&plan.next_read(), options)?, sink, progress)? {}
            Ok(plan.done())
        })
    }

    /// Writes `data` to a guest file (created or truncated), then reads it back to verify.
    ///
    /// # Errors
    ///
    /// As for [`write_file_with`](Self::write_file_with).
    pub fn write_file(&self, path: &str, data: &[u8]) -> Result<FileWriteSummary> {
        self.write_file_with(path, data, &FileOptions::default(), &mut |_, _| {})
    }

    /// Writes `data` to a guest file in chunks, reporting progress, and (unless turned off)
    /// reads it back and compares size and SHA-256.
    ///
    /// # Errors
    ///
    /// [`Error::VerifyFailed`](crate::Error::VerifyFailed) when the read-back differs;
    /// [`Error::ShortWrite`](crate::Error::ShortWrite) when the agent wrote less than a whole
    /// chunk (a full disk); [`Error::Agent`](crate::Error::Agent) when the file cannot be
    /// opened or written; else as for [`Client::call`].
    pub fn write_file_with(
        &self,
        path: &str,
        data: &[u8],
        options: &FileOptions,
        progress: &mut impl FnMut(u64, Option<u64>),
    ) -> Result<FileWriteSummary> {
        let handle = self.file_call(&open(path, "wb"), options)?;
        let mut plan = WritePlan::new(path, data, options, usize::MAX);
        self.with_handle(handle, || {
            plan.start(progress);
            for chunk in data.chunks(plan.chunk_size()) {
                let written = GuestFileWrite::new(handle, chunk);
                plan.written(chunk.len(), self.file_call(&written, options)?, progress)?;
            }
            self.file_call(&GuestFileFlush { handle }, options)
                .map(drop)
        })?;
        let mut check = Verify::new(path, data, options);
        match check.read_options() {
            None => Ok(check.unverified()),
            Some(read) => {
                let read_back =
                    self.read_file_with(path, &read, &mut |_, _| {}, &mut |c| check.update(c));
                check.finish(read_back)
            }
        }
    }
}
