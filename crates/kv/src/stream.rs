//! The change stream: a record per item change, written in the change's own transaction.
//!
//! Records live under `(table id, sequence)` in `kv.stream`, so each change is recorded exactly
//! once and in commit order (hence in order per item). A write that changes nothing (a put of
//! the identical item) records nothing, as on DynamoDB.

use cloudlet_core::keys::Tuple;
use cloudlet_core::{ReadView, Timestamp, WriteTxn};
use serde::{Deserialize, Serialize};

use crate::items::Actor;
use crate::schema::{StreamViewType, TableRecord};
use crate::service::KS_META;
use crate::value::{Item, item_size};
use crate::{Error, Result};

/// Change records.
pub(crate) const KS_STREAM: &str = "kv.stream";

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum EventName {
    /// The item was created (also by an UpdateItem).
    INSERT,
    /// The item was replaced or updated.
    MODIFY,
    /// The item was deleted (by a request or by TTL).
    REMOVE,
}

/// Who made a change that was not a request: TTL expiry is made by the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserIdentity {
    /// `Service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `dynamodb.amazonaws.com`.
    pub principal_id: String,
}

/// One change, as DynamoDB Streams describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Unique per record.
    pub event_id: String,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: EventName,
    /// Increasing within the table's stream; compare as numbers (fixed width here).
    pub sequence_number: String,
    /// When the change was committed, on the service's clock.
    pub approximate_creation_date_time: Timestamp,
    /// The item's key attributes.
    pub keys: Item,
    /// The item after the change, for `NEW_IMAGE` and `NEW_AND_OLD_IMAGES`.
    pub new_image: Option<Item>,
    /// The item before the change, for `OLD_IMAGE` and `NEW_AND_OLD_IMAGES`.
    pub old_image: Option<Item>,
    /// The record's size: keys and images.
    pub size_bytes: usize,
    /// The stream's view type when the record was written.
    pub stream_view_type: StreamViewType,
    /// Set for changes the service made itself (TTL deletions).
    pub user_identity: Option<UserIdentity>,
}

/// The key of record `sequence` of table `table_id`.
pub(crate) fn record_key(table_id: u64, sequence: u64) -> bytes::Bytes {
    Tuple::new().u64(table_id).u64(sequence).build()
}

/// Writes the record of a change from `old` to `new`, if the table has a stream and the item
/// changed.
pub(crate) fn record(
    txn: &mut WriteTxn<'_>,
    table: &TableRecord,
    old: Option<&Item>,
    new: Option<&Item>,
    now: Timestamp,
    actor: Actor,
) -> Result<()> {
    let Some(view) = table.stream_view_type else {
        return Ok(());
    };
    let event_name = match (old, new) {
        (None, Some(_)) => EventName::INSERT,
        (Some(o), Some(n)) if o != n => EventName::MODIFY,
        (Some(_), None) => EventName::REMOVE,
        _ => return Ok(()),
    };
    let Some(any) = new.or(old) else {
        return Ok(());
    };
    let sequence = txn.next_sequence(KS_META, &meta_key("stream", table.id))?;
    txn.notify_on_commit(&signal_name(table.id));
    let keys = table.key_schema.key_of(any);
    let with_new = matches!(
        view,
        StreamViewType::NEW_IMAGE | StreamViewType::NEW_AND_OLD_IMAGES
    );
    let with_old = matches!(
        view,
        StreamViewType::OLD_IMAGE | StreamViewType::NEW_AND_OLD_IMAGES
    );
    let new_image = new.filter(|_| with_new).cloned();
    let old_image = old.filter(|_| with_old).cloned();
    let size_bytes = item_size(&keys)
        + new_image.as_ref().map_or(0, item_size)
        + old_image.as_ref().map_or(0, item_size);
    let record = StreamRecord {
        event_id: format!(
            "{:032x}",
            (u128::from(table.id) << 64) | u128::from(sequence)
        ),
        event_name,
        sequence_number: format!("{sequence:021}"),
        approximate_creation_date_time: now,
        keys,
        new_image,
        old_image,
        size_bytes,
        stream_view_type: view,
        user_identity: (actor == Actor::Service).then(|| UserIdentity {
            kind: "Service".to_owned(),
            principal_id: "dynamodb.amazonaws.com".to_owned(),
        }),
    };
    let json = serde_json::to_vec(&record)
        .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_STREAM, e.to_string())))?;
    txn.put(KS_STREAM, record_key(table.id, sequence), json);
    Ok(())
}

