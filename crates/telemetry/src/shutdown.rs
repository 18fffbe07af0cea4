//! The shutdown helper: one cancellation token and one task tracker per
//! process, and the signal that triggers them.

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Ties every task of a process to one cancellation token and one tracker,
/// so nothing is detached: `spawn` tracks the task, `trigger` asks all of
/// them to stop, `wait` waits for them with a grace period.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
    /// Trackers of [`Shutdown::stage`]s, waited for with this one's.
    stages: std::sync::Arc<std::sync::Mutex<Vec<TaskTracker>>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A child shutdown: cancelled with its parent, or on its own (to stop a
    /// pipeline stage before the stages after it).
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            tracker: self.tracker.clone(),
            stages: std::sync::Arc::clone(&self.stages),
        }
    }

    /// A stage: cancelled with its parent, with its own tasks, so its
    /// `shutdown` waits only for them (stop receivers, then the stage after
    /// them). The parent's `shutdown` still waits for every stage.
    pub fn stage(&self) -> Self {
        let tracker = TaskTracker::new();
        self.stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tracker.clone());
        Self {
            token: self.token.child_token(),
            tracker,
            stages: std::sync::Arc::default(),
        }
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Runs blocking work (file I/O, fsync) on tokio's blocking pool,
    /// tracked like [`Shutdown::spawn`]'s tasks: `shutdown` waits for it.
    pub fn spawn_blocking<F, T>(&self, f: F) -> tokio::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.tracker.spawn_blocking(f)
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Cancels, then waits up to `grace` for tracked tasks. Returns false
    /// when the grace period ran out.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        let stages: Vec<TaskTracker> = self
            .stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for t in &stages {
            t.close();
        }
        tokio::time::timeout(grace, async {
            self.tracker.wait().await;
            for t in &stages {
                t.wait().await;
            }
        })
        .await
        .is_ok()
    }
}

/// Resolves on SIGINT or SIGTERM that arrive after its first poll. Keep one
/// future alive for as long as a stop is awaited: a new one does not see a
/// signal that came before it.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocking_work_is_waited_for() {
        let sd = Shutdown::new();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let job = sd.spawn_blocking(move || wait.recv().is_ok());
        assert!(
            !sd.shutdown(Duration::from_millis(20)).await,
            "the blocking job still runs"
        );
        release.send(()).expect("the job waits");
        assert!(sd.shutdown(Duration::from_secs(10)).await);
        assert!(job.await.expect("joined"));
    }
}
