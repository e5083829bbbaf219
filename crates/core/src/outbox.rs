//! The transactional outbox: events written in the same transaction as the change that caused
//! them, then delivered to a [`Sink`] by a background task, with retries and backoff on the
//! [`Clock`](crate::Clock), removed only once the sink has accepted them.
//!
//! An accepted change therefore never loses its event, across crashes; a sink may see an event
//! twice (a crash between delivery and removal), never zero times.
//!
//! ```
//! use std::sync::Arc;
//! use cloudlet_core::{ChannelSink, Durability, ManualClock, Message, Store};
//! use cloudlet_core::outbox::{Outbox, OutboxPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_core::Error> {
//! let store = Store::memory();
//! let clock = ManualClock::default();
//! let events = Outbox::new("orders.events");
//! let (sink, mut delivered) = ChannelSink::new();
//! let task = events.start(store.clone(), clock.shared(), Arc::new(sink), OutboxPolicy::default());
//!
//! let outbox = events.clone();
//! store.write(Durability::Durable, move |txn| {
//!     txn.put("orders", "o-1", "placed");
//!     outbox.push(txn, &Message::new("order o-1 placed"))
//! }).await?;
//!
//! assert_eq!(delivered.recv().await.unwrap().body, "order o-1 placed");
//! task.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::pending;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::clock::{SharedClock, Timestamp};
use crate::engine::{Direction, Durability, KeyRange, prefix_successor};
use crate::keys::{Tuple, TupleReader};
use crate::message::{DeliveryError, Message, Sink};
use crate::store::{ReadView, Store, WriteTxn};
use crate::task::{BackgroundTask, ShutdownSignal};
use crate::{Error, Result};

/// How many message groups an ordered outbox looks at per delivery step for messages that
/// are due (the groups after them wait for a later step).
pub const ORDERED_GROUP_LIMIT: usize = 10_000;

/// The keyspace that holds every outbox's records.
pub const OUTBOX_KEYSPACE: &str = "cloudlet.outbox";

const RECORD_FORMAT: u8 = 1;
/// Second key element: the sequence counter, the records by sequence number, and the due
/// index by (next attempt, sequence number).
const COUNTER: u64 = 0;
const RECORDS: u64 = 1;
const DUE: u64 = 2;
/// The records by (message group, sequence number): an ordered outbox finds each group's
/// oldest record by seeking, one group at a time.
const GROUPS: u64 = 3;

/// A retry schedule: the wait after a message's `n`-th failed attempt (`n` from 1). Set with
/// [`OutboxPolicy::with_schedule`] when the backoff is not a plain exponential one.
pub type RetrySchedule = Arc<dyn Fn(u32) -> Duration + Send + Sync>;

/// How an outbox retries.
#[derive(Clone)]
#[non_exhaustive]
pub struct OutboxPolicy {
    /// Failed attempts after which a message goes to the dead-letter sink (or, without one, is
    /// dropped with an error log). `None` retries forever. Default `None`.
    pub max_attempts: Option<u32>,
    /// The wait after the first failure. Default 1 s.
    pub initial_backoff: Duration,
    /// The longest wait between attempts. Default 5 minutes.
    pub max_backoff: Duration,
    /// Each wait is this many times the one before. Default 2.
    pub backoff_multiplier: u32,
    /// Messages handed to the sink per `deliver_batch`. Default 10.
    pub batch_size: usize,
    /// Where messages go when rejected or out of attempts.
    pub dead_letter: Option<Arc<dyn Sink>>,
    /// Deliver each message group in order (for FIFO sinks): a group's next message goes only
    /// once the one before it is delivered (or dead-lettered), so a failing message holds back
    /// its own group and no other; messages without a group form one group. Each step finds
    /// each group's oldest message through an index by group, for up to
    /// [`ORDERED_GROUP_LIMIT`] groups. Default false.
    pub ordered: bool,
    /// Replaces the exponential backoff above when set.
    pub schedule: Option<RetrySchedule>,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            max_attempts: None,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            backoff_multiplier: 2,
            batch_size: 10,
            dead_letter: None,
            ordered: false,
            schedule: None,
        }
    }
}