/// The signal a commit with stream records notifies.
pub(crate) fn signal_name(table_id: u64) -> String {
    format!("{KS_STREAM}/{table_id}")
}

/// How long stream records are kept.
pub const STREAM_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long a shard iterator stays valid.
pub const ITERATOR_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// The most records one GetRecords returns.
pub const MAX_GET_RECORDS: usize = 1000;

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum ShardIteratorType {
    /// At the oldest record kept.
    TRIM_HORIZON,
    /// After the newest record: only changes from now on.
    LATEST,
    /// At the record with this sequence number.
    AT_SEQUENCE_NUMBER(String),
    /// After the record with this sequence number.
    AFTER_SEQUENCE_NUMBER(String),
}

/// A table's stream, as DescribeStream reports it. There is one shard per stream here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDescription {
    /// `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
    pub stream_arn: String,
    /// The stream's label: its creation time.
    pub stream_label: String,
    /// What records carry.
    pub stream_view_type: Option<StreamViewType>,
    /// The table.
    pub table_name: String,
    /// The shard ids (one).
    pub shards: Vec<String>,
}

/// One GetRecords answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRecordsOutput {
    /// The records, oldest first.
    pub records: Vec<StreamRecord>,
    /// Where to continue (the shard stays open while the table exists).
    pub next_shard_iterator: Option<String>,
}

fn invalid_iterator() -> Error {
    Error::validation("ShardIterator", "Invalid ShardIterator")
}

fn parse_sequence(text: &str) -> Result<u64> {
    text.parse::<u64>()
        .map_err(|_| Error::validation("SequenceNumber", format!("Invalid SequenceNumber: {text}")))
}

/// An iterator: the table, the next sequence number to read, and when it was issued.
fn encode_iterator(table_id: u64, position: u64, issued: Timestamp) -> String {
    format!("{table_id:016x}{position:016x}{:016x}", issued.as_millis())
}

fn decode_iterator(text: &str) -> Result<(u64, u64, Timestamp)> {
    if text.len() != 48 || !text.is_ascii() {
        return Err(invalid_iterator());
    }
    let part = |i: usize| {
        u64::from_str_radix(&text[i * 16..(i + 1) * 16], 16).map_err(|_| invalid_iterator())
    };
    Ok((part(0)?, part(1)?, Timestamp::from_millis(part(2)?)))
}

fn meta_key(kind: &str, table_id: u64) -> bytes::Bytes {
    Tuple::new().str(kind).u64(table_id).build()
}

