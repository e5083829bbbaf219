//! The durable engine: redb B-trees behind a write-ahead log, in one data directory.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use redb::{ReadOnlyTable, ReadableDatabase, TableDefinition, TableError};

use super::wal::Wal;
use super::{Direction, Durability, Engine, EngineSnapshot, Entries, KeyRange, WriteBatch};
use crate::{Error, Result};

/// The database file inside a data directory.
const FILE_NAME: &str = "cloudlet.redb";
/// The write-ahead log beside it.
const WAL_NAME: &str = "cloudlet.wal";
/// Log size at which the B-tree is made durable and the log emptied.
const CHECKPOINT_BYTES: u64 = 32 << 20;

type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The table holding `keyspace`. Prefixed because redb rejects an empty table name and
/// cloudlet allows an empty keyspace name.
fn table_name(keyspace: &str) -> String {
    format!("ks.{keyspace}")
}

fn definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The durable engine: crash-safe, checksummed, copy-on-write B-trees (redb) behind a
/// write-ahead log.
///
/// Each keyspace is a table. A commit is appended to the log and applied to the B-tree
/// without a B-tree sync; a [`Durability::Durable`] commit also `fdatasync`s the log before it
/// returns (one small sequential sync instead of a B-tree commit), and an
/// [`Durability::Eventual`] one becomes durable with the next durable commit. Once the log
/// passes 32 MiB the B-tree is synced and the log emptied (a checkpoint). Opening replays what
/// the log holds beyond the last checkpoint, cutting off a torn tail.
///
/// The directory is opened exclusively: a second open fails until the first is dropped.
pub struct RedbEngine {
    db: redb::Database,
    path: PathBuf,
    wal: Mutex<Wal>,
}

impl RedbEngine {
    /// Opens the engine in `dir`, creating the directory and its files if needed, and
    /// recovers every commit the log holds.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created, the database is locked by
    /// another open engine, or a file is not valid.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(Error::storage)?;
        let path = dir.join(FILE_NAME);
        // The database first: its lock keeps a second process away from the log too.
        let db = redb::Database::create(&path).map_err(Error::storage)?;
        let (wal, recovered) = Wal::open(&dir.join(WAL_NAME))?;
        let engine = Self {
            db,
            path,
            wal: Mutex::new(wal),
        };
        if !recovered.is_empty() {
            tracing::info!(commits = recovered.len(), "replaying the write-ahead log");
            for batch in &recovered {
                engine.apply(batch)?;
            }
            engine.checkpoint_locked(&mut engine.wal())?;
        }
        Ok(engine)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the B-tree durable and empties the log, so the next open has nothing to replay.
    /// Happens by itself as the log grows; call it before a planned shutdown to make the next
    /// open instant.
    ///
    /// # Errors
    /// [`Error::Storage`] when the sync fails; the data stays recoverable from the log.
    pub fn checkpoint(&self) -> Result<()> {
        self.checkpoint_locked(&mut self.wal())
    }

    /// Bytes of commits in the write-ahead log since the last checkpoint: what the next open
    /// would replay.
    pub fn log_bytes(&self) -> u64 {
        self.wal().len()
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn checkpoint_locked(&self, wal: &mut Wal) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(Error::storage)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(Error::storage)?;
        txn.commit().map_err(Error::storage)?;
        wal.reset()
    }

    /// Applies `batch` to the B-tree, visible at once, durable only through the log.
    fn apply(&self, batch: &WriteBatch) -> Result<()> {
        self.prepare(batch)?.commit().map_err(Error::storage)
    }

    /// A B-tree transaction holding `batch`, not yet committed (so not yet visible).
    fn prepare(&self, batch: &WriteBatch) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(Error::storage)?;
        txn.set_durability(redb::Durability::None)
            .map_err(Error::storage)?;
        for (name, writes) in batch.keyspaces() {
            let name = table_name(name);
            let mut table = txn.open_table(definition(&name)).map_err(Error::storage)?;
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        table
                            .insert(key.as_ref(), value.as_ref())
                            .map_err(Error::storage)?;
                    }
                    None => {
                        table.remove(key.as_ref()).map_err(Error::storage)?;
                    }
                }
            }
        }
        Ok(txn)
    }
}

impl fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEngine")
            .field("path", &self.path)
            .field("wal", &self.wal().path())
            .finish_non_exhaustive()
    }
}

impl Engine for RedbEngine {
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>> {
        let txn = self.db.begin_read().map_err(Error::storage)?;
        Ok(Box::new(RedbSnapshot {
            txn,
            tables: Mutex::new(HashMap::new()),
        }))
    }

    fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let mut wal = self.wal();
        if !batch.is_empty() {
            wal.append(&batch)?;
        }
        let sync = durability == Durability::Durable && wal.is_unsynced();
        if batch.is_empty() {
            if sync {
                wal.file().sync_data().map_err(Error::storage)?;
                wal.mark_synced();
            }
            return Ok(());
        }
        // The log syncs on a helper thread while this one builds the B-tree transaction, which
        // commits (becomes visible) only after the sync succeeded: no reader ever sees a write
        // a crash could undo.
        let file = wal.file();
        let (synced, txn) = std::thread::scope(|scope| {
            let syncing = sync.then(|| scope.spawn(|| file.sync_data()));
            let txn = self.prepare(&batch);
            let synced = match syncing {
                Some(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the log sync thread panicked")))
                    .map(|()| true),
                None => Ok(false),
            };
            (synced, txn)
        });
        if synced.map_err(Error::storage)? {
            wal.mark_synced();
        }
        txn?.commit().map_err(Error::storage)?;
        if wal.len() >= CHECKPOINT_BYTES {
            self.checkpoint_locked(&mut wal)?;
        }
        Ok(())
    }
}

struct RedbSnapshot {
    txn: redb::ReadTransaction,
    /// Tables opened so far; `None` for a keyspace that does not exist in this snapshot.
    tables: Mutex<HashMap<String, Option<Table>>>,
}

impl fmt::Debug for RedbSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbSnapshot").finish_non_exhaustive()
    }
}

impl RedbSnapshot {
    fn with_table<T>(
        &self,
        keyspace: &str,
        f: impl FnOnce(&Table) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if !tables.contains_key(keyspace) {
            let name = table_name(keyspace);
            let table = match self.txn.open_table(definition(&name)) {
                Ok(table) => Some(table),
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(Error::storage(e)),
            };
            tables.insert(keyspace.to_owned(), table);
        }
        match tables.get(keyspace) {
            Some(Some(table)) => f(table).map(Some),
            _ => Ok(None),
        }
    }
}

impl EngineSnapshot for RedbSnapshot {
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self
            .with_table(keyspace, |table| {
                Ok(table
                    .get(key)
                    .map_err(Error::storage)?
                    .map(|guard| Bytes::copy_from_slice(guard.value())))
            })?
            .flatten())
    }

    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>> {
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let entries = self.with_table(keyspace, |table| {
            table
                .range::<&[u8]>(range.as_slices())
                .map_err(Error::storage)
        })?;
        let Some(entries) = entries else {
            return Ok(Box::new(std::iter::empty()));
        };
        let own = |entry: std::result::Result<_, redb::StorageError>| {
            let (key, value): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>) =
                entry.map_err(Error::storage)?;
            Ok((
                Bytes::copy_from_slice(key.value()),
                Bytes::copy_from_slice(value.value()),
            ))
        };
        Ok(match direction {
            Direction::Forward => Box::new(entries.map(own)),
            Direction::Reverse => Box::new(entries.rev().map(own)),
        })
    }
}
