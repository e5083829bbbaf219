//! How queues and messages are stored.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use cloudlet_core::keys::Tuple;
use cloudlet_core::{Message, Timestamp};

use crate::attributes::QueueAttributes;
use crate::{Error, Result};

/// Queue records by name.
pub(crate) const KS_QUEUES: &str = "queue.queues";
/// Message records by (queue id, sequence number).
pub(crate) const KS_MESSAGES: &str = "queue.messages";
/// Every message of a queue by (queue id, visible-at, sequence number): receives scan the part
/// up to now, and the first entry after now says when the next message becomes visible.
pub(crate) const KS_READY: &str = "queue.ready";
/// Counters: queue ids, message sequence numbers.
pub(crate) const KS_META: &str = "queue.meta";
/// FIFO queues: each group's messages in order, by (queue id, group id, sequence number).
pub(crate) const KS_GROUPS: &str = "queue.groups";
/// FIFO queues: deduplication ids seen in the last five minutes, by (queue id, scope, id);
/// they outlive the messages.
pub(crate) const KS_DEDUP: &str = "queue.dedup";
/// FIFO queues: what a receive with a `ReceiveRequestAttemptId` returned, by (queue id,
/// attempt id): until when, and each (sequence number, receipt).
pub(crate) const KS_ATTEMPTS: &str = "queue.attempts";

/// A queue as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct QueueRecord {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) attributes: QueueAttributes,
    /// Seconds since the epoch.
    pub(crate) created: u64,
    pub(crate) last_modified: u64,
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    /// When the last purge ran (milliseconds), for the 60-second rule.
    pub(crate) last_purge_ms: Option<u64>,
}

impl QueueRecord {
    pub(crate) fn encode(&self) -> Result<Bytes> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_QUEUES, e.to_string())))
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self> {
        serde_json::from_slice(raw)
            .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_QUEUES, e.to_string())))
    }
}

const MESSAGE_FORMAT: u8 = 3;
/// Hex MD5 digests are 32 characters.
const MD5_HEX: usize = 32;

/// A message as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MessageRecord {
    pub(crate) message_id: String,
    /// `MD5OfMessageBody`, computed once at send.
    pub(crate) md5_of_body: String,
    pub(crate) sent: Timestamp,
    /// When the message is (again) receivable.
    pub(crate) visible_at: Timestamp,
    pub(crate) receive_count: u32,
    pub(crate) first_receive: Option<Timestamp>,
    /// Bumped by every receive: only the latest receipt handle is valid.
    pub(crate) receipt: u64,
    /// The latest receive: the 12-hour visibility cap counts from it.
    pub(crate) last_receive: Option<Timestamp>,
    /// When retention starts: the send, or the move into a FIFO dead-letter queue.
    pub(crate) enqueued: Timestamp,
    /// The sequence number within the queue (`SequenceNumber` on FIFO queues).
    pub(crate) seq: u64,
    /// The queue it was dead-lettered from (`DeadLetterQueueSourceArn`).
    pub(crate) dead_letter_source: Option<String>,
    pub(crate) message: Message,
}

