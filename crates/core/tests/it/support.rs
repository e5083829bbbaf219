//! Shared helpers: engines to test against, and small utilities.

use std::path::PathBuf;

use cloudlet_core::engine::{FaultyEngine, MemoryEngine, RedbEngine};
use cloudlet_core::{Bytes, Direction, KeyRange, ReadView, Store};
use tempfile::TempDir;

/// A store under test, with whatever it needs kept alive.
pub struct Harness {
    pub store: Store,
    /// The data directory of a durable engine.
    pub dir: Option<TempDir>,
}

/// A fresh engine of the same kind as a harness's, wrapped to fail commits on demand.
pub enum Faulty {
    Memory(FaultyEngine<MemoryEngine>),
    /// The engine, and its data directory kept alive.
    Redb(FaultyEngine<RedbEngine>, #[allow(dead_code)] TempDir),
}

impl Faulty {
    pub fn store(&self) -> Store {
        match self {
            Self::Memory(e) => Store::new(e.clone()),
            Self::Redb(e, _) => Store::new(e.clone()),
        }
    }

    pub fn fail_after(&self, commits: usize) {
        match self {
            Self::Memory(e) => e.fail_after(commits),
            Self::Redb(e, _) => e.fail_after(commits),
        }
    }

    pub fn heal(&self) {
        match self {
            Self::Memory(e) => e.heal(),
            Self::Redb(e, _) => e.heal(),
        }
    }
}

impl Harness {
    pub fn memory() -> Self {
        Self {
            store: Store::new(MemoryEngine::new()),
            dir: None,
        }
    }

    pub fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Store::new(RedbEngine::open(dir.path()).unwrap()),
            dir: Some(dir),
        }
    }

    pub fn faulty(&self) -> Faulty {
        if self.dir.is_some() {
            let dir = tempfile::tempdir().unwrap();
            Faulty::Redb(
                FaultyEngine::new(RedbEngine::open(dir.path()).unwrap()),
                dir,
            )
        } else {
            Faulty::Memory(FaultyEngine::new(MemoryEngine::new()))
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_owned())
    }
}

/// Every entry of `range`, with read errors unwrapped.
pub fn collect(
    view: &impl ReadView,
    keyspace: &str,
    range: &KeyRange,
    direction: Direction,
) -> Vec<(Bytes, Bytes)> {
    view.range(keyspace, range, direction)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The keys of `range` as strings.
pub fn keys(
    view: &impl ReadView,
    keyspace: &str,
    range: &KeyRange,
    direction: Direction,
) -> Vec<String> {
    collect(view, keyspace, range, direction)
        .into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect()
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
