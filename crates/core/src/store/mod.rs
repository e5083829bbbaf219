//! [`Store`]: transactions with group commit over any [`Engine`].

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::engine::{
    Direction, Durability, Engine, EngineSnapshot, Entries, KeyRange, MemoryEngine, WriteBatch,
};
use crate::{Error, Result};

mod txn;

pub use txn::{ReadView, WriteTxn};

/// A consistent read-only view of a [`Store`] at one commit.
///
/// Taking one is cheap; holding one never blocks writers. It sees every write acknowledged
/// before it was taken and nothing after.
pub struct Snapshot {
    inner: Box<dyn EngineSnapshot>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl ReadView for Snapshot {
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.get(keyspace, key)
    }

    fn range(&self, keyspace: &str, range: &KeyRange, direction: Direction) -> Result<Entries<'_>> {
        self.inner.range(keyspace, range, direction)
    }
}

/// Counters of a store's commits, for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Engine commits (each durable one is one fsync).
    pub commits: u64,
    /// Transactions that committed; `transactions / commits` is the group-commit factor.
    pub transactions: u64,
}

/// A handle to storage: snapshot reads and serializable write transactions with group commit.
///
/// Every primitive is written against `Store`, never against an engine, so the in-memory test
/// double and the durable store share one implementation.
///
/// # Group commit
/// Writes are closures run one after another by a single writer. The writer drains every
/// transaction queued while the previous commit was in flight, runs each closure against the
/// latest commit plus the writes of the closures before it, then commits all of their writes
/// at once, with one fsync, and answers each caller. A closure that returns `Err` (or panics)
/// has its writes discarded; the others are unaffected. A failed commit fails only the
/// transactions in that commit, and poisons the store: later writes return
/// [`Error::Poisoned`], because nothing written after a failed fsync could honestly be
/// acknowledged as durable.
///
/// Cloning a `Store` is cheap and shares the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    engine: Arc<dyn Engine>,
    queue: Mutex<Queue>,
    wake: Condvar,
    poison: Mutex<Option<String>>,
    /// An eventual commit has happened since the last durable one.
    unsynced: AtomicBool,
    commits: AtomicU64,
    transactions: AtomicU64,
    signals: Signals,
}

/// Named wake-up signals, notified after commits that ask for them.
#[derive(Default)]
pub(crate) struct Signals(Mutex<HashMap<String, Arc<Notify>>>);

impl Signals {
    pub(crate) fn get(&self, name: &str) -> Arc<Notify> {
        let mut signals = lock(&self.0);
        if let Some(signal) = signals.get(name) {
            return Arc::clone(signal);
        }
        let signal = Arc::new(Notify::new());
        signals.insert(name.to_owned(), Arc::clone(&signal));
        signal
    }
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// An inline leader is draining the queue (engines whose commits don't block).
    leading: bool,
    /// The writer thread sleeps on the condvar (so a submit must wake it; otherwise it will
    /// find the job when its current group is done, and the wake-up syscall is saved).
    writer_waiting: bool,
    shutdown: bool,
}

