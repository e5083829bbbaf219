//! Redrive: message-move tasks that take a dead-letter queue's messages back to the queues
//! they came from (or to a chosen destination), at a rate set on the clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{BackgroundTask, Direction, Durability, ReadView, Timestamp, WriteTxn};
use serde::{Deserialize, Serialize};

use crate::api::MessageMoveTask;
use crate::record::{KS_META, KS_READY, MessageRecord, message_key, queue_prefix};
use crate::service::{QueueService, arn_part};
use crate::{Error, Result};

/// Messages moved per transaction when no rate is set.
const BATCH: usize = 100;

/// Message-move tasks, kept across restarts as SQS keeps them: (source queue name, start
/// sequence) → the task as JSON.
pub(crate) const KS_MOVES: &str = "queue.moves";

/// The tasks kept per source queue: ListMessageMoveTasks lists at most the 10 most recent,
/// so a new task deletes the ones before those (all finished: one runs at a time).
const TASKS_KEPT: usize = 10;

const RUNNING: &str = "RUNNING";
const CANCELLING: &str = "CANCELLING";

/// The workers of the tasks running in this process.
#[derive(Debug, Default)]
pub(crate) struct MoveTasks {
    /// Set once the tasks stored as running have been resumed in this process.
    resumed: bool,
    /// Set by `shutdown`: no worker starts after it.
    closed: bool,
    workers: HashMap<String, BackgroundTask>,
}

/// A task as stored. Each step of its worker moves a batch and counts it in one transaction,
/// and a cancel is a stored status the next step sees, so a restart loses nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMove {
    handle: String,
    status: String,
    source_arn: String,
    destination_arn: Option<String>,
    rate: Option<u32>,
    moved: u64,
    to_move: u64,
    failure_reason: Option<String>,
    started_millis: u64,
}