impl MessageRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let message = self.message.encode();
        let mut out = BytesMut::with_capacity(48 + self.message_id.len() + message.len());
        out.put_u8(MESSAGE_FORMAT);
        out.put_u64(self.sent.as_nanos());
        out.put_u64(self.visible_at.as_nanos());
        out.put_u32(self.receive_count);
        out.put_u64(self.first_receive.map_or(0, Timestamp::as_nanos));
        out.put_u64(self.receipt);
        out.put_u16(self.message_id.len() as u16);
        out.put_slice(self.message_id.as_bytes());
        out.put_slice(&self.md5_of_body.as_bytes()[..MD5_HEX.min(self.md5_of_body.len())]);
        out.put_u64(self.last_receive.map_or(0, Timestamp::as_nanos));
        out.put_u64(self.enqueued.as_nanos());
        out.put_u64(self.seq);
        let source = self.dead_letter_source.as_deref().unwrap_or("");
        out.put_u16(source.len() as u16);
        out.put_slice(source.as_bytes());
        out.put_slice(&message);
        out.freeze()
    }

    pub(crate) fn decode(mut raw: Bytes) -> Result<Self> {
        let corrupt = || {
            Error::Storage(cloudlet_core::Error::corrupt(
                KS_MESSAGES,
                "bad message record",
            ))
        };
        if raw.len() < 39 || raw.get_u8() != MESSAGE_FORMAT {
            return Err(corrupt());
        }
        let sent = Timestamp::from_nanos(raw.get_u64());
        let visible_at = Timestamp::from_nanos(raw.get_u64());
        let receive_count = raw.get_u32();
        let first_receive = Some(raw.get_u64())
            .filter(|n| *n != 0)
            .map(Timestamp::from_nanos);
        let receipt = raw.get_u64();
        let id_len = usize::from(raw.get_u16());
        if raw.len() < id_len {
            return Err(corrupt());
        }
        let message_id = String::from_utf8(raw.split_to(id_len).to_vec()).map_err(|_| corrupt())?;
        if raw.len() < MD5_HEX {
            return Err(corrupt());
        }
        let md5_of_body =
            String::from_utf8(raw.split_to(MD5_HEX).to_vec()).map_err(|_| corrupt())?;
        if raw.len() < 26 {
            return Err(corrupt());
        }
        let last_receive = Some(raw.get_u64())
            .filter(|n| *n != 0)
            .map(Timestamp::from_nanos);
        let enqueued = Timestamp::from_nanos(raw.get_u64());
        let seq = raw.get_u64();
        let source_len = usize::from(raw.get_u16());
        if raw.len() < source_len {
            return Err(corrupt());
        }
        let source = String::from_utf8(raw.split_to(source_len).to_vec()).map_err(|_| corrupt())?;
        Ok(Self {
            message_id,
            md5_of_body,
            last_receive,
            enqueued,
            seq,
            dead_letter_source: (!source.is_empty()).then_some(source),
            sent,
            visible_at,
            receive_count,
            first_receive,
            receipt,
            message: Message::decode(raw)?,
        })
    }
}

pub(crate) fn message_key(queue: u64, seq: u64) -> Bytes {
    Tuple::new().u64(queue).u64(seq).build()
}

pub(crate) fn ready_key(queue: u64, visible_at: Timestamp, seq: u64) -> Bytes {
    Tuple::new()
        .u64(queue)
        .u64(visible_at.as_nanos())
        .u64(seq)
        .build()
}

/// How many of a queue's messages have been received and not deleted since: an upper bound
/// of those in flight, so a receive counts them only when it could reach the in-flight cap.
pub(crate) fn received_key(queue: u64) -> Bytes {
    Tuple::new().str("received").u64(queue).build()
}

/// The first byte of the ready entry of a message received at least once, followed by its
/// enqueue time in nanoseconds (others have an empty value): the in-flight count reads the
/// ready index alone, and skips messages past their retention period.
pub(crate) const READY_RECEIVED: u8 = 1;

/// A ready entry's value: for a received message, the marker and its enqueue time.
pub(crate) fn ready_value(record: &MessageRecord) -> Bytes {
    if record.receive_count == 0 {
        return Bytes::new();
    }
    let mut out = Vec::with_capacity(9);
    out.push(READY_RECEIVED);
    out.extend_from_slice(&record.enqueued.as_nanos().to_be_bytes());
    Bytes::from(out)
}

/// The enqueue time a ready entry's value carries, if it is a received message's.
pub(crate) fn ready_received_enqueued(value: &[u8]) -> Option<Timestamp> {
    match value {
        [READY_RECEIVED, enqueued @ ..] => Some(Timestamp::from_nanos(u64::from_be_bytes(
            enqueued.try_into().ok()?,
        ))),
        _ => None,
    }
}

