//! cloudlet-stream: Kinesis semantics as a library, over cloudlet's storage and clock.
//!
//! [`StreamService`] implements [`Streams`]: streams of shards that tile the 128-bit hash key
//! space; records routed by the MD5 of their partition key exactly as Kinesis routes them;
//! sequence numbers that are unique, increasing 56-digit decimal strings; shard iterators of
//! every kind, expiring after five minutes on the clock; retention on the clock; and
//! resharding (split, merge, uniform scaling) with lineage, the open shards always tiling the
//! whole range.
//!
//! ```
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_stream::{PutRecordsEntry, StartingPosition, StreamService, Streams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_stream::Error> {
//! let kinesis = StreamService::new(Store::memory(), ManualClock::default().shared());
//! kinesis.create_stream("clicks", 2).await?;
//! let put = kinesis.put_record("clicks", PutRecordsEntry::new("user-1", "page=/home"), None).await?;
//! let iterator = kinesis
//!     .get_shard_iterator("clicks", &put.shard_id, StartingPosition::TrimHorizon)
//!     .await?;
//! let got = kinesis.get_records(&iterator, None).await?;
//! assert_eq!(got.records[0].data, "page=/home");
//! assert_eq!(got.records[0].sequence_number, put.sequence_number);
//! # Ok(()) }
//! ```
//!
//! [`StreamService::subscribe_to_shard`] pushes batches as they arrive and follows a shard into
//! its children; [`StreamService::consumer`] gives a consumer-group worker with leases and
//! checkpoints in the engine; [`StreamSink`] makes a stream a core `Sink`.
//!
//! Records are stored one engine row per shard per put (a put of 500 records over four
//! shards writes four rows), in the same transaction as the sequence counter, so a put is
//! acknowledged once it is durable and many producers share one fsync through core's group
//! commit. [`StreamService::with_shard_limits`] turns on Kinesis's per-shard throughput
//! limits, off by default.

mod batch;
mod consumers;
mod error;
mod hash;
mod limits;
mod service;
mod sink;
mod types;

use async_trait::async_trait;

pub use consumers::{Batch, Consumer, ConsumerOptions, Subscription};
pub use error::{Error, Result};
pub use hash::hash_key;
pub use limits::ShardLimits;
pub use service::{
    DEFAULT_RETENTION_HOURS, ITERATOR_LIFETIME, MAX_GET_BYTES, MAX_GET_RECORDS, MAX_OPEN_SHARDS,
    MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES, MAX_RECORD_BYTES, StreamService,
};
pub use sink::StreamSink;
pub use types::{
    ChildShard, GetRecordsOutput, PutRecordOutput, PutRecordsEntry, PutRecordsOutput,
    PutRecordsResult, Record, Shard, StartingPosition, StreamDescription, StreamMode,
};

/// Kinesis Data Streams' operations. Every method validates its input first and answers
/// Kinesis's error for bad input; a rejected request writes nothing.
#[async_trait]
pub trait Streams: Send + Sync + std::fmt::Debug + 'static {
    /// CreateStream with `shard_count` uniform shards (provisioned).
    async fn create_stream(&self, name: &str, shard_count: u32) -> Result<()>;
    /// CreateStream in on-demand mode (4 shards to begin with).
    async fn create_on_demand_stream(&self, name: &str) -> Result<()>;
    /// DeleteStream, with its records.
    async fn delete_stream(&self, name: &str) -> Result<()>;
    /// DescribeStream: every shard, open and closed.
    async fn describe_stream(&self, name: &str) -> Result<StreamDescription>;
    /// ListStreams, by name.
    async fn list_streams(&self) -> Result<Vec<String>>;
    /// ListShards.
    async fn list_shards(&self, name: &str) -> Result<Vec<Shard>>;
    /// IncreaseStreamRetentionPeriod (24 to 8,760 hours, not below the current).
    async fn increase_retention_period(&self, name: &str, hours: u32) -> Result<()>;
    /// DecreaseStreamRetentionPeriod (24 to 8,760 hours, not above the current).
    async fn decrease_retention_period(&self, name: &str, hours: u32) -> Result<()>;
    /// PutRecord. `sequence_number_for_ordering`, when given, must be a sequence number;
    /// sequence numbers here always increase, so it orders nothing further.
    async fn put_record(
        &self,
        name: &str,
        entry: PutRecordsEntry,
        sequence_number_for_ordering: Option<&str>,
    ) -> Result<PutRecordOutput>;
    /// PutRecords: up to 500 records and 10 MiB, results per record in order.
    async fn put_records(
        &self,
        name: &str,
        entries: Vec<PutRecordsEntry>,
    ) -> Result<PutRecordsOutput>;
    /// GetShardIterator.
    async fn get_shard_iterator(
        &self,
        name: &str,
        shard_id: &str,
        position: StartingPosition,
    ) -> Result<String>;
    /// GetRecords: up to `limit` (default and most 10,000) records or 10 MiB.
    async fn get_records(&self, iterator: &str, limit: Option<usize>) -> Result<GetRecordsOutput>;
    /// SplitShard at `new_starting_hash_key` (a decimal string).
    async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
        new_starting_hash_key: &str,
    ) -> Result<()>;
    /// MergeShards of two adjacent open shards.
    async fn merge_shards(&self, name: &str, shard_id: &str, adjacent_shard_id: &str)
    -> Result<()>;
    /// UpdateShardCount with uniform scaling, to between half and double the open shards.
    async fn update_shard_count(&self, name: &str, target_shard_count: u32) -> Result<()>;
}

