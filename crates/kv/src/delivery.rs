//! Delivering a table's change stream to a [`Sink`], as Lambda's event-source mapping polls a
//! DynamoDB stream: in order, from a durable checkpoint, at least once, with retries on the
//! clock.

use std::sync::Arc;

use cloudlet_core::keys::Tuple;
use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{
    BackgroundTask, DeliveryError, Durability, Message, ReadView, SharedClock, Sink, Store,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::service::{KS_META, KvService};
use crate::stream::{
    StreamRecord, counter_bytes, last_sequence_key, read_counter, read_records, signal_name,
    trimmed_key,
};
use crate::{Error, Result};

/// Where a new subscription starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum StartingPosition {
    /// At the oldest record kept.
    TRIM_HORIZON,
    /// With the next change.
    LATEST,
}

/// The JSON a stream record is delivered as: the record shape Lambda hands a function.
pub fn event_json(record: &StreamRecord, region: &str, stream_arn: &str) -> serde_json::Value {
    let mut dynamodb = serde_json::json!({
        "ApproximateCreationDateTime": record.approximate_creation_date_time.as_secs(),
        "Keys": record.keys,
        "SequenceNumber": record.sequence_number,
        "SizeBytes": record.size_bytes,
        "StreamViewType": record.stream_view_type,
    });
    if let Some(image) = &record.new_image {
        dynamodb["NewImage"] = serde_json::json!(image);
    }
    if let Some(image) = &record.old_image {
        dynamodb["OldImage"] = serde_json::json!(image);
    }
    let mut event = serde_json::json!({
        "eventID": record.event_id,
        "eventName": record.event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    if let Some(identity) = &record.user_identity {
        event["userIdentity"] = serde_json::json!({
            "type": identity.kind,
            "principalId": identity.principal_id,
        });
    }
    event
}

fn checkpoint_key(table_id: u64, name: &str) -> bytes::Bytes {
    Tuple::new()
        .str("stream-subscription")
        .u64(table_id)
        .str(name)
        .build()
}

impl KvService {
    /// Delivers `table`'s change records to `sink`, each as a message whose body is the
    /// record's JSON ([`event_json`]), in order, until the returned task is shut down.
    ///
    /// The subscription is named: its checkpoint (the next record to deliver) is stored
    /// durably, so a restarted subscription of the same name resumes where it stopped, and a
    /// record is delivered at least once. A failed delivery is retried with `policy`'s backoff
    /// on the clock, holding back the records after it; after `policy.max_attempts` (or at
    /// once if the sink rejects it) it goes to the dead-letter sink, if any, and is skipped.
    /// Records trimmed (older than 24 hours) before delivery are skipped, as on DynamoDB.
    ///
    /// # Errors
    /// `ResourceNotFoundException`; `ValidationException` if the table has no stream.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub async fn subscribe_stream(
        &self,
        table: &str,
        name: &str,
        start: StartingPosition,
        sink: Arc<dyn Sink>,
        policy: OutboxPolicy,
    ) -> Result<BackgroundTask> {
        let description = self.describe_stream(table)?;
        let record = self.table(table)?;
        let (table_id, key) = (record.id, checkpoint_key(record.id, name));
        let start_key = key.clone();
        self.store
            .write(Durability::Durable, move |txn| {
                if txn.get(KS_META, &start_key)?.is_some() {
                    return Ok(());
                }
                let position = match start {
                    StartingPosition::TRIM_HORIZON => 1,
                    StartingPosition::LATEST => {
                        read_counter(txn, &last_sequence_key(table_id))? + 1
                    }
                };
                txn.put(KS_META, start_key, counter_bytes(position));
                Ok::<_, Error>(())
            })
            .await?;
        let worker = Worker {
            signal: self.store.signal(&signal_name(table_id)),
            store: self.store.clone(),
            clock: self.clock.clone(),
            region: self.region().to_owned(),
            stream_arn: description.stream_arn,
            table_id,
            key,
            sink,
            policy,
        };
        Ok(BackgroundTask::spawn(
            format!("kv stream {table}/{name}"),
            move |shutdown| worker.run(shutdown),
        ))
    }
}

struct Worker {
    signal: Arc<tokio::sync::Notify>,
    store: Store,
    clock: SharedClock,
    region: String,
    stream_arn: String,
    table_id: u64,
    key: bytes::Bytes,
    sink: Arc<dyn Sink>,
    policy: OutboxPolicy,
}

enum Next {
    Again,
    /// Until new records are written (or the time, if any).
    Wait(Option<Timestamp>),
    /// Until the time only: a retry's backoff, which new writes must not cut short.
    Backoff(Timestamp),
    Stop,
}

impl Worker {
    async fn run(self, mut shutdown: cloudlet_core::ShutdownSignal) {
        let mut attempts = 0u32;
        loop {
            let written = self.signal.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if shutdown.is_requested() {
                return;
            }
            let until = match self.step(&mut attempts).await {
                Next::Again => continue,
                Next::Stop => return,
                Next::Wait(until) => until,
                Next::Backoff(at) => {
                    tokio::select! {
                        () = shutdown.requested() => return,
                        () = self.clock.sleep_until(at) => {}
                    }
                    continue;
                }
            };
            let retry = async {
                match until {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.requested() => return,
                () = written => {}
                () = retry => {}
            }
        }
    }

    /// The next records to deliver, or `None` once the table is gone.
    fn position(&self) -> Result<Option<(u64, Vec<StreamRecord>)>> {
        let snapshot = self.store.snapshot()?;
        let live = Tuple::new().u64(self.table_id).build();
        if snapshot.get(crate::service::KS_LIVE, &live)?.is_none() {
            return Ok(None);
        }
        let stored = read_counter(&snapshot, &self.key)?.max(1);
        let trimmed = read_counter(&snapshot, &trimmed_key(self.table_id))?;
        let position = stored.max(trimmed + 1);
        let records = read_records(
            &snapshot,
            self.table_id,
            position,
            self.policy.batch_size.max(1),
        )?;
        Ok(Some((position, records)))
    }

    async fn save(&self, position: u64) -> Result<()> {
        let key = self.key.clone();
        self.store
            .write(Durability::Durable, move |txn| {
                txn.put(KS_META, key, counter_bytes(position));
                Ok::<_, Error>(())
            })
            .await
    }

    fn failed(&self, error: &Error) -> Next {
        tracing::warn!(%error, "kv stream delivery could not read or checkpoint");
        if self.store.is_poisoned() {
            Next::Stop
        } else {
            Next::Backoff(self.clock.now().saturating_add(self.policy.backoff(1)))
        }
    }

    async fn step(&self, attempts: &mut u32) -> Next {
        let (position, records) = match self.position() {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::info!("kv stream subscription ends: its table was deleted");
                return Next::Stop;
            }
            Err(error) => return self.failed(&error),
        };
        if records.is_empty() {
            return Next::Wait(None);
        }
        let messages: Vec<Message> = records
            .iter()
            .map(|r| Message::new(event_json(r, &self.region, &self.stream_arn).to_string()))
            .collect();
        let results = self.sink.deliver_batch(messages.clone()).await;
        // A sink that answers for fewer messages than it was given failed the rest, retryably.
        let delivered = results
            .iter()
            .take_while(|r| r.is_ok())
            .count()
            .min(records.len());
        let sequence = |i: usize| {
            records[i]
                .sequence_number
                .parse::<u64>()
                .unwrap_or(position)
        };
        if delivered == records.len() {
            *attempts = 0;
            return match self.save(sequence(records.len() - 1) + 1).await {
                Ok(()) => Next::Again,
                Err(error) => self.failed(&error),
            };
        }
        let failure = match results.get(delivered) {
            Some(Err(failure)) => failure.clone(),
            _ => DeliveryError::unavailable("the sink gave no answer for this record"),
        };
        if delivered > 0 {
            // Progress: the count starts again for the record that now heads the stream.
            *attempts = 0;
            if let Err(error) = self.save(sequence(delivered - 1) + 1).await {
                return self.failed(&error);
            }
        }
        *attempts += 1;
        let exhausted = self.policy.max_attempts.is_some_and(|max| *attempts >= max);
        if !failure.is_retryable() || exhausted {
            if let Some(dead_letter) = &self.policy.dead_letter
                && let Err(error) = dead_letter.deliver(messages[delivered].clone()).await
            {
                // Never lose a record: keep it at the head and try again later.
                tracing::warn!(%error, "kv stream record kept: the dead-letter sink failed too");
                return Next::Backoff(
                    self.clock
                        .now()
                        .saturating_add(self.policy.backoff(*attempts)),
                );
            }
            tracing::warn!(error = %failure, "kv stream record skipped after failed delivery");
            *attempts = 0;
            return match self.save(sequence(delivered) + 1).await {
                Ok(()) => Next::Again,
                Err(error) => self.failed(&error),
            };
        }
        Next::Backoff(
            self.clock
                .now()
                .saturating_add(self.policy.backoff(*attempts)),
        )
    }
}