/// A `u64` stored as 8 big-endian bytes (as `next_sequence` stores its counters); 0 if absent.
pub(crate) fn read_counter(view: &impl cloudlet_core::ReadView, key: &[u8]) -> Result<u64> {
    match view.get(KS_META, key)? {
        None => Ok(0),
        Some(raw) => {
            let bytes: [u8; 8] = raw.as_ref().try_into().map_err(|_| {
                Error::Storage(cloudlet_core::Error::corrupt(
                    KS_META,
                    "a counter is not 8 bytes",
                ))
            })?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// The stored form of a counter.
pub(crate) fn counter_bytes(value: u64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&value.to_be_bytes())
}

/// The key of the counter of the last sequence number written to table `table_id`'s stream.
pub(crate) fn last_sequence_key(table_id: u64) -> bytes::Bytes {
    meta_key("stream", table_id)
}

/// The key of the last sequence number trimmed from table `table_id`'s stream.
pub(crate) fn trimmed_key(table_id: u64) -> bytes::Bytes {
    meta_key("stream-trim", table_id)
}

/// The stream's bounds as seen by `view`: the first sequence number kept and the next one to
/// be written.
fn bounds(view: &impl cloudlet_core::ReadView, table_id: u64) -> Result<(u64, u64)> {
    let last = read_counter(view, &last_sequence_key(table_id))?;
    let trimmed = read_counter(view, &trimmed_key(table_id))?;
    Ok((trimmed + 1, last + 1))
}

impl crate::service::KvService {
    /// UpdateTable's `StreamSpecification`: enables the stream with `view`, or disables it
    /// with `None`. Records already written stay readable until they are 24 hours old.
    ///
    /// # Errors
    /// `ValidationException` when enabling a stream that is enabled, or disabling one that is
    /// not; `ResourceInUseException` while the table has work pending.
    pub async fn update_stream(
        &self,
        table: &str,
        view: Option<StreamViewType>,
    ) -> Result<crate::schema::TableDescription> {
        let record = self.table(table)?;
        match (record.stream_view_type, view) {
            (Some(_), Some(_)) => {
                return Err(Error::validation(
                    "StreamSpecification",
                    format!(
                        "Table already has an enabled stream: {}",
                        self.describe_stream(table)?.stream_arn
                    ),
                ));
            }
            (None, None) => {
                return Err(Error::validation(
                    "StreamSpecification",
                    "Table does not have a stream enabled",
                ));
            }
            _ => {}
        }
        let mut updated = (*record).clone();
        updated.stream_view_type = view;
        let updated = self
            .run_blocking(move |service| service.publish_definition(&record, updated, None))
            .await?;
        crate::Tables::describe_table(self, &updated.name).await
    }

    fn stream_table(&self, table: &str) -> Result<std::sync::Arc<TableRecord>> {
        let record = self.table(table)?;
        if record.stream_view_type.is_none() {
            return Err(Error::validation(
                "StreamSpecification",
                format!("Table {table} does not have a stream enabled"),
            ));
        }
        Ok(record)
    }

    /// DescribeStream for `table`'s stream.
    ///
    /// # Errors
    /// `ResourceNotFoundException`; `ValidationException` if the table has no stream.
    pub fn describe_stream(&self, table: &str) -> Result<StreamDescription> {
        let record = self.stream_table(table)?;
        let label = format!("{}", record.created.as_millis());
        Ok(StreamDescription {
            stream_arn: format!("{}/stream/{label}", self.table_arn(&record.name)),
            stream_label: label,
            stream_view_type: record.stream_view_type,
            table_name: record.name.clone(),
            shards: vec![format!(
                "shardId-{:020}-{:08x}",
                record.created.as_millis(),
                record.id
            )],
        })
    }

    /// GetShardIterator on `table`'s stream.
    ///
    /// # Errors
    /// `TrimmedDataAccessException` for a position older than the records kept.
    pub fn get_shard_iterator(&self, table: &str, kind: ShardIteratorType) -> Result<String> {
        let record = self.stream_table(table)?;
        let snapshot = self.store.snapshot()?;
        let (first, next) = bounds(&snapshot, record.id)?;
        let position = match kind {
            ShardIteratorType::TRIM_HORIZON => first,
            ShardIteratorType::LATEST => next,
            ShardIteratorType::AT_SEQUENCE_NUMBER(s) => parse_sequence(&s)?,
            ShardIteratorType::AFTER_SEQUENCE_NUMBER(s) => parse_sequence(&s)?.saturating_add(1),
        };
        if position < first {
            return Err(Error::TrimmedDataAccess);
        }
        Ok(encode_iterator(record.id, position, self.now()))
    }

    /// GetRecords: up to `limit` (1-1,000) records from an iterator, and the next iterator.
    ///
    /// # Errors
    /// `ExpiredIteratorException` after 15 minutes; `TrimmedDataAccessException` when records
    /// the iterator points at were trimmed; `ResourceNotFoundException` if the table is gone.
    pub fn get_records(&self, iterator: &str, limit: Option<usize>) -> Result<GetRecordsOutput> {
        let limit = limit.unwrap_or(MAX_GET_RECORDS);
        if !(1..=MAX_GET_RECORDS).contains(&limit) {
            return Err(Error::validation(
                "Limit",
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000",
            ));
        }
        let (table_id, position, issued) = decode_iterator(iterator)?;
        let now = self.now();
        if now >= issued.saturating_add(ITERATOR_LIFETIME) {
            return Err(Error::ExpiredIterator);
        }
        let snapshot = self.store.snapshot()?;
        if snapshot
            .get(crate::service::KS_LIVE, &Tuple::new().u64(table_id).build())?
            .is_none()
        {
            return Err(Error::ResourceNotFound {
                message: "Requested resource not found: Stream not found".to_owned(),
            });
        }
        let (first, _) = bounds(&snapshot, table_id)?;
        if position < first {
            return Err(Error::TrimmedDataAccess);
        }
        let records = read_records(&snapshot, table_id, position, limit)?;
        let next = records.last().map_or(Ok(position), |r| {
            parse_sequence(&r.sequence_number).map(|s| s + 1)
        })?;
        Ok(GetRecordsOutput {
            records,
            next_shard_iterator: Some(encode_iterator(table_id, next, now)),
        })
    }

    pub(crate) fn has_stream_records(&self, table: &TableRecord) -> Result<bool> {
        let prefix = Tuple::new().u64(table.id).build();
        Ok(self
            .store
            .snapshot()?
            .prefix(KS_STREAM, &prefix, cloudlet_core::Direction::Forward)?
            .next()
            .is_some())
    }

    /// Removes `table`'s stream records older than 24 hours.
    pub(crate) fn trim_stream(&self, table: &TableRecord, now: Timestamp) -> Result<usize> {
        let cutoff = now.saturating_sub(STREAM_RETENTION);
        let id = table.id;
        let mut trimmed = 0;
        loop {
            let (count, more) =
                self.store
                    .write_blocking(cloudlet_core::Durability::Durable, move |txn| {
                        let prefix = Tuple::new().u64(id).build();
                        let old: Vec<(bytes::Bytes, u64)> = txn
                            .prefix(KS_STREAM, &prefix, cloudlet_core::Direction::Forward)?
                            .take(500)
                            .map(|entry| {
                                let (key, raw) = entry?;
                                let record: StreamRecord =
                                    serde_json::from_slice(&raw).map_err(|e| {
                                        Error::Storage(cloudlet_core::Error::corrupt(
                                            KS_STREAM,
                                            e.to_string(),
                                        ))
                                    })?;
                                Ok((
                                    key,
                                    record.approximate_creation_date_time,
                                    parse_sequence(&record.sequence_number)?,
                                ))
                            })
                            .take_while(|r: &Result<(bytes::Bytes, Timestamp, u64)>| {
                                r.as_ref().map_or(true, |(_, at, _)| *at < cutoff)
                            })
                            .map(|r| r.map(|(key, _, sequence)| (key, sequence)))
                            .collect::<Result<_>>()?;
                        if let Some((_, last)) = old.last() {
                            txn.put(KS_META, trimmed_key(id), counter_bytes(*last));
                        }
                        for (key, _) in &old {
                            txn.delete(KS_STREAM, key.clone());
                        }
                        Ok::<_, Error>((old.len(), old.len() == 500))
                    })?;
            trimmed += count;
            if !more {
                return Ok(trimmed);
            }
        }
    }
}

/// Reads up to `limit` records from `position` on.
pub(crate) fn read_records(
    view: &impl cloudlet_core::ReadView,
    table_id: u64,
    position: u64,
    limit: usize,
) -> Result<Vec<StreamRecord>> {
    let range = cloudlet_core::KeyRange {
        start: std::ops::Bound::Included(record_key(table_id, position)),
        end: cloudlet_core::KeyRange::prefix(Tuple::new().u64(table_id).build()).end,
    };
    let mut records = Vec::new();
    let mut bytes = 0;
    for entry in view.range(KS_STREAM, &range, cloudlet_core::Direction::Forward)? {
        let (_, raw) = entry?;
        bytes += raw.len();
        records.push(serde_json::from_slice(&raw).map_err(|e| {
            Error::Storage(cloudlet_core::Error::corrupt(KS_STREAM, e.to_string()))
        })?);
        if records.len() >= limit || bytes >= 1024 * 1024 {
            break;
        }
    }
    Ok(records)
}
