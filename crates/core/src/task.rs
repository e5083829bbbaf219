//! Handles for background work: every task a primitive starts is owned by a
//! [`BackgroundTask`], stopped with `shutdown().await`, and never blocks on drop.

use std::fmt;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A signal that tells a background task to stop.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    receiver: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// True once shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes when shutdown is requested (or the handle is gone).
    ///
    /// # Cancel safety
    /// Cancel safe: use it as a `select!` branch.
    pub async fn requested(&mut self) {
        // An error means the handle was dropped, which also means stop.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }
}

/// Owns a spawned task. `shutdown().await` asks it to stop and waits until it has; dropping
/// the handle asks it to stop and returns at once.
pub struct BackgroundTask {
    name: String,
    stop: watch::Sender<bool>,
    join: Option<JoinHandle<()>>,
}

impl BackgroundTask {
    /// Spawns `task` on the current tokio runtime, handing it the signal to watch.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn<F, Fut>(name: impl Into<String>, task: F) -> Self
    where
        F: FnOnce(ShutdownSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, receiver) = watch::channel(false);
        let join = tokio::spawn(task(ShutdownSignal { receiver }));
        Self {
            name: name.into(),
            stop,
            join: Some(join),
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the task has ended.
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Asks the task to stop and waits until it has.
    ///
    /// # Panics
    /// Resumes the task's panic, if it panicked.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the task stopping in the background.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(join) = self.join.take()
            && let Err(e) = join.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl fmt::Debug for BackgroundTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
