//! The durable engine: a write-ahead log, recent commits in memory, and redb B-trees.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use redb::{ReadOnlyTable, ReadableDatabase, TableDefinition, TableError};

use super::merge::{Shadow, base_layer, overlay_range, without_deletes};
use super::wal::Log;
use super::{Direction, Durability, Engine, EngineSnapshot, Entries, KeyRange, WriteBatch};
use crate::{Error, Result};

/// The database file inside a data directory.
const FILE_NAME: &str = "cloudlet.redb";
/// The engine's own bookkeeping table (keyspace tables are all prefixed `ks.`).
const META_TABLE: &str = "cloudlet.meta";
/// In [`META_TABLE`]: the sequence number of the last commit written into the B-tree.
const FLUSHED_SEQ: &[u8] = b"flushed_seq";
/// The write-ahead log segments beside it (`cloudlet.wal.0`, `cloudlet.wal.1`).
const WAL_NAME: &str = "cloudlet.wal";

/// Held commits past which a commit waits for the background writer to catch up. Reads
/// do not slow down with their number (they are merged into a few layers); this bounds the
/// bookkeeping of many tiny commits.
const MAX_UNFLUSHED_COMMITS: usize = 16_384;
/// Held bytes, as a multiple of [`RedbOptions::flush_bytes`], past which a commit waits for
/// the background writer. Generous, because the background writer is busy for a while at
/// every checkpoint (a B-tree sync of a whole log segment's writes), and commits made
/// meanwhile must not stall behind it.
const MAX_UNFLUSHED_FACTOR: usize = 16;

/// Tuning of a [`RedbEngine`]; the defaults suit most uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbOptions {
    /// Commits held in memory before the background writer is asked to write them into the
    /// B-tree; it takes everything held when it starts, so batches grow under load by
    /// themselves. Held commits are merged into a few layers that every read looks through;
    /// writing them out often keeps those layers small. Default 4.
    pub flush_commits: usize,
    /// Bytes of keys and values held in memory before that write. Default 4 MiB. A commit
    /// waits for the background writer only when 16 times this much is held (during a
    /// checkpoint, which keeps the background writer busy for a while).
    pub flush_bytes: usize,
    /// Size of a log segment; when one fills, the B-tree is synced in the background so the
    /// segment can be reused. Default 32 MiB.
    pub checkpoint_bytes: u64,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            flush_commits: 4,
            flush_bytes: 4 << 20,
            checkpoint_bytes: 32 << 20,
        }
    }
}

impl RedbOptions {
    /// Sets [`flush_commits`](Self::flush_commits) (at least 1).
    pub fn with_flush_commits(mut self, commits: usize) -> Self {
        self.flush_commits = commits.max(1);
        self
    }

    /// Sets [`flush_bytes`](Self::flush_bytes).
    pub fn with_flush_bytes(mut self, bytes: usize) -> Self {
        self.flush_bytes = bytes;
        self
    }

    /// Sets [`checkpoint_bytes`](Self::checkpoint_bytes).
    pub fn with_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }
}

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
/// write-ahead log, in one data directory.
///
/// Each keyspace is a table. A commit is appended to the log and kept in memory; a
/// [`Durability::Durable`] commit `fdatasync`s the log before it becomes visible and returns
/// (one small sequential sync instead of a B-tree commit), and an [`Durability::Eventual`] one
/// becomes durable with the next durable commit. A background thread writes the commits held
/// in memory into the B-tree, all it finds at once (at least every 4 commits or 4 MiB), in one
/// transaction without a sync, so a key written and deleted within that window never reaches
/// the B-tree. The log has
/// two 32 MiB segments used in turn; when one fills, the same thread makes the B-tree durable
/// (a checkpoint) so the segment can be reused. Opening replays what the log holds, cutting
/// off a torn tail.
///
/// The directory is opened exclusively: a second open fails until the first is dropped.
/// Dropping the engine waits for the background thread to finish the write it is doing.
pub struct RedbEngine {
    shared: Arc<Shared>,
    writer: Mutex<Writer>,
    flusher: Option<JoinHandle<()>>,
    path: PathBuf,
    options: RedbOptions,
}

