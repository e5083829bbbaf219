//! Requests and responses, shaped as Kinesis's.

use bytes::Bytes;
use cloudlet_core::Timestamp;
use serde::{Deserialize, Serialize};

/// How a stream's capacity is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StreamMode {
    /// A fixed number of shards, changed by resharding.
    Provisioned,
    /// Kinesis scales the shards; here it starts with 4 and reshards only on request.
    OnDemand,
}

/// A stream's open or closed shard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shard {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// The shard this one was split from, or the first of the two merged into it.
    pub parent_shard_id: Option<String>,
    /// The second shard of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// The first hash key, as a decimal string.
    pub starting_hash_key: String,
    /// The last hash key, as a decimal string.
    pub ending_hash_key: String,
    /// The sequence number of the shard's first record (or the first it could have had).
    pub starting_sequence_number: String,
    /// Set once the shard is closed: the last sequence number it could hold.
    pub ending_sequence_number: Option<String>,
}

impl Shard {
    /// Whether the shard still takes records.
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }
}

/// What DescribeStream answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamDescription {
    /// The stream's name.
    pub stream_name: String,
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    pub stream_arn: String,
    /// Always `ACTIVE`: changes here take effect at once.
    pub stream_status: String,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Hours a record stays readable.
    pub retention_period_hours: u32,
    /// Every shard, open and closed, in creation order.
    pub shards: Vec<Shard>,
    /// When the stream was created.
    pub created: Timestamp,
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutRecordsEntry {
    /// The payload.
    pub data: Bytes,
    /// 1 to 256 characters; its MD5 picks the shard.
    pub partition_key: String,
    /// A decimal hash key that overrides the partition key's.
    pub explicit_hash_key: Option<String>,
}

impl PutRecordsEntry {
    /// `data` under `partition_key`.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            data: data.into(),
            partition_key: partition_key.into(),
            explicit_hash_key: None,
        }
    }

    /// With an explicit hash key.
    #[must_use]
    pub fn with_explicit_hash_key(mut self, hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(hash_key.into());
        self
    }
}

/// Where a put landed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutRecordOutput {
    /// The shard.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
}

/// One entry of a PutRecords answer, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutRecordsResult {
    /// Stored.
    Ok(PutRecordOutput),
    /// Not stored: `ProvisionedThroughputExceededException` or `InternalFailure`.
    Failed {
        /// The error code.
        error_code: String,
        /// The message.
        error_message: String,
    },
}

/// What PutRecords answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutRecordsOutput {
    /// How many entries failed.
    pub failed_record_count: usize,
    /// One result per entry, in order.
    pub records: Vec<PutRecordsResult>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartingPosition {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record: only records put from now on.
    Latest,
    /// At this sequence number.
    AtSequenceNumber(String),
    /// Just after this sequence number.
    AfterSequenceNumber(String),
    /// At the first record that arrived at or after this time.
    AtTimestamp(Timestamp),
}

/// A record read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Its sequence number.
    pub sequence_number: String,
    /// When it was put (to the millisecond).
    pub approximate_arrival_timestamp: Timestamp,
    /// The payload.
    pub data: Bytes,
    /// Its partition key.
    pub partition_key: String,
}

/// A child of a closed shard, named when a reader reaches the shard's end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildShard {
    /// The child.
    pub shard_id: String,
    /// Its parents.
    pub parent_shards: Vec<String>,
    /// Its first hash key.
    pub starting_hash_key: String,
    /// Its last hash key.
    pub ending_hash_key: String,
}

/// What GetRecords answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetRecordsOutput {
    /// Records in sequence order.
    pub records: Vec<Record>,
    /// Where to read next; `None` at the end of a closed shard.
    pub next_shard_iterator: Option<String>,
    /// How far behind the newest record of the shard this response is (0 when caught up).
    pub millis_behind_latest: u64,
    /// At the end of a closed shard: its children.
    pub child_shards: Vec<ChildShard>,
}