impl OutboxPolicy {
    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sets the backoff: first wait, longest wait, growth factor.
    pub fn with_backoff(mut self, initial: Duration, max: Duration, multiplier: u32) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self.backoff_multiplier = multiplier.max(1);
        self
    }

    /// Sets the dead-letter sink.
    pub fn with_dead_letter(mut self, sink: Arc<dyn Sink>) -> Self {
        self.dead_letter = Some(sink);
        self
    }

    /// Sets [`batch_size`](Self::batch_size) (at least 1).
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Delivers in strict order.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Sets a [`RetrySchedule`], which then decides every wait.
    pub fn with_schedule(
        mut self,
        schedule: impl Fn(u32) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.schedule = Some(Arc::new(schedule));
        self
    }

    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        if let Some(schedule) = &self.schedule {
            return schedule(attempts);
        }
        let factor = u64::from(self.backoff_multiplier).saturating_pow(attempts.saturating_sub(1));
        let nanos = u64::try_from(self.initial_backoff.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max_backoff)
    }
}

impl fmt::Debug for OutboxPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("backoff_multiplier", &self.backoff_multiplier)
            .field("batch_size", &self.batch_size)
            .field("dead_letter", &self.dead_letter.is_some())
            .field("ordered", &self.ordered)
            .field("schedule", &self.schedule.is_some())
            .finish()
    }
}

/// A named outbox: a value, cheap to clone. Every `Outbox` with the same name on the same
/// [`Store`] is the same outbox; run one delivery task per name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Outbox {
    name: String,
}

/// One stored message with its delivery state.
#[derive(Debug, Clone)]
struct Record {
    attempts: u32,
    next_attempt: Timestamp,
    message: Message,
}

impl Record {
    fn encode(&self) -> Bytes {
        let message = self.message.encode();
        let mut out = BytesMut::with_capacity(13 + message.len());
        out.put_u8(RECORD_FORMAT);
        out.put_u32(self.attempts);
        out.put_u64(self.next_attempt.as_nanos());
        out.put_slice(&message);
        out.freeze()
    }

    fn decode(mut data: Bytes) -> Result<Self> {
        if data.len() < 13 || data.get_u8() != RECORD_FORMAT {
            return Err(Error::corrupt(OUTBOX_KEYSPACE, "bad outbox record header"));
        }
        let attempts = data.get_u32();
        let next_attempt = Timestamp::from_nanos(data.get_u64());
        Ok(Self {
            attempts,
            next_attempt,
            message: Message::decode(data)?,
        })
    }
}

impl Outbox {
    /// The outbox called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The outbox's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store signal that wakes this outbox's delivery task.
    fn signal_name(&self) -> String {
        format!("{OUTBOX_KEYSPACE}/{}", self.name)
    }

    fn record_key(&self, seq: u64) -> Bytes {
        Tuple::new().str(&self.name).u64(RECORDS).u64(seq).build()
    }

    fn due_key(&self, at: Timestamp, seq: u64) -> Bytes {
        Tuple::new()
            .str(&self.name)
            .u64(DUE)
            .u64(at.as_nanos())
            .u64(seq)
            .build()
    }

    /// The prefix of a message group's entries in [`GROUPS`] (messages without a group form
    /// a group of their own).
    fn group_prefix(&self, group: Option<&str>) -> Tuple {
        let tuple = Tuple::new().str(&self.name).u64(GROUPS);
        match group {
            None => tuple.u64(0),
            Some(group) => tuple.u64(1).str(group),
        }
    }

    fn group_key(&self, group: Option<&str>, seq: u64) -> Bytes {
        self.group_prefix(group).u64(seq).build()
    }

    fn section(&self, section: u64) -> KeyRange {
        KeyRange::prefix(Tuple::new().str(&self.name).u64(section).build())
    }