/// Called once the transaction's commit has succeeded or failed.
type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// A queued transaction: runs its closure against a transaction, or is told why it can't.
/// `Some` means the closure succeeded and its writes join the commit.
type Run = Box<dyn FnOnce(Result<&mut WriteTxn<'_>>) -> Option<Completion> + Send>;

struct Job {
    durability: Durability,
    run: Run,
}

/// What a caller receives: its closure's result, or the panic it raised.
type Outcome<T, E> = std::result::Result<std::result::Result<T, E>, Box<dyn Any + Send>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Closures run outside these locks, so a poisoned lock means no half-done update.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// A store over `engine`.
    pub fn new(engine: impl Engine) -> Self {
        Self::from_engine(Arc::new(engine))
    }

    /// A store over a shared engine. Use one store per engine: two stores writing to one engine
    /// would each be serializable alone but not together.
    pub fn from_engine(engine: Arc<dyn Engine>) -> Self {
        let threaded = engine.commit_blocks();
        let shared = Arc::new(Shared {
            engine,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            poison: Mutex::new(None),
            unsynced: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            signals: Signals::default(),
        });
        let writer = threaded.then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("cloudlet-writer".into())
                .spawn(move || shared.writer_loop())
        });
        let writer = match writer.transpose() {
            Ok(writer) => writer,
            Err(e) => {
                // Without a writer every write would hang; fail them all instead.
                *lock(&shared.poison) = Some(format!("cannot start the writer thread: {e}"));
                None
            }
        };
        Self {
            inner: Arc::new(StoreInner { shared, writer }),
        }
    }

    /// A store over a new, empty [`MemoryEngine`].
    pub fn memory() -> Self {
        Self::new(MemoryEngine::new())
    }

    /// A durable store in `dir`, over a [`RedbEngine`](crate::engine::RedbEngine).
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created or the database is locked or
    /// invalid.
    #[cfg(feature = "redb")]
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Self::new(crate::engine::RedbEngine::open(dir)?))
    }

    /// A consistent view of the latest commit.
    ///
    /// # Errors
    /// [`Error::Storage`] when the engine cannot start a read.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            inner: self.inner.shared.engine.snapshot()?,
        })
    }

    /// The latest committed value of `key`: a point read, cheaper than taking a
    /// [`snapshot`](Self::snapshot) for one key.
    ///
    /// # Errors
    /// [`Error::Storage`] when the engine fails to read.
    pub fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.shared.engine.get_latest(keyspace, key)
    }

    /// Runs `f` as a serializable transaction and commits its writes with `durability`.
    ///
    /// `f` runs on the store's writer, after every transaction submitted before it, and must
    /// not block or call back into this store's `write`. If it returns `Err`, its writes are
    /// discarded and the error is returned; if it returns `Ok`, the value is returned once the
    /// commit has succeeded (and, for [`Durability::Durable`], is on disk).
    ///
    /// # Errors
    /// `f`'s own error; or, converted into `E`, [`Error::Poisoned`] after an earlier failed
    /// commit, [`Error::Storage`] when this commit fails, [`Error::Closed`] when the store shut
    /// down first.
    ///
    /// # Panics
    /// Only if `f` panics: the panic is caught on the writer, nobody else's transaction is
    /// affected, and it resumes here.
    ///
    /// # Cancel safety
    /// Not cancel safe: once called, the transaction runs and commits even if this future is
    /// dropped; only the answer is lost. Make writes idempotent if a caller may be cancelled.
    pub async fn write<T, E, F>(&self, durability: Durability, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut WriteTxn<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(durability, f);
        Self::unwrap_outcome(answer.await)
    }

    /// [`write`](Self::write) for synchronous code: blocks the current thread until the commit.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    ///
    /// # Panics
    /// When called from inside an async runtime's worker (use `write` there), or if `f` panics.
    pub fn write_blocking<T, E, F>(&self, durability: Durability, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut WriteTxn<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let answer = self.submit(durability, f);
        Self::unwrap_outcome(answer.blocking_recv())
    }

    /// The signal called `name`, notified (with [`Notify::notify_waiters`]) after every commit
    /// of a transaction that called [`WriteTxn::notify_on_commit`] with that name.
    ///
    /// This is how a task waits for data instead of polling: create the `notified()` future and
    /// `enable()` it, then check the store, then await it. Every clone of this store shares the
    /// signals.
    pub fn signal(&self, name: &str) -> Arc<Notify> {
        self.inner.shared.signals.get(name)
    }

    /// Closes the store if this is its last handle: waits, without blocking the async runtime,
    /// for the writer to finish what is queued and for the engine to shut down, so the data
    /// directory can be reopened at once. With other handles alive it only drops this one.
    ///
    /// # Cancel safety
    /// If the future is dropped, closing finishes in the background.
    pub async fn close(self) {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        lock(&inner.shared.queue).shutdown = true;
        inner.shared.wake.notify_all();
        let writer = inner.writer.take();
        let shared = Arc::clone(&inner.shared);
        drop(inner);
        // Joining the writer, then dropping the last reference to the engine, may wait for a
        // commit or a B-tree write: off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            drop(shared);
        })
        .await;
    }

    /// Commit counters since the store was opened.
    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        StoreStats {
            commits: shared.commits.load(Ordering::Relaxed),
            transactions: shared.transactions.load(Ordering::Relaxed),
        }
    }

    /// True once a failed commit has poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        lock(&self.inner.shared.poison).is_some()
    }

    fn unwrap_outcome<T, E: From<Error>>(
        outcome: std::result::Result<Outcome<T, E>, oneshot::error::RecvError>,
    ) -> std::result::Result<T, E> {
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(Error::Closed.into()),
        }
    }

    fn submit<T, E, F>(&self, durability: Durability, f: F) -> oneshot::Receiver<Outcome<T, E>>
    where
        F: FnOnce(&mut WriteTxn<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (answer, receiver) = oneshot::channel::<Outcome<T, E>>();
        let run: Run = Box::new(move |txn: Result<&mut WriteTxn<'_>>| {
            let txn = match txn {
                Ok(txn) => txn,
                Err(e) => {
                    let _ = answer.send(Ok(Err(e.into())));
                    return None;
                }
            };
            match catch_unwind(AssertUnwindSafe(|| f(txn))) {
                Ok(Ok(value)) => Some(Box::new(move |committed: Result<()>| {
                    let _ = answer.send(Ok(committed.map(|()| value).map_err(E::from)));
                }) as Completion),
                Ok(Err(e)) => {
                    let _ = answer.send(Ok(Err(e)));
                    None
                }
                Err(panic) => {
                    let _ = answer.send(Err(panic));
                    None
                }
            }
        });
        let shared = &self.inner.shared;
        if let Some(reason) = lock(&shared.poison).clone() {
            run(Err(Error::Poisoned(reason)));
            return receiver;
        }
        let mut queue = lock(&shared.queue);
        queue.jobs.push(Job { durability, run });
        if self.inner.writer.is_some() {
            let waiting = queue.writer_waiting;
            drop(queue);
            if waiting {
                shared.wake.notify_one();
            }
        } else if !queue.leading {
            // Inline mode: the first caller to find no leader drains the queue itself.
            queue.leading = true;
            drop(queue);
            shared.lead();
        }
        receiver
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.inner.shared.engine)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != std::thread::current().id()
        {
            // The writer is idle or finishing its last commit; waiting for it lets the data
            // directory be reopened as soon as the last handle is gone.
            let _ = writer.join();
        }
    }
}

