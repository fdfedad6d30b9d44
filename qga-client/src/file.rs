//! Chunked file transfer through guest-file-*, on tokio. The options and the plans (size,
//! bound, whole chunks, verification) are in `crate::logic::file`.

use qga_proto::qga::{GuestFileClose, GuestFileFlush, GuestFileWrite};

use crate::client::Client;
use crate::error::Result;
use crate::logic::file::{
    FileOptions, FileWriteSummary, ProgressFn, ReadPlan, Verify, WritePlan, open,
};

/// What a read hands each chunk to.
type Sink<'a> = &'a mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send);

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
    /// [`Error::Agent`](crate::Error::Agent) when it cannot be opened or read; else as for
    /// [`Client::call`].
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        let mut sink = |chunk: &[u8]| {
            data.extend_from_slice(chunk);
            Ok(())
        };
        self.read_file_with(path, &FileOptions::default(), &mut |_, _| {}, &mut sink)
            .await?;
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
    pub async fn read_file_with(
        &self,
        path: &str,
        options: &FileOptions,
        progress: ProgressFn<'_>,
        sink: Sink<'_>,
    ) -> Result<u64> {
        let handle = self.file_call(&open(path, "rb"), options).await?;
        let plan = ReadPlan::new(path, handle, options, self.max_chunks().0);
        self.with_handle(handle, self.read_handle(plan, options, progress, sink))
            .await
    }

    async fn read_handle(
        &self,
        mut plan: ReadPlan<'_>,
        options: &FileOptions,
        progress: ProgressFn<'_>,
        sink: Sink<'_>,
    ) -> Result<u64> {
        let end = self.file_call(&plan.seek_end(), options).await;
        if let Some(rewind) = plan.sized(end)? {
            self.file_call(&rewind, options).await?;
        }
        plan.start(progress);
        loop {
            let chunk = self.file_call(&plan.next_read(), options).await?;
            if plan.take(chunk, sink, progress)? {
                return Ok(plan.done());
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
    /// [`Error::VerifyFailed`](crate::Error::VerifyFailed) when the read-back differs;
    /// [`Error::ShortWrite`](crate::Error::ShortWrite) when the agent wrote less than a whole
    /// chunk (a full disk); [`Error::Agent`](crate::Error::Agent) when the file cannot be
    /// opened or written; else as for [`Client::call`].
    pub async fn write_file_with(
        &self,
        path: &str,
        data: &[u8],
        options: &FileOptions,
        progress: ProgressFn<'_>,
    ) -> Result<FileWriteSummary> {
        let handle = self.file_call(&open(path, "wb"), options).await?;
        let mut plan = WritePlan::new(path, data, options, self.max_chunks().1);
        let work = async {
            plan.start(progress);
            for chunk in data.chunks(plan.chunk_size()) {
                let written = self
                    .file_call(&GuestFileWrite::new(handle, chunk), options)
                    .await?;
                plan.written(chunk.len(), written, progress)?;
            }
            self.file_call(&GuestFileFlush { handle }, options)
                .await
                .map(drop)
        };
        self.with_handle(handle, work).await?;
        let mut check = Verify::new(path, data, options);
        let Some(read) = check.read_options() else {
            return Ok(check.unverified());
        };
        let read_back = self
            .read_file_with(path, &read, &mut |_, _| {}, &mut |c| check.update(c))
            .await;
        check.finish(read_back)
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
