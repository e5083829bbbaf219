//! The storage contract: named keyspaces of ordered byte keys, snapshot reads and atomic
//! batch commits.
//!
//! An [`Engine`] is deliberately small. It reads from consistent snapshots and applies a
//! [`WriteBatch`] atomically; transactions, read-your-writes, group commit and poisoning are
//! built once on top of it by [`Store`](crate::Store), so every engine gets them for free and
//! a new engine is a few hundred lines.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use crate::Result;

mod faulty;
mod memory;
pub(crate) mod merge;
#[cfg(feature = "redb")]
mod redb;
#[cfg(feature = "redb")]
mod wal;

pub use faulty::FaultyEngine;
pub use memory::MemoryEngine;
#[cfg(feature = "redb")]
pub use redb::{RedbEngine, RedbOptions};

/// How far a commit must have gone before it is acknowledged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Durability {
    /// On stable storage (fsync'd) before the commit returns; survives a crash.
    #[default]
    Durable,
    /// Visible at once, made durable by a later durable commit; a crash may lose it.
    Eventual,
}

/// The order in which a range scan yields keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Ascending byte order.
    #[default]
    Forward,
    /// Descending byte order.
    Reverse,
}

/// A range of keys, with owned bounds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// The lower bound.
    pub start: Bound<Bytes>,
    /// The upper bound.
    pub end: Bound<Bytes>,
}

impl KeyRange {
    /// Every key of a keyspace.
    pub fn all() -> Self {
        Self {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let prefix = prefix.as_ref();
        Self {
            start: Bound::Included(Bytes::copy_from_slice(prefix)),
            end: match prefix_successor(prefix) {
                Some(end) => Bound::Excluded(Bytes::from(end)),
                None => Bound::Unbounded,
            },
        }
    }

    /// Any standard range of byte strings: `KeyRange::new(a..b)`, `KeyRange::new(a..)`.
    pub fn new<K: AsRef<[u8]>>(range: impl RangeBounds<K>) -> Self {
        let own = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k.as_ref())),
            Bound::Unbounded => Bound::Unbounded,
        };
        Self {
            start: own(range.start_bound()),
            end: own(range.end_bound()),
        }
    }

    /// True when no key can lie in the range (start after end, or an empty excluded span).
    /// Engines must answer such ranges with no entries rather than an error or a panic.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e))
            | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        }
    }

    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_ref(),
            Bound::Excluded(s) => key > s.as_ref(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_ref(),
            Bound::Excluded(e) => key < e.as_ref(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// The bounds as borrowed byte slices, the shape `BTreeMap::range` and redb take.
    pub fn as_slices(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_slice(&self.start), as_slice(&self.end))
    }
}

impl Default for KeyRange {
    fn default() -> Self {
        Self::all()
    }
}

fn as_slice(bound: &Bound<Bytes>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when no such
/// key exists (the prefix is empty or all `0xFF`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An iterator over key-value entries, in the order the scan asked for.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send + 'a>;

/// A consistent, read-only view of an engine at one commit.
///
/// A snapshot never sees a later commit, never sees part of a commit, and never makes a
/// writer wait for it.
pub trait EngineSnapshot: Send + Sync + Debug {
    /// The value stored under `key`, if any.
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>>;

    /// The entries whose keys lie in `range`, in `direction` order. An empty or inverted range
    /// yields nothing. A keyspace that was never written is empty.
    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>>;
}

/// The writes of one commit: for each keyspace, each key's new value or `None` for a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    keyspaces: BTreeMap<String, BTreeMap<Bytes, Option<Bytes>>>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`; a later write to the same key replaces this one.
    pub fn put(&mut self, keyspace: &str, key: Bytes, value: Bytes) {
        self.keyspace_mut(keyspace).insert(key, Some(value));
    }

    /// Deletes `key`; a later write to the same key replaces this one.
    pub fn delete(&mut self, keyspace: &str, key: Bytes) {
        self.keyspace_mut(keyspace).insert(key, None);
    }

    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.keyspaces.values().all(BTreeMap::is_empty)
    }

    /// The number of keys written.
    pub fn len(&self) -> usize {
        self.keyspaces.values().map(BTreeMap::len).sum()
    }

    /// Each keyspace with its writes in key order.
    pub fn keyspaces(&self) -> impl Iterator<Item = (&str, &BTreeMap<Bytes, Option<Bytes>>)> {
        self.keyspaces.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The batch's writes to one keyspace, if any.
    pub fn writes(&self, keyspace: &str) -> Option<&BTreeMap<Bytes, Option<Bytes>>> {
        self.keyspaces.get(keyspace)
    }

    /// Moves every write of `other` into this batch; `other`'s writes win.
    pub fn absorb(&mut self, other: WriteBatch) {
        for (keyspace, writes) in other.keyspaces {
            match self.keyspaces.get_mut(&keyspace) {
                Some(mine) => mine.extend(writes),
                None => {
                    self.keyspaces.insert(keyspace, writes);
                }
            }
        }
    }

    /// Copies every write of `other` into this batch; `other`'s writes win.
    #[cfg(feature = "redb")]
    pub(crate) fn overwrite_with(&mut self, other: &WriteBatch) {
        for (keyspace, writes) in &other.keyspaces {
            let mine = self.keyspace_mut(keyspace);
            for (key, value) in writes {
                mine.insert(key.clone(), value.clone());
            }
        }
    }

    /// Consumes the batch, yielding each keyspace with its writes.
    pub fn into_keyspaces(self) -> impl Iterator<Item = (String, BTreeMap<Bytes, Option<Bytes>>)> {
        self.keyspaces.into_iter()
    }

    fn keyspace_mut(&mut self, keyspace: &str) -> &mut BTreeMap<Bytes, Option<Bytes>> {
        if !self.keyspaces.contains_key(keyspace) {
            self.keyspaces.insert(keyspace.to_owned(), BTreeMap::new());
        }
        self.keyspaces
            .get_mut(keyspace)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }
}

/// A storage engine: named keyspaces of ordered byte keys with snapshot reads and atomic,
/// durable batch commits.
///
/// Implement this to put cloudlet on another store; wrap it in a [`Store`](crate::Store) to
/// use it. [`Store`](crate::Store) calls [`commit`](Engine::commit) from one writer at a time and
/// takes the snapshot its transactions read from right after the previous commit, which is
/// what makes its transactions serializable.
///
/// # Contract
/// - A snapshot sees every commit that returned `Ok` before it was taken, and nothing else.
/// - `commit` applies the whole batch or none of it. With [`Durability::Durable`] the batch is
///   on stable storage when `Ok` is returned.
/// - An `Err` from `commit` means the batch may or may not be durable; the store poisons itself.
pub trait Engine: Send + Sync + Debug + 'static {
    /// A consistent view of the latest commit.
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>>;

    /// Applies `batch` atomically. An empty batch with [`Durability::Durable`] must still make
    /// every earlier commit durable.
    fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<()>;

    /// The latest committed value of `key`: a point read without a snapshot. Engines whose
    /// snapshots cost something override it.
    fn get_latest(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        self.snapshot()?.get(keyspace, key)
    }

    /// Whether `commit` may block on I/O. An engine that answers `false` (memory) has its
    /// commits run inline on the committing task; others get a dedicated writer thread.
    fn commit_blocks(&self) -> bool {
        true
    }
}