/// State shared with the flusher thread.
struct Shared {
    db: redb::Database,
    /// What a new snapshot sees; replaced, never mutated.
    view: Mutex<Arc<View>>,
    flush: Mutex<FlushState>,
    /// Signals changes of `flush` both ways.
    wake: Condvar,
}

#[derive(Default)]
struct FlushState {
    flush_requested: bool,
    /// A log generation to make durable in the B-tree.
    checkpoint_requested: Option<u64>,
    busy: bool,
    /// Every log generation up to this one is durable in the B-tree.
    checkpointed: u64,
    /// A failed background write: the engine is unusable.
    error: Option<Error>,
    shutdown: bool,
}

/// The committing side.
struct Writer {
    log: Log,
    /// The sequence number of the next commit.
    next_seq: u64,
}

/// Consecutive commits held in memory until they are written into the B-tree, merged into
/// one batch (the later commit's write of a key wins).
struct Unflushed {
    /// The sequence number of the last commit merged in.
    last_seq: u64,
    /// How many commits are merged in.
    commits: usize,
    /// Bytes of keys and values, as [`batch_bytes`] counts them.
    bytes: usize,
    batch: WriteBatch,
}

impl Unflushed {
    fn commit(seq: u64, batch: WriteBatch) -> Self {
        Self {
            last_seq: seq,
            commits: 1,
            bytes: batch_bytes(&batch),
            batch,
        }
    }

    /// `layers`, oldest first, merged into one.
    fn merge(layers: &[&Unflushed]) -> Self {
        let mut batch = layers.first().map(|l| l.batch.clone()).unwrap_or_default();
        for layer in layers.iter().skip(1) {
            batch.overwrite_with(&layer.batch);
        }
        Self {
            last_seq: layers.last().map_or(0, |l| l.last_seq),
            commits: layers.iter().map(|l| l.commits).sum(),
            bytes: batch_bytes(&batch),
            batch,
        }
    }

    fn entries(&self) -> usize {
        self.batch.len()
    }
}

/// A consistent state: a B-tree read transaction and the commits made after it.
///
/// The commits are kept as a few layers whose sizes at least halve from oldest to newest:
/// each commit arrives as a layer of its own and is merged with the layers before it while
/// they are not more than twice its size. A read looks through O(log n) layers however many
/// commits are held, and each write is copied O(log n) times before the B-tree gets it.
struct View {
    base: Arc<Base>,
    /// Layers of commits not yet in the B-tree, oldest first.
    unflushed: Vec<Arc<Unflushed>>,
    /// The first `frozen` layers are being written into the B-tree: never merged with the
    /// others, so they can be dropped as a whole when that write is done.
    frozen: usize,
}

impl View {
    fn commits(&self) -> usize {
        self.unflushed.iter().map(|l| l.commits).sum()
    }

    fn bytes(&self) -> usize {
        self.unflushed.iter().map(|l| l.bytes).sum()
    }

    /// The layers after adding `layer` on top: the newest layers that are not frozen and not
    /// more than twice the size of what they are merged with are merged into it. Returns how
    /// many layers stay as they are, and the new top layer.
    fn push(&self, layer: &Arc<Unflushed>) -> (usize, Arc<Unflushed>) {
        let mut keep = self.unflushed.len();
        let mut size = layer.entries();
        while keep > self.frozen && self.unflushed[keep - 1].entries() <= 2 * size {
            keep -= 1;
            size += self.unflushed[keep].entries();
        }
        if keep == self.unflushed.len() {
            return (keep, Arc::clone(layer));
        }
        let mut layers: Vec<&Unflushed> = self.unflushed[keep..].iter().map(|l| &**l).collect();
        layers.push(layer);
        (keep, Arc::new(Unflushed::merge(&layers)))
    }

