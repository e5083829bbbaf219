//! [`QueueService`]: the queue API over a [`Store`] and a [`Clock`](cloudlet_core::Clock).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{
    Direction, Durability, IdGenerator, KeyRange, Message, ReadView, SharedClock, Store, Timestamp,
    WriteTxn,
};

use crate::api::{
    BatchResult, BatchResultErrorEntry, ChangeVisibilityEntry, QueuePage, Queues, ReceiveMessage,
    ReceivedMessage, SendMessage, SendMessageBatchEntry, SendMessageBatchResult, SendMessageResult,
};
use crate::attributes::{MAX_VISIBILITY_TIMEOUT, QueueAttributes, SETTABLE};
use crate::names::{validate_batch_entry_id, validate_queue_name};
use crate::record::{
    KS_ATTEMPTS, KS_DEDUP, KS_GROUPS, KS_MESSAGES, KS_META, KS_QUEUES, KS_READY, MessageRecord,
    QueueRecord, Receipt, attempt_key, encode_attempt, fair_key, group_key, message_key,
    queue_prefix, ready_key, ready_received_enqueued, ready_value, received_key,
};
use crate::send::{message_size, validate_fifo_id};
use crate::{Error, Result};

/// The most message attributes a message may carry.
pub(crate) const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The most entries in a batch.
const MAX_BATCH: usize = 10;
/// The most a send batch may hold, bodies and attributes together.
const MAX_BATCH_BYTES: usize = 1_048_576;
/// PurgeQueue's cool-down.
const PURGE_COOLDOWN: Duration = Duration::from_secs(60);
/// SQS's tag limits: at most 50 tags a queue, keys of 1-128 characters, values of up to 256
/// (characters, not bytes).
fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(Error::invalid(
                "Tags",
                "tag keys are 1-128 characters, values up to 256",
            ));
        }
    }
    if tags.len() > 50 {
        return Err(Error::invalid("Tags", "a queue has at most 50 tags"));
    }
    Ok(())
}

/// How long after a queue is deleted its name stays taken, as SQS has it.
const RECREATE_COOLDOWN: Duration = Duration::from_secs(60);

/// In `KS_META`: when the queue of a name was last deleted, in milliseconds.
fn deleted_key(name: &str) -> Bytes {
    Tuple::new().str("deleted").str(name).build()
}

/// SQS semantics over cloudlet storage: every queue of one account and region.
#[derive(Clone)]
pub struct QueueService {
    store: Store,
    clock: SharedClock,
    ids: std::sync::Arc<IdGenerator>,
    region: String,
    account: String,
    moves: std::sync::Arc<std::sync::Mutex<crate::redrive::MoveTasks>>,
    in_flight_limit: usize,
}

/// SQS's cap on a queue's in-flight messages (standard and FIFO queues alike).
pub const IN_FLIGHT_LIMIT: usize = 120_000;

impl fmt::Debug for QueueService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueService")
            .field("region", &self.region)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

pub(crate) fn signal_name(queue: u64) -> String {
    format!("{KS_QUEUES}/{queue}")
}

