//! The threads tools run on: a tokio runtime of their own, apart from the actor thread that
//! coordinates every run. A tool that blocks or computes holds one of these threads, never
//! the actors; a tool that panics, even before it returns its future, fails its attempt.

/// The tool threads of one runtime. Dropped, it stops without waiting (tools still running
/// are abandoned; their runs were interrupted first by an orderly shutdown).
pub(crate) struct ToolPool {
    rt: Option<tokio::runtime::Runtime>,
}

impl ToolPool {
    /// A pool of `threads` worker threads.
    ///
    /// # Errors
    /// When the operating system refuses the threads.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("nofx-tools")
            .enable_all()
            .build()?;
        Ok(Self { rt: Some(rt) })
    }

    /// Where tool futures are spawned.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt
            .as_ref()
            .expect("the pool's runtime is only taken when the pool is dropped")
            .handle()
            .clone()
    }

    /// The default size: four threads, or the number of processors when there are more.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(4)
    }
}

impl Drop for ToolPool {
    fn drop(&mut self) {
        // Dropping a runtime may happen in async code (the last handle of a Runtime), where
        // a blocking shutdown is not allowed.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
