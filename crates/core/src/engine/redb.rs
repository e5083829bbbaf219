//! The durable engine, on redb: one database file per data directory.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use redb::{ReadOnlyTable, ReadableDatabase, TableDefinition, TableError};

use super::{Direction, Durability, Engine, EngineSnapshot, Entries, KeyRange, WriteBatch};
use crate::{Error, Result};

/// The database file inside a data directory.
const FILE_NAME: &str = "cloudlet.redb";

type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The table holding `keyspace`. Prefixed because redb rejects an empty table name and
/// cloudlet allows an empty keyspace name.
fn table_name(keyspace: &str) -> String {
    format!("ks.{keyspace}")
}

fn definition(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The durable engine: crash-safe, checksummed, copy-on-write B-trees in one file.
///
/// Each keyspace is a table. A [`Durability::Durable`] commit is fsync'd before it returns; an
/// [`Durability::Eventual`] one becomes durable with the next durable commit. The database is
/// opened exclusively: a second open of the same directory fails until the first is dropped.
pub struct RedbEngine {
    db: redb::Database,
    path: PathBuf,
}

impl RedbEngine {
    /// Opens the engine in `dir`, creating the directory and the database file if needed.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created, the file is locked by another
    /// open engine, or the file is not a valid database.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(Error::storage)?;
        let path = dir.join(FILE_NAME);
        let db = redb::Database::create(&path).map_err(Error::storage)?;
        Ok(Self { db, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEngine")
            .field("path", &self.path)
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
        // An empty durable commit still syncs: it makes earlier eventual commits durable.
        if batch.is_empty() && durability == Durability::Eventual {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(Error::storage)?;
        txn.set_durability(match durability {
            Durability::Durable => redb::Durability::Immediate,
            Durability::Eventual => redb::Durability::None,
        })
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
        txn.commit().map_err(Error::storage)
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