impl QueueService {
    /// The service over `store`, in region `us-east-1`, account `000000000000`.
    ///
    /// Use one service (and its clones) per store: each service runs the message-move tasks
    /// stored there, so two would move at twice the rate.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            ids: std::sync::Arc::new(IdGenerator::new(clock.clone())),
            store,
            clock,
            region: "us-east-1".to_owned(),
            account: "000000000000".to_owned(),
            moves: std::sync::Arc::default(),
            in_flight_limit: IN_FLIGHT_LIMIT,
        }
    }

    /// The same service with another cap on each queue's in-flight messages (received, not
    /// deleted, visibility timeout not over): [`IN_FLIGHT_LIMIT`] by default, as SQS has it.
    /// A lower one lets a test reach it. At the cap, a short-polling receive from a standard
    /// queue fails with [`Error::OverLimit`], and other receives get no messages.
    pub fn with_in_flight_limit(mut self, limit: usize) -> Self {
        self.in_flight_limit = limit;
        self
    }

    /// Adds `delta` to the count of `queue`'s messages received and not deleted.
    pub(crate) fn count_received(txn: &mut WriteTxn<'_>, queue: u64, delta: i64) -> Result<()> {
        let key = received_key(queue);
        let next = Self::received(txn, queue)?.saturating_add_signed(delta);
        if next == 0 {
            txn.delete(KS_META, key);
        } else {
            txn.put(KS_META, key, Bytes::copy_from_slice(&next.to_be_bytes()));
        }
        Ok(())
    }

    /// How many of `queue`'s messages were received and not deleted since.
    fn received(txn: &WriteTxn<'_>, queue: u64) -> Result<u64> {
        match txn.get(KS_META, &received_key(queue))? {
            Some(raw) => Ok(u64::from_be_bytes(raw.as_ref().try_into().map_err(
                |_| {
                    Error::Storage(cloudlet_core::Error::corrupt(
                        KS_META,
                        "a received count is not 8 bytes",
                    ))
                },
            )?)),
            None => Ok(0),
        }
    }

    /// How many of `wanted` messages a receive may take from `queue` at `now` without putting
    /// more than `limit` in flight, and, when none, the first time one in flight becomes
    /// visible again. Cheap while that many more received messages would stay within the
    /// limit even if all were in flight; otherwise it counts the ready entries of received
    /// messages due after `now` and still within the retention period, up to `limit`.
    fn in_flight_room(
        txn: &WriteTxn<'_>,
        queue: &QueueRecord,
        now: Timestamp,
        limit: usize,
        wanted: usize,
    ) -> Result<(usize, Option<Timestamp>)> {
        let retention = Duration::from_secs(queue.attributes.message_retention_period.into());
        let queue = queue.id;
        let received = match Self::received(txn, queue) {
            // An unreadable count only costs the exact one below.
            Err(Error::Storage(cloudlet_core::Error::Corrupt { .. })) => u64::MAX,
            other => other?,
        };
        if received.saturating_add(wanted as u64) <= limit as u64 {
            return Ok((wanted, None));
        }
        let after_now = Tuple::new()
            .u64(queue)
            .u64(now.as_nanos().saturating_add(1))
            .build();
        let range = KeyRange {
            start: std::ops::Bound::Included(after_now),
            end: KeyRange::prefix(queue_prefix(queue)).end,
        };
        let (mut in_flight, mut first) = (0, None);
        for entry in txn.range(KS_READY, &range, Direction::Forward)? {
            let (key, value) = entry?;
            let Some(enqueued) = ready_received_enqueued(&value) else {
                continue;
            };
            if enqueued + retention <= now {
                // Gone for SQS; removed here when a receive reaches it.
                continue;
            }
            if first.is_none() {
                let mut reader = TupleReader::new(&key);
                reader.u64()?;
                first = Some(Timestamp::from_nanos(reader.u64()?));
            }
            in_flight += 1;
            if in_flight >= limit {
                return Ok((0, first));
            }
        }
        Ok((wanted.min(limit - in_flight), None))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn moves(&self) -> &std::sync::Mutex<crate::redrive::MoveTasks> {
        &self.moves
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn sleep(&self, duration: Duration) -> cloudlet_core::clock::Sleep {
        self.clock.sleep(duration)
    }

    pub(crate) fn next_id(&self) -> String {
        self.ids.next_id().to_string()
    }

    /// The same service answering as another region and account (they appear in URLs and
    /// ARNs, nothing else).
    pub fn with_account(mut self, region: impl Into<String>, account: impl Into<String>) -> Self {
        self.region = region.into();
        self.account = account.into();
        self
    }

    /// The URL SQS gives the queue `name`.
    pub fn queue_url(&self, name: &str) -> String {
        format!(
            "https://sqs.{}.amazonaws.com/{}/{name}",
            self.region, self.account
        )
    }

    /// The ARN of the queue `name`.
    pub fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    pub(crate) fn load_queue(view: &impl ReadView, queue: &str) -> Result<QueueRecord> {
        // A URL names the queue by its last path segment.
        let name = queue.rsplit('/').next().unwrap_or(queue);
        match view.get(KS_QUEUES, name.as_bytes())? {
            Some(raw) => QueueRecord::decode(&raw),
            None => Err(Error::QueueDoesNotExist {
                queue: queue.to_owned(),
            }),
        }
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        // Message-move tasks a previous run left running go on once this process acts.
        self.resume_moves();
        self.store.write(Durability::Durable, f).await
    }

    async fn update_queue(
        &self,
        queue: &str,
        change: impl FnOnce(&mut QueueRecord) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let queue = queue.to_owned();
        let now = self.clock.now();
        self.write(move |txn| {
            let mut record = Self::load_queue(txn, &queue)?;
            change(&mut record)?;
            record.last_modified = now.as_secs();
            txn.put(KS_QUEUES, record.name.clone(), record.encode()?);
            Ok(())
        })
        .await
    }

    /// Moves a stored message to a new visibility time: its ready-index entry and its record.
    pub(crate) fn set_visibility(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        record: &mut MessageRecord,
        visible_at: Timestamp,
    ) {
        txn.delete(KS_READY, ready_key(queue.id, record.visible_at, record.seq));
        record.visible_at = visible_at;
        txn.put(
            KS_READY,
            ready_key(queue.id, visible_at, record.seq),
            ready_value(record),
        );
        txn.put(
            KS_MESSAGES,
            message_key(queue.id, record.seq),
            record.encode(),
        );
    }

    /// Puts `record` into `queue`: the message, its ready entry, its FIFO group entry or (on a
    /// standard queue) the fair-queue marker, and wakes waiting receives.
    pub(crate) fn place(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        record: &MessageRecord,
    ) -> Result<()> {
        if record.receive_count > 0 {
            // Moved here after receives elsewhere (a dead-letter queue): it counts here now.
            Self::count_received(txn, queue.id, 1)?;
        }
        txn.put(
            KS_MESSAGES,
            message_key(queue.id, record.seq),
            record.encode(),
        );
        txn.put(
            KS_READY,
            ready_key(queue.id, record.visible_at, record.seq),
            ready_value(record),
        );
        if let Some(group) = &record.message.group_id {
            if queue.attributes.fifo_queue {
                txn.put(
                    KS_GROUPS,
                    group_key(queue.id, group, record.seq),
                    Bytes::new(),
                );
            } else if txn.get(KS_META, &fair_key(queue.id))?.is_none() {
                // A standard queue with group ids is a fair queue from now on.
                txn.put(KS_META, fair_key(queue.id), Bytes::new());
            }
        }
        txn.notify_on_commit(&signal_name(queue.id));
        Ok(())
    }

    /// On a FIFO queue the queue's delay is retroactive (SQS documents it so, unlike standard
    /// queues): messages never received become visible at their enqueue time plus the new
    /// delay. Done in chunks of bounded size after the attribute change commits, so a large
    /// queue never makes one huge transaction; each chunk reads the queue's current delay.
    async fn redelay_fifo(&self, name: &str) -> Result<()> {
        const CHUNK: usize = 100;
        const CHUNK_BYTES: usize = 8 << 20;
        let mut after: Option<u64> = None;
        loop {
            let name = name.to_owned();
            let next = self
                .write(move |txn| {
                    let queue = Self::load_queue(txn, &name)?;
                    let delay = Duration::from_secs(queue.attributes.delay_seconds.into());
                    let prefix = queue_prefix(queue.id);
                    let range = KeyRange {
                        start: match after {
                            Some(seq) => std::ops::Bound::Excluded(message_key(queue.id, seq)),
                            None => std::ops::Bound::Included(prefix.clone()),
                        },
                        end: KeyRange::prefix(&prefix).end,
                    };
                    let mut records = Vec::new();
                    let (mut bytes, mut last, mut seen) = (0usize, None, 0usize);
                    for entry in txn.range(KS_MESSAGES, &range, Direction::Forward)? {
                        let (_, raw) = entry?;
                        bytes += raw.len();
                        let record = MessageRecord::decode(raw)?;
                        last = Some(record.seq);
                        seen += 1;
                        if record.receive_count == 0 {
                            records.push(record);
                        }
                        if seen >= CHUNK || bytes >= CHUNK_BYTES {
                            break;
                        }
                    }
                    for mut record in records {
                        let visible_at = record.enqueued + delay;
                        if visible_at != record.visible_at {
                            Self::set_visibility(txn, &queue, &mut record, visible_at);
                        }
                    }
                    // Waiting receives may now have messages sooner than they planned.
                    txn.notify_on_commit(&signal_name(queue.id));
                    Ok(last.filter(|_| seen >= CHUNK || bytes >= CHUNK_BYTES))
                })
                .await?;
            match next {
                Some(seq) => after = Some(seq),
                None => return Ok(()),
            }
        }
    }

    /// The names of up to `max` queues whose RedrivePolicy names the queue `target` as their
    /// dead-letter queue, in name order.
    pub(crate) fn dead_letter_sources(
        view: &impl ReadView,
        target: &str,
        max: usize,
    ) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in view.prefix(KS_QUEUES, b"", Direction::Forward)? {
            if names.len() == max {
                break;
            }
            let (_, raw) = entry?;
            let source = QueueRecord::decode(&raw)?;
            if source
                .attributes
                .redrive_policy
                .as_ref()
                .is_some_and(|p| arn_part(&p.dead_letter_target_arn, 5) == target)
            {
                names.push(source.name);
            }
        }
        Ok(names)
    }

    /// Up to `max` queue URLs of names starting with `prefix`, after the name `after`; and
    /// the last name returned when more follow.
    fn queue_page(
        &self,
        prefix: Option<&str>,
        max: usize,
        after: Option<String>,
    ) -> Result<(Vec<String>, Option<String>)> {
        let snapshot = self.store.snapshot()?;
        let prefix = prefix.unwrap_or("");
        let range = KeyRange {
            start: match after {
                Some(name) => std::ops::Bound::Excluded(Bytes::from(name.into_bytes())),
                None => std::ops::Bound::Included(Bytes::copy_from_slice(prefix.as_bytes())),
            },
            end: std::ops::Bound::Unbounded,
        };
        let mut names = Vec::new();
        for entry in snapshot.range(KS_QUEUES, &range, Direction::Forward)? {
            let (name, _) = entry?;
            let name = String::from_utf8_lossy(&name).into_owned();
            if !name.starts_with(prefix) || names.len() > max {
                break;
            }
            names.push(name);
        }
        let more = names.len() > max;
        names.truncate(max);
        let last = more.then(|| names.last().cloned()).flatten();
        Ok((names.iter().map(|n| self.queue_url(n)).collect(), last))
    }

    /// A `RedrivePolicy` must name an existing queue of the same kind, not the queue itself,
    /// whose `RedriveAllowPolicy` (if any) lets this queue use it.
    fn check_dead_letter_target(
        txn: &WriteTxn<'_>,
        name: &str,
        attributes: &QueueAttributes,
    ) -> Result<()> {
        let Some(policy) = &attributes.redrive_policy else {
            return Ok(());
        };
        let target = arn_part(&policy.dead_letter_target_arn, 5);
        let invalid = |reason: &str| {
            Error::invalid(
                "RedrivePolicy",
                format!("dead-letter target `{target}`: {reason}"),
            )
        };
        if target == name {
            return Err(invalid("a queue cannot be its own dead-letter queue"));
        }
        let target = Self::load_queue(txn, target).map_err(|_| invalid("does not exist"))?;
        if target.attributes.fifo_queue != attributes.fifo_queue {
            return Err(invalid(
                "must be the same kind of queue as the source (FIFO to FIFO)",
            ));
        }
        // The target's RedriveAllowPolicy says which queues may use it.
        let allow = target
            .attributes
            .redrive_allow_policy
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
        if let Some(allow) = allow {
            match allow["redrivePermission"].as_str() {
                Some("denyAll") => {
                    return Err(invalid(
                        "its RedriveAllowPolicy (denyAll) lets no queue use it as a dead-letter queue",
                    ));
                }
                Some("byQueue") => {
                    let listed = allow["sourceQueueArns"].as_array().is_some_and(|arns| {
                        arns.iter()
                            .any(|arn| arn.as_str().is_some_and(|arn| arn_part(arn, 5) == name))
                    });
                    if !listed {
                        return Err(invalid(
                            "its RedriveAllowPolicy (byQueue) does not list this queue",
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes a message and its index entries.
    pub(crate) fn forget(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        seq: u64,
        record: &MessageRecord,
    ) -> Result<()> {
        if record.receive_count > 0 {
            Self::count_received(txn, queue.id, -1)?;
        }
        txn.delete(KS_MESSAGES, message_key(queue.id, seq));
        txn.delete(KS_READY, ready_key(queue.id, record.visible_at, seq));
        if let Some(group) = &record.message.group_id
            && queue.attributes.fifo_queue
        {
            txn.delete(KS_GROUPS, group_key(queue.id, group, seq));
        }
        Ok(())
    }

    /// The counters of GetQueueAttributes: visible, in flight, delayed.
    fn counters(view: &impl ReadView, queue: &QueueRecord, now: Timestamp) -> Result<[u64; 3]> {
        let retention = Duration::from_secs(queue.attributes.message_retention_period.into());
        let mut counts = [0u64; 3];
        for entry in view.prefix(KS_MESSAGES, &queue_prefix(queue.id), Direction::Forward)? {
            let (_, raw) = entry?;
            let record = MessageRecord::decode(raw)?;
            if record.enqueued + retention <= now {
                continue;
            }
            let slot = if record.visible_at <= now {
                0
            } else if record.receive_count > 0 {
                1
            } else {
                2
            };
            counts[slot] += 1;
        }
        Ok(counts)
    }

    /// Deletes every message of `queue` within `txn`; with `everything`, also its remembered
    /// deduplication ids and receive attempts (when the queue itself goes).
    fn remove_messages(txn: &mut WriteTxn<'_>, queue: u64, everything: bool) -> Result<()> {
        let prefix = queue_prefix(queue);
        txn.delete(KS_META, received_key(queue));
        let keyspaces: &[&str] = if everything {
            &[KS_MESSAGES, KS_READY, KS_GROUPS, KS_DEDUP, KS_ATTEMPTS]
        } else {
            &[KS_MESSAGES, KS_READY, KS_GROUPS]
        };
        for &keyspace in keyspaces {
            let keys: Vec<Bytes> = txn
                .prefix(keyspace, &prefix, Direction::Forward)?
                .map(|entry| entry.map(|(key, _)| key))
                .collect::<std::result::Result<_, _>>()?;
            for key in keys {
                txn.delete(keyspace, key);
            }
        }
        Ok(())
    }

    /// Finds the message a receipt handle names, if the handle is the latest for it.
    fn load_receipt(
        txn: &WriteTxn<'_>,
        queue: &QueueRecord,
        handle: &str,
        now: Timestamp,
    ) -> Result<Option<(Receipt, MessageRecord)>> {
        let receipt = Receipt::parse(handle)?;
        if receipt.queue != queue.id {
            return Err(Error::ReceiptHandleIsInvalid {
                reason: "the receipt handle belongs to another queue".to_owned(),
            });
        }
        let Some(raw) = txn.get(KS_MESSAGES, &message_key(queue.id, receipt.seq))? else {
            return Ok(None);
        };
        let record = MessageRecord::decode(raw)?;
        let current = record.receipt == receipt.receipt;
        if queue.attributes.fifo_queue && (!current || record.visible_at <= now) {
            // FIFO queues refuse a handle once its visibility timeout has passed.
            return Err(Error::ReceiptHandleIsInvalid {
                reason: "the receipt handle has expired".to_owned(),
            });
        }
        Ok(current.then_some((receipt, record)))
    }

    /// Moves a message received `maxReceiveCount` times to the queue's dead-letter queue, as
    /// SQS does on the next receive. Returns whether it moved (a missing dead-letter queue
    /// leaves it where it is). It keeps its id, sent time (retention counts from the original
    /// enqueue) and receive count.
    pub(crate) fn dead_letter(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        record: &MessageRecord,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(policy) = &queue.attributes.redrive_policy else {
            return Ok(false);
        };
        if record.receive_count < policy.max_receive_count {
            return Ok(false);
        }
        let name = policy
            .dead_letter_target_arn
            .rsplit(':')
            .next()
            .unwrap_or_default();
        let Ok(target) = Self::load_queue(txn, name) else {
            return Ok(false);
        };
        let seq = txn.next_sequence(KS_META, &Tuple::new().str("seq").u64(target.id).build())?;
        let mut moved = MessageRecord {
            visible_at: now,
            receipt: 0,
            seq,
            dead_letter_source: Some(format!(
                "arn:aws:sqs:{}:{}:{}",
                arn_part(&policy.dead_letter_target_arn, 3),
                arn_part(&policy.dead_letter_target_arn, 4),
                queue.name
            )),
            ..record.clone()
        };
        if target.attributes.fifo_queue {
            // A FIFO dead-letter queue restarts retention and deduplicates by message id.
            moved.enqueued = now;
            moved.message.dedup_id = Some(moved.message_id.clone());
        }
        Self::place(txn, &target, &moved)?;
        Ok(true)
    }

    fn delete_in(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        handle: &str,
        now: Timestamp,
    ) -> Result<()> {
        // A handle that is not the latest is accepted and deletes nothing, as SQS documents for
        // standard queues: someone else holds the message now.
        if let Some((receipt, message)) = Self::load_receipt(txn, queue, handle, now)? {
            Self::forget(txn, queue, receipt.seq, &message)?;
            if queue.attributes.fifo_queue {
                // The next message of its group may now be receivable.
                txn.notify_on_commit(&signal_name(queue.id));
            }
        }
        Ok(())
    }

    fn change_visibility_in(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        handle: &str,
        timeout: u32,
        now: Timestamp,
    ) -> Result<()> {
        if timeout > MAX_VISIBILITY_TIMEOUT {
            return Err(Error::invalid(
                "VisibilityTimeout",
                format!("{timeout} is not from 0 to {MAX_VISIBILITY_TIMEOUT}"),
            ));
        }
        let Some((_, mut message)) = Self::load_receipt(txn, queue, handle, now)? else {
            return Err(Error::MessageNotInflight);
        };
        if message.visible_at <= now {
            return Err(Error::MessageNotInflight);
        }
        // The 12 hours count from the receive that issued this handle; shortening is always fine.
        let received_at = message.last_receive.unwrap_or(now);
        let until = now + Duration::from_secs(timeout.into());
        let cap = received_at + Duration::from_secs(MAX_VISIBILITY_TIMEOUT.into());
        if until > cap && until > message.visible_at {
            return Err(Error::invalid(
                "VisibilityTimeout",
                format!(
                    "a message can stay invisible at most 12 hours after it was received; {} s remain",
                    cap.saturating_duration_since(now).as_secs()
                ),
            ));
        }
        Self::set_visibility(txn, queue, &mut message, until);
        // An earlier visibility time may be what a long poll is waiting for.
        txn.notify_on_commit(&signal_name(queue.id));
        Ok(())
    }
}
/// How long a FIFO queue remembers a deduplication id.
pub(crate) const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// A field of an ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`), or empty.
pub(crate) fn arn_part(arn: &str, index: usize) -> &str {
    arn.split(':').nth(index).unwrap_or_default()
}

/// Checks a batch's entry ids: 1-10 entries, valid and distinct ids.
fn check_batch_ids<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Result<()> {
    match ids.len() {
        0 => return Err(Error::EmptyBatchRequest),
        count if count > MAX_BATCH => return Err(Error::TooManyEntriesInBatchRequest { count }),
        _ => {}
    }
    let mut seen = HashSet::new();
    for id in ids {
        validate_batch_entry_id(id)?;
        if !seen.insert(id) {
            return Err(Error::BatchEntryIdsNotDistinct { id: id.to_owned() });
        }
    }
    Ok(())
}

fn failure(id: String, error: &Error) -> BatchResultErrorEntry {
    BatchResultErrorEntry {
        id,
        code: error.code().to_owned(),
        message: error.to_string(),
        sender_fault: !matches!(error, Error::Storage(_)),
    }
}
#[async_trait]
impl Queues for QueueService {
    async fn create_queue(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<String> {
        let fifo = attributes.get("FifoQueue").is_some_and(|v| v == "true");
        validate_queue_name(name, fifo)?;
        check_tags(&tags)?;
        if !fifo && name.ends_with(".fifo") {
            return Err(Error::invalid(
                "QueueName",
                "a queue whose name ends in .fifo needs FifoQueue=true",
            ));
        }
        let mut wanted = QueueAttributes::new(fifo);
        wanted.apply(&attributes, true)?;
        let now = self.clock.now();
        let name = name.to_owned();
        let record_name = name.clone();
        self.write(move |txn| {
            if let Some(raw) = txn.get(KS_QUEUES, record_name.as_bytes())? {
                let existing = QueueRecord::decode(&raw)?;
                // Idempotent when every attribute given matches the existing queue's.
                for attribute in attributes.keys() {
                    if existing.attributes.get(attribute) != wanted.get(attribute) {
                        return Err(Error::QueueNameExists {
                            name: record_name,
                            attribute: attribute.clone(),
                        });
                    }
                }
                return Ok(());
            }
            let deleted = deleted_key(&record_name);
            if let Some(raw) = txn.get(KS_META, &deleted)? {
                let millis = <[u8; 8]>::try_from(raw.as_ref()).map_or(0, u64::from_be_bytes);
                if now < Timestamp::from_millis(millis) + RECREATE_COOLDOWN {
                    return Err(Error::QueueDeletedRecently { name: record_name });
                }
                txn.delete(KS_META, deleted);
            }
            Self::check_dead_letter_target(txn, &record_name, &wanted)?;
            let id = txn.next_sequence(KS_META, &Tuple::new().str("queue").build())?;
            let record = QueueRecord {
                id,
                name: record_name.clone(),
                attributes: wanted,
                created: now.as_secs(),
                last_modified: now.as_secs(),
                tags,
                last_purge_ms: None,
            };
            txn.put(KS_QUEUES, record_name, record.encode()?);
            Ok(())
        })
        .await?;
        Ok(self.queue_url(&name))
    }

    async fn get_queue_url(&self, name: &str) -> Result<String> {
        let record = Self::load_queue(&self.store.snapshot()?, name)?;
        Ok(self.queue_url(&record.name))
    }

    async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<String>> {
        Ok(self.queue_page(prefix, 1000, None)?.0)
    }

    async fn list_queues_page(
        &self,
        prefix: Option<&str>,
        max_results: u32,
        next_token: Option<&str>,
    ) -> Result<QueuePage> {
        if !(1..=1000).contains(&max_results) {
            return Err(Error::invalid(
                "MaxResults",
                format!("{max_results} is not from 1 to 1000"),
            ));
        }
        let after = next_token
            .map(|token| {
                crate::md5::unhex(token)
                    .and_then(|name| String::from_utf8(name).ok())
                    .filter(|name| name.starts_with(prefix.unwrap_or("")))
                    .ok_or_else(|| Error::invalid("NextToken", "not a token ListQueues gave"))
            })
            .transpose()?;
        let (queue_urls, last) = self.queue_page(prefix, max_results as usize, after)?;
        Ok(QueuePage {
            queue_urls,
            next_token: last.map(|name| crate::md5::hex(name.as_bytes())),
        })
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        let queue = queue.to_owned();
        let now = self.clock.now();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            Self::remove_messages(txn, record.id, true)?;
            crate::redrive::forget_moves(txn, &record.name)?;
            txn.put(
                KS_META,
                deleted_key(&record.name),
                now.as_millis().to_be_bytes().to_vec(),
            );
            txn.delete(KS_QUEUES, record.name);
            Ok(())
        })
        .await
    }

    async fn get_queue_attributes(
        &self,
        queue: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>> {
        let snapshot = self.store.snapshot()?;
        let record = Self::load_queue(&snapshot, queue)?;
        let now = self.clock.now();
        let all = names.contains(&"All");
        const COMPUTED: [&str; 7] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "CreatedTimestamp",
            "LastModifiedTimestamp",
            "QueueArn",
            "All",
        ];
        for name in names {
            if !SETTABLE.contains(name) && !COMPUTED.contains(name) {
                return Err(Error::InvalidAttributeName {
                    name: (*name).to_owned(),
                });
            }
        }
        let mut out = BTreeMap::new();
        for name in SETTABLE {
            if (all || names.contains(&name))
                && let Some(value) = record.attributes.get(name)
            {
                out.insert(name.to_owned(), value);
            }
        }
        let wanted = |name: &str| all || names.contains(&name);
        if [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        .iter()
        .any(|n| wanted(n))
        {
            let [visible, in_flight, delayed] = Self::counters(&snapshot, &record, now)?;
            for (name, value) in [
                ("ApproximateNumberOfMessages", visible),
                ("ApproximateNumberOfMessagesNotVisible", in_flight),
                ("ApproximateNumberOfMessagesDelayed", delayed),
            ] {
                if wanted(name) {
                    out.insert(name.to_owned(), value.to_string());
                }
            }
        }
        if wanted("CreatedTimestamp") {
            out.insert("CreatedTimestamp".to_owned(), record.created.to_string());
        }
        if wanted("LastModifiedTimestamp") {
            out.insert(
                "LastModifiedTimestamp".to_owned(),
                record.last_modified.to_string(),
            );
        }
        if wanted("QueueArn") {
            out.insert("QueueArn".to_owned(), self.queue_arn(&record.name));
        }
        Ok(out)
    }

    async fn set_queue_attributes(
        &self,
        queue: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<()> {
        let queue = queue.to_owned();
        let now = self.clock.now();
        let redelay = self
            .write(move |txn| {
                let mut record = Self::load_queue(txn, &queue)?;
                let mut changed = record.attributes.clone();
                changed.apply(&attributes, false)?;
                if attributes.contains_key("RedrivePolicy") {
                    Self::check_dead_letter_target(txn, &record.name, &changed)?;
                }
                let delay_changed = record.attributes.delay_seconds != changed.delay_seconds;
                record.attributes = changed;
                record.last_modified = now.as_secs();
                txn.put(KS_QUEUES, record.name.clone(), record.encode()?);
                Ok((delay_changed && record.attributes.fifo_queue).then_some(record.name))
            })
            .await?;
        match redelay {
            Some(name) => self.redelay_fifo(&name).await,
            None => Ok(()),
        }
    }

    async fn tag_queue(&self, queue: &str, tags: BTreeMap<String, String>) -> Result<()> {
        check_tags(&tags)?;
        self.update_queue(queue, move |record| {
            record.tags.extend(tags);
            check_tags(&record.tags)
        })
        .await
    }

    async fn untag_queue(&self, queue: &str, keys: &[&str]) -> Result<()> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.update_queue(queue, move |record| {
            for key in keys {
                record.tags.remove(&key);
            }
            Ok(())
        })
        .await
    }

    async fn list_queue_tags(&self, queue: &str) -> Result<BTreeMap<String, String>> {
        Ok(Self::load_queue(&self.store.snapshot()?, queue)?.tags)
    }

    async fn list_dead_letter_source_queues(&self, queue: &str) -> Result<Vec<String>> {
        let snapshot = self.store.snapshot()?;
        let target = Self::load_queue(&snapshot, queue)?;
        Ok(Self::dead_letter_sources(&snapshot, &target.name, 1000)?
            .iter()
            .map(|name| self.queue_url(name))
            .collect())
    }

    async fn purge_queue(&self, queue: &str) -> Result<()> {
        let queue = queue.to_owned();
        let now = self.clock.now();
        self.write(move |txn| {
            let mut record = Self::load_queue(txn, &queue)?;
            if let Some(last) = record.last_purge_ms
                && now < Timestamp::from_millis(last) + PURGE_COOLDOWN
            {
                return Err(Error::PurgeQueueInProgress);
            }
            Self::remove_messages(txn, record.id, false)?;
            record.last_purge_ms = Some(now.as_millis());
            txn.put(KS_QUEUES, record.name.clone(), record.encode()?);
            Ok(())
        })
        .await
    }

    async fn send_message(&self, queue: &str, message: SendMessage) -> Result<SendMessageResult> {
        let queue = queue.to_owned();
        let now = self.clock.now();
        let service = self.clone();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            Self::check_message(&record.attributes, &message)?;
            service.enqueue(txn, &record, message, now)
        })
        .await
    }

    async fn send_message_batch(
        &self,
        queue: &str,
        entries: Vec<SendMessageBatchEntry>,
    ) -> Result<SendMessageBatchResult> {
        check_batch_ids(entries.iter().map(|e| e.id.as_str()))?;
        let queue = queue.to_owned();
        let now = self.clock.now();
        let service = self.clone();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            // The whole batch may hold 1 MiB, whatever the queue's own maximum.
            let limit = MAX_BATCH_BYTES;
            let size: usize = entries.iter().map(|e| message_size(&e.message)).sum();
            if size > limit {
                return Err(Error::BatchRequestTooLong { size, limit });
            }
            let mut result = SendMessageBatchResult::default();
            for entry in entries {
                match Self::check_message(&record.attributes, &entry.message) {
                    Ok(()) => {
                        let sent = service.enqueue(txn, &record, entry.message, now)?;
                        result.successful.push((entry.id, sent));
                    }
                    Err(error) => result.failed.push(failure(entry.id, &error)),
                }
            }
            Ok(result)
        })
        .await
    }

    async fn receive_message(
        &self,
        queue: &str,
        request: ReceiveMessage,
    ) -> Result<Vec<ReceivedMessage>> {
        if !(1..=10).contains(&request.max_number_of_messages) {
            return Err(Error::invalid(
                "MaxNumberOfMessages",
                format!("{} is not from 1 to 10", request.max_number_of_messages),
            ));
        }
        if let Some(timeout) = request.visibility_timeout
            && timeout > MAX_VISIBILITY_TIMEOUT
        {
            return Err(Error::invalid(
                "VisibilityTimeout",
                format!("{timeout} is not from 0 to {MAX_VISIBILITY_TIMEOUT}"),
            ));
        }
        if let Some(wait) = request.wait_time_seconds
            && wait > 20
        {
            return Err(Error::invalid(
                "WaitTimeSeconds",
                format!("{wait} is not from 0 to 20"),
            ));
        }
        if let Some(attempt) = &request.receive_request_attempt_id {
            validate_fifo_id("ReceiveRequestAttemptId", attempt)?;
        }
        let record = Self::load_queue(&self.store.snapshot()?, queue)?;
        let wait = request
            .wait_time_seconds
            .unwrap_or(record.attributes.receive_message_wait_time_seconds);
        let deadline = self.clock.now() + Duration::from_secs(wait.into());
        let limit = self.in_flight_limit;
        let signal = self.store.signal(&signal_name(record.id));
        loop {
            // Registered before looking, so a send committed after the look still wakes us.
            let sent = signal.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            let now = self.clock.now();
            let (queue, request_copy) = (queue.to_owned(), request.clone());
            let (taken, next) = self
                .write(move |txn| {
                    let record = Self::load_queue(txn, &queue)?;
                    let attempt = request_copy
                        .receive_request_attempt_id
                        .as_deref()
                        .filter(|_| record.attributes.fifo_queue);
                    if let Some(attempt) = attempt
                        && let Some(again) =
                            Self::retried_attempt(txn, &record, attempt, &request_copy, now)?
                    {
                        return Ok((again, None));
                    }
                    let wanted = request_copy.max_number_of_messages as usize;
                    let (room, freed) = Self::in_flight_room(txn, &record, now, limit, wanted)?;
                    if room == 0 {
                        if wait == 0 && !record.attributes.fifo_queue {
                            return Err(Error::OverLimit { limit });
                        }
                        // A long poll looks again when the first in-flight message is due.
                        return Ok((Vec::new(), freed));
                    }
                    let (taken, next) = if room < wanted {
                        let mut capped = request_copy.clone();
                        capped.max_number_of_messages = room as u32;
                        Self::take(txn, &record, &capped, now)?
                    } else {
                        Self::take(txn, &record, &request_copy, now)?
                    };
                    if let Some(attempt) = attempt
                        && !taken.is_empty()
                    {
                        let visibility = request_copy
                            .visibility_timeout
                            .unwrap_or(record.attributes.visibility_timeout);
                        let visible_at = now + Duration::from_secs(visibility.into());
                        let handles: Vec<(u64, u64, Timestamp)> = taken
                            .iter()
                            .filter_map(|m| Receipt::parse(&m.receipt_handle).ok())
                            .map(|r| (r.seq, r.receipt, visible_at))
                            .collect();
                        txn.put(
                            KS_ATTEMPTS,
                            attempt_key(record.id, attempt),
                            encode_attempt(now + DEDUP_WINDOW, &handles),
                        );
                    }
                    Ok((taken, next))
                })
                .await?;
            if !taken.is_empty() || now >= deadline {
                return Ok(taken);
            }
            let wake = next.map_or(deadline, |next| next.min(deadline));
            tokio::select! {
                () = &mut sent => {}
                () = self.clock.sleep_until(wake) => {}
            }
        }
    }

    async fn delete_message(&self, queue: &str, receipt_handle: &str) -> Result<()> {
        let (queue, handle) = (queue.to_owned(), receipt_handle.to_owned());
        let now = self.clock.now();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            Self::delete_in(txn, &record, &handle, now)
        })
        .await
    }

    async fn change_message_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: u32,
    ) -> Result<()> {
        let (queue, handle) = (queue.to_owned(), receipt_handle.to_owned());
        let now = self.clock.now();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            Self::change_visibility_in(txn, &record, &handle, timeout, now)
        })
        .await
    }

    async fn delete_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String)>,
    ) -> Result<BatchResult> {
        check_batch_ids(entries.iter().map(|(id, _)| id.as_str()))?;
        let queue = queue.to_owned();
        let now = self.clock.now();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            let mut result = BatchResult::default();
            for (id, handle) in entries {
                match Self::delete_in(txn, &record, &handle, now) {
                    Ok(()) => result.successful.push(id),
                    Err(error) => result.failed.push(failure(id, &error)),
                }
            }
            Ok(result)
        })
        .await
    }

    async fn change_message_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<ChangeVisibilityEntry>,
    ) -> Result<BatchResult> {
        check_batch_ids(entries.iter().map(|e| e.id.as_str()))?;
        let queue = queue.to_owned();
        let now = self.clock.now();
        self.write(move |txn| {
            let record = Self::load_queue(txn, &queue)?;
            let mut result = BatchResult::default();
            for entry in entries {
                match Self::change_visibility_in(
                    txn,
                    &record,
                    &entry.receipt_handle,
                    entry.visibility_timeout,
                    now,
                ) {
                    Ok(()) => result.successful.push(entry.id),
                    Err(error) => result.failed.push(failure(entry.id, &error)),
                }
            }
            Ok(result)
        })
        .await
    }

    async fn start_message_move_task(
        &self,
        source_arn: &str,
        destination_arn: Option<&str>,
        max_per_second: Option<u32>,
    ) -> Result<String> {
        self.start_move(source_arn, destination_arn, max_per_second)
            .await
    }

    async fn list_message_move_tasks(
        &self,
        source_arn: &str,
        max_results: Option<u32>,
    ) -> Result<Vec<crate::api::MessageMoveTask>> {
        self.list_moves(source_arn, max_results)
    }

    async fn cancel_message_move_task(&self, task_handle: &str) -> Result<u64> {
        self.cancel_move(task_handle).await
    }
}

/// A queue as a [`Sink`](cloudlet_core::Sink): topics, object events and outboxes deliver into
/// it as SendMessage would.
#[derive(Debug, Clone)]
pub struct QueueSink {
    service: QueueService,
    queue: String,
}

impl QueueSink {
    /// The sink sending into `queue` (a URL or a name).
    pub fn new(service: QueueService, queue: impl Into<String>) -> Self {
        Self {
            service,
            queue: queue.into(),
        }
    }
}

#[async_trait]
impl cloudlet_core::Sink for QueueSink {
    async fn deliver(
        &self,
        message: Message,
    ) -> std::result::Result<(), cloudlet_core::DeliveryError> {
        let send = SendMessage {
            body: message.body,
            delay_seconds: None,
            attributes: message.attributes,
            group_id: message.group_id,
            dedup_id: message.dedup_id,
        };
        match self.service.send_message(&self.queue, send).await {
            Ok(_) => Ok(()),
            Err(error @ Error::Storage(_)) => {
                Err(cloudlet_core::DeliveryError::unavailable(error.to_string()))
            }
            Err(error) => Err(cloudlet_core::DeliveryError::rejected(error.to_string())),
        }
    }
}
