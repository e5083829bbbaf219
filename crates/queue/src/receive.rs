//! Receiving: taking due messages off the ready index, FIFO group order, receive attempts,
//! and what a received message reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::TupleReader;
use cloudlet_core::{Direction, MessageAttribute, ReadView, Timestamp, WriteTxn};

use crate::Result;
use crate::api::{ReceiveMessage, ReceivedMessage};
use crate::md5::md5_of_attributes;
use crate::record::{
    KS_ATTEMPTS, KS_GROUPS, KS_MESSAGES, KS_META, KS_READY, MessageRecord, QueueRecord, Receipt,
    attempt_key, decode_attempt, encode_attempt, fair_key, group_key, group_prefix, message_key,
    queue_prefix,
};

/// How many due messages a receive from a fair queue considers, to find quiet groups behind a
/// noisy one's backlog.
const FAIR_WINDOW: usize = 1000;
use crate::send::sequence_number;
use crate::service::QueueService;

impl QueueService {
    /// Takes up to `max` visible messages; returns them, and when the next message becomes
    /// visible if none was.
    pub(crate) fn take(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        request: &ReceiveMessage,
        now: Timestamp,
    ) -> Result<(Vec<ReceivedMessage>, Option<Timestamp>)> {
        let visibility = request
            .visibility_timeout
            .unwrap_or(queue.attributes.visibility_timeout);
        let retention = Duration::from_secs(queue.attributes.message_retention_period.into());
        let prefix = queue_prefix(queue.id);
        let max = request.max_number_of_messages as usize;
        // FIFO receives look once at up to 1,000 due messages (blocked groups are skipped, not
        // retried); standard receives look at a few per message wanted, again if all expired.
        let fair = !queue.attributes.fifo_queue && txn.get(KS_META, &fair_key(queue.id))?.is_some();
        let scan_limit = if queue.attributes.fifo_queue {
            usize::MAX
        } else if fair {
            FAIR_WINDOW
        } else {
            max * 4
        };
        // A message taken with a visibility timeout of 0 is due again at once: never twice.
        let mut handled = HashSet::new();
        let mut taken = Vec::new();
        loop {
            // A bounded look at the due entries; expired messages among them make us look again.
            let mut due = Vec::new();
            let mut next = None;
            for entry in txn.prefix(KS_READY, &prefix, Direction::Forward)? {
                let (key, _) = entry?;
                let mut reader = TupleReader::new(&key);
                reader.u64()?;
                let at = Timestamp::from_nanos(reader.u64()?);
                let seq = reader.u64()?;
                if at > now {
                    next = Some(at);
                    break;
                }
                due.push((key, seq));
                if due.len() >= scan_limit {
                    break;
                }
            }
            let looked = due.len();
            if queue.attributes.fifo_queue {
                Self::take_fifo(txn, queue, request, now, due, &mut taken)?;
                return Ok((taken, next));
            }
            let due = if fair {
                Self::fair_order(txn, queue, due)?
            } else {
                due
            };
            for (ready, seq) in due {
                if taken.len() >= max {
                    break;
                }
                if !handled.insert(seq) {
                    continue;
                }
                let key = message_key(queue.id, seq);
                txn.delete(KS_READY, ready);
                let Some(raw) = txn.get(KS_MESSAGES, &key)? else {
                    continue;
                };
                let record = MessageRecord::decode(raw)?;
                let gone = record.enqueued + retention <= now
                    // Past the retention period: gone, as SQS drops it.
                    || Self::dead_letter(txn, queue, &record, now)?;
                if gone {
                    if record.receive_count > 0 {
                        Self::count_received(txn, queue.id, -1)?;
                    }
                    txn.delete(KS_MESSAGES, key);
                    continue;
                }
                taken.push(Self::hand_out(
                    txn, queue, seq, record, visibility, request, now,
                )?);
            }
            if taken.len() >= max || looked < scan_limit {
                return Ok((taken, next));
            }
        }
    }

