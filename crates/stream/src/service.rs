//! [`StreamService`]: streams, shards, puts, iterators and resharding over the engine.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{
    Direction, Durability, KeyRange, ReadView, SharedClock, Store, Timestamp, WriteTxn,
};
use serde::{Deserialize, Serialize};

use crate::batch::{self, Batch, KS_BATCHES, batch_key};
use crate::error::{Error, Result};
use crate::hash::{hash_key, uniform_start};
use crate::limits::{Limiter, ShardLimits};
use crate::types::{
    ChildShard, GetRecordsOutput, PutRecordOutput, PutRecordsEntry, PutRecordsOutput,
    PutRecordsResult, Record, Shard, StartingPosition, StreamDescription, StreamMode,
};

/// Stream name → [`StreamRecord`].
const KS_STREAMS: &str = "kinesis.streams";
/// Counters: stream ids, and each stream's sequence.
const KS_META: &str = "kinesis.meta";

/// The most shards the streams of one service (Kinesis's account and region) may have open
/// together: Kinesis's default shard quota.
pub const MAX_OPEN_SHARDS: usize = 500;
/// UpdateShardCount calls allowed per stream in [`SCALING_WINDOW`], as Kinesis's default.
const MAX_SCALINGS: usize = 10;
/// The rolling window [`MAX_SCALINGS`] counts in.
const SCALING_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The most records of one PutRecords request.
pub const MAX_PUT_RECORDS: usize = 500;
/// The largest record: data and partition key together.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The largest PutRecords request.
pub const MAX_PUT_RECORDS_BYTES: usize = 10 << 20;
/// The most records one GetRecords returns.
pub const MAX_GET_RECORDS: usize = 10_000;
/// The most bytes one GetRecords returns.
pub const MAX_GET_BYTES: usize = 10 << 20;
/// How long a shard iterator stays valid.
pub const ITERATOR_LIFETIME: Duration = Duration::from_secs(300);
/// Retention: the default, the least and the most, in hours.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
const MIN_RETENTION_HOURS: u32 = 24;
const MAX_RETENTION_HOURS: u32 = 8760;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardRecord {
    index: u64,
    /// Decimal strings: JSON numbers do not carry 128 bits.
    start: String,
    end: String,
    parent: Option<u64>,
    adjacent: Option<u64>,
    /// Every record of the shard has a sequence above `first` ...
    first: u64,
    /// ... and, once the shard is closed, below `last`.
    last: Option<u64>,
}

impl ShardRecord {
    fn range(&self) -> (u128, u128) {
        (
            self.start.parse().unwrap_or(0),
            self.end.parse().unwrap_or(u128::MAX),
        )
    }

    fn is_open(&self) -> bool {
        self.last.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamRecord {
    id: u64,
    created: Timestamp,
    mode: StreamMode,
    retention_hours: u32,
    shards: Vec<ShardRecord>,
    /// Records that arrived before this expired under an earlier, shorter retention: a longer
    /// retention does not bring them back.
    #[serde(default)]
    expired_before: Timestamp,
    /// When UpdateShardCount last scaled the stream, within the past 24 hours.
    #[serde(default)]
    scalings: Vec<Timestamp>,
}

impl StreamRecord {
    fn shard(&self, shard_id: &str, stream: &str) -> Result<&ShardRecord> {
        parse_shard_id(shard_id)
            .and_then(|index| self.shards.iter().find(|s| s.index == index))
            .ok_or_else(|| Error::ResourceNotFound {
                message: format!(
                    "Shard {shard_id} in stream {stream} under account 000000000000 does not exist"
                ),
            })
    }

    fn open_shards(&self) -> Vec<&ShardRecord> {
        let mut open: Vec<_> = self.shards.iter().filter(|s| s.is_open()).collect();
        open.sort_by_key(|s| s.range().0);
        open
    }

    fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_hours) * 3600)
    }

    /// Records that arrived before this are past retention.
    fn cutoff(&self, now: Timestamp) -> Timestamp {
        now.saturating_sub(self.retention())
            .max(self.expired_before)
    }
}

/// What a shard iterator carries.
#[derive(Debug, Serialize, Deserialize)]
struct IteratorToken {
    /// Stream id and name.
    s: u64,
    n: String,
    /// Shard index.
    h: u64,
    /// The next sequence to read.
    f: u64,
    /// Issued at, in milliseconds.
    t: u64,
}

pub(crate) fn shard_id(index: u64) -> String {
    format!("shardId-{index:012}")
}

pub(crate) fn parse_shard_id(id: &str) -> Option<u64> {
    id.strip_prefix("shardId-")
        .filter(|d| d.len() == 12)
        .and_then(|d| d.parse().ok())
}