impl StoredMove {
    fn decode(raw: &[u8]) -> Result<Self> {
        serde_json::from_slice(raw)
            .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_MOVES, e.to_string())))
    }

    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    fn active(&self) -> bool {
        self.status == RUNNING || self.status == CANCELLING
    }

    fn info(&self) -> MessageMoveTask {
        MessageMoveTask {
            task_handle: (self.status == RUNNING).then(|| self.handle.clone()),
            status: self.status.clone(),
            source_arn: self.source_arn.clone(),
            destination_arn: self.destination_arn.clone(),
            max_number_of_messages_per_second: self.rate,
            approximate_number_of_messages_moved: self.moved,
            approximate_number_of_messages_to_move: self.to_move,
            failure_reason: self.failure_reason.clone(),
            started_timestamp: self.started_millis,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn no_task(handle: &str) -> Error {
    Error::invalid("TaskHandle", format!("no message move task `{handle}`"))
}

fn moves_prefix(source: &str) -> Bytes {
    Tuple::new().str(source).build()
}

/// Deletes the stored tasks of the queue `source`, when it is deleted. A worker still running
/// for one of them finds it gone at its next step and stops.
pub(crate) fn forget_moves(txn: &mut WriteTxn<'_>, source: &str) -> Result<()> {
    for (key, _) in stored_moves(txn, Some(source))? {
        txn.delete(KS_MOVES, key);
    }
    Ok(())
}

/// The stored tasks of `source` (every task for `None`), oldest first, with their keys.
fn stored_moves(view: &impl ReadView, source: Option<&str>) -> Result<Vec<(Bytes, StoredMove)>> {
    let prefix = source.map(moves_prefix).unwrap_or_default();
    view.prefix(KS_MOVES, &prefix, Direction::Forward)?
        .map(|entry| {
            let (key, raw) = entry?;
            Ok((key, StoredMove::decode(&raw)?))
        })
        .collect()
}

impl QueueService {
    pub(crate) async fn start_move(
        &self,
        source_arn: &str,
        destination_arn: Option<&str>,
        rate: Option<u32>,
    ) -> Result<String> {
        self.resume_moves();
        if let Some(rate) = rate
            && !(1..=500).contains(&rate)
        {
            return Err(Error::invalid(
                "MaxNumberOfMessagesPerSecond",
                format!("{rate} is not from 1 to 500"),
            ));
        }
        let snapshot = self.store().snapshot()?;
        let source = Self::load_queue(&snapshot, arn_part(source_arn, 5))?;
        // The source must be some queue's dead-letter queue.
        if Self::dead_letter_sources(&snapshot, &source.name, 1)?.is_empty() {
            return Err(Error::invalid(
                "SourceArn",
                "the source queue is not a dead-letter queue of any queue",
            ));
        }
        if let Some(destination) = destination_arn {
            let target = Self::load_queue(&snapshot, arn_part(destination, 5))?;
            if target.attributes.fifo_queue != source.attributes.fifo_queue {
                return Err(Error::invalid(
                    "DestinationArn",
                    "must be the same kind of queue as the source",
                ));
            }
        }
        drop(snapshot);
        // Queue names have no `:`, so the handle names its source.
        let handle = format!("{}:{}", source.name, self.next_id());
        let task = StoredMove {
            handle: handle.clone(),
            status: RUNNING.to_owned(),
            source_arn: source_arn.to_owned(),
            destination_arn: destination_arn.map(str::to_owned),
            rate,
            moved: 0,
            to_move: 0,
            failure_reason: None,
            started_millis: self.now().as_millis(),
        };
        let (name, id) = (source.name.clone(), source.id);
        let (key, task) = self
            .store()
            .write(Durability::Durable, move |txn| {
                if stored_moves(txn, Some(&name))?
                    .iter()
                    .any(|(_, t)| t.active())
                {
                    return Err(Error::invalid(
                        "SourceArn",
                        "a message move task is already running for this queue",
                    ));
                }
                let mut task = task;
                task.to_move = txn
                    .prefix(
                        crate::record::KS_MESSAGES,
                        &queue_prefix(id),
                        Direction::Forward,
                    )?
                    .count() as u64;
                let seq = txn.next_sequence(KS_META, &Tuple::new().str("moves").build())?;
                let key = Tuple::new().str(&name).u64(seq).build();
                txn.put(KS_MOVES, key.clone(), task.encode());
                for (old, _) in stored_moves(txn, Some(&name))?
                    .into_iter()
                    .rev()
                    .skip(TASKS_KEPT)
                {
                    txn.delete(KS_MOVES, old);
                }
                Ok((key, task))
            })
            .await?;
        self.spawn_mover(key, task);
        Ok(handle)
    }

    /// Restarts, once per service, the tasks an earlier run left running or cancelling. A
    /// failure is logged, not returned: it must not fail the write that happened to come
    /// first.
    pub(crate) fn resume_moves(&self) {
        if std::mem::replace(&mut lock(self.moves()).resumed, true) {
            return;
        }
        match self
            .store()
            .snapshot()
            .map_err(Error::from)
            .and_then(|snapshot| stored_moves(&snapshot, None))
        {
            Ok(tasks) => {
                for (key, task) in tasks.into_iter().filter(|(_, t)| t.active()) {
                    self.spawn_mover(key, task);
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not resume the stored message move tasks");
            }
        }
    }

    /// Runs the task stored under `key` until it completes, is cancelled or fails, or the
    /// service shuts down (then it stays running in the store, for the next run).
    fn spawn_mover(&self, key: Bytes, task: StoredMove) {
        let mut movers = lock(self.moves());
        if movers.closed {
            // Shut down: the task stays running in the store for the next service.
            return;
        }
        let service = self.clone();
        let handle = task.handle.clone();
        let worker = BackgroundTask::spawn(
            format!("message move {handle}"),
            move |mut shutdown| async move {
                let per_step = task.rate.map_or(BATCH, |r| (r as usize).min(BATCH));
                let source = arn_part(&task.source_arn, 5).to_owned();
                let destination = task
                    .destination_arn
                    .as_deref()
                    .map(|d| arn_part(d, 5).to_owned());
                loop {
                    if shutdown.is_requested() {
                        return;
                    }
                    let now = service.now();
                    let (at, source, destination) =
                        (key.clone(), source.clone(), destination.clone());
                    let step = service
                        .store()
                        .write(Durability::Durable, move |txn| {
                            move_step(txn, &at, &source, destination.as_deref(), per_step, now)
                        })
                        .await;
                    let moved = match step {
                        Ok(Some(moved)) => moved,
                        Ok(None) => return,
                        Err(error) => {
                            let reason = error.to_string();
                            let key = key.clone();
                            let failed = service
                                .store()
                                .write(Durability::Durable, move |txn| {
                                    if let Some(raw) = txn.get(KS_MOVES, &key)? {
                                        let mut task = StoredMove::decode(&raw)?;
                                        task.status = "FAILED".to_owned();
                                        task.failure_reason = Some(reason);
                                        txn.put(KS_MOVES, key, task.encode());
                                    }
                                    Ok::<_, Error>(())
                                })
                                .await;
                            if let Err(e) = failed {
                                tracing::error!(error = %e, "could not record a failed message move task");
                            }
                            return;
                        }
                    };
                    if let Some(rate) = task.rate {
                        let wait = Duration::from_millis(moved as u64 * 1000 / u64::from(rate));
                        tokio::select! {
                            () = service.sleep(wait) => {}
                            () = shutdown.requested() => {}
                        }
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            },
        );
        // Tasks that ended leave their finished workers behind: dropped here.
        movers.workers.retain(|_, worker| !worker.is_finished());
        movers.workers.insert(handle, worker);
    }

    /// Stops this process's message-move workers, waiting for each to finish its step, and
    /// starts none after (in this service or its clones). Running tasks stay running in the
    /// store: a service opened on it later goes on with them, and finishes a cancel asked for
    /// after this.
    pub async fn shutdown(&self) {
        let workers: Vec<BackgroundTask> = {
            let mut movers = lock(self.moves());
            movers.closed = true;
            movers.workers.drain().map(|(_, w)| w).collect()
        };
        for worker in workers {
            worker.shutdown().await;
        }
    }

    pub(crate) fn list_moves(
        &self,
        source_arn: &str,
        max_results: Option<u32>,
    ) -> Result<Vec<MessageMoveTask>> {
        self.resume_moves();
        let max = max_results.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(Error::invalid(
                "MaxResults",
                format!("{max} is not from 1 to 10"),
            ));
        }
        let snapshot = self.store().snapshot()?;
        Ok(stored_moves(&snapshot, Some(arn_part(source_arn, 5)))?
            .into_iter()
            .rev()
            .map(|(_, task)| task)
            .filter(|task| task.source_arn == source_arn)
            .take(max as usize)
            .map(|task| task.info())
            .collect())
    }

    pub(crate) async fn cancel_move(&self, handle: &str) -> Result<u64> {
        self.resume_moves();
        let source = handle
            .split_once(':')
            .ok_or_else(|| no_task(handle))?
            .0
            .to_owned();
        let handle = handle.to_owned();
        self.store()
            .write(Durability::Durable, move |txn| {
                let (key, mut task) = stored_moves(txn, Some(&source))?
                    .into_iter()
                    .find(|(_, task)| task.handle == handle)
                    .ok_or_else(|| no_task(&handle))?;
                if task.status != RUNNING {
                    return Err(Error::invalid(
                        "TaskHandle",
                        format!("the task is {}, not RUNNING", task.status),
                    ));
                }
                task.status = CANCELLING.to_owned();
                txn.put(KS_MOVES, key, task.encode());
                Ok(task.moved)
            })
            .await
    }
}

/// One step of the task under `key`: moves a batch and counts it, or finishes the task
/// (completed, or cancelled as asked). Returns how many moved, or `None` when the task is
/// over.
fn move_step(
    txn: &mut WriteTxn<'_>,
    key: &Bytes,
    source: &str,
    destination: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> Result<Option<usize>> {
    let Some(raw) = txn.get(KS_MOVES, key)? else {
        return Ok(None);
    };
    let mut task = StoredMove::decode(&raw)?;
    match task.status.as_str() {
        RUNNING => {}
        CANCELLING => {
            task.status = "CANCELLED".to_owned();
            txn.put(KS_MOVES, key.clone(), task.encode());
            return Ok(None);
        }
        _ => return Ok(None),
    }
    let moved = move_some(txn, source, destination, limit, now)?;
    task.moved += moved.count as u64;
    let over = if let Some(reason) = moved.failure {
        task.status = "FAILED".to_owned();
        task.failure_reason = Some(reason);
        true
    } else if moved.exhausted {
        task.status = "COMPLETED".to_owned();
        true
    } else {
        false
    };
    txn.put(KS_MOVES, key.clone(), task.encode());
    Ok((!over).then_some(moved.count))
}

/// What one batch of a move did.
struct Moved {
    count: usize,
    /// The source has no visible message left.
    exhausted: bool,
    /// A message that cannot be moved stopped the batch: the task fails with this reason.
    failure: Option<String>,
}

/// Moves up to `limit` visible messages of `source`, stopping at the first one that has
/// nowhere to go.
fn move_some(
    txn: &mut WriteTxn<'_>,
    source: &str,
    destination: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> Result<Moved> {
    let source = QueueService::load_queue(txn, source)?;
    let mut due = Vec::new();
    for entry in txn.prefix(KS_READY, &queue_prefix(source.id), Direction::Forward)? {
        let (key, _) = entry?;
        let mut reader = TupleReader::new(&key);
        reader.u64()?;
        let at = Timestamp::from_nanos(reader.u64()?);
        let seq = reader.u64()?;
        if at > now || due.len() > limit {
            break;
        }
        due.push((key, seq));
    }
    let exhausted = due.len() <= limit;
    let mut moved = 0;
    for (ready, seq) in due.into_iter().take(limit) {
        let key = message_key(source.id, seq);
        let Some(raw) = txn.get(crate::record::KS_MESSAGES, &key)? else {
            txn.delete(KS_READY, ready);
            continue;
        };
        let record = MessageRecord::decode(raw)?;
        let target_name = match (destination, &record.dead_letter_source) {
            (Some(destination), _) => destination.to_owned(),
            (None, Some(origin)) => arn_part(origin, 5).to_owned(),
            (None, None) => {
                let failure = format!(
                    "message {} was sent to this queue directly, so it has no source queue to go back to; start a task with a DestinationArn",
                    record.message_id
                );
                return Ok(Moved {
                    count: moved,
                    exhausted: false,
                    failure: Some(failure),
                });
            }
        };
        let target = match QueueService::load_queue(txn, &target_name) {
            Ok(target) => target,
            Err(Error::QueueDoesNotExist { .. }) => {
                return Ok(Moved {
                    count: moved,
                    exhausted: false,
                    failure: Some(format!(
                        "the queue `{target_name}` that message {} goes to does not exist",
                        record.message_id
                    )),
                });
            }
            Err(error) => return Err(error),
        };
        QueueService::forget(txn, &source, seq, &record)?;
        let new_seq = txn.next_sequence(
            KS_META,
            &cloudlet_core::keys::Tuple::new()
                .str("seq")
                .u64(target.id)
                .build(),
        )?;
        let mut back = record.clone();
        back.seq = new_seq;
        back.visible_at = now;
        back.receipt = 0;
        back.receive_count = 0;
        back.first_receive = None;
        back.last_receive = None;
        back.enqueued = now;
        back.dead_letter_source = None;
        QueueService::place(txn, &target, &back)?;
        moved += 1;
    }
    Ok(Moved {
        count: moved,
        exhausted,
        failure: None,
    })
}
