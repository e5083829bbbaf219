//! Kinesis's per-shard throughput limits, for users who want to test throttling: off unless
//! the service is built with [`StreamService::with_shard_limits`](crate::StreamService::with_shard_limits).
//!
//! Each shard has four token buckets on the service's clock, each holding at most one
//! second's worth: records in, bytes in, reads, bytes out. A write takes one record and its
//! bytes, or fails. A read needs one read token and a bytes-out bucket not in debt, and then
//! takes what it returned, which may put the bucket in debt until the rate pays it back: a
//! GetRecords that returns 10 MiB makes the next ones fail for four seconds (Kinesis
//! documents five; its accounting keeps no second in reserve, which would also refuse a
//! second small read at the same instant of a manual clock).

use std::collections::HashMap;
use std::sync::Mutex;

use cloudlet_core::Timestamp;

/// Per-shard limits. [`ShardLimits::KINESIS`] is what a provisioned Kinesis shard allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    /// Records written per second.
    pub write_records_per_second: u64,
    /// Bytes written per second (data and partition key).
    pub write_bytes_per_second: u64,
    /// GetRecords calls per second.
    pub reads_per_second: u64,
    /// Bytes read per second.
    pub read_bytes_per_second: u64,
}

impl ShardLimits {
    /// 1,000 records and 1 MiB written, 5 reads and 2 MiB read, per shard per second.
    pub const KINESIS: Self = Self {
        write_records_per_second: 1_000,
        write_bytes_per_second: 1 << 20,
        reads_per_second: 5,
        read_bytes_per_second: 2 << 20,
    };
}

/// A token bucket: `tokens` at `at`, refilled at `rate` per second up to `rate`. Tokens are
/// kept in millionths so that refills of a few milliseconds are not lost.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    micro_tokens: i128,
    at: Timestamp,
}

impl Bucket {
    fn new(tokens: u64, now: Timestamp) -> Self {
        Self {
            micro_tokens: i128::from(tokens) * 1_000_000,
            at: now,
        }
    }

    /// Adds what `rate` per second gives since the last refill, up to `cap`.
    fn refill(&mut self, rate: u64, cap: u64, now: Timestamp) {
        let elapsed = now.saturating_duration_since(self.at).as_micros() as i128;
        let cap = i128::from(cap) * 1_000_000;
        self.micro_tokens = (self.micro_tokens + elapsed * i128::from(rate)).min(cap);
        self.at = self.at.max(now);
    }

    fn has(&self, tokens: u64) -> bool {
        self.micro_tokens >= i128::from(tokens) * 1_000_000
    }

    fn take(&mut self, tokens: u64) {
        self.micro_tokens -= i128::from(tokens) * 1_000_000;
    }
}

#[derive(Debug, Clone, Copy)]
struct ShardBuckets {
    records_in: Bucket,
    bytes_in: Bucket,
    reads: Bucket,
    bytes_out: Bucket,
}

/// The buckets of every shard, by (stream id, shard index).
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: ShardLimits,
    shards: Mutex<HashMap<(u64, u64), ShardBuckets>>,
}

impl Limiter {
    pub(crate) fn new(limits: ShardLimits) -> Self {
        Self {
            limits,
            shards: Mutex::default(),
        }
    }

    fn with<T>(
        &self,
        stream: u64,
        shard: u64,
        now: Timestamp,
        f: impl FnOnce(&mut ShardBuckets, &ShardLimits) -> T,
    ) -> T {
        let limits = self.limits;
        let mut shards = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = shards.entry((stream, shard)).or_insert(ShardBuckets {
            records_in: Bucket::new(limits.write_records_per_second, now),
            bytes_in: Bucket::new(limits.write_bytes_per_second, now),
            reads: Bucket::new(limits.reads_per_second, now),
            bytes_out: Bucket::new(limits.read_bytes_per_second, now),
        });
        let (records, bytes) = (
            limits.write_records_per_second,
            limits.write_bytes_per_second,
        );
        buckets.records_in.refill(records, records, now);
        buckets.bytes_in.refill(bytes, bytes, now);
        buckets
            .reads
            .refill(limits.reads_per_second, limits.reads_per_second, now);
        let out = limits.read_bytes_per_second;
        buckets.bytes_out.refill(out, out, now);
        f(buckets, &limits)
    }

