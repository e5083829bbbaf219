//! Redrive: message-move tasks that take a dead-letter queue's messages back to the queues
//! they came from (or to a chosen destination), at a rate set on the clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloudlet_core::keys::TupleReader;
use cloudlet_core::{BackgroundTask, Direction, ReadView, Timestamp, WriteTxn};

use crate::api::MessageMoveTask;
use crate::record::{
    KS_META, KS_QUEUES, KS_READY, MessageRecord, QueueRecord, message_key, queue_prefix,
};
use crate::service::{QueueService, arn_part};
use crate::{Error, Result};

/// Messages moved per transaction when no rate is set.
const BATCH: usize = 100;

/// The move tasks of one service.
#[derive(Debug, Default)]
pub(crate) struct MoveTasks {
    tasks: Vec<MoveTask>,
}

#[derive(Debug)]
struct MoveTask {
    handle: String,
    info: Arc<Mutex<MessageMoveTask>>,
    cancel: Arc<AtomicBool>,
    _worker: BackgroundTask,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QueueService {
    pub(crate) async fn start_move(
        &self,
        source_arn: &str,
        destination_arn: Option<&str>,
        rate: Option<u32>,
    ) -> Result<String> {
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
        let mut is_dead_letter_queue = false;
        for entry in snapshot.prefix(KS_QUEUES, b"", Direction::Forward)? {
            let (_, raw) = entry?;
            let queue = QueueRecord::decode(&raw)?;
            if queue
                .attributes
                .redrive_policy
                .as_ref()
                .is_some_and(|p| arn_part(&p.dead_letter_target_arn, 5) == source.name)
            {
                is_dead_letter_queue = true;
                break;
            }
        }
        if !is_dead_letter_queue {
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
        let to_move = snapshot
            .prefix(
                crate::record::KS_MESSAGES,
                &queue_prefix(source.id),
                Direction::Forward,
            )?
            .count() as u64;
        drop(snapshot);
        let mut tasks = lock(self.moves());
        if tasks
            .tasks
            .iter()
            .any(|t| lock(&t.info).source_arn == source_arn && lock(&t.info).status == "RUNNING")
        {
            return Err(Error::invalid(
                "SourceArn",
                "a message move task is already running for this queue",
            ));
        }
        let handle = format!("{}:{}", source.name, self.next_id());
        let info = Arc::new(Mutex::new(MessageMoveTask {
            task_handle: Some(handle.clone()),
            status: "RUNNING".to_owned(),
            source_arn: source_arn.to_owned(),
            destination_arn: destination_arn.map(str::to_owned),
            max_number_of_messages_per_second: rate,
            approximate_number_of_messages_moved: 0,
            approximate_number_of_messages_to_move: to_move,
            failure_reason: None,
            started_timestamp: self.now().as_millis(),
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let worker = {
            let (service, info, cancel) = (self.clone(), info.clone(), cancel.clone());
            let (source, destination) = (
                source.name.clone(),
                destination_arn.map(|d| arn_part(d, 5).to_owned()),
            );
            BackgroundTask::spawn(
                format!("message move {handle}"),
                move |mut shutdown| async move {
                    let per_step = rate.map_or(BATCH, |r| (r as usize).min(BATCH));
                    loop {
                        if cancel.load(Ordering::SeqCst) || shutdown.is_requested() {
                            lock(&info).status = "CANCELLED".to_owned();
                            return;
                        }
                        let now = service.now();
                        let (source, destination) = (source.clone(), destination.clone());
                        let step = service
                            .store()
                            .write(cloudlet_core::Durability::Durable, move |txn| {
                                move_some(txn, &source, destination.as_deref(), per_step, now)
                            })
                            .await;
                        let (moved, exhausted) = match step {
                            Ok(step) => step,
                            Err(error) => {
                                let mut info = lock(&info);
                                info.status = "FAILED".to_owned();
                                info.failure_reason = Some(error.to_string());
                                return;
                            }
                        };
                        lock(&info).approximate_number_of_messages_moved += moved as u64;
                        if exhausted {
                            let mut info = lock(&info);
                            info.status = "COMPLETED".to_owned();
                            info.task_handle = None;
                            return;
                        }
                        if let Some(rate) = rate {
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
            )
        };
        tasks.tasks.push(MoveTask {
            handle: handle.clone(),
            info,
            cancel,
            _worker: worker,
        });
        Ok(handle)
    }

    pub(crate) fn list_moves(
        &self,
        source_arn: &str,
        max_results: Option<u32>,
    ) -> Result<Vec<MessageMoveTask>> {
        let max = max_results.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(Error::invalid(
                "MaxResults",
                format!("{max} is not from 1 to 10"),
            ));
        }
        let tasks = lock(self.moves());
        Ok(tasks
            .tasks
            .iter()
            .rev()
            .map(|t| lock(&t.info).clone())
            .filter(|info| info.source_arn == source_arn)
            .take(max as usize)
            .collect())
    }

    pub(crate) fn cancel_move(&self, handle: &str) -> Result<u64> {
        let tasks = lock(self.moves());
        let task = tasks
            .tasks
            .iter()
            .find(|t| t.handle == handle)
            .ok_or_else(|| {
                Error::invalid("TaskHandle", format!("no message move task `{handle}`"))
            })?;
        let mut info = lock(&task.info);
        if info.status != "RUNNING" {
            return Err(Error::invalid(
                "TaskHandle",
                format!("the task is {}, not RUNNING", info.status),
            ));
        }
        task.cancel.store(true, Ordering::SeqCst);
        info.status = "CANCELLING".to_owned();
        Ok(info.approximate_number_of_messages_moved)
    }
}

/// Moves up to `limit` visible messages of `source`; returns how many moved and whether the
/// source has no visible message left.
fn move_some(
    txn: &mut WriteTxn<'_>,
    source: &str,
    destination: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> Result<(usize, bool)> {
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
            // Sent to the dead-letter queue directly: nowhere to go back to.
            (None, None) => continue,
        };
        let Ok(target) = QueueService::load_queue(txn, &target_name) else {
            continue;
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
    Ok((moved, exhausted))
}
