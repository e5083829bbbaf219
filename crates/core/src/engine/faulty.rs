//! An engine decorator that fails commits on demand, for testing failure handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Durability, Engine, EngineSnapshot, WriteBatch};
use crate::{Error, Result};

/// Wraps an engine and makes chosen commits fail as a failed fsync would.
///
/// A failed commit is first applied to the inner engine and then reported as an I/O error:
/// after a failed fsync the data may or may not be on disk, and callers must not rely on
/// either. Used to test that a [`Store`](crate::Store) poisons itself and that callers see the
/// error.
/// Clones share the inner engine and the fault switch.
#[derive(Debug)]
pub struct FaultyEngine<E> {
    inner: Arc<E>,
    state: Arc<FaultState>,
}

impl<E> Clone for FaultyEngine<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            state: Arc::clone(&self.state),
        }
    }
}

#[derive(Debug, Default)]
struct FaultState {
    /// Commits to let through before failing.
    healthy_commits_left: AtomicUsize,
    armed: AtomicBool,
}

impl<E: Engine> FaultyEngine<E> {
    /// Wraps `inner`; no commit fails until [`fail_after`](Self::fail_after) is called.
    pub fn new(inner: E) -> Self {
        Self {
            inner: Arc::new(inner),
            state: Arc::default(),
        }
    }

    /// Lets `commits` more commits succeed, then fails every commit after them.
    pub fn fail_after(&self, commits: usize) {
        self.state
            .healthy_commits_left
            .store(commits, Ordering::SeqCst);
        self.state.armed.store(true, Ordering::SeqCst);
    }

    /// Stops failing commits.
    pub fn heal(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
    }
}

impl<E: Engine> Engine for FaultyEngine<E> {
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>> {
        self.inner.snapshot()
    }

    fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let fail = self.state.armed.load(Ordering::SeqCst)
            && self
                .state
                .healthy_commits_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err();
        self.inner.commit(batch, durability)?;
        if fail {
            return Err(Error::storage(std::io::Error::other(
                "injected fsync failure",
            )));
        }
        Ok(())
    }

    fn commit_blocks(&self) -> bool {
        self.inner.commit_blocks()
    }
}
