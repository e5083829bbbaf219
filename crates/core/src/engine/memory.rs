//! A purpose-built in-memory engine: multi-version ordered maps behind a short lock.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;

use super::{Direction, Engine, EngineSnapshot, Entries, KeyRange, WriteBatch};
use crate::Result;

/// The versions of one key, oldest first; `None` is a delete.
type Chain = Vec<(u64, Option<Bytes>)>;
type Keyspace = BTreeMap<Bytes, Chain>;

/// How many keys a range scan visits under one read lock before it lets writers in.
const SCAN_CHUNK: usize = 256;

/// The in-memory engine: fast, not durable, the test double.
///
/// Every commit gets a version; each key keeps the versions that a live snapshot can still
/// see, so a snapshot is a version number and reading it takes the lock only for the lookup
/// itself. Writers hold the lock only while a finished batch is applied, never during a
/// transaction, and range scans release it every few hundred keys.
///
/// [`Durability`](super::Durability) is ignored: everything is lost when the engine is dropped.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: RwLock<State>,
    /// Live snapshots by version, with a count of each.
    live: Mutex<LiveSnapshots>,
    version: AtomicU64,
}

/// Live snapshots by version, oldest first, with a count of each. Snapshots are taken at the
/// current version, which only grows, so new entries always go at the back.
#[derive(Default)]
struct LiveSnapshots(VecDeque<(u64, usize)>);

impl LiveSnapshots {
    fn register(&mut self, version: u64) {
        match self.0.back_mut() {
            Some((v, count)) if *v == version => *count += 1,
            _ => self.0.push_back((version, 1)),
        }
    }

    fn release(&mut self, version: u64) {
        if let Ok(at) = self.0.binary_search_by_key(&version, |(v, _)| *v) {
            self.0[at].1 -= 1;
        }
        while self.0.front().is_some_and(|(_, count)| *count == 0) {
            self.0.pop_front();
        }
    }

    fn oldest(&self) -> Option<u64> {
        // Entries released out of order may wait behind an older live one with a zero count.
        self.0.iter().find(|(_, count)| *count > 0).map(|(v, _)| *v)
    }
}

#[derive(Default)]
struct State {
    /// Few keyspaces, so an ordered map beats hashing their names.
    keyspaces: BTreeMap<String, Keyspace>,
    /// Keys that still hold old versions or a delete marker, by the version at which they can
    /// be pruned: once no live snapshot is older, each is cut back to its newest version.
    history: BTreeMap<u64, Vec<(String, Bytes)>>,
}

impl State {
    /// Prunes the keys whose history no live snapshot at or after `oldest` can see.
    fn collect_garbage(&mut self, oldest: u64) {
        if self
            .history
            .first_key_value()
            .is_none_or(|(v, _)| *v > oldest)
        {
            return;
        }
        let younger = self.history.split_off(&(oldest + 1));
        let ready = std::mem::replace(&mut self.history, younger);
        for (name, key) in ready.into_values().flatten() {
            if let Some(keyspace) = self.keyspaces.get_mut(&name)
                && let Some(chain) = keyspace.get_mut(&key)
            {
                prune(chain, oldest);
                if is_dead(chain) {
                    keyspace.remove(&key);
                }
            }
        }
    }
}

/// True when the only version left is a delete.
fn is_dead(chain: &Chain) -> bool {
    chain.len() == 1 && chain[0].1.is_none()
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many value versions and delete markers the engine holds: one per live key, plus
    /// those kept for live snapshots until the next commit after those snapshots are gone. A
    /// diagnostic for memory use.
    pub fn stored_versions(&self) -> usize {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .keyspaces
            .values()
            .flat_map(BTreeMap::values)
            .map(Vec::len)
            .sum()
    }
}