#[async_trait]
impl Streams for StreamService {
    async fn create_stream(&self, name: &str, shard_count: u32) -> Result<()> {
        self.create_stream_impl(name, Some(shard_count), StreamMode::Provisioned)
            .await
    }

    async fn create_on_demand_stream(&self, name: &str) -> Result<()> {
        self.create_stream_impl(name, None, StreamMode::OnDemand)
            .await
    }

    async fn delete_stream(&self, name: &str) -> Result<()> {
        self.delete_stream_impl(name).await
    }

    async fn describe_stream(&self, name: &str) -> Result<StreamDescription> {
        self.describe_impl(name)
    }

    async fn list_streams(&self) -> Result<Vec<String>> {
        self.list_streams_impl()
    }

    async fn list_shards(&self, name: &str) -> Result<Vec<Shard>> {
        Ok(self.describe_impl(name)?.shards)
    }

    async fn increase_retention_period(&self, name: &str, hours: u32) -> Result<()> {
        self.set_retention(name, hours, true).await
    }

    async fn decrease_retention_period(&self, name: &str, hours: u32) -> Result<()> {
        self.set_retention(name, hours, false).await
    }

    async fn put_record(
        &self,
        name: &str,
        entry: PutRecordsEntry,
        sequence_number_for_ordering: Option<&str>,
    ) -> Result<PutRecordOutput> {
        if let Some(seq) = sequence_number_for_ordering {
            let ok = seq.len() <= 128 && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(Error::invalid(
                    "SequenceNumberForOrdering",
                    format!("{seq} is not a sequence number"),
                ));
            }
        }
        let out = self.put_records_impl(name, vec![entry]).await?;
        match out.records.into_iter().next() {
            Some(PutRecordsResult::Ok(put)) => Ok(put),
            Some(PutRecordsResult::Failed {
                error_code,
                error_message,
            }) if error_code == "ProvisionedThroughputExceededException" => {
                Err(Error::ProvisionedThroughputExceeded {
                    message: error_message,
                })
            }
            _ => Err(Error::corrupt(
                "kinesis.batches",
                "a put of one record answered no record",
            )),
        }
    }

    async fn put_records(
        &self,
        name: &str,
        entries: Vec<PutRecordsEntry>,
    ) -> Result<PutRecordsOutput> {
        self.put_records_impl(name, entries).await
    }

    async fn get_shard_iterator(
        &self,
        name: &str,
        shard_id: &str,
        position: StartingPosition,
    ) -> Result<String> {
        self.shard_iterator_impl(name, shard_id, position)
    }

    async fn get_records(&self, iterator: &str, limit: Option<usize>) -> Result<GetRecordsOutput> {
        self.get_records_impl(iterator, limit)
    }

    async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
        new_starting_hash_key: &str,
    ) -> Result<()> {
        self.split_shard_impl(name, shard_id, new_starting_hash_key)
            .await
    }

    async fn merge_shards(
        &self,
        name: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Result<()> {
        self.merge_shards_impl(name, shard_id, adjacent_shard_id)
            .await
    }

    async fn update_shard_count(&self, name: &str, target_shard_count: u32) -> Result<()> {
        self.update_shard_count_impl(name, target_shard_count).await
    }
}