    /// Takes one record of `bytes` into the shard; false when the shard is over its limit.
    pub(crate) fn admit_write(&self, stream: u64, shard: u64, bytes: u64, now: Timestamp) -> bool {
        self.with(stream, shard, now, |b, _| {
            if b.records_in.has(1) && b.bytes_in.has(bytes) {
                b.records_in.take(1);
                b.bytes_in.take(bytes);
                true
            } else {
                false
            }
        })
    }

    /// Takes one read from the shard; false when it is over its limit.
    pub(crate) fn admit_read(&self, stream: u64, shard: u64, now: Timestamp) -> bool {
        self.with(stream, shard, now, |b, _| {
            if b.reads.has(1) && b.bytes_out.has(0) {
                b.reads.take(1);
                true
            } else {
                false
            }
        })
    }

    /// Forgets a deleted stream's buckets.
    pub(crate) fn forget(&self, stream: u64) {
        if let Ok(mut shards) = self.shards.lock() {
            shards.retain(|(s, _), _| *s != stream);
        }
    }

    /// Counts `bytes` read from the shard.
    pub(crate) fn charge_read(&self, stream: u64, shard: u64, bytes: u64, now: Timestamp) {
        self.with(stream, shard, now, |b, _| b.bytes_out.take(bytes));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn buckets_refill_on_the_clock_up_to_one_second() {
        let limiter = Limiter::new(ShardLimits::KINESIS);
        let t0 = Timestamp::from_millis(1_000_000);
        for _ in 0..1_000 {
            assert!(limiter.admit_write(1, 0, 10, t0));
        }
        assert!(!limiter.admit_write(1, 0, 10, t0));
        // Another shard has its own.
        assert!(limiter.admit_write(1, 1, 10, t0));
        // 100 ms gives back 100 records.
        let t1 = t0.saturating_add(Duration::from_millis(100));
        for _ in 0..100 {
            assert!(limiter.admit_write(1, 0, 10, t1));
        }
        assert!(!limiter.admit_write(1, 0, 10, t1));
        // A long idle refills one second's worth, no more.
        let t2 = t1.saturating_add(Duration::from_secs(60));
        for _ in 0..1_000 {
            assert!(limiter.admit_write(1, 0, 10, t2));
        }
        assert!(!limiter.admit_write(1, 0, 10, t2));
    }

    #[test]
    fn bytes_limit_writes_and_a_big_read_puts_reads_in_debt() {
        let limiter = Limiter::new(ShardLimits::KINESIS);
        let t0 = Timestamp::from_millis(0);
        assert!(limiter.admit_write(1, 0, 1 << 20, t0));
        assert!(!limiter.admit_write(1, 0, 1, t0));

        assert!(limiter.admit_read(1, 0, t0));
        limiter.charge_read(1, 0, 10 << 20, t0);
        // 10 MiB at 2 MiB/s, less the second held: four seconds of debt.
        let t4 = t0.saturating_add(Duration::from_millis(3_999));
        assert!(!limiter.admit_read(1, 0, t4));
        let t5 = t0.saturating_add(Duration::from_millis(4_000));
        assert!(limiter.admit_read(1, 0, t5));
        limiter.forget(1);
        assert!(limiter.admit_read(1, 0, t0));
    }

    #[test]
    fn five_reads_a_second() {
        let limiter = Limiter::new(ShardLimits::KINESIS);
        let t0 = Timestamp::from_millis(0);
        for _ in 0..5 {
            assert!(limiter.admit_read(1, 0, t0));
        }
        assert!(!limiter.admit_read(1, 0, t0));
        assert!(limiter.admit_read(1, 0, t0.saturating_add(Duration::from_millis(200))));
    }
}