impl fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("version", &self.inner.version.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps half-updated in a way readers
    // could observe (versions are published last), so poisoning is ignored.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value of `chain` visible at `version`.
fn visible(chain: &Chain, version: u64) -> Option<&Bytes> {
    chain
        .iter()
        .rev()
        .find(|(v, _)| *v <= version)
        .and_then(|(_, value)| value.as_ref())
}

/// Drops the versions no snapshot at or after `oldest` can see: everything older than the
/// newest version at or before `oldest`.
fn prune(chain: &mut Chain, oldest: u64) {
    if let Some(keep_from) = chain.iter().rposition(|(v, _)| *v <= oldest) {
        chain.drain(..keep_from);
    }
}

impl Engine for MemoryEngine {
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>> {
        let version = {
            let mut live = lock(&self.inner.live);
            let version = self.inner.version.load(Ordering::Acquire);
            live.register(version);
            version
        };
        Ok(Box::new(MemorySnapshot {
            inner: Arc::clone(&self.inner),
            version,
        }))
    }

    fn commit(&self, batch: WriteBatch, _durability: super::Durability) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Holding `live` until the version is published means no snapshot can be taken at
        // the old version after `oldest` was computed.
        let live = lock(&self.inner.live);
        let version = self.inner.version.load(Ordering::Acquire) + 1;
        let oldest = live.oldest().unwrap_or(version);
        state.collect_garbage(oldest);
        let State {
            keyspaces, history, ..
        } = &mut *state;
        for (name, writes) in batch.into_keyspaces() {
            if !keyspaces.contains_key(&name) {
                keyspaces.insert(name.clone(), Keyspace::new());
            }
            let Some(keyspace) = keyspaces.get_mut(&name) else {
                continue;
            };
            for (key, value) in writes {
                match keyspace.get_mut(&key) {
                    Some(chain) => {
                        chain.push((version, value));
                        prune(chain, oldest);
                        if is_dead(chain) {
                            keyspace.remove(&key);
                        } else if chain.len() > 1 {
                            // A live snapshot still sees an older version.
                            history
                                .entry(version)
                                .or_default()
                                .push((name.clone(), key));
                        }
                    }
                    None if value.is_some() => {
                        keyspace.insert(key, vec![(version, value)]);
                    }
                    None => {}
                }
            }
        }
        self.inner.version.store(version, Ordering::Release);
        drop(live);
        Ok(())
    }

    fn get_latest(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the read lock no commit is being applied, so the newest version is the latest
        // committed one.
        Ok(state
            .keyspaces
            .get(keyspace)
            .and_then(|ks| ks.get(key))
            .and_then(|chain| chain.last())
            .and_then(|(_, value)| value.clone()))
    }

    fn commit_blocks(&self) -> bool {
        false
    }
}

struct MemorySnapshot {
    inner: Arc<Inner>,
    version: u64,
}

impl fmt::Debug for MemorySnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySnapshot")
            .field("version", &self.version)
            .finish()
    }
}

impl Drop for MemorySnapshot {
    fn drop(&mut self) {
        lock(&self.inner.live).release(self.version);
    }
}

impl EngineSnapshot for MemorySnapshot {
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(state
            .keyspaces
            .get(keyspace)
            .and_then(|ks| ks.get(key))
            .and_then(|chain| visible(chain, self.version))
            .cloned())
    }

    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>> {
        Ok(Box::new(MemoryRange {
            snapshot: self,
            keyspace: keyspace.to_owned(),
            remaining: (!range.is_empty()).then(|| range.clone()),
            direction,
            buffer: VecDeque::new(),
        }))
    }
}

/// A range scan that reads in chunks, re-taking the read lock for each.
struct MemoryRange<'a> {
    snapshot: &'a MemorySnapshot,
    keyspace: String,
    /// The part of the range not yet read; `None` when the scan is done.
    remaining: Option<KeyRange>,
    direction: Direction,
    buffer: VecDeque<(Bytes, Bytes)>,
}

impl MemoryRange<'_> {
    fn fill(&mut self) {
        let Some(range) = self.remaining.take() else {
            return;
        };
        let state = self
            .snapshot
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(map) = state.keyspaces.get(&self.keyspace) else {
            return;
        };
        let version = self.snapshot.version;
        let bounds = (range.start.clone(), range.end.clone());
        let mut visited = 0;
        let mut last = None;
        let mut take = |key: &Bytes, chain: &Chain| {
            if let Some(value) = visible(chain, version) {
                self.buffer.push_back((key.clone(), value.clone()));
            }
            last = Some(key.clone());
            visited += 1;
            visited < SCAN_CHUNK
        };
        match self.direction {
            Direction::Forward => {
                for (key, chain) in map.range::<Bytes, _>(bounds) {
                    if !take(key, chain) {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for (key, chain) in map.range::<Bytes, _>(bounds).rev() {
                    if !take(key, chain) {
                        break;
                    }
                }
            }
        }
        if visited == SCAN_CHUNK
            && let Some(last) = last
        {
            let next = match self.direction {
                Direction::Forward => KeyRange {
                    start: Bound::Excluded(last),
                    end: range.end,
                },
                Direction::Reverse => KeyRange {
                    start: range.start,
                    end: Bound::Excluded(last),
                },
            };
            self.remaining = (!next.is_empty()).then_some(next);
        }
    }
}

impl Iterator for MemoryRange<'_> {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buffer.is_empty() && self.remaining.is_some() {
            self.fill();
        }
        self.buffer.pop_front().map(Ok)
    }
}
