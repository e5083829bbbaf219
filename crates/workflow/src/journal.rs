//! The durable journal of Standard executions.
//!
//! Every state entry writes a checkpoint of its branch (the state, its input, the branch's
//! variables, the retry counters) together with the history events recorded since the last
//! write, in one durable transaction. Concurrent branches of one execution share the writes:
//! whoever finds no write in progress takes everything pending and commits it, so events reach
//! the engine in id order and each caller returns only once its own checkpoint is durable.
//! A finished Parallel branch or Map iteration records its output, so a resumed execution does
//! not run it again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{Durability, KeyRange, ReadView, Store, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::interp::HistoryEvent;

/// State machines: name → record.
pub(crate) const KS_MACHINES: &str = "sfn.machines";
/// Executions: ARN → record.
pub(crate) const KS_EXECUTIONS: &str = "sfn.executions";
/// History: (execution ARN, event id) → event.
pub(crate) const KS_HISTORY: &str = "sfn.history";
/// Checkpoints: (execution ARN, branch path) → checkpoint.
pub(crate) const KS_CHECKPOINTS: &str = "sfn.checkpoints";
/// Task tokens of Standard executions' callback tasks: token → its outcome once sent.
pub(crate) const KS_TOKENS: &str = "sfn.tokens";

/// A callback token as stored: what was sent for it, if anything yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct StoredToken {
    pub(crate) execution: String,
    /// `Ok(output)` or `Err((error, cause))`, once sent.
    pub(crate) outcome: Option<Result<Value, (String, Option<String>)>>,
}

/// Where a branch is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Checkpoint {
    /// The state the branch is in (None once the branch finished).
    pub(crate) state: Option<String>,
    /// The state's input.
    pub(crate) input: Value,
    /// The state's `...StateEntered` event.
    pub(crate) entered_id: u64,
    pub(crate) entered_time: Timestamp,
    /// The branch's last event id.
    pub(crate) previous: u64,
    /// The branch's own variables.
    pub(crate) variables: Vec<(String, Value)>,
    /// Retry counters of the state, per retrier, and the total.
    pub(crate) retries: Vec<u32>,
    /// When the next retry is due, while the state waits to retry.
    #[serde(default)]
    pub(crate) retry_due: Option<Timestamp>,
    /// The branch's output, once it finished.
    pub(crate) done: Option<Value>,
    /// The branch's error and cause, once it failed (a Map iteration a tolerance absorbed).
    #[serde(default)]
    pub(crate) failure: Option<(Option<String>, Option<String>)>,
}

#[derive(Default)]
struct Pending {
    events: Vec<HistoryEvent>,
    checkpoints: Vec<(String, Checkpoint)>,
    extra: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
    deletes: Vec<(&'static str, Vec<u8>)>,
    /// Branch paths with a stored checkpoint, to delete when the execution ends.
    written: std::collections::HashSet<String>,
    finish: bool,
    sequence: u64,
}

/// One execution's journal.
pub(crate) struct Journal {
    store: Store,
    arn: String,
    pending: Mutex<Pending>,
    flushed: AtomicU64,
    flush: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("execution", &self.arn)
            .finish_non_exhaustive()
    }
}