    /// The view after this one (the current view) with the commit `layer` added, given that
    /// `before.push(layer)` returned `(keep, top)` for an earlier view `before`.
    ///
    /// Between the two views the flusher may have frozen layers, or dropped frozen ones from
    /// the bottom once written, but added none (only the committer adds), so this view's layers
    /// are a suffix of `before`'s. `top` replaces `before`'s layers from `keep` up if those are
    /// all still here and unfrozen; otherwise `layer` goes on top unmerged.
    fn publish(
        &self,
        before: &View,
        keep: usize,
        top: Arc<Unflushed>,
        layer: Arc<Unflushed>,
    ) -> Self {
        let dropped = before.unflushed.len().saturating_sub(self.unflushed.len());
        let merged_still_open =
            keep == before.unflushed.len() || (keep >= dropped && keep - dropped >= self.frozen);
        if merged_still_open {
            self.with_top(keep.saturating_sub(dropped), top)
        } else {
            self.with_top(self.unflushed.len(), layer)
        }
    }

    /// This view with `layers[..keep]` and `top` as its layers.
    fn with_top(&self, keep: usize, top: Arc<Unflushed>) -> Self {
        let mut unflushed = Vec::with_capacity(keep + 1);
        unflushed.extend(self.unflushed[..keep].iter().cloned());
        unflushed.push(top);
        Self {
            base: Arc::clone(&self.base),
            unflushed,
            frozen: self.frozen,
        }
    }
}

/// A B-tree read transaction shared by every snapshot taken while it is current, with the
/// tables it has opened.
struct Base {
    txn: redb::ReadTransaction,
    /// `None` for a keyspace that does not exist in this transaction.
    tables: RwLock<HashMap<String, Option<Arc<Table>>>>,
}