    /// Orders due messages of a fair queue so quiet groups come before noisy ones: the oldest
    /// message of every group first, then the second of each, and so on; within a round, the
    /// groups with the smaller backlog first. A message without a group counts as a group of
    /// its own. Nothing is dropped, only reordered.
    fn fair_order(
        txn: &WriteTxn<'_>,
        queue: &QueueRecord,
        due: Vec<(Bytes, u64)>,
    ) -> Result<Vec<(Bytes, u64)>> {
        let mut groups: Vec<Vec<(Bytes, u64)>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (ready, seq) in due {
            let group = match txn.get(KS_MESSAGES, &message_key(queue.id, seq))? {
                Some(raw) => MessageRecord::decode(raw)?.message.group_id,
                None => None,
            };
            let slot = match group {
                Some(group) => *index.entry(group).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                }),
                None => {
                    groups.push(Vec::new());
                    groups.len() - 1
                }
            };
            groups[slot].push((ready, seq));
        }
        // Stable: equal backlogs keep the order of their oldest messages.
        groups.sort_by_key(Vec::len);
        let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
        let mut queues: Vec<std::vec::IntoIter<(Bytes, u64)>> =
            groups.into_iter().map(Vec::into_iter).collect();
        let mut ordered = Vec::new();
        for _ in 0..rounds {
            for group in &mut queues {
                ordered.extend(group.next());
            }
        }
        Ok(ordered)
    }

    /// Receives from a FIFO queue: a group whose oldest message is visible gives that message
    /// and the visible ones right after it, in order; a group whose oldest message is in flight
    /// (or delayed) gives nothing, and other groups go on.
    pub(crate) fn take_fifo(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        request: &ReceiveMessage,
        now: Timestamp,
        due: Vec<(Bytes, u64)>,
        taken: &mut Vec<ReceivedMessage>,
    ) -> Result<()> {
        let max = request.max_number_of_messages as usize;
        let visibility = request
            .visibility_timeout
            .unwrap_or(queue.attributes.visibility_timeout);
        let retention = Duration::from_secs(queue.attributes.message_retention_period.into());
        let mut groups_seen = HashSet::new();
        for (_, seq) in due {
            if taken.len() >= max {
                break;
            }
            let Some(raw) = txn.get(KS_MESSAGES, &message_key(queue.id, seq))? else {
                continue;
            };
            let group = MessageRecord::decode(raw)?
                .message
                .group_id
                .unwrap_or_default();
            if !groups_seen.insert(group.clone()) {
                continue;
            }
            let members: Vec<u64> = txn
                .prefix(
                    KS_GROUPS,
                    &group_prefix(queue.id, &group),
                    Direction::Forward,
                )?
                .map(|entry| {
                    let (key, _) = entry?;
                    let mut reader = TupleReader::new(&key);
                    reader.u64()?;
                    reader.str()?;
                    Ok(reader.u64()?)
                })
                .collect::<Result<_>>()?;
            for member in members {
                if taken.len() >= max {
                    break;
                }
                let key = message_key(queue.id, member);
                let Some(raw) = txn.get(KS_MESSAGES, &key)? else {
                    txn.delete(KS_GROUPS, group_key(queue.id, &group, member));
                    continue;
                };
                let record = MessageRecord::decode(raw)?;
                if record.enqueued + retention <= now {
                    Self::forget(txn, queue, member, &record)?;
                    continue;
                }
                if record.visible_at > now {
                    // In flight or delayed: it holds back the rest of its group.
                    break;
                }
                if Self::dead_letter(txn, queue, &record, now)? {
                    Self::forget(txn, queue, member, &record)?;
                    continue;
                }
                taken.push(Self::hand_out(
                    txn, queue, member, record, visibility, request, now,
                )?);
            }
        }
        Ok(())
    }

    /// Delivers a message taken off the ready index: counts the receive, issues a new receipt
    /// and hides it for `visibility` seconds.
    pub(crate) fn hand_out(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        seq: u64,
        mut record: MessageRecord,
        visibility: u32,
        request: &ReceiveMessage,
        now: Timestamp,
    ) -> Result<ReceivedMessage> {
        debug_assert_eq!(record.seq, seq);
        if record.receive_count == 0 {
            Self::count_received(txn, queue.id, 1)?;
        }
        record.receive_count += 1;
        record.first_receive.get_or_insert(now);
        record.last_receive = Some(now);
        record.receipt += 1;
        let handle = Receipt {
            queue: queue.id,
            seq,
            receipt: record.receipt,
        };
        Self::set_visibility(
            txn,
            queue,
            &mut record,
            now + Duration::from_secs(visibility.into()),
        );
        Ok(received(&record, handle, request))
    }

    /// A FIFO receive retried with the same attempt id within five minutes gets the same
    /// messages and receipt handles, if they are all still in flight, unchanged since.
    pub(crate) fn retried_attempt(
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        attempt: &str,
        request: &ReceiveMessage,
        now: Timestamp,
    ) -> Result<Option<Vec<ReceivedMessage>>> {
        let key = attempt_key(queue.id, attempt);
        let Some(raw) = txn.get(KS_ATTEMPTS, &key)? else {
            return Ok(None);
        };
        let Some((until, taken)) = decode_attempt(raw) else {
            return Ok(None);
        };
        if until <= now {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(taken.len());
        for (seq, receipt, visible_at) in taken {
            let Some(raw) = txn.get(KS_MESSAGES, &message_key(queue.id, seq))? else {
                return Ok(None);
            };
            let record = MessageRecord::decode(raw)?;
            // Deleted, received again, made visible or given another timeout: not a retry.
            if record.receipt != receipt || record.visible_at != visible_at || visible_at <= now {
                return Ok(None);
            }
            records.push(record);
        }
        // A retry restarts the visibility timeout, as a fresh receive would.
        let visibility = request
            .visibility_timeout
            .unwrap_or(queue.attributes.visibility_timeout);
        let visible_at = now + Duration::from_secs(visibility.into());
        let mut again = Vec::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        for mut record in records {
            Self::set_visibility(txn, queue, &mut record, visible_at);
            let handle = Receipt {
                queue: queue.id,
                seq: record.seq,
                receipt: record.receipt,
            };
            kept.push((record.seq, record.receipt, visible_at));
            again.push(received(&record, handle, request));
        }
        txn.put(KS_ATTEMPTS, key, encode_attempt(until, &kept));
        Ok(Some(again))
    }
}