/// An execution's 16-byte key prefix: the first half of the SHA-256 of its ARN (short keys
/// keep the journal's B-tree work small; a collision needs about 2^64 executions).
pub(crate) fn execution_key(arn: &str) -> [u8; 16] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(arn.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The history batch whose first event is `first`: the events of one journal write.
pub(crate) fn history_key(execution: &[u8; 16], first: u64) -> Vec<u8> {
    Tuple::new().bytes(execution).u64(first).build().to_vec()
}

pub(crate) fn checkpoint_key(execution: &[u8; 16], path: &str) -> Vec<u8> {
    Tuple::new().bytes(execution).str(path).build().to_vec()
}

pub(crate) fn execution_prefix(execution: &[u8; 16]) -> KeyRange {
    KeyRange::prefix(Tuple::new().bytes(execution).build())
}

impl Journal {
    pub(crate) fn new(store: Store, arn: String) -> Self {
        Self::resumed(store, arn, Vec::new())
    }

    /// The journal of an execution that already has checkpoints at `paths`: they are
    /// dropped with the others when the execution ends.
    pub(crate) fn resumed(store: Store, arn: String, paths: Vec<String>) -> Self {
        let pending = Pending {
            written: paths.into_iter().collect(),
            ..Pending::default()
        };
        Self {
            store,
            arn,
            pending: Mutex::new(pending),
            flushed: AtomicU64::new(0),
            flush: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store the journal writes to.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Queues the removal of `key` for the next write.
    pub(crate) fn delete_later(&self, keyspace: &'static str, key: Vec<u8>) {
        self.lock().deletes.push((keyspace, key));
    }

    /// Queues an event for the next write.
    pub(crate) fn event(&self, event: &HistoryEvent) {
        self.lock().events.push(event.clone());
    }

    /// Queues `checkpoint` for the branch at `path` for the next write.
    pub(crate) fn checkpoint_later(&self, path: &str, checkpoint: Checkpoint) {
        self.lock().checkpoints.push((path.to_string(), checkpoint));
    }

    /// Writes `checkpoint` for the branch at `path`, with everything pending, durably.
    pub(crate) async fn checkpoint(
        &self,
        path: &str,
        checkpoint: Checkpoint,
    ) -> Result<(), cloudlet_core::Error> {
        self.write(|pending| pending.checkpoints.push((path.to_string(), checkpoint)))
            .await
    }

    /// Writes everything pending, durably.
    pub(crate) async fn sync(&self) -> Result<(), cloudlet_core::Error> {
        self.write(|_| {}).await
    }

    /// Writes everything pending plus `key` → `value` in `keyspace`, durably.
    pub(crate) async fn write_with(
        &self,
        keyspace: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), cloudlet_core::Error> {
        self.write(|pending| pending.extra.push((keyspace, key, value)))
            .await
    }

    /// Writes everything pending plus `key` → `value`, and drops the execution's checkpoints:
    /// the execution ended.
    pub(crate) async fn finish(
        &self,
        keyspace: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), cloudlet_core::Error> {
        self.write(|pending| {
            pending.extra.push((keyspace, key, value));
            pending.finish = true;
        })
        .await
    }

    /// Adds to what is pending and returns once all of it is durable.
    async fn write(&self, add: impl FnOnce(&mut Pending)) -> Result<(), cloudlet_core::Error> {
        let sequence = {
            let mut pending = self.lock();
            add(&mut pending);
            pending.sequence += 1;
            pending.sequence
        };
        self.flush_through(sequence).await
    }

    async fn flush_through(&self, sequence: u64) -> Result<(), cloudlet_core::Error> {
        let _writer = self.flush.lock().await;
        if self.flushed.load(Ordering::Acquire) >= sequence {
            return Ok(());
        }
        let (events, checkpoints, extra, upto, stale, deletes) = {
            let mut pending = self.lock();
            let paths: Vec<String> = pending.checkpoints.iter().map(|(p, _)| p.clone()).collect();
            pending.written.extend(paths);
            let stale: Vec<String> = if pending.finish {
                pending.checkpoints.clear();
                pending.written.drain().collect()
            } else {
                Vec::new()
            };
            (
                std::mem::take(&mut pending.events),
                std::mem::take(&mut pending.checkpoints),
                std::mem::take(&mut pending.extra),
                pending.sequence,
                stale,
                std::mem::take(&mut pending.deletes),
            )
        };
        let arn = execution_key(&self.arn);
        let result = self
            .store
            .write(Durability::Durable, move |txn| {
                // The events of one write are one row.
                if let Some(first) = events.first() {
                    let value = serde_json::to_vec(&events)
                        .map_err(|e| cloudlet_core::Error::corrupt(KS_HISTORY, e.to_string()))?;
                    txn.put(KS_HISTORY, history_key(&arn, first.id), value);
                }
                // The last checkpoint of a branch wins.
                let mut latest: HashMap<&str, &Checkpoint> = HashMap::new();
                for (path, cp) in &checkpoints {
                    latest.insert(path.as_str(), cp);
                }
                for (path, cp) in latest {
                    let value = serde_json::to_vec(cp)
                        .map_err(|e| cloudlet_core::Error::corrupt(KS_HISTORY, e.to_string()))?;
                    txn.put(KS_CHECKPOINTS, checkpoint_key(&arn, path), value);
                }
                for path in &stale {
                    txn.delete(KS_CHECKPOINTS, checkpoint_key(&arn, path));
                }
                for (keyspace, key) in &deletes {
                    txn.delete(keyspace, key.clone());
                }
                for (keyspace, key, value) in &extra {
                    txn.put(keyspace, key.clone(), value.clone());
                }
                Ok::<_, cloudlet_core::Error>(())
            })
            .await;
        if result.is_ok() {
            self.flushed.store(upto, Ordering::Release);
        }
        result
    }
}

/// Removes every checkpoint of an execution (its redrive window passed).
pub(crate) async fn drop_checkpoints(store: &Store, arn: &str) -> Result<(), cloudlet_core::Error> {
    remove_rows(store, arn, &[KS_CHECKPOINTS], None).await
}

/// Removes everything stored of an execution: its description, history and checkpoints (its
/// retention passed).
pub(crate) async fn forget(store: &Store, arn: &str) -> Result<(), cloudlet_core::Error> {
    remove_rows(
        store,
        arn,
        &[KS_CHECKPOINTS, KS_HISTORY],
        Some(arn.as_bytes().to_vec()),
    )
    .await
}

/// Deletes the execution's rows in `keyspaces` (keyed under its prefix) and, when given, its
/// `sfn.executions` row, in one transaction.
async fn remove_rows(
    store: &Store,
    arn: &str,
    keyspaces: &[&'static str],
    description: Option<Vec<u8>>,
) -> Result<(), cloudlet_core::Error> {
    let execution = execution_key(arn);
    let mut keys: Vec<(&'static str, Vec<u8>)> = Vec::new();
    {
        let snapshot = store.snapshot()?;
        for &keyspace in keyspaces {
            for entry in snapshot.range(
                keyspace,
                &execution_prefix(&execution),
                cloudlet_core::Direction::Forward,
            )? {
                keys.push((keyspace, entry?.0.to_vec()));
            }
        }
    }
    if let Some(key) = description {
        keys.push((KS_EXECUTIONS, key));
    }
    if keys.is_empty() {
        return Ok(());
    }
    store
        .write(Durability::Durable, move |txn| {
            for (keyspace, key) in keys {
                txn.delete(keyspace, key);
            }
            Ok::<_, cloudlet_core::Error>(())
        })
        .await
}

pub(crate) fn load(
    store: &Store,
    arn: &str,
) -> Result<(Vec<HistoryEvent>, HashMap<String, Checkpoint>), cloudlet_core::Error> {
    let snapshot = store.snapshot()?;
    let execution = execution_key(arn);
    let mut events = Vec::new();
    for entry in snapshot.range(
        KS_HISTORY,
        &execution_prefix(&execution),
        cloudlet_core::Direction::Forward,
    )? {
        let (_, value) = entry?;
        let batch: Vec<HistoryEvent> = serde_json::from_slice(&value)
            .map_err(|e| cloudlet_core::Error::corrupt(KS_HISTORY, e.to_string()))?;
        events.extend(batch);
    }
    let mut checkpoints = HashMap::new();
    for entry in snapshot.range(
        KS_CHECKPOINTS,
        &execution_prefix(&execution),
        cloudlet_core::Direction::Forward,
    )? {
        let (key, value) = entry?;
        let mut reader = TupleReader::new(&key);
        let _ = reader.bytes()?;
        let path = reader.str()?;
        let cp: Checkpoint = serde_json::from_slice(&value)
            .map_err(|e| cloudlet_core::Error::corrupt(KS_HISTORY, e.to_string()))?;
        checkpoints.insert(path, cp);
    }
    Ok((events, checkpoints))
}
