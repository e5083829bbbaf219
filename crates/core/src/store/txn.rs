//! Transactions: reads that see their own writes, over a snapshot and the group's earlier writes.

use std::fmt;

use bytes::Bytes;

use super::Signals;
use crate::Result;
use crate::engine::merge::{Shadow, base_layer, overlay_range, without_deletes};
use crate::engine::{Direction, EngineSnapshot, Entries, KeyRange, WriteBatch};

/// Reads shared by [`Snapshot`](crate::Snapshot) and [`WriteTxn`].
pub trait ReadView {
    /// The value stored under `key`, if any.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the engine fails to read.
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>>;

    /// The entries whose keys lie in `range`, in `direction` order.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the engine fails to read; each entry may
    /// also carry a read error.
    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>>;

    /// The entries whose keys start with `prefix`, in `direction` order.
    ///
    /// # Errors
    /// As [`range`](Self::range).
    fn prefix(&self, keyspace: &str, prefix: &[u8], direction: Direction) -> Result<Entries<'_>> {
        self.range(keyspace, &KeyRange::prefix(prefix), direction)
    }

    /// The first entry of `range` in `direction` order.
    ///
    /// # Errors
    /// As [`range`](Self::range).
    fn first(
        &self,
        keyspace: &str,
        range: &KeyRange,
        direction: Direction,
    ) -> Result<Option<(Bytes, Bytes)>> {
        self.range(keyspace, range, direction)?.next().transpose()
    }
}

/// A write transaction, handed to the closure given to [`Store::write`](crate::Store::write).
///
/// Reads see the latest commit, the writes of transactions committed earlier in the same group
/// commit, and this transaction's own writes. The transaction's writes join the group's commit
/// only if the closure returns `Ok`; otherwise they are discarded and affect nobody.
pub struct WriteTxn<'a> {
    base: &'a dyn EngineSnapshot,
    group: &'a WriteBatch,
    signals: &'a Signals,
    own: WriteBatch,
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn")
            .field("writes", &self.own.len())
            .finish_non_exhaustive()
    }
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(
        base: &'a dyn EngineSnapshot,
        group: &'a WriteBatch,
        signals: &'a Signals,
    ) -> Self {
        Self {
            base,
            group,
            signals,
            own: WriteBatch::new(),
            on_commit: Vec::new(),
        }
    }

    pub(crate) fn into_parts(self) -> (WriteBatch, Vec<Box<dyn FnOnce() + Send>>) {
        (self.own, self.on_commit)
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, keyspace: &str, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.own.put(keyspace, key.into(), value.into());
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub fn delete(&mut self, keyspace: &str, key: impl Into<Bytes>) {
        self.own.delete(keyspace, key.into());
    }

    /// Runs `hook` after this transaction has committed (durably, if it asked to be), before
    /// the caller is answered. It never runs if the transaction or the commit fails. Hooks must
    /// be quick and must not write to the store; waking a task is the intended use.
    pub fn on_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(hook));
    }

    /// Notifies the store's signal `name` (see [`Store::signal`](crate::Store::signal)) after
    /// this transaction commits: how writers wake the tasks waiting for what they wrote.
    pub fn notify_on_commit(&mut self, name: &str) {
        let signal = self.signals.get(name);
        self.on_commit(move || signal.notify_waiters());
    }

    /// Increments the `u64` counter stored under `key` (absent counts as 0) and returns the new
    /// value: a gap-free sequence number, unique within the keyspace and key.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the stored value is not a counter.
    pub fn next_sequence(&mut self, keyspace: &str, key: &[u8]) -> Result<u64> {
        self.reserve_sequence(keyspace, key, 1)
    }

    /// Advances the counter under `key` by `count` and returns the first of the `count`
    /// numbers reserved (the counter's old value plus one): one read and one write for a
    /// whole batch. `count` 0 reserves nothing and returns what the next number would be.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the stored value is not a counter;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when it would pass `u64::MAX`.
    pub fn reserve_sequence(&mut self, keyspace: &str, key: &[u8], count: u64) -> Result<u64> {
        let current = match self.get(keyspace, key)? {
            None => 0,
            Some(raw) => {
                let bytes: [u8; 8] = raw.as_ref().try_into().map_err(|_| {
                    crate::Error::corrupt(keyspace, "a sequence counter is not 8 bytes")
                })?;
                u64::from_be_bytes(bytes)
            }
        };
        let last = current
            .checked_add(count)
            .ok_or_else(|| crate::Error::invalid("sequence", "the counter is at u64::MAX"))?;
        if count > 0 {
            self.put(
                keyspace,
                Bytes::copy_from_slice(key),
                Bytes::copy_from_slice(&last.to_be_bytes()),
            );
        }
        Ok(current + 1)
    }

    fn overlay(&self, keyspace: &str, key: &[u8]) -> Option<Option<Bytes>> {
        [&self.own, self.group]
            .into_iter()
            .find_map(|batch| batch.writes(keyspace)?.get(key).cloned())
    }
}

impl ReadView for WriteTxn<'_> {
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        match self.overlay(keyspace, key) {
            Some(value) => Ok(value),
            None => self.base.get(keyspace, key),
        }
    }

    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>> {
        let base = base_layer(self.base.range(keyspace, range, direction)?);
        let group = overlay_range(self.group.writes(keyspace), range, direction);
        let own = overlay_range(self.own.writes(keyspace), range, direction);
        let merged = Shadow::new(
            own,
            Box::new(Shadow::new(group, base, direction)),
            direction,
        );
        Ok(without_deletes(Box::new(merged)))
    }
}
