//! One service per test, on either engine.

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_objectstore::ObjectService;
use tempfile::TempDir;

pub struct Harness {
    pub s3: ObjectService,
    pub clock: ManualClock,
    store: Store,
    dir: Option<TempDir>,
}

impl Harness {
    /// Everything in memory.
    pub fn memory() -> Self {
        let clock = ManualClock::starting_2025();
        let store = Store::memory();
        Self {
            s3: ObjectService::new(store.clone(), clock.shared()),
            clock,
            store,
            dir: None,
        }
    }

    /// Metadata and small bodies in redb, large bodies in files.
    pub fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_2025();
        let store = Store::new(RedbEngine::open(dir.path().join("db")).unwrap());
        Self {
            s3: ObjectService::open(store.clone(), clock.shared(), dir.path().join("objects"))
                .unwrap(),
            clock,
            store,
            dir: Some(dir),
        }
    }

    /// The body files on disk (0 in memory).
    pub fn body_files(&self) -> usize {
        self.dir.as_ref().map_or(0, |d| {
            std::fs::read_dir(d.path().join("objects/bodies"))
                .unwrap()
                .count()
        })
    }

    /// A new service over the same data, as after a restart.
    pub async fn restart(mut self) -> Self {
        self.s3.shutdown().await;
        match &self.dir {
            Some(dir) => {
                let old = std::mem::replace(&mut self.store, Store::memory());
                drop(self.s3);
                old.close().await;
                let store = Store::new(RedbEngine::open(dir.path().join("db")).unwrap());
                let s3 = ObjectService::open(
                    store.clone(),
                    self.clock.shared(),
                    dir.path().join("objects"),
                )
                .unwrap();
                Self {
                    s3,
                    clock: self.clock,
                    store,
                    dir: self.dir,
                }
            }
            None => Self {
                s3: ObjectService::new(self.store.clone(), self.clock.shared()),
                clock: self.clock,
                store: self.store,
                dir: None,
            },
        }
    }
}