    /// Adds `message` to the outbox inside `txn`: it is delivered only if `txn` commits, and
    /// outboxes deliver in the order of pushes.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`] from reading the outbox's counter.
    pub fn push(&self, txn: &mut WriteTxn<'_>, message: &Message) -> Result<()> {
        let counter = Tuple::new().str(&self.name).u64(COUNTER).build();
        let seq = txn.next_sequence(OUTBOX_KEYSPACE, &counter)?;
        let record = Record {
            attempts: 0,
            next_attempt: Timestamp::EPOCH,
            message: message.clone(),
        };
        txn.put(OUTBOX_KEYSPACE, self.record_key(seq), record.encode());
        txn.put(
            OUTBOX_KEYSPACE,
            self.due_key(Timestamp::EPOCH, seq),
            Bytes::new(),
        );
        txn.put(
            OUTBOX_KEYSPACE,
            self.group_key(message.group_id.as_deref(), seq),
            Bytes::new(),
        );
        txn.notify_on_commit(&self.signal_name());
        Ok(())
    }

    /// Removes every message of the outbox, in transactions of at most 1,000 keys, and its
    /// sequence counter; returns how many messages were removed. Stop its delivery task first.
    /// Pushes that commit meanwhile may be removed too, or stay.
    ///
    /// # Errors
    /// [`Error::Storage`] when a read or a write fails (what was removed stays removed).
    pub async fn clear(&self, store: &Store) -> Result<usize> {
        const CHUNK: usize = 1000;
        let mut removed = 0;
        loop {
            let keys: Vec<(Bytes, bool)> = {
                let snapshot = store.snapshot()?;
                let mut keys = Vec::new();
                for (section, is_record) in [(RECORDS, true), (DUE, false), (GROUPS, false)] {
                    for entry in snapshot.range(
                        OUTBOX_KEYSPACE,
                        &self.section(section),
                        Direction::Forward,
                    )? {
                        keys.push((entry?.0, is_record));
                        if keys.len() >= CHUNK {
                            break;
                        }
                    }
                    if keys.len() >= CHUNK {
                        break;
                    }
                }
                keys
            };
            if keys.is_empty() {
                // The counter goes only with the last record, in one transaction: a push that
                // committed since the scan keeps its sequence.
                let counter = Tuple::new().str(&self.name).u64(COUNTER).build();
                let records = self.section(RECORDS);
                let emptied = store
                    .write(Durability::Durable, move |txn| {
                        let empty = txn
                            .first(OUTBOX_KEYSPACE, &records, Direction::Forward)?
                            .is_none();
                        if empty {
                            txn.delete(OUTBOX_KEYSPACE, counter);
                        }
                        Ok::<_, Error>(empty)
                    })
                    .await?;
                if emptied {
                    return Ok(removed);
                }
                continue;
            }
            removed += keys.iter().filter(|(_, is_record)| *is_record).count();
            store
                .write(Durability::Durable, move |txn| {
                    for (key, _) in keys {
                        txn.delete(OUTBOX_KEYSPACE, key);
                    }
                    Ok::<_, Error>(())
                })
                .await?;
        }
    }