/// Runs an engine call, turning a panic into a storage error (which poisons the store) instead
/// of killing the writer and stranding every later caller.
fn guarded<T>(call: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::storage(std::io::Error::other(format!(
            "the engine panicked: {what}"
        ))))
    })
}

impl Shared {
    fn writer_loop(&self) {
        loop {
            let jobs = {
                let mut queue = lock(&self.queue);
                while queue.jobs.is_empty() && !queue.shutdown {
                    queue.writer_waiting = true;
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                    queue.writer_waiting = false;
                }
                if queue.jobs.is_empty() {
                    return;
                }
                std::mem::take(&mut queue.jobs)
            };
            self.run_group(jobs);
        }
    }

    /// Drains the queue on the calling thread until it is empty, then gives up leadership.
    fn lead(&self) {
        /// Gives up leadership if a group panics, so later writers are not stranded.
        struct Unwinding<'a>(&'a Shared);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                lock(&self.0.queue).leading = false;
            }
        }
        let unwinding = Unwinding(self);
        loop {
            let jobs = {
                let mut queue = lock(&self.queue);
                if queue.jobs.is_empty() {
                    // Under the lock: a job queued after this finds no leader and leads itself.
                    queue.leading = false;
                    std::mem::forget(unwinding);
                    return;
                }
                std::mem::take(&mut queue.jobs)
            };
            self.run_group(jobs);
        }
    }

    /// Runs each job's closure in order and commits the survivors' writes together.
    fn run_group(&self, jobs: Vec<Job>) {
        let fail_all = |jobs: Vec<Job>, error: Error| {
            for job in jobs {
                (job.run)(Err(error.clone()));
            }
        };
        if let Some(reason) = lock(&self.poison).clone() {
            return fail_all(jobs, Error::Poisoned(reason));
        }
        let snapshot = match guarded(|| self.engine.snapshot()) {
            Ok(snapshot) => snapshot,
            Err(e) => return fail_all(jobs, e),
        };
        let mut group = WriteBatch::new();
        let mut durability = Durability::Eventual;
        let mut completions = Vec::with_capacity(jobs.len());
        let mut hooks = Vec::new();
        for job in jobs {
            let mut txn = WriteTxn::new(&*snapshot, &group, &self.signals);
            if let Some(completion) = (job.run)(Ok(&mut txn)) {
                let (writes, on_commit) = txn.into_parts();
                group.absorb(writes);
                hooks.extend(on_commit);
                completions.push(completion);
                if job.durability == Durability::Durable {
                    durability = Durability::Durable;
                }
            }
        }
        drop(snapshot);
        if completions.is_empty() {
            return;
        }
        let wrote = !group.is_empty();
        // A read-only durable transaction may have read an eventual write that is not yet on
        // disk; an empty durable commit makes it so before the answer goes out.
        let must_sync = durability == Durability::Durable && self.unsynced.load(Ordering::Acquire);
        let result = if wrote || must_sync {
            self.commits.fetch_add(1, Ordering::Relaxed);
            guarded(|| self.engine.commit(group, durability))
        } else {
            Ok(())
        };
        match result {
            Ok(()) => {
                match durability {
                    Durability::Durable => self.unsynced.store(false, Ordering::Release),
                    Durability::Eventual if wrote => self.unsynced.store(true, Ordering::Release),
                    Durability::Eventual => {}
                }
                self.transactions
                    .fetch_add(completions.len() as u64, Ordering::Relaxed);
                for hook in hooks {
                    if catch_unwind(AssertUnwindSafe(hook)).is_err() {
                        tracing::error!("an on_commit hook panicked");
                    }
                }
                for completion in completions {
                    completion(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the store is now poisoned");
                lock(&self.poison).get_or_insert_with(|| error.to_string());
                for completion in completions {
                    completion(Err(error.clone()));
                }
            }
        }
    }
}