/// Sequence numbers are 56-digit decimal strings, as Kinesis's are, so they compare as
/// numbers and as strings alike: `49`, the stream's sequence (34 digits), then the shard's
/// index (20 digits), so a number names the shard it came from.
pub(crate) fn sequence_number(n: u64, shard: u64) -> String {
    // Written digit by digit: every record read or put makes one, and `format!`'s padding
    // was a fifth of a put's time.
    let mut digits = [b'0'; 56];
    digits[0] = b'4';
    digits[1] = b'9';
    fill_digits(&mut digits[2..36], n);
    fill_digits(&mut digits[36..], shard);
    // ASCII digits only, so this cannot fail.
    String::from_utf8(digits.to_vec()).unwrap_or_default()
}

/// Writes `value` right-aligned into `out` (already zero-filled); `out` holds 20 digits or
/// more, which any u64 fits.
fn fill_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        if value == 0 {
            break;
        }
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The sequence and the shard of a sequence number.
pub(crate) fn parse_sequence_number(text: &str, field: &'static str) -> Result<(u64, u64)> {
    let digits = text
        .strip_prefix("49")
        .filter(|d| d.len() == 54 && d.bytes().all(|b| b.is_ascii_digit()));
    digits
        .and_then(|d| Some((d[..34].parse().ok()?, d[34..].parse().ok()?)))
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("{field} {text} is not a valid sequence number"),
            )
        })
}

/// The batches of a shard whose first sequence is `from` or more.
fn shard_range(stream: u64, shard: u64, from: u64) -> KeyRange {
    let end = Tuple::new().u64(stream).u64(shard + 1).build();
    KeyRange::new(batch_key(stream, shard, from)..end)
}

/// The shard's newest batch, if it has one.
fn newest_batch(view: &impl ReadView, stream: u64, shard: u64) -> Result<Option<Batch>> {
    view.range(
        KS_BATCHES,
        &shard_range(stream, shard, 0),
        Direction::Reverse,
    )?
    .next()
    .transpose()?
    .map(|(key, raw)| Batch::decode(&key, raw))
    .transpose()
}

fn not_found(stream: &str) -> Error {
    Error::ResourceNotFound {
        message: format!("Stream {stream} under account 000000000000 not found."),
    }
}

fn validate_stream_name(name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "StreamName",
            format!(
                "Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 128"
            ),
        ))
    }
}

fn parse_hash_key(text: &str, field: &'static str) -> Result<u128> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            field,
            format!("{field} {text} is not a decimal integer in [0, 2^128 - 1]"),
        ));
    }
    text.parse::<u128>()
        .map_err(|_| Error::invalid(field, format!("{field} {text} is outside [0, 2^128 - 1]")))
}

/// Kinesis semantics over a [`Store`] and a [`SharedClock`]. Cheap to clone.
#[derive(Clone)]
pub struct StreamService {
    store: Store,
    clock: SharedClock,
    region: String,
    limits: Option<Arc<Limiter>>,
}

impl fmt::Debug for StreamService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamService")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

fn load(view: &impl ReadView, name: &str) -> Result<StreamRecord> {
    let raw = view
        .get(KS_STREAMS, name.as_bytes())?
        .ok_or_else(|| not_found(name))?;
    serde_json::from_slice(&raw).map_err(|e| Error::corrupt(KS_STREAMS, e))
}

/// The open shards of every stream but `except` (by id).
fn open_shards_elsewhere(view: &impl ReadView, except: Option<u64>) -> Result<usize> {
    let mut open = 0;
    for entry in view.prefix(KS_STREAMS, b"", Direction::Forward)? {
        let (_, raw) = entry?;
        let record: StreamRecord =
            serde_json::from_slice(&raw).map_err(|e| Error::corrupt(KS_STREAMS, e))?;
        if Some(record.id) != except {
            open += record.open_shards().len();
        }
    }
    Ok(open)
}

/// Refuses a change that would leave the service's streams with more than
/// [`MAX_OPEN_SHARDS`] open shards, in Kinesis's words: `current` are open now, `added` more
/// would be.
fn within_shard_limit(current: usize, added: usize) -> Result<()> {
    if current + added > MAX_OPEN_SHARDS {
        return Err(Error::LimitExceeded {
            message: format!(
                "This request would exceed the shard limit for the account 000000000000 in us-east-1. Current shard count for the account: {current}. Limit: {MAX_OPEN_SHARDS}. Number of additional shards that would have resulted from this request: {added}."
            ),
        });
    }
    Ok(())
}

fn save(txn: &mut WriteTxn<'_>, name: &str, record: &StreamRecord) {
    let raw = serde_json::to_vec(record).unwrap_or_default();
    txn.put(KS_STREAMS, name.as_bytes().to_vec(), raw);
}

fn next_seq(txn: &mut WriteTxn<'_>, stream: u64) -> Result<u64> {
    Ok(txn.next_sequence(KS_META, &Tuple::new().u64(stream).build())?)
}

/// Closes `index` (no record after this point) and adds a child.
fn close(txn: &mut WriteTxn<'_>, record: &mut StreamRecord, index: u64) -> Result<()> {
    let last = next_seq(txn, record.id)?;
    if let Some(shard) = record.shards.iter_mut().find(|s| s.index == index) {
        shard.last = Some(last);
    }
    Ok(())
}