    /// How many messages wait for delivery.
    ///
    /// # Errors
    /// [`Error::Storage`] when the read fails.
    pub fn pending(&self, view: &impl ReadView) -> Result<usize> {
        let mut count = 0;
        for entry in view.range(OUTBOX_KEYSPACE, &self.section(RECORDS), Direction::Forward)? {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Starts delivering to `sink` in the background. Messages pushed before a restart are
    /// delivered too. The task stops by itself if the store is poisoned.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start(
        &self,
        store: Store,
        clock: SharedClock,
        sink: Arc<dyn Sink>,
        policy: OutboxPolicy,
    ) -> BackgroundTask {
        let worker = Worker {
            outbox: self.clone(),
            signal: store.signal(&self.signal_name()),
            store,
            clock,
            sink,
            policy,
        };
        BackgroundTask::spawn(format!("outbox {}", self.name), move |shutdown| {
            worker.run(shutdown)
        })
    }
}

struct Worker {
    outbox: Outbox,
    signal: Arc<tokio::sync::Notify>,
    store: Store,
    clock: SharedClock,
    sink: Arc<dyn Sink>,
    policy: OutboxPolicy,
}

/// A record due for delivery.
struct DueRecord {
    seq: u64,
    record: Record,
}

/// What a scan found.
struct Due {
    records: Vec<DueRecord>,
    /// The earliest time a record not yet due becomes due.
    next: Option<Timestamp>,
}

/// What the worker does after a step.
enum Step {
    /// Look again at once: more may be due.
    Again,
    /// Wait for a push, or until the given time.
    Wait(Option<Timestamp>),
    /// The store can no longer record deliveries; stop.
    Stop,
}

impl Worker {
    async fn run(self, mut shutdown: ShutdownSignal) {
        if self.policy.ordered
            && let Err(error) = self.index_groups().await
        {
            tracing::error!(outbox = %self.outbox.name, %error, "could not index the outbox's message groups");
        }
        loop {
            let pushed = self.signal.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            if shutdown.is_requested() {
                return;
            }
            let until = match self.step().await {
                Step::Again => continue,
                Step::Stop => return,
                Step::Wait(until) => until,
            };
            let timer = async {
                match until {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                () = &mut pushed => {}
                () = timer => {}
                () = shutdown.requested() => return,
            }
        }
    }

    /// Puts every pending record into the group index (records stored by builds before the
    /// index existed have no entry there; putting an existing entry again changes nothing).
    async fn index_groups(&self) -> Result<()> {
        const CHUNK: usize = 1000;
        let mut after: Option<Bytes> = None;
        loop {
            let entries: Vec<(Bytes, Bytes)> = {
                let snapshot = self.store.snapshot()?;
                let section = self.outbox.section(RECORDS);
                let lower = match &after {
                    Some(key) => Bound::Excluded(key.clone()),
                    None => section.start.clone(),
                };
                let range = KeyRange::new((lower, section.end.clone()));
                let mut entries = Vec::new();
                for entry in snapshot.range(OUTBOX_KEYSPACE, &range, Direction::Forward)? {
                    let (key, value) = entry?;
                    let mut reader = TupleReader::new(&key);
                    reader.str()?;
                    reader.u64()?;
                    let seq = reader.u64()?;
                    let record = Record::decode(value)?;
                    entries.push((
                        key.clone(),
                        self.outbox
                            .group_key(record.message.group_id.as_deref(), seq),
                    ));
                    if entries.len() >= CHUNK {
                        break;
                    }
                }
                entries
            };
            let Some((last, _)) = entries.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let full = entries.len() >= CHUNK;
            self.store
                .write(Durability::Durable, move |txn| {
                    for (record, group) in entries {
                        // Only for records still there.
                        if txn.get(OUTBOX_KEYSPACE, &record)?.is_some() {
                            txn.put(OUTBOX_KEYSPACE, group, Bytes::new());
                        }
                    }
                    Ok::<_, Error>(())
                })
                .await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Delivers one batch of due records.
    async fn step(&self) -> Step {
        let now = self.clock.now();
        let due = match self.scan(now) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(outbox = %self.outbox.name, %error, "outbox scan failed");
                return Step::Wait(Some(now.saturating_add(self.policy.initial_backoff)));
            }
        };
        if due.records.is_empty() {
            return Step::Wait(due.next);
        }
        let messages = due
            .records
            .iter()
            .map(|d| d.record.message.clone())
            .collect();
        let mut results = self.sink.deliver_batch(messages).await.into_iter();
        let mut deletes = Vec::new();
        let mut retries = Vec::new();
        for DueRecord { seq, mut record } in due.records {
            let result = results.next().unwrap_or_else(|| {
                Err(DeliveryError::unavailable(
                    "the sink gave no result for this message",
                ))
            });
            deletes.push(self.outbox.due_key(record.next_attempt, seq));
            let give_up = match &result {
                Ok(()) => {
                    deletes.push(self.outbox.record_key(seq));
                    deletes.push(
                        self.outbox
                            .group_key(record.message.group_id.as_deref(), seq),
                    );
                    continue;
                }
                Err(DeliveryError::Rejected { .. }) => true,
                Err(_) => self
                    .policy
                    .max_attempts
                    .is_some_and(|max| record.attempts.saturating_add(1) >= max),
            };
            record.attempts = record.attempts.saturating_add(1);
            if give_up && self.dead_letter(seq, &record, result).await {
                deletes.push(self.outbox.record_key(seq));
                deletes.push(
                    self.outbox
                        .group_key(record.message.group_id.as_deref(), seq),
                );
            } else {
                record.next_attempt = now.saturating_add(self.policy.backoff(record.attempts));
                // Kept only while the record is still there: an outbox cleared meanwhile
                // (`Outbox::clear`) stays cleared.
                let key = self.outbox.record_key(seq);
                retries.push((
                    key.clone(),
                    self.outbox.due_key(record.next_attempt, seq),
                    record.encode(),
                ));
            }
        }
        let write = self.store.write(Durability::Durable, move |txn| {
            for key in deletes {
                txn.delete(OUTBOX_KEYSPACE, key);
            }
            for (key, due, record) in retries {
                if txn.get(OUTBOX_KEYSPACE, &key)?.is_some() {
                    txn.put(OUTBOX_KEYSPACE, due, Bytes::new());
                    txn.put(OUTBOX_KEYSPACE, key, record);
                }
            }
            Ok::<(), Error>(())
        });
        match write.await {
            Ok(()) => Step::Again,
            Err(error) if self.store.is_poisoned() || matches!(error, Error::Closed) => {
                tracing::error!(outbox = %self.outbox.name, %error, "outbox stopped: deliveries can no longer be recorded");
                Step::Stop
            }
            Err(error) => {
                tracing::error!(outbox = %self.outbox.name, %error, "outbox update failed");
                Step::Wait(Some(now.saturating_add(self.policy.initial_backoff)))
            }
        }
    }

    /// Hands a message that will not be retried to the dead-letter sink. True when it may be
    /// removed from the outbox.
    async fn dead_letter(
        &self,
        seq: u64,
        record: &Record,
        result: std::result::Result<(), DeliveryError>,
    ) -> bool {
        // A record cleared while it was being delivered (`Outbox::clear`, say for a removed
        // subscription) is not dead-lettered.
        let still_there = self
            .store
            .snapshot()
            .and_then(|s| s.get(OUTBOX_KEYSPACE, &self.outbox.record_key(seq)))
            .map_or(true, |r| r.is_some());
        if !still_there {
            return true;
        }
        let reason = result.err().map(|e| e.to_string()).unwrap_or_default();
        match &self.policy.dead_letter {
            None => {
                tracing::error!(
                    outbox = %self.outbox.name, attempts = record.attempts, %reason,
                    "dropping a message that could not be delivered (no dead-letter sink)"
                );
                true
            }
            Some(dead_letter) => match dead_letter.deliver(record.message.clone()).await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(outbox = %self.outbox.name, %error, "dead-letter sink failed; will retry");
                    false
                }
            },
        }
    }