pub(crate) fn received(
    record: &MessageRecord,
    handle: Receipt,
    request: &ReceiveMessage,
) -> ReceivedMessage {
    let mut attributes = BTreeMap::new();
    let mut system = |name: &str, value: String| {
        if wants(&request.attribute_names, name) {
            attributes.insert(name.to_owned(), value);
        }
    };
    system("SenderId", "AIDACLOUDLETSENDER".to_owned());
    system("SentTimestamp", record.sent.as_millis().to_string());
    system("ApproximateReceiveCount", record.receive_count.to_string());
    if let Some(first) = record.first_receive {
        system(
            "ApproximateFirstReceiveTimestamp",
            first.as_millis().to_string(),
        );
    }
    if let Some(group) = &record.message.group_id {
        system("MessageGroupId", group.clone());
    }
    if let Some(dedup) = &record.message.dedup_id {
        // Only FIFO messages keep a deduplication id.
        system("MessageDeduplicationId", dedup.clone());
        system("SequenceNumber", sequence_number(record.seq));
    }
    if let Some(source) = &record.dead_letter_source {
        system("DeadLetterQueueSourceArn", source.clone());
    }
    let message_attributes: BTreeMap<String, MessageAttribute> = record
        .message
        .attributes
        .iter()
        .filter(|(name, _)| wants(&request.message_attribute_names, name))
        .map(|(name, attribute)| (name.clone(), attribute.clone()))
        .collect();
    ReceivedMessage {
        message_id: record.message_id.clone(),
        receipt_handle: handle.encode(),
        body: record.message.body.clone(),
        md5_of_body: record.md5_of_body.clone(),
        md5_of_message_attributes: md5_of_attributes(&message_attributes),
        attributes,
        message_attributes,
    }
}

pub(crate) fn wants(names: &[String], name: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == name
            || n.strip_suffix(".*")
                .is_some_and(|prefix| name.starts_with(&format!("{prefix}.")))
    })
}