fn add_shard(
    txn: &mut WriteTxn<'_>,
    record: &mut StreamRecord,
    (start, end): (u128, u128),
    parent: Option<u64>,
    adjacent: Option<u64>,
) -> Result<u64> {
    let index = record.shards.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let first = next_seq(txn, record.id)?;
    record.shards.push(ShardRecord {
        index,
        start: start.to_string(),
        end: end.to_string(),
        parent,
        adjacent,
        first,
        last: None,
    });
    Ok(index)
}

fn split(txn: &mut WriteTxn<'_>, record: &mut StreamRecord, index: u64, at: u128) -> Result<()> {
    let (start, end) = record
        .shards
        .iter()
        .find(|s| s.index == index)
        .map(ShardRecord::range)
        .ok_or_else(|| Error::corrupt(KS_STREAMS, "split of a missing shard"))?;
    close(txn, record, index)?;
    add_shard(txn, record, (start, at - 1), Some(index), None)?;
    add_shard(txn, record, (at, end), Some(index), None)?;
    Ok(())
}

fn merge(txn: &mut WriteTxn<'_>, record: &mut StreamRecord, a: u64, b: u64) -> Result<u64> {
    let range = |i: u64| {
        record
            .shards
            .iter()
            .find(|s| s.index == i)
            .map(ShardRecord::range)
    };
    let (ra, rb) = (range(a), range(b));
    let (Some(ra), Some(rb)) = (ra, rb) else {
        return Err(Error::corrupt(KS_STREAMS, "merge of a missing shard"));
    };
    close(txn, record, a)?;
    close(txn, record, b)?;
    add_shard(
        txn,
        record,
        (ra.0.min(rb.0), ra.1.max(rb.1)),
        Some(a),
        Some(b),
    )
}