    fn scan(&self, now: Timestamp) -> Result<Due> {
        let snapshot = self.store.snapshot()?;
        let mut due = Due {
            records: Vec::new(),
            next: None,
        };
        let corrupt = |e: Error| Error::corrupt(OUTBOX_KEYSPACE, format!("bad outbox key: {e}"));
        if self.policy.ordered {
            // Per group, only the oldest record may go, and only once it is due: seek to each
            // group's first entry in the group index, then past the group.
            let section = self.outbox.section(GROUPS);
            let upper = section.end.clone();
            let mut lower = section.start.clone();
            let mut groups = 0;
            while groups < ORDERED_GROUP_LIMIT && due.records.len() < self.policy.batch_size {
                let range = KeyRange::new((lower.clone(), upper.clone()));
                let Some((key, _)) = snapshot.first(OUTBOX_KEYSPACE, &range, Direction::Forward)?
                else {
                    break;
                };
                let mut reader = TupleReader::new(&key);
                let (group, seq) = (|| -> Result<(Option<String>, u64)> {
                    reader.str()?;
                    reader.u64()?;
                    let group = match reader.u64()? {
                        0 => None,
                        _ => Some(reader.str()?),
                    };
                    Ok((group, reader.u64()?))
                })()
                .map_err(corrupt)?;
                let Some(value) = snapshot.get(OUTBOX_KEYSPACE, &self.outbox.record_key(seq))?
                else {
                    // An entry whose record is gone (cleared meanwhile): look further in the
                    // same group.
                    lower = Bound::Excluded(key.clone());
                    continue;
                };
                groups += 1;
                let prefix = self.outbox.group_prefix(group.as_deref()).build();
                lower = match prefix_successor(&prefix) {
                    Some(next) => Bound::Included(Bytes::from(next)),
                    None => break,
                };
                let record = Record::decode(value)?;
                if record.next_attempt <= now {
                    due.records.push(DueRecord { seq, record });
                } else {
                    due.next = Some(due.next.map_or(record.next_attempt, |n: Timestamp| {
                        n.min(record.next_attempt)
                    }));
                }
            }
            return Ok(due);
        }
        for entry in snapshot.range(
            OUTBOX_KEYSPACE,
            &self.outbox.section(DUE),
            Direction::Forward,
        )? {
            let (key, _) = entry?;
            let mut reader = TupleReader::new(&key);
            let (at, seq) = (|| -> Result<(u64, u64)> {
                reader.str()?;
                reader.u64()?;
                Ok((reader.u64()?, reader.u64()?))
            })()
            .map_err(corrupt)?;
            let at = Timestamp::from_nanos(at);
            if at > now {
                due.next = Some(at);
                break;
            }
            let Some(value) = snapshot.get(OUTBOX_KEYSPACE, &self.outbox.record_key(seq))? else {
                return Err(Error::corrupt(
                    OUTBOX_KEYSPACE,
                    format!("due entry {seq} has no record"),
                ));
            };
            due.records.push(DueRecord {
                seq,
                record: Record::decode(value)?,
            });
            if due.records.len() >= self.policy.batch_size {
                break;
            }
        }
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{ChannelSink, ManualClock};

    /// Records stored before the group index existed (no entries under [`GROUPS`]) are
    /// indexed when an ordered outbox starts, and delivered per group.
    #[tokio::test]
    async fn an_ordered_outbox_indexes_records_stored_without_the_group_index() {
        let store = Store::memory();
        let outbox = Outbox::new("legacy");
        let pushed = outbox.clone();
        store
            .write(Durability::Durable, move |txn| {
                for (group, body) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
                    pushed.push(txn, &Message::new(body).with_group_id(group))?;
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        // As an earlier build stored them: no group entries.
        let groups: Vec<Bytes> = store
            .snapshot()
            .unwrap()
            .range(OUTBOX_KEYSPACE, &outbox.section(GROUPS), Direction::Forward)
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(groups.len(), 3);
        store
            .write(Durability::Durable, move |txn| {
                for key in groups {
                    txn.delete(OUTBOX_KEYSPACE, key);
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        let (sink, mut delivered) = ChannelSink::new();
        let task = outbox.start(
            store.clone(),
            ManualClock::default().shared(),
            Arc::new(sink),
            OutboxPolicy::default().ordered(),
        );
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let message = delivered.recv().await.unwrap();
            bodies.push(String::from_utf8(message.body.to_vec()).unwrap());
        }
        let of_a: Vec<&String> = bodies.iter().filter(|b| b.starts_with('a')).collect();
        assert_eq!(of_a, ["a1", "a2"]);
        task.shutdown().await;
        // Delivered records leave no index entry behind.
        let left = store
            .snapshot()
            .unwrap()
            .range(OUTBOX_KEYSPACE, &KeyRange::all(), Direction::Forward)
            .unwrap()
            .count();
        assert_eq!(left, 1, "only the sequence counter is left");
    }
}
