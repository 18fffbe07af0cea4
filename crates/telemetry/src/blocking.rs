//! Blocking work (file writes with fsync, CPU-heavy encoding) run on
//! tokio's blocking pool and awaited where it is started: the one place
//! outside [`crate::Shutdown`] that starts a task (CI checks that no other
//! non-test code calls `tokio::spawn` or `spawn_blocking`). Nothing is
//! detached: the caller awaits the result.

/// Runs `f` on the blocking pool and returns what it returned. A panic in
/// `f` (or the runtime shutting down under it) comes back as an
/// `io::Error` of kind `Other`.
pub async fn run_blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(format!("blocking task failed: {e}")))
}