impl StreamService {
    /// The service over `store`, in region `us-east-1`, account `000000000000`.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            region: "us-east-1".to_owned(),
            limits: None,
        }
    }

    /// The same service with per-shard throughput limits: writes over a shard's limit fail
    /// with `ProvisionedThroughputExceededException` (per record in PutRecords), and so do
    /// GetRecords calls over its read limits. Buckets run on the service's clock and are not
    /// stored. Off by default.
    #[must_use]
    pub fn with_shard_limits(mut self, limits: ShardLimits) -> Self {
        self.limits = Some(Arc::new(Limiter::new(limits)));
        self
    }

    fn arn(&self, name: &str) -> String {
        format!("arn:aws:kinesis:{}:000000000000:stream/{name}", self.region)
    }

    async fn update<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&mut WriteTxn<'_>, &mut StreamRecord) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let name = name.to_owned();
        self.store
            .write(Durability::Durable, move |txn| {
                let mut record = load(txn, &name)?;
                let out = f(txn, &mut record)?;
                save(txn, &name, &record);
                Ok(out)
            })
            .await
    }

    pub(crate) async fn create_stream_impl(
        &self,
        name: &str,
        shard_count: Option<u32>,
        mode: StreamMode,
    ) -> Result<()> {
        validate_stream_name(name)?;
        let count = match (mode, shard_count) {
            (StreamMode::OnDemand, None) => 4,
            (StreamMode::OnDemand, Some(_)) => {
                return Err(Error::invalid(
                    "ShardCount",
                    "ShardCount cannot be given for an ON_DEMAND stream",
                ));
            }
            (StreamMode::Provisioned, None) => {
                return Err(Error::invalid(
                    "ShardCount",
                    "ShardCount is required for a PROVISIONED stream",
                ));
            }
            (StreamMode::Provisioned, Some(0)) => {
                return Err(Error::validation(
                    "ShardCount",
                    "Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
                ));
            }
            (StreamMode::Provisioned, Some(n)) => n as usize,
        };
        within_shard_limit(0, count)?;
        let name = name.to_owned();
        let now = self.clock.now();
        self.store
            .write(Durability::Durable, move |txn| {
                if txn.get(KS_STREAMS, name.as_bytes())?.is_some() {
                    return Err(Error::ResourceInUse {
                        message: format!(
                            "Stream {name} under account 000000000000 already exists."
                        ),
                    });
                }
                within_shard_limit(open_shards_elsewhere(txn, None)?, count)?;
                let id = txn.next_sequence(KS_META, b"streams")?;
                let mut record = StreamRecord {
                    id,
                    created: now,
                    mode,
                    retention_hours: DEFAULT_RETENTION_HOURS,
                    shards: Vec::new(),
                    expired_before: Timestamp::EPOCH,
                    scalings: Vec::new(),
                };
                let n = count as u128;
                for i in 0..n {
                    let start = uniform_start(i, n);
                    let end = if i + 1 == n {
                        u128::MAX
                    } else {
                        uniform_start(i + 1, n) - 1
                    };
                    add_shard(txn, &mut record, (start, end), None, None)?;
                }
                save(txn, &name, &record);
                Ok(())
            })
            .await
    }

    pub(crate) async fn delete_stream_impl(&self, name: &str) -> Result<()> {
        let key = name.to_owned();
        self.store
            .write(Durability::Durable, move |txn| {
                let record = load(txn, &key)?;
                txn.delete(KS_STREAMS, key.into_bytes());
                // Records, counter and leases go after this commit, in batches; the marker
                // lets a later call finish what a crash interrupted.
                txn.put(KS_META, deleted_key(record.id), Bytes::new());
                Ok::<_, Error>(record.id)
            })
            .await
            .inspect(|id| {
                if let Some(limits) = &self.limits {
                    limits.forget(*id);
                }
            })?;
        self.finish_deletions().await
    }

    /// Removes what deleted streams left: records, sequence counter, leases.
    async fn finish_deletions(&self) -> Result<()> {
        let snapshot = self.store.snapshot()?;
        let mut ids = Vec::new();
        for entry in snapshot.prefix(
            KS_META,
            &Tuple::new().str("deleted").build(),
            Direction::Forward,
        )? {
            let (key, _) = entry?;
            let mut reader = TupleReader::new(&key);
            reader.str()?;
            ids.push(reader.u64()?);
        }
        drop(snapshot);
        for id in ids {
            for keyspace in [KS_BATCHES, crate::consumers::KS_LEASES] {
                loop {
                    let done = self
                        .store
                        .write(Durability::Durable, move |txn| {
                            let prefix = KeyRange::prefix(Tuple::new().u64(id).build());
                            let keys: Vec<Bytes> = txn
                                .range(keyspace, &prefix, Direction::Forward)?
                                .take(10_000)
                                .map(|e| e.map(|(k, _)| k))
                                .collect::<cloudlet_core::Result<_>>()?;
                            let done = keys.len() < 10_000;
                            for key in keys {
                                txn.delete(keyspace, key);
                            }
                            Ok::<_, Error>(done)
                        })
                        .await?;
                    if done {
                        break;
                    }
                }
            }
            self.store
                .write(Durability::Durable, move |txn| {
                    txn.delete(KS_META, Tuple::new().u64(id).build());
                    txn.delete(KS_META, deleted_key(id));
                    Ok::<_, Error>(())
                })
                .await?;
        }
        Ok(())
    }

    pub(crate) fn describe_impl(&self, name: &str) -> Result<StreamDescription> {
        let record = load(&self.store.snapshot()?, name)?;
        Ok(StreamDescription {
            stream_name: name.to_owned(),
            stream_arn: self.arn(name),
            stream_status: "ACTIVE".to_owned(),
            mode: record.mode,
            retention_period_hours: record.retention_hours,
            shards: record.shards.iter().map(public_shard).collect(),
            created: record.created,
        })
    }

    pub(crate) fn list_streams_impl(&self) -> Result<Vec<String>> {
        let snapshot = self.store.snapshot()?;
        snapshot
            .range(KS_STREAMS, &KeyRange::all(), Direction::Forward)?
            .map(|e| {
                e.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                    .map_err(Error::from)
            })
            .collect()
    }

    pub(crate) async fn set_retention(&self, name: &str, hours: u32, increase: bool) -> Result<()> {
        if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
            return Err(Error::invalid(
                "RetentionPeriodHours",
                format!(
                    "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is outside this range."
                ),
            ));
        }
        let stream = name.to_owned();
        let now = self.clock.now();
        self.update(name, move |_, record| {
            let current = record.retention_hours;
            if increase && hours < current {
                return Err(Error::invalid("RetentionPeriodHours", format!("Requested retention period ({hours} hours) for stream {stream} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.")));
            }
            if !increase && hours > current {
                return Err(Error::invalid("RetentionPeriodHours", format!("Requested retention period ({hours} hours) for stream {stream} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.")));
            }
            record.expired_before = record.cutoff(now);
            record.retention_hours = hours;
            Ok(())
        })
        .await
    }

    pub(crate) async fn put_records_impl(
        &self,
        name: &str,
        entries: Vec<PutRecordsEntry>,
    ) -> Result<PutRecordsOutput> {
        if entries.is_empty() || entries.len() > MAX_PUT_RECORDS {
            return Err(Error::validation(
                "Records",
                format!(
                    "Records must hold between 1 and {MAX_PUT_RECORDS} entries, not {}",
                    entries.len()
                ),
            ));
        }
        let mut total = 0;
        let mut hashes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let chars = entry.partition_key.chars().count();
            if !(1..=256).contains(&chars) {
                return Err(Error::validation(
                    "PartitionKey",
                    format!(
                        "Value at 'partitionKey' failed to satisfy constraint: Member must have length between 1 and 256 ({chars} characters)"
                    ),
                ));
            }
            let size = entry.data.len() + entry.partition_key.len();
            if size > MAX_RECORD_BYTES {
                return Err(Error::validation(
                    "Data",
                    format!(
                        "A record's data and partition key together are {size} bytes; the limit is {MAX_RECORD_BYTES}"
                    ),
                ));
            }
            total += size;
            hashes.push(match &entry.explicit_hash_key {
                Some(text) => parse_hash_key(text, "ExplicitHashKey")?,
                None => hash_key(&entry.partition_key),
            });
        }
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(Error::invalid(
                "Records",
                format!("The request is {total} bytes; the limit is {MAX_PUT_RECORDS_BYTES}"),
            ));
        }
        let clock = self.clock.clone();
        let limits = self.limits.clone();
        let name = name.to_owned();
        self.store
            .write(Durability::Durable, move |txn| {
                // Read on the writer: arrival times follow sequence order.
                let now = clock.now();
                let record = load(txn, &name)?;
                // (last hash key, index) of each open shard, parsed once.
                let open: Vec<(u128, u64)> = record
                    .open_shards()
                    .iter()
                    .map(|s| (s.range().1, s.index))
                    .collect();
                // One counter update for the whole batch.
                let first = txn.reserve_sequence(
                    KS_META,
                    &Tuple::new().u64(record.id).build(),
                    entries.len() as u64,
                )?;
                let mut out = Vec::with_capacity(entries.len());
                let mut shard_ids = std::collections::HashMap::new();
                let mut failed = 0;
                // One batch per shard, its records in sequence order.
                let mut batches: std::collections::BTreeMap<u64, Vec<batch::Entry<'_>>> =
                    std::collections::BTreeMap::new();
                for (i, (entry, hash)) in entries.iter().zip(hashes).enumerate() {
                    let at = open.partition_point(|(end, _)| *end < hash);
                    let &(_, index) = open.get(at).ok_or_else(|| {
                        Error::corrupt(KS_STREAMS, "the open shards do not tile the hash range")
                    })?;
                    let n = first + i as u64;
                    if let Some(limits) = &limits {
                        let size = (entry.data.len() + entry.partition_key.len()) as u64;
                        if !limits.admit_write(record.id, index, size, now) {
                            failed += 1;
                            out.push(PutRecordsResult::Failed {
                                error_code: "ProvisionedThroughputExceededException".into(),
                                error_message: rate_exceeded(index, &name),
                            });
                            continue;
                        }
                    }
                    batches.entry(index).or_default().push(batch::Entry {
                        n,
                        partition_key: &entry.partition_key,
                        data: &entry.data,
                    });
                    out.push(PutRecordsResult::Ok(PutRecordOutput {
                        shard_id: shard_ids
                            .entry(index)
                            .or_insert_with(|| shard_id(index))
                            .clone(),
                        sequence_number: sequence_number(n, index),
                    }));
                }
                for (index, entries) in &batches {
                    txn.put(
                        KS_BATCHES,
                        batch_key(record.id, *index, entries[0].n),
                        batch::encode(now, entries),
                    );
                }
                txn.notify_on_commit(&signal_name(record.id));
                Ok(PutRecordsOutput {
                    failed_record_count: failed,
                    records: out,
                })
            })
            .await
    }

    pub(crate) fn shard_iterator_impl(
        &self,
        name: &str,
        shard: &str,
        position: StartingPosition,
    ) -> Result<String> {
        let (id, index, from) = self.start_position(name, shard, position)?;
        Ok(encode_iterator(&IteratorToken {
            s: id,
            n: name.to_owned(),
            h: index,
            f: from,
            t: self.clock.now().as_millis(),
        }))
    }

    /// Where `position` starts in `shard`: the stream's id, the shard's index, and the first
    /// sequence to read.
    pub(crate) fn start_position(
        &self,
        name: &str,
        shard: &str,
        position: StartingPosition,
    ) -> Result<(u64, u64, u64)> {
        let snapshot = self.store.snapshot()?;
        let record = load(&snapshot, name)?;
        let s = record.shard(shard, name)?;
        // A number must name this shard and lie in its range: from its starting number (as
        // DescribeStream gives it) to its ending one, or for an open shard the newest the
        // stream has issued. Records trimmed since do not make a number invalid.
        let newest = newest_batch(&snapshot, record.id, s.index)?.map(|b| b.last);
        let issued = snapshot
            .get(KS_META, &Tuple::new().u64(record.id).build())?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let upper = s.last.unwrap_or(issued);
        let in_shard = |text: &str| {
            let (n, index) = parse_sequence_number(text, "StartingSequenceNumber")?;
            if index != s.index || n < s.first || n > upper {
                Err(Error::invalid(
                    "StartingSequenceNumber",
                    format!(
                        "StartingSequenceNumber {text} used in GetShardIterator on shard {shard} in stream {name} under account 000000000000 is invalid because it did not come from this shard."
                    ),
                ))
            } else {
                Ok(n)
            }
        };
        let latest = || -> Result<u64> {
            Ok(match newest {
                Some(newest) => newest.saturating_add(1),
                None => s.first + 1,
            })
        };
        let from = match position {
            StartingPosition::TrimHorizon => 0,
            StartingPosition::Latest => latest()?,
            StartingPosition::AtSequenceNumber(text) => in_shard(&text)?,
            // At most the newest issued, so one more cannot overflow.
            StartingPosition::AfterSequenceNumber(text) => in_shard(&text)?.saturating_add(1),
            StartingPosition::AtTimestamp(at) => {
                let mut found = None;
                for entry in snapshot.range(
                    KS_BATCHES,
                    &shard_range(record.id, s.index, 0),
                    Direction::Forward,
                )? {
                    let (key, raw) = entry?;
                    if Batch::arrival_of(&raw)? >= at {
                        found = Some(batch::batch_first(&key)?);
                        break;
                    }
                }
                match found {
                    Some(n) => n,
                    None => latest()?,
                }
            }
        };
        Ok((record.id, s.index, from))
    }

    pub(crate) fn get_records_impl(
        &self,
        iterator: &str,
        limit: Option<usize>,
    ) -> Result<GetRecordsOutput> {
        let limit = limit.unwrap_or(MAX_GET_RECORDS);
        if limit == 0 {
            return Err(Error::validation(
                "Limit",
                "Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
        if limit > MAX_GET_RECORDS {
            return Err(Error::invalid(
                "Limit",
                format!(
                    "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MAX_GET_RECORDS}"
                ),
            ));
        }
        let it = decode_iterator(iterator)?;
        let now = self.clock.now();
        let issued = Timestamp::from_millis(it.t);
        if now.saturating_duration_since(issued) > ITERATOR_LIFETIME {
            return Err(Error::ExpiredIterator {
                message: format!(
                    "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of 300000 milliseconds.",
                    issued.iso8601(),
                    now.iso8601()
                ),
            });
        }
        if let Some(limits) = &self.limits
            && load(&self.store.snapshot()?, &it.n).is_ok_and(|r| r.id == it.s)
            && !limits.admit_read(it.s, it.h, now)
        {
            return Err(Error::ProvisionedThroughputExceeded {
                message: rate_exceeded(it.h, &it.n),
            });
        }
        let read = self.read_shard(&it.n, it.s, it.h, it.f, limit)?;
        if let Some(limits) = &self.limits {
            let bytes: usize = read
                .records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum();
            limits.charge_read(it.s, it.h, bytes as u64, now);
        }
        Ok(GetRecordsOutput {
            records: read.records,
            next_shard_iterator: (!read.at_end).then(|| {
                encode_iterator(&IteratorToken {
                    s: it.s,
                    n: it.n.clone(),
                    h: it.h,
                    f: read.next_from,
                    t: now.as_millis(),
                })
            }),
            millis_behind_latest: read.behind,
            child_shards: read.children,
        })
    }

    /// Reads up to `limit` records (and 10 MiB) of shard `index` of stream `name` (whose id
    /// must be `id`), from sequence `from` on, skipping records past retention.
    pub(crate) fn read_shard(
        &self,
        name: &str,
        id: u64,
        index: u64,
        from: u64,
        limit: usize,
    ) -> Result<ShardRead> {
        let now = self.clock.now();
        let snapshot = self.store.snapshot()?;
        let record = load(&snapshot, name)?;
        if record.id != id {
            return Err(not_found(name));
        }
        let shard = record
            .shards
            .iter()
            .find(|s| s.index == index)
            .ok_or_else(|| Error::invalid("ShardIterator", "Invalid ShardIterator."))?;
        let cutoff = record.cutoff(now);
        let mut records = Vec::new();
        let mut bytes = 0;
        let mut next_from = from;
        let mut behind = 0;
        let mut more = false;
        // Start at the batch that holds `from`, if one does.
        let holding = snapshot
            .range(
                KS_BATCHES,
                &KeyRange::new(
                    batch_key(record.id, shard.index, 0)
                        ..batch_key(record.id, shard.index, from.saturating_add(1)),
                ),
                Direction::Reverse,
            )?
            .next()
            .transpose()?
            .map(|(key, raw)| Batch::decode(&key, raw))
            .transpose()?
            .filter(|b| b.last >= from)
            .map_or(from, |b| b.first);
        'batches: for entry in snapshot.range(
            KS_BATCHES,
            &shard_range(record.id, shard.index, holding),
            Direction::Forward,
        )? {
            let (key, raw) = entry?;
            let batch = Batch::decode(&key, raw)?;
            let arrival = batch.arrival;
            if arrival < cutoff {
                next_from = next_from.max(batch.last.saturating_add(1));
                continue;
            }
            for stored in batch.records(from) {
                let stored = stored?;
                if records.len() == limit
                    || (bytes + stored.data.len() > MAX_GET_BYTES && !records.is_empty())
                {
                    behind = now.saturating_duration_since(arrival).as_millis() as u64;
                    more = true;
                    break 'batches;
                }
                bytes += stored.data.len();
                next_from = stored.n + 1;
                records.push(Record {
                    sequence_number: sequence_number(stored.n, shard.index),
                    approximate_arrival_timestamp: arrival,
                    data: stored.data,
                    partition_key: stored.partition_key,
                });
            }
        }
        let at_end = !more && shard.last.is_some();
        let children: Vec<&ShardRecord> = if at_end {
            record
                .shards
                .iter()
                .filter(|c| c.parent == Some(shard.index) || c.adjacent == Some(shard.index))
                .collect()
        } else {
            Vec::new()
        };
        Ok(ShardRead {
            records,
            next_from,
            at_end,
            behind,
            child_indexes: children.iter().map(|c| c.index).collect(),
            children: children
                .iter()
                .map(|c| ChildShard {
                    shard_id: shard_id(c.index),
                    parent_shards: c
                        .parent
                        .into_iter()
                        .chain(c.adjacent)
                        .map(shard_id)
                        .collect(),
                    starting_hash_key: c.start.clone(),
                    ending_hash_key: c.end.clone(),
                })
                .collect(),
        })
    }

    /// The stream's id and its shards as (index, parents, open), for consumers.
    pub(crate) fn shard_map(&self, name: &str) -> Result<(u64, Vec<ShardInfo>)> {
        let record = load(&self.store.snapshot()?, name)?;
        Ok((
            record.id,
            record
                .shards
                .iter()
                .map(|s| ShardInfo {
                    index: s.index,
                    parents: s.parent.into_iter().chain(s.adjacent).collect(),
                })
                .collect(),
        ))
    }

    /// The signal notified after each commit that adds records to stream `id`.
    pub(crate) fn signal(&self, id: u64) -> std::sync::Arc<tokio::sync::Notify> {
        self.store.signal(&signal_name(id))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) async fn split_shard_impl(
        &self,
        name: &str,
        shard: &str,
        new_starting_hash_key: &str,
    ) -> Result<()> {
        let at = parse_hash_key(new_starting_hash_key, "NewStartingHashKey")?;
        let (stream, shard) = (name.to_owned(), shard.to_owned());
        self.update(name, move |txn, record| {
            provisioned_only(record, "SplitShard")?;
            let s = record.shard(&shard, &stream)?.clone();
            if !s.is_open() {
                return Err(not_eligible(&shard, &stream));
            }
            let (start, end) = s.range();
            if at <= start.saturating_add(1) || at >= end {
                return Err(Error::invalid("NewStartingHashKey", format!("NewStartingHashKey {at} used in SplitShard() on shard {shard} in stream {stream} under account 000000000000 is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.")));
            }
            let open = record.open_shards().len() + open_shards_elsewhere(txn, Some(record.id))?;
            within_shard_limit(open, 1)?;
            split(txn, record, s.index, at)
        })
        .await
    }

    pub(crate) async fn merge_shards_impl(
        &self,
        name: &str,
        shard: &str,
        adjacent: &str,
    ) -> Result<()> {
        let (stream, a, b) = (name.to_owned(), shard.to_owned(), adjacent.to_owned());
        self.update(name, move |txn, record| {
            provisioned_only(record, "MergeShards")?;
            let sa = record.shard(&a, &stream)?.clone();
            let sb = record.shard(&b, &stream)?.clone();
            for (s, id) in [(&sa, &a), (&sb, &b)] {
                if !s.is_open() {
                    return Err(not_eligible(id, &stream));
                }
            }
            let (ra, rb) = (sa.range(), sb.range());
            let adjacent = ra.1.checked_add(1) == Some(rb.0) || rb.1.checked_add(1) == Some(ra.0);
            if !adjacent {
                return Err(Error::invalid("AdjacentShardToMerge", format!("Shards {a} and {b} in stream {stream} under account 000000000000 are not an adjacent pair of shards eligible for merging")));
            }
            merge(txn, record, sa.index, sb.index).map(|_| ())
        })
        .await
    }

    pub(crate) async fn update_shard_count_impl(&self, name: &str, target: u32) -> Result<()> {
        let target = target as usize;
        if target == 0 {
            return Err(Error::validation(
                "TargetShardCount",
                "Value '0' at 'targetShardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
        let now = self.clock.now();
        self.update(name, move |txn, record| {
            provisioned_only(record, "UpdateShardCount")?;
            // At most ten scalings in any 24 hours, as Kinesis limits them by default.
            record
                .scalings
                .retain(|at| now < at.saturating_add(SCALING_WINDOW));
            if record.scalings.len() >= MAX_SCALINGS {
                return Err(Error::LimitExceeded {
                    message: format!("UpdateShardCount may scale a stream at most {MAX_SCALINGS} times in a rolling 24-hour period"),
                });
            }
            record.scalings.push(now);
            let open = record.open_shards().len();
            // Kinesis's own messages for the half-and-double rule.
            if target > open * 2 {
                return Err(Error::LimitExceeded {
                    message: format!("UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {open} Target shard count: {target}"),
                });
            }
            if target * 2 < open {
                return Err(Error::LimitExceeded {
                    message: format!("UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {open} Target shard count: {target}"),
                });
            }
            if target > open {
                within_shard_limit(open + open_shards_elsewhere(txn, Some(record.id))?, target - open)?;
            }
            // As Kinesis does it: splits at every new boundary, then merges of what falls
            // within one new shard, so every step keeps a parent and an adjacent parent at most.
            let n = target as u128;
            let boundaries: Vec<u128> = (1..n).map(|i| uniform_start(i, n)).collect();
            for &b in &boundaries {
                let inside = record.open_shards().into_iter().find(|s| {
                    let (start, end) = s.range();
                    start < b && b <= end
                });
                if let Some(s) = inside.map(|s| s.index) {
                    split(txn, record, s, b)?;
                }
            }
            for i in 0..n {
                let start = uniform_start(i, n);
                let end = if i + 1 == n { u128::MAX } else { uniform_start(i + 1, n) - 1 };
                loop {
                    let pieces: Vec<u64> = record
                        .open_shards()
                        .into_iter()
                        .filter(|s| {
                            let (a, b) = s.range();
                            a >= start && b <= end
                        })
                        .map(|s| s.index)
                        .collect();
                    if pieces.len() < 2 {
                        break;
                    }
                    merge(txn, record, pieces[0], pieces[1])?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Deletes every record older than its stream's retention. Reads never return such
    /// records either way; this frees their space.
    ///
    /// # Errors
    /// [`Error::Storage`] when the store fails.
    pub async fn trim_expired(&self) -> Result<usize> {
        self.finish_deletions().await?;
        let now = self.clock.now();
        let mut removed = 0;
        for name in self.list_streams_impl()? {
            let Ok(record) = load(&self.store.snapshot()?, &name) else {
                continue;
            };
            let cutoff = record.cutoff(now);
            for shard in &record.shards {
                let (id, index) = (record.id, shard.index);
                loop {
                    let (count, more) = self
                        .store
                        .write(Durability::Durable, move |txn| {
                            let mut keys = Vec::new();
                            let mut more = false;
                            let mut count = 0;
                            for entry in txn.range(
                                KS_BATCHES,
                                &shard_range(id, index, 0),
                                Direction::Forward,
                            )? {
                                let (key, raw) = entry?;
                                let batch = Batch::decode(&key, raw)?;
                                if batch.arrival >= cutoff {
                                    break;
                                }
                                count += batch.records(0).count();
                                keys.push(key);
                                if keys.len() == 1_000 {
                                    more = true;
                                    break;
                                }
                            }
                            for key in keys {
                                txn.delete(KS_BATCHES, key);
                            }
                            Ok::<_, Error>((count, more))
                        })
                        .await?;
                    removed += count;
                    if !more {
                        break;
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// What a read of one shard found.
pub(crate) struct ShardRead {
    pub(crate) records: Vec<Record>,
    /// Where the next read starts.
    pub(crate) next_from: u64,
    /// The shard is closed and every record of it was read.
    pub(crate) at_end: bool,
    pub(crate) behind: u64,
    pub(crate) children: Vec<ChildShard>,
    pub(crate) child_indexes: Vec<u64>,
}

/// A shard as consumers see it.
#[derive(Debug, Clone)]
pub(crate) struct ShardInfo {
    pub(crate) index: u64,
    pub(crate) parents: Vec<u64>,
}

/// Kinesis's message for a shard over its limits.
fn rate_exceeded(shard: u64, stream: &str) -> String {
    format!(
        "Rate exceeded for shard {} in stream {stream} under account 000000000000.",
        shard_id(shard)
    )
}

fn deleted_key(id: u64) -> Bytes {
    Tuple::new().str("deleted").u64(id).build()
}

fn signal_name(id: u64) -> String {
    format!("kinesis/{id}")
}

fn not_eligible(shard: &str, stream: &str) -> Error {
    Error::invalid(
        "ShardToSplit",
        format!(
            "Shard {shard} in stream {stream} under account 000000000000 has already been merged or split, and thus is not eligible for merging or splitting."
        ),
    )
}

fn public_shard(s: &ShardRecord) -> Shard {
    Shard {
        shard_id: shard_id(s.index),
        parent_shard_id: s.parent.map(shard_id),
        adjacent_parent_shard_id: s.adjacent.map(shard_id),
        starting_hash_key: s.start.clone(),
        ending_hash_key: s.end.clone(),
        starting_sequence_number: sequence_number(s.first, s.index),
        ending_sequence_number: s.last.map(|last| sequence_number(last, s.index)),
    }
}

fn encode_iterator(it: &IteratorToken) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(it).unwrap_or_default())
}

fn decode_iterator(text: &str) -> Result<IteratorToken> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| Error::invalid("ShardIterator", "Invalid ShardIterator."))
}

/// SplitShard, MergeShards and UpdateShardCount are for provisioned streams only, as Kinesis
/// has them: an on-demand stream scales itself.
fn provisioned_only(record: &StreamRecord, operation: &str) -> Result<()> {
    if record.mode == StreamMode::OnDemand {
        return Err(Error::invalid(
            "StreamMode",
            format!("{operation} is only supported for streams in the PROVISIONED capacity mode"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_56_digits_that_read_back() {
        for (n, shard) in [(0, 0), (1, 7), (123_456_789, 499), (u64::MAX, u64::MAX)] {
            let text = sequence_number(n, shard);
            assert_eq!(text, format!("49{n:034}{shard:020}"));
            assert_eq!(parse_sequence_number(&text, "x").unwrap(), (n, shard));
        }
    }
}