fn batch_bytes(batch: &WriteBatch) -> usize {
    batch
        .keyspaces()
        .flat_map(|(_, writes)| writes.iter())
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
        .sum()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedbEngine {
    /// Opens the engine in `dir`, creating the directory and its files if needed, and
    /// recovers every commit the log holds.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created, the database is locked by
    /// another open engine, or a file is not valid.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// [`open`](Self::open) with tuning options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(Error::storage)?;
        let path = dir.join(FILE_NAME);
        // The database first: its lock keeps a second process away from the log too.
        let db = redb::Database::create(&path).map_err(Error::storage)?;
        let (log, logged) = Log::open(dir, WAL_NAME)?;
        // Commits the B-tree already holds are skipped: after a power loss the log may have lost
        // unsynced (eventual) commits that a flush had already made durable in the B-tree, and
        // replaying older records over those would build a state that never existed.
        let flushed = read_flushed_seq(&db)?;
        let next_seq = logged
            .iter()
            .map(|(seq, _)| *seq)
            .max()
            .unwrap_or(0)
            .max(flushed)
            + 1;
        let mut view = View {
            base: Base::new(&db)?,
            unflushed: Vec::new(),
            frozen: 0,
        };
        for (seq, batch) in logged.into_iter().filter(|(seq, _)| *seq > flushed) {
            let (keep, top) = view.push(&Arc::new(Unflushed::commit(seq, batch)));
            view = view.with_top(keep, top);
        }
        if !view.unflushed.is_empty() {
            tracing::info!(commits = view.commits(), "replaying the write-ahead log");
        }
        let shared = Arc::new(Shared {
            view: Mutex::new(Arc::new(view)),
            db,
            flush: Mutex::new(FlushState::default()),
            wake: Condvar::new(),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("cloudlet-flusher".into())
                .spawn(move || shared.flusher_loop())
                .map_err(Error::storage)?
        };
        let engine = Self {
            shared,
            writer: Mutex::new(Writer { log, next_seq }),
            flusher: Some(flusher),
            path,
            options,
        };
        // Everything replayed goes into the B-tree durably, and the log starts empty.
        engine.checkpoint()?;
        Ok(engine)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of commits in the write-ahead log that the next open would replay at most.
    pub fn log_bytes(&self) -> u64 {
        lock(&self.writer).log.len()
    }

    /// Writes every commit into the B-tree, makes it durable and empties the log, so the next
    /// open has nothing to replay. Happens in the background as the log fills; call it before
    /// a planned shutdown to make the next open instant.
    ///
    /// # Errors
    /// [`Error::Storage`] when a write or sync fails; the data stays recoverable from the log.
    pub fn checkpoint(&self) -> Result<()> {
        self.exclusive(|shared, writer| {
            shared.flush()?;
            shared.sync_btree()?;
            writer.log.reset()?;
            Ok(writer.log.generation().saturating_sub(1))
        })
    }

    /// Writes the commits held in memory into the B-tree now, without a sync (the log keeps
    /// them durable). Happens in the background every few commits; useful before measuring
    /// or inspecting the B-tree.
    ///
    /// # Errors
    /// [`Error::Storage`] when the write fails; the engine then accepts no more commits.
    pub fn flush(&self) -> Result<()> {
        self.exclusive(|shared, _| {
            shared.flush()?;
            Ok(0)
        })
    }

    /// Runs `work` on this thread while the flusher is idle and no commit can start. `work`
    /// returns the log generation its B-tree sync covers (0 for none). A failure leaves the
    /// log or the B-tree out of step with memory, so it fails the engine.
    fn exclusive(&self, work: impl FnOnce(&Shared, &mut Writer) -> Result<u64>) -> Result<()> {
        let mut writer = lock(&self.writer);
        {
            let mut state = self.shared.wait_until(|s| {
                !s.busy && !s.flush_requested && s.checkpoint_requested.is_none()
            })?;
            state.busy = true;
        }
        let result = work(&self.shared, &mut writer);
        let mut state = lock(&self.shared.flush);
        state.busy = false;
        let result = match result {
            Ok(covered) => {
                state.checkpointed = state.checkpointed.max(covered);
                Ok(())
            }
            Err(error) => {
                state.error.get_or_insert_with(|| error.clone());
                Err(error)
            }
        };
        drop(state);
        self.shared.wake.notify_all();
        result
    }
}

impl Drop for RedbEngine {
    fn drop(&mut self) {
        lock(&self.shared.flush).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

/// The sequence number of the last commit the B-tree holds (0 if none).
fn read_flushed_seq(db: &redb::Database) -> Result<u64> {
    let txn = db.begin_read().map_err(Error::storage)?;
    let table = match txn.open_table(definition(META_TABLE)) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(Error::storage(e)),
    };
    let Some(raw) = table.get(FLUSHED_SEQ).map_err(Error::storage)? else {
        return Ok(0);
    };
    let bytes: [u8; 8] = raw
        .value()
        .try_into()
        .map_err(|_| Error::corrupt(META_TABLE, "the flushed sequence number is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

impl Shared {
    /// Records a failure that leaves the log, the B-tree or memory out of step: from now on
    /// every commit returns it.
    fn fail(&self, error: Error) -> Error {
        lock(&self.flush).error.get_or_insert_with(|| error.clone());
        self.wake.notify_all();
        error
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&lock(&self.view))
    }

    /// Waits on the flush state until `ready`, or returns the background error.
    fn wait_until(
        &self,
        ready: impl Fn(&FlushState) -> bool,
    ) -> Result<MutexGuard<'_, FlushState>> {
        let mut state = lock(&self.flush);
        loop {
            if let Some(error) = &state.error {
                return Err(error.clone());
            }
            if ready(&state) {
                return Ok(state);
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn flusher_loop(&self) {
        loop {
            let checkpoint = {
                let mut state = lock(&self.flush);
                while !state.shutdown
                    && !state.flush_requested
                    && state.checkpoint_requested.is_none()
                {
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.shutdown {
                    return;
                }
                state.busy = true;
                state.flush_requested = false;
                state.checkpoint_requested.take()
            };
            let work = || {
                self.flush()?;
                match checkpoint {
                    Some(_) => self.sync_btree(),
                    None => Ok(()),
                }
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| {
                    Err(Error::storage(std::io::Error::other(
                        "the flusher panicked",
                    )))
                });
            let mut state = lock(&self.flush);
            state.busy = false;
            match result {
                Ok(()) => {
                    if let Some(generation) = checkpoint {
                        state.checkpointed = state.checkpointed.max(generation);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "writing commits into the B-tree failed; the engine stops accepting writes");
                    state.error = Some(error);
                }
            }
            self.wake.notify_all();
        }
    }

    /// Makes every B-tree write so far durable.
    fn sync_btree(&self) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(Error::storage)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(Error::storage)?;
        txn.commit().map_err(Error::storage)
    }

    /// Writes the commits held in memory into the B-tree (not synced: the log has them), then
    /// publishes a view on the new B-tree state with the commits that arrived meanwhile.
    /// Snapshots taken before keep the old view, which stays consistent: its read transaction
    /// never sees this write.
    fn flush(&self) -> Result<()> {
        // Freezes the layers this write takes, so the committer merges no new commit into them.
        let view = {
            let mut current = lock(&self.view);
            let frozen = View {
                base: Arc::clone(&current.base),
                unflushed: current.unflushed.clone(),
                frozen: current.unflushed.len(),
            };
            *current = Arc::new(frozen);
            Arc::clone(&current)
        };
        let flushed = view.frozen;
        if flushed == 0 {
            return Ok(());
        }
        // Merged first, so a key written several times, or written and deleted, costs the
        // B-tree one operation or none.
        let mut merged: BTreeMap<&str, BTreeMap<&Bytes, Option<&Bytes>>> = BTreeMap::new();
        for unflushed in &view.unflushed {
            for (name, writes) in unflushed.batch.keyspaces() {
                let target = merged.entry(name).or_default();
                for (key, value) in writes {
                    target.insert(key, value.as_ref());
                }
            }
        }
        let mut txn = self.db.begin_write().map_err(Error::storage)?;
        txn.set_durability(redb::Durability::None)
            .map_err(Error::storage)?;
        for (name, writes) in merged {
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
        if let Some(last) = view.unflushed.last() {
            let mut meta = txn
                .open_table(definition(META_TABLE))
                .map_err(Error::storage)?;
            meta.insert(FLUSHED_SEQ, last.last_seq.to_be_bytes().as_slice())
                .map_err(Error::storage)?;
        }
        txn.commit().map_err(Error::storage)?;
        let base = Base::new(&self.db)?;
        let mut current = lock(&self.view);
        // The committer only adds and merges layers above the frozen ones, so the first
        // `flushed` layers are the ones written.
        *current = Arc::new(View {
            base,
            unflushed: current.unflushed[flushed..].to_vec(),
            frozen: 0,
        });
        Ok(())
    }
}

impl fmt::Debug for RedbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEngine")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine for RedbEngine {
    fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>> {
        Ok(Box::new(RedbSnapshot {
            view: self.shared.view(),
        }))
    }

    fn commit(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let mut writer = lock(&self.writer);
        if let Some(error) = &lock(&self.shared.flush).error {
            return Err(error.clone());
        }
        let seq = writer.next_seq;
        if !batch.is_empty() {
            writer
                .log
                .append(seq, &batch)
                .map_err(|e| self.shared.fail(e))?;
            writer.next_seq += 1;
        }
        // Synced before the batch becomes visible: no reader sees a write a crash could undo.
        if durability == Durability::Durable {
            writer.log.sync().map_err(|e| self.shared.fail(e))?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        let layer = Arc::new(Unflushed::commit(seq, batch));
        // Merged outside the view lock, so readers taking a snapshot never wait for it. Only
        // this committer (under the writer lock) adds or merges layers, and the flusher only
        // freezes or drops old ones, so the merge is still valid unless the flusher froze
        // some of the merged layers meanwhile; then the commit goes on top unmerged.
        let before = self.shared.view();
        let (keep, top) = before.push(&layer);
        let (commits, unflushed_bytes) = {
            let mut current = lock(&self.shared.view);
            let view = current.publish(&before, keep, top, layer);
            let sizes = (view.commits(), view.bytes());
            *current = Arc::new(view);
            sizes
        };
        let options = &self.options;
        if commits >= options.flush_commits || unflushed_bytes >= options.flush_bytes {
            lock(&self.shared.flush).flush_requested = true;
            self.shared.wake.notify_all();
        }
        if commits >= MAX_UNFLUSHED_COMMITS.max(options.flush_commits.saturating_mul(4))
            || unflushed_bytes >= options.flush_bytes.saturating_mul(MAX_UNFLUSHED_FACTOR)
        {
            // The flusher is far behind: wait for it rather than let memory grow.
            drop(self.shared.wait_until(|s| !s.busy && !s.flush_requested)?);
        }
        if writer.log.active_len() >= options.checkpoint_bytes {
            // The other segment may be reused once its checkpoint is done (it almost always
            // is: it had a whole segment's worth of commits to finish in).
            if let Some(generation) = writer.log.inactive_generation() {
                drop(self.shared.wait_until(|s| s.checkpointed >= generation)?);
            }
            let left = writer.log.switch().map_err(|e| self.shared.fail(e))?;
            let mut state = lock(&self.shared.flush);
            state.checkpoint_requested = Some(left);
            drop(state);
            self.shared.wake.notify_all();
        }
        Ok(())
    }
}

impl Base {
    fn new(db: &redb::Database) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            txn: db.begin_read().map_err(Error::storage)?,
            tables: RwLock::new(HashMap::new()),
        }))
    }

    fn table(&self, keyspace: &str) -> Result<Option<Arc<Table>>> {
        if let Some(table) = self
            .tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(keyspace)
        {
            return Ok(table.clone());
        }
        let name = table_name(keyspace);
        let table = match self.txn.open_table(definition(&name)) {
            Ok(table) => Some(Arc::new(table)),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(Error::storage(e)),
        };
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(keyspace.to_owned(), table.clone());
        Ok(table)
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let Some(table) = self.table(keyspace)? else {
            return Ok(None);
        };
        Ok(table
            .get(key)
            .map_err(Error::storage)?
            .map(|guard| Bytes::copy_from_slice(guard.value())))
    }

    fn range(
        &self,
        keyspace: &str,
        range: &KeyRange,
        direction: Direction,
    ) -> Result<Entries<'static>> {
        let Some(table) = self.table(keyspace)?.filter(|_| !range.is_empty()) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let entries = table
            .range::<&[u8]>(range.as_slices())
            .map_err(Error::storage)?;
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

struct RedbSnapshot {
    view: Arc<View>,
}

impl fmt::Debug for RedbSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbSnapshot")
            .field("unflushed_layers", &self.view.unflushed.len())
            .finish_non_exhaustive()
    }
}

impl EngineSnapshot for RedbSnapshot {
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        for unflushed in self.view.unflushed.iter().rev() {
            if let Some(value) = unflushed
                .batch
                .writes(keyspace)
                .and_then(|writes| writes.get(key))
            {
                return Ok(value.clone());
            }
        }
        self.view.base.get(keyspace, key)
    }

    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>> {
        let layered = self
            .view
            .unflushed
            .iter()
            .any(|u| u.batch.writes(keyspace).is_some());
        let base = self.view.base.range(keyspace, range, direction)?;
        if range.is_empty() || !layered {
            return Ok(base);
        }
        // The unflushed commits' writes merged lazily over the B-tree's, newest on top: a scan
        // that stops early (a receive taking the first few due messages) reads only the first
        // few entries of each.
        let mut merged = base_layer(base);
        for unflushed in &self.view.unflushed {
            if let Some(writes) = unflushed.batch.writes(keyspace) {
                let layer = overlay_range(Some(writes), range, direction);
                merged = Box::new(Shadow::new(layer, merged, direction));
            }
        }
        Ok(without_deletes(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: u32, value: u32) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(
            "ks",
            Bytes::copy_from_slice(&key.to_be_bytes()),
            Bytes::copy_from_slice(&value.to_be_bytes()),
        );
        batch
    }

    /// Options under which nothing reaches the B-tree unless asked: every commit stays held.
    fn never_flushing() -> RedbOptions {
        RedbOptions::default()
            .with_flush_commits(1 << 20)
            .with_flush_bytes(1 << 30)
            .with_checkpoint_bytes(1 << 30)
    }

    /// Commit `seq` writes `seq % 3 + 1` keys of its own, so the layers say which commits
    /// they hold.
    fn commit_layer(seq: u64) -> Arc<Unflushed> {
        let mut batch = WriteBatch::new();
        for part in 0..seq % 3 + 1 {
            let key = [seq.to_be_bytes(), part.to_be_bytes()].concat();
            batch.put("ks", Bytes::from(key), Bytes::new());
        }
        Arc::new(Unflushed::commit(seq, batch))
    }

    /// The commits a view holds, in layer order, each once per layer holding it.
    fn commits_of(view: &View) -> Vec<u64> {
        let mut seqs = Vec::new();
        for layer in &view.unflushed {
            let writes = layer.batch.writes("ks").cloned().unwrap_or_default();
            let mut in_layer: Vec<u64> = writes
                .keys()
                .map(|k| u64::from_be_bytes(k[..8].try_into().unwrap()))
                .collect();
            in_layer.dedup();
            seqs.extend(in_layer);
        }
        seqs
    }

    fn pushed(view: &View, seq: u64) -> View {
        let layer = commit_layer(seq);
        let (keep, top) = view.push(&layer);
        view.publish(view, keep, top, layer)
    }

    fn frozen(view: &View) -> View {
        View {
            base: Arc::clone(&view.base),
            unflushed: view.unflushed.clone(),
            frozen: view.unflushed.len(),
        }
    }

    fn written(view: &View) -> View {
        View {
            base: Arc::clone(&view.base),
            unflushed: view.unflushed[view.frozen..].to_vec(),
            frozen: 0,
        }
    }

    /// Every way the flusher can move between the committer's two looks at the view (freeze,
    /// finish a write, and combinations), for every stack of layers up to 12 commits with and
    /// without a frozen bottom: the commit lands exactly once, on top of exactly the
    /// commits still held, and frozen layers are never touched.
    #[test]
    fn a_commit_merged_while_the_flusher_moves_lands_once_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("db")).unwrap();
        let empty = View {
            base: Base::new(&db).unwrap(),
            unflushed: Vec::new(),
            frozen: 0,
        };
        for held in 0..12u64 {
            for frozen_at in 0..=held {
                // Commits 1..=held, the first `frozen_at` of them frozen when the rest came.
                let mut before = written(&empty);
                for seq in 1..=held {
                    if seq == frozen_at + 1 {
                        before = frozen(&before);
                    }
                    before = pushed(&before, seq);
                }
                let moves: [&dyn Fn(&View) -> View; 5] = [
                    &|v| View {
                        base: Arc::clone(&v.base),
                        unflushed: v.unflushed.clone(),
                        frozen: v.frozen,
                    },
                    &frozen,
                    &written,
                    &|v| frozen(&written(v)),
                    &|v| written(&frozen(&written(v))),
                ];
                for (n, step) in moves.iter().enumerate() {
                    let current = step(&before);
                    let new = held + 1;
                    let layer = commit_layer(new);
                    let (keep, top) = before.push(&layer);
                    let after = current.publish(&before, keep, top, layer);
                    let mut expected = commits_of(&current);
                    expected.push(new);
                    let case = format!("held {held}, frozen at {frozen_at}, move {n}");
                    assert_eq!(commits_of(&after), expected, "{case}");
                    assert_eq!(after.frozen, current.frozen, "{case}");
                    for (a, b) in after
                        .unflushed
                        .iter()
                        .zip(&current.unflushed[..current.frozen])
                    {
                        assert!(Arc::ptr_eq(a, b), "{case}: a frozen layer changed");
                    }
                    assert_eq!(after.commits(), current.commits() + 1, "{case}");
                    let last: Vec<u64> = after.unflushed.iter().map(|l| l.last_seq).collect();
                    assert!(last.windows(2).all(|w| w[0] < w[1]), "{case}: {last:?}");
                }
            }
        }
    }

    /// A delete held in a merged layer hides the B-tree's value, before and after it is
    /// written and the engine reopened.
    #[test]
    fn a_merged_delete_hides_the_written_value() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RedbEngine::open_with(dir.path(), never_flushing()).unwrap();
        engine.commit(put(1, 1), Durability::Durable).unwrap();
        engine.commit(put(2, 2), Durability::Durable).unwrap();
        engine.flush().unwrap();
        let mut delete = WriteBatch::new();
        delete.delete("ks", Bytes::copy_from_slice(&1u32.to_be_bytes()));
        engine.commit(delete, Durability::Durable).unwrap();
        for n in 10..200 {
            engine.commit(put(n, n), Durability::Durable).unwrap();
        }
        assert!(engine.shared.view().unflushed.len() < 10);
        let check = |engine: &RedbEngine| {
            let snapshot = engine.snapshot().unwrap();
            assert!(snapshot.get("ks", &1u32.to_be_bytes()).unwrap().is_none());
            let keys: Vec<Bytes> = snapshot
                .range("ks", &KeyRange::all(), Direction::Forward)
                .unwrap()
                .map(|e| e.unwrap().0)
                .collect();
            assert_eq!(keys.len(), 191);
            assert_eq!(keys[0].as_ref(), &2u32.to_be_bytes());
        };
        check(&engine);
        drop(engine);
        let engine = RedbEngine::open_with(dir.path(), never_flushing()).unwrap();
        check(&engine);
        engine.flush().unwrap();
        check(&engine);
    }

    #[test]
    fn held_commits_merge_into_logarithmically_many_layers() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RedbEngine::open_with(dir.path(), never_flushing()).unwrap();
        let pinned = engine.snapshot().unwrap();
        for n in 0..2000u32 {
            // Every key is written twice: the later value must win through the merges.
            engine
                .commit(put(n % 1000, n), Durability::Eventual)
                .unwrap();
        }
        let view = engine.shared.view();
        assert_eq!(view.commits(), 2000);
        assert!(
            view.unflushed.len() <= 12,
            "{} layers for 2000 commits",
            view.unflushed.len()
        );
        let snapshot = engine.snapshot().unwrap();
        for key in 0..1000u32 {
            let value = snapshot.get("ks", &key.to_be_bytes()).unwrap().unwrap();
            assert_eq!(value.as_ref(), &(key + 1000).to_be_bytes());
        }
        let all = snapshot
            .range("ks", &KeyRange::all(), Direction::Reverse)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap();
        assert_eq!(all.len(), 1000);
        assert_eq!(all[0].0.as_ref(), &999u32.to_be_bytes());
        assert!(pinned.get("ks", &0u32.to_be_bytes()).unwrap().is_none());
        // Written into the B-tree as one, then nothing is held.
        engine.flush().unwrap();
        assert!(engine.shared.view().unflushed.is_empty());
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(
            snapshot
                .get("ks", &7u32.to_be_bytes())
                .unwrap()
                .unwrap()
                .as_ref(),
            &1007u32.to_be_bytes()
        );
    }
}