/// Set once a standard queue has received a message with a group id: it is a fair queue.
pub(crate) fn fair_key(queue: u64) -> Bytes {
    Tuple::new().str("fair").u64(queue).build()
}

pub(crate) fn group_key(queue: u64, group: &str, seq: u64) -> Bytes {
    Tuple::new().u64(queue).str(group).u64(seq).build()
}

pub(crate) fn group_prefix(queue: u64, group: &str) -> Bytes {
    Tuple::new().u64(queue).str(group).build()
}

pub(crate) fn dedup_key(queue: u64, scope: &str, id: &str) -> Bytes {
    Tuple::new().u64(queue).str(scope).str(id).build()
}

/// A remembered deduplication id: until when, and the message it first came with.
pub(crate) fn encode_dedup(until: Timestamp, seq: u64, message_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(16 + message_id.len());
    out.put_u64(until.as_nanos());
    out.put_u64(seq);
    out.put_slice(message_id.as_bytes());
    out.freeze()
}

pub(crate) fn decode_dedup(mut raw: Bytes) -> Result<(Timestamp, u64, String)> {
    if raw.len() < 16 {
        return Err(Error::Storage(cloudlet_core::Error::corrupt(
            KS_DEDUP,
            "bad dedup record",
        )));
    }
    let until = Timestamp::from_nanos(raw.get_u64());
    let seq = raw.get_u64();
    let id = String::from_utf8(raw.to_vec())
        .map_err(|_| Error::Storage(cloudlet_core::Error::corrupt(KS_DEDUP, "bad dedup record")))?;
    Ok((until, seq, id))
}

pub(crate) fn attempt_key(queue: u64, attempt: &str) -> Bytes {
    Tuple::new().u64(queue).str(attempt).build()
}

pub(crate) fn encode_attempt(until: Timestamp, taken: &[(u64, u64, Timestamp)]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + 24 * taken.len());
    out.put_u64(until.as_nanos());
    for (seq, receipt, visible_at) in taken {
        out.put_u64(*seq);
        out.put_u64(*receipt);
        out.put_u64(visible_at.as_nanos());
    }
    out.freeze()
}

/// What an attempt took: until when it may be retried, and each (sequence number, receipt,
/// visible-at) it left.
pub(crate) type Attempt = (Timestamp, Vec<(u64, u64, Timestamp)>);

pub(crate) fn decode_attempt(mut raw: Bytes) -> Option<Attempt> {
    if raw.len() < 8 || !(raw.len() - 8).is_multiple_of(24) {
        return None;
    }
    let until = Timestamp::from_nanos(raw.get_u64());
    let mut taken = Vec::new();
    while raw.has_remaining() {
        taken.push((
            raw.get_u64(),
            raw.get_u64(),
            Timestamp::from_nanos(raw.get_u64()),
        ));
    }
    Some((until, taken))
}

pub(crate) fn queue_prefix(queue: u64) -> Bytes {
    Tuple::new().u64(queue).build()
}

/// A receipt handle: which message, and which receive of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub(crate) queue: u64,
    pub(crate) seq: u64,
    pub(crate) receipt: u64,
}

impl Receipt {
    pub(crate) fn encode(&self) -> String {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&self.queue.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.seq.to_be_bytes());
        bytes[16..].copy_from_slice(&self.receipt.to_be_bytes());
        crate::md5::hex(&bytes)
    }

    pub(crate) fn parse(handle: &str) -> Result<Self> {
        let invalid = || Error::ReceiptHandleIsInvalid {
            reason: format!("`{handle}` is not a receipt handle of this service"),
        };
        if handle.len() != 48 || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let part = |i: usize| {
            u64::from_str_radix(&handle[i * 16..(i + 1) * 16], 16).map_err(|_| invalid())
        };
        Ok(Self {
            queue: part(0)?,
            seq: part(1)?,
            receipt: part(2)?,
        })
    }
}
