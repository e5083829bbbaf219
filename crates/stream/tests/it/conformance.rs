//! The Kinesis conformance suite: each check runs on the memory and the redb engine.

use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{Clock, ManualClock, Store};
use cloudlet_stream::{
    ConsumerOptions, Error, PutRecordsEntry, PutRecordsResult, Shard, ShardLimits,
    StartingPosition, StreamMode, StreamService, StreamSink, Streams, hash_key,
};
use futures::StreamExt;
use tempfile::TempDir;

pub struct Harness {
    pub kinesis: StreamService,
    pub clock: ManualClock,
    store: Store,
    dir: Option<TempDir>,
}

impl Harness {
    fn memory() -> Self {
        let clock = ManualClock::starting_2025();
        let store = Store::memory();
        Self {
            kinesis: StreamService::new(store.clone(), clock.shared()),
            clock,
            store,
            dir: None,
        }
    }

    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_2025();
        let store = Store::new(RedbEngine::open(dir.path()).unwrap());
        Self {
            kinesis: StreamService::new(store.clone(), clock.shared()),
            clock,
            store,
            dir: Some(dir),
        }
    }

    async fn restart(mut self) -> Self {
        let store = match &self.dir {
            Some(dir) => {
                let old = std::mem::replace(&mut self.store, Store::memory());
                drop(self.kinesis);
                old.close().await;
                Store::new(RedbEngine::open(dir.path()).unwrap())
            }
            None => self.store.clone(),
        };
        Self {
            kinesis: StreamService::new(store.clone(), self.clock.shared()),
            clock: self.clock,
            store,
            dir: self.dir,
        }
    }
}

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                streams_are_created_described_listed_and_deleted,
                partition_keys_route_by_md5,
                sequence_numbers_increase_and_compare,
                iterators_of_every_kind,
                sequence_numbers_from_describe_stream_start_iterators,
                the_shard_limit_counts_every_stream,
                get_records_pages_and_reports_lag,
                iterators_expire_after_five_minutes,
                retention_hides_and_trims_old_records,
                rejected_puts_write_nothing,
                split_closes_the_parent_and_names_its_children,
                merges_take_adjacent_open_shards,
                update_shard_count_scales_uniformly,
                records_survive_a_restart,
                subscriptions_push_batches_and_follow_children,
                consumer_groups_share_shards_and_resume_from_checkpoints,
                children_wait_for_their_parents,
                a_worker_taking_over_a_finished_parent_goes_on_to_its_children,
                a_stream_is_a_sink,
                expired_records_stay_expired_and_numbers_name_their_shard,
                an_unacknowledged_last_batch_comes_again,
                a_put_reads_back_from_any_of_its_records,
                shard_limits_throttle_only_when_turned_on,
            );
        }
    };
    (@tests $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                checks::$check($open).await
            }
        )*
    };
}

conformance!(memory, Harness::memory());
conformance!(redb, Harness::redb());

fn open(shards: &[Shard]) -> Vec<&Shard> {
    let mut open: Vec<_> = shards.iter().filter(|s| s.is_open()).collect();
    open.sort_by_key(|s| s.starting_hash_key.parse::<u128>().unwrap());
    open
}

/// The open shards cover 0..=2^128-1 without gap or overlap.
fn assert_tiles(shards: &[Shard]) {
    let open = open(shards);
    let mut next = 0u128;
    for (i, s) in open.iter().enumerate() {
        assert_eq!(
            s.starting_hash_key.parse::<u128>().unwrap(),
            next,
            "{shards:#?}"
        );
        let end: u128 = s.ending_hash_key.parse().unwrap();
        if i + 1 == open.len() {
            assert_eq!(end, u128::MAX);
        } else {
            next = end + 1;
        }
    }
}

fn shard_for(shards: &[Shard], hash: u128) -> String {
    open(shards)
        .into_iter()
        .find(|s| {
            s.starting_hash_key.parse::<u128>().unwrap() <= hash
                && hash <= s.ending_hash_key.parse::<u128>().unwrap()
        })
        .unwrap()
        .shard_id
        .clone()
}

async fn read_all(h: &Harness, stream: &str, shard: &str) -> Vec<(String, Bytes)> {
    let mut it = h
        .kinesis
        .get_shard_iterator(stream, shard, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let got = h.kinesis.get_records(&it, Some(100)).await.unwrap();
        let empty = got.records.is_empty();
        out.extend(got.records.into_iter().map(|r| (r.partition_key, r.data)));
        match got.next_shard_iterator {
            Some(next) if !empty => it = next,
            _ => return out,
        }
    }
}

mod checks {
    use super::*;

    pub async fn streams_are_created_described_listed_and_deleted(h: Harness) {
        h.kinesis.create_stream("orders", 3).await.unwrap();
        let d = h.kinesis.describe_stream("orders").await.unwrap();
        assert_eq!(
            d.stream_arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
        );
        assert_eq!(
            (d.stream_status.as_str(), d.retention_period_hours, d.mode),
            ("ACTIVE", 24, StreamMode::Provisioned)
        );
        let ids: Vec<_> = d.shards.iter().map(|s| s.shard_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "shardId-000000000000",
                "shardId-000000000001",
                "shardId-000000000002"
            ]
        );
        assert_eq!(
            d.shards[1].starting_hash_key,
            "113427455640312821154458202477256070485"
        );
        assert_eq!(
            d.shards[0].ending_hash_key,
            "113427455640312821154458202477256070484"
        );
        assert_eq!(d.shards[2].ending_hash_key, u128::MAX.to_string());
        assert!(
            d.shards
                .iter()
                .all(|s| s.is_open() && s.parent_shard_id.is_none())
        );
        assert_tiles(&d.shards);

        let again = h.kinesis.create_stream("orders", 1).await.unwrap_err();
        assert_eq!(again.code(), "ResourceInUseException");
        for bad in ["", "has space", &"x".repeat(129)] {
            assert_eq!(
                h.kinesis.create_stream(bad, 1).await.unwrap_err().code(),
                "ValidationException",
                "{bad:?}"
            );
        }
        assert_eq!(
            h.kinesis.create_stream("zero", 0).await.unwrap_err().code(),
            "ValidationException"
        );
        assert_eq!(
            h.kinesis
                .create_stream("huge", 501)
                .await
                .unwrap_err()
                .code(),
            "LimitExceededException"
        );
        h.kinesis.create_on_demand_stream("auto").await.unwrap();
        let auto = h.kinesis.describe_stream("auto").await.unwrap();
        assert_eq!((auto.mode, auto.shards.len()), (StreamMode::OnDemand, 4));
        assert_eq!(h.kinesis.list_streams().await.unwrap(), ["auto", "orders"]);

        h.kinesis
            .put_record("orders", PutRecordsEntry::new("k", "v"), None)
            .await
            .unwrap();
        h.kinesis.delete_stream("orders").await.unwrap();
        let gone = h.kinesis.describe_stream("orders").await.unwrap_err();
        assert!(matches!(gone, Error::ResourceNotFound { .. }));
        assert_eq!(
            h.kinesis.delete_stream("orders").await.unwrap_err().code(),
            "ResourceNotFoundException"
        );
        // A new stream of the same name starts empty.
        h.kinesis.create_stream("orders", 1).await.unwrap();
        assert!(
            read_all(&h, "orders", "shardId-000000000000")
                .await
                .is_empty()
        );
    }

    pub async fn partition_keys_route_by_md5(h: Harness) {
        // MD5s computed independently (Python's hashlib), read big-endian.
        for (key, want) in [
            ("a", 16_955_237_001_963_240_173_058_271_559_858_726_497u128),
            (
                "user-1",
                285_573_413_173_782_752_570_879_317_399_258_818_820,
            ),
            (
                "partition-key-42",
                83_989_209_188_138_350_449_592_802_230_066_768_018,
            ),
            ("é", 136_732_923_097_551_493_579_404_309_126_273_812_335),
        ] {
            assert_eq!(hash_key(key), want, "{key}");
        }
        h.kinesis.create_stream("s", 4).await.unwrap();
        let shards = h.kinesis.list_shards("s").await.unwrap();
        for key in ["a", "user-1", "partition-key-42", "é", "another"] {
            let put = h
                .kinesis
                .put_record("s", PutRecordsEntry::new(key, "x"), None)
                .await
                .unwrap();
            assert_eq!(put.shard_id, shard_for(&shards, hash_key(key)), "{key}");
        }
        let low = h
            .kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "x").with_explicit_hash_key("0"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(low.shard_id, "shardId-000000000000");
        let high = h
            .kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "x").with_explicit_hash_key(u128::MAX.to_string()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(high.shard_id, "shardId-000000000003");
        for bad in ["-1", "1e5", "", "340282366920938463463374607431768211456"] {
            let err = h
                .kinesis
                .put_record(
                    "s",
                    PutRecordsEntry::new("k", "x").with_explicit_hash_key(bad),
                    None,
                )
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidArgument {
                        field: "ExplicitHashKey",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
    }

    pub async fn sequence_numbers_increase_and_compare(h: Harness) {
        h.kinesis.create_stream("s", 2).await.unwrap();
        let entries = (0..50)
            .map(|i| PutRecordsEntry::new(format!("k{}", i % 5), format!("{i}")))
            .collect();
        let out = h.kinesis.put_records("s", entries).await.unwrap();
        assert_eq!(out.failed_record_count, 0);
        let seqs: Vec<String> = out
            .records
            .iter()
            .map(|r| match r {
                PutRecordsResult::Ok(put) => put.sequence_number.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        for pair in seqs.windows(2) {
            assert!(pair[0] < pair[1]);
            assert_eq!(pair[0].len(), 56);
            // Equal lengths: string order is numeric order.
            assert_eq!(pair[0].len(), pair[1].len());
            assert!(pair[0].bytes().all(|b| b.is_ascii_digit()));
        }
        let ordered = h
            .kinesis
            .put_record("s", PutRecordsEntry::new("k0", "x"), Some(&seqs[49]))
            .await
            .unwrap();
        assert!(ordered.sequence_number > seqs[49]);
        let bad = h
            .kinesis
            .put_record("s", PutRecordsEntry::new("k0", "x"), Some("abc"))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "InvalidArgumentException");
    }

    pub async fn iterators_of_every_kind(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        let shard = "shardId-000000000000";
        let mut seqs = Vec::new();
        for i in 0..5 {
            seqs.push(
                h.kinesis
                    .put_record("s", PutRecordsEntry::new("k", format!("r{i}")), None)
                    .await
                    .unwrap()
                    .sequence_number,
            );
            h.clock.advance(Duration::from_secs(10));
        }
        let data = |position| async {
            let it = h
                .kinesis
                .get_shard_iterator("s", shard, position)
                .await
                .unwrap();
            let got = h.kinesis.get_records(&it, None).await.unwrap();
            got.records
                .into_iter()
                .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            data(StartingPosition::TrimHorizon).await,
            ["r0", "r1", "r2", "r3", "r4"]
        );
        assert_eq!(
            data(StartingPosition::AtSequenceNumber(seqs[2].clone())).await,
            ["r2", "r3", "r4"]
        );
        assert_eq!(
            data(StartingPosition::AfterSequenceNumber(seqs[2].clone())).await,
            ["r3", "r4"]
        );
        let t2 = cloudlet_core::Timestamp::from_secs(h.clock.now().as_secs() - 30);
        assert_eq!(
            data(StartingPosition::AtTimestamp(t2)).await,
            ["r2", "r3", "r4"]
        );
        assert!(
            data(StartingPosition::AtTimestamp(h.clock.now()))
                .await
                .is_empty()
        );
        let latest = h
            .kinesis
            .get_shard_iterator("s", shard, StartingPosition::Latest)
            .await
            .unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "r5"), None)
            .await
            .unwrap();
        let got = h.kinesis.get_records(&latest, None).await.unwrap();
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].data, "r5");
        assert_eq!(got.records[0].partition_key, "k");

        let bad = h
            .kinesis
            .get_shard_iterator("s", shard, StartingPosition::AtSequenceNumber("12".into()))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "InvalidArgumentException");
        let missing = h
            .kinesis
            .get_shard_iterator("s", "shardId-000000000009", StartingPosition::Latest)
            .await
            .unwrap_err();
        assert_eq!(missing.code(), "ResourceNotFoundException");
        let no_stream = h
            .kinesis
            .get_shard_iterator("nope", shard, StartingPosition::Latest)
            .await
            .unwrap_err();
        assert_eq!(no_stream.code(), "ResourceNotFoundException");
        assert_eq!(
            h.kinesis
                .get_records("garbage", None)
                .await
                .unwrap_err()
                .code(),
            "InvalidArgumentException"
        );
    }

    pub async fn the_shard_limit_counts_every_stream(h: Harness) {
        h.kinesis.create_stream("a", 300).await.unwrap();
        h.kinesis.create_stream("b", 200).await.unwrap();
        let over = h.kinesis.create_stream("c", 1).await.unwrap_err();
        assert_eq!(over.code(), "LimitExceededException");
        assert!(
            over.to_string()
                .contains("Current shard count for the account: 500. Limit: 500. Number of additional shards that would have resulted from this request: 1."),
            "{over}"
        );
        let split = h
            .kinesis
            .split_shard("b", "shardId-000000000000", "5")
            .await
            .unwrap_err();
        assert_eq!(split.code(), "LimitExceededException", "{split}");
        let scale = h.kinesis.update_shard_count("a", 301).await.unwrap_err();
        assert_eq!(scale.code(), "LimitExceededException", "{scale}");
        // Scaling down frees shards for others; so does deleting a stream.
        h.kinesis.update_shard_count("a", 299).await.unwrap();
        h.kinesis.create_stream("c", 1).await.unwrap();
        h.kinesis.delete_stream("b").await.unwrap();
        h.kinesis.create_stream("d", 200).await.unwrap();
    }

    pub async fn sequence_numbers_from_describe_stream_start_iterators(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        let read = |shard: String, position| {
            let kinesis = h.kinesis.clone();
            async move {
                let it = kinesis.get_shard_iterator("s", &shard, position).await?;
                let got = kinesis.get_records(&it, None).await?;
                Ok::<_, Error>(
                    got.records
                        .into_iter()
                        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
                        .collect::<Vec<_>>(),
                )
            }
        };
        // An empty shard's starting number is a valid position.
        let shard = h.kinesis.describe_stream("s").await.unwrap().shards[0].clone();
        let start = shard.starting_sequence_number.clone();
        assert!(
            read(
                shard.shard_id.clone(),
                StartingPosition::AtSequenceNumber(start.clone())
            )
            .await
            .unwrap()
            .is_empty()
        );
        for i in 0..3 {
            h.kinesis
                .put_record("s", PutRecordsEntry::new("k", format!("r{i}")), None)
                .await
                .unwrap();
        }
        assert_eq!(
            read(
                shard.shard_id.clone(),
                StartingPosition::AtSequenceNumber(start.clone())
            )
            .await
            .unwrap(),
            ["r0", "r1", "r2"]
        );
        // A closed shard's ending number too (the last number it could hold): after it
        // there is nothing more.
        h.kinesis
            .split_shard("s", &shard.shard_id, "5")
            .await
            .unwrap();
        let closed = h.kinesis.describe_stream("s").await.unwrap().shards[0].clone();
        let end = closed.ending_sequence_number.clone().unwrap();
        let at_end = read(
            closed.shard_id.clone(),
            StartingPosition::AtSequenceNumber(end.clone()),
        )
        .await
        .unwrap();
        assert!(at_end.len() <= 1, "{at_end:?}");
        assert!(
            read(
                closed.shard_id.clone(),
                StartingPosition::AfterSequenceNumber(end)
            )
            .await
            .unwrap()
            .is_empty()
        );
    }

    pub async fn get_records_pages_and_reports_lag(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        for i in 0..5 {
            h.kinesis
                .put_record("s", PutRecordsEntry::new("k", format!("{i}")), None)
                .await
                .unwrap();
        }
        h.clock.advance(Duration::from_secs(2));
        let mut it = h
            .kinesis
            .get_shard_iterator("s", "shardId-000000000000", StartingPosition::TrimHorizon)
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let got = h.kinesis.get_records(&it, Some(2)).await.unwrap();
            if got.records.is_empty() {
                assert_eq!(got.millis_behind_latest, 0);
                break;
            }
            if seen.len() + got.records.len() < 5 {
                assert_eq!(got.millis_behind_latest, 2000);
            }
            seen.extend(got.records.into_iter().map(|r| r.data));
            it = got.next_shard_iterator.unwrap();
        }
        assert_eq!(seen, ["0", "1", "2", "3", "4"]);
        let err = h.kinesis.get_records(&it, Some(0)).await.unwrap_err();
        assert!(matches!(err, Error::Validation { field: "Limit", .. }));
        let err = h.kinesis.get_records(&it, Some(10_001)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { field: "Limit", .. }));
    }

    pub async fn iterators_expire_after_five_minutes(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        let it = h
            .kinesis
            .get_shard_iterator("s", "shardId-000000000000", StartingPosition::TrimHorizon)
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(300));
        let got = h.kinesis.get_records(&it, None).await.unwrap();
        h.clock.advance(Duration::from_millis(300_001));
        let err = h.kinesis.get_records(&it, None).await.unwrap_err();
        assert_eq!(err.code(), "ExpiredIteratorException");
        // The iterator a read returns lives five minutes from that read.
        assert_eq!(
            h.kinesis
                .get_records(&got.next_shard_iterator.unwrap(), None)
                .await
                .unwrap_err()
                .code(),
            "ExpiredIteratorException"
        );
        let fresh = h
            .kinesis
            .get_shard_iterator("s", "shardId-000000000000", StartingPosition::TrimHorizon)
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(299));
        let next = h
            .kinesis
            .get_records(&fresh, None)
            .await
            .unwrap()
            .next_shard_iterator
            .unwrap();
        h.clock.advance(Duration::from_secs(299));
        assert!(h.kinesis.get_records(&next, None).await.is_ok());
    }

    pub async fn retention_hides_and_trims_old_records(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        for i in 0..3 {
            h.kinesis
                .put_record("s", PutRecordsEntry::new("k", format!("old{i}")), None)
                .await
                .unwrap();
        }
        h.clock.advance(Duration::from_secs(23 * 3600));
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "new"), None)
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(3600 + 1));
        let data: Vec<_> = read_all(&h, "s", "shardId-000000000000")
            .await
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(data, ["new"]);
        assert_eq!(h.kinesis.trim_expired().await.unwrap(), 3);
        assert_eq!(h.kinesis.trim_expired().await.unwrap(), 0);
        // A longer retention does not bring records back.
        h.kinesis.increase_retention_period("s", 48).await.unwrap();
        assert_eq!(read_all(&h, "s", "shardId-000000000000").await.len(), 1);
        assert_eq!(
            h.kinesis
                .describe_stream("s")
                .await
                .unwrap()
                .retention_period_hours,
            48
        );
        for (hours, increase) in [(23, true), (8761, true), (24, true), (72, false)] {
            let result = if increase {
                h.kinesis.increase_retention_period("s", hours).await
            } else {
                h.kinesis.decrease_retention_period("s", hours).await
            };
            assert_eq!(
                result.unwrap_err().code(),
                "InvalidArgumentException",
                "{hours} {increase}"
            );
        }
        h.kinesis.decrease_retention_period("s", 24).await.unwrap();
        h.clock.advance(Duration::from_secs(24 * 3600));
        assert!(read_all(&h, "s", "shardId-000000000000").await.is_empty());
    }

    pub async fn rejected_puts_write_nothing(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        let too_many = (0..501)
            .map(|i| PutRecordsEntry::new("k", format!("{i}")))
            .collect();
        assert!(matches!(
            h.kinesis.put_records("s", too_many).await.unwrap_err(),
            Error::Validation {
                field: "Records",
                ..
            }
        ));
        let mut batch = vec![PutRecordsEntry::new("ok", "fine")];
        batch.push(PutRecordsEntry::new("k".repeat(257), "x"));
        assert!(matches!(
            h.kinesis.put_records("s", batch).await.unwrap_err(),
            Error::Validation {
                field: "PartitionKey",
                ..
            }
        ));
        assert!(matches!(
            h.kinesis
                .put_record("s", PutRecordsEntry::new("", "x"), None)
                .await
                .unwrap_err(),
            Error::Validation {
                field: "PartitionKey",
                ..
            }
        ));
        let big = PutRecordsEntry::new("k", vec![0u8; 1 << 20]);
        assert!(matches!(
            h.kinesis.put_record("s", big, None).await.unwrap_err(),
            Error::Validation { field: "Data", .. }
        ));
        let heavy = (0..11)
            .map(|_| PutRecordsEntry::new("k", vec![0u8; 1_000_000]))
            .collect();
        assert!(matches!(
            h.kinesis.put_records("s", heavy).await.unwrap_err(),
            Error::InvalidArgument {
                field: "Records",
                ..
            }
        ));
        assert_eq!(
            h.kinesis
                .put_record("none", PutRecordsEntry::new("k", "x"), None)
                .await
                .unwrap_err()
                .code(),
            "ResourceNotFoundException"
        );
        assert!(read_all(&h, "s", "shardId-000000000000").await.is_empty());
        assert!(
            h.kinesis
                .put_record(
                    "s",
                    PutRecordsEntry::new("k".repeat(256), vec![0u8; (1 << 20) - 256]),
                    None
                )
                .await
                .is_ok()
        );
    }

    pub async fn split_closes_the_parent_and_names_its_children(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("before", "1"), None)
            .await
            .unwrap();
        let parent_it = h
            .kinesis
            .get_shard_iterator("s", "shardId-000000000000", StartingPosition::TrimHorizon)
            .await
            .unwrap();
        let mid = (1u128 << 127).to_string();
        h.kinesis
            .split_shard("s", "shardId-000000000000", &mid)
            .await
            .unwrap();
        let shards = h.kinesis.list_shards("s").await.unwrap();
        assert_eq!(shards.len(), 3);
        assert!(!shards[0].is_open());
        assert_eq!(shards[1].ending_hash_key, ((1u128 << 127) - 1).to_string());
        assert_eq!(shards[2].starting_hash_key, mid);
        assert_eq!(
            shards[1].parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert_eq!(
            shards[2].parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert!(
            shards[0].ending_sequence_number.as_ref().unwrap()
                < &shards[1].starting_sequence_number
        );
        assert_tiles(&shards);
        // New records go to the children; the parent keeps its own and then ends.
        let put = h
            .kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "2").with_explicit_hash_key("0"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(put.shard_id, "shardId-000000000001");
        let got = h.kinesis.get_records(&parent_it, None).await.unwrap();
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.next_shard_iterator, None);
        let children: Vec<_> = got
            .child_shards
            .iter()
            .map(|c| c.shard_id.as_str())
            .collect();
        assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
        assert_eq!(got.child_shards[0].parent_shards, ["shardId-000000000000"]);

        let closed = h
            .kinesis
            .split_shard("s", "shardId-000000000000", "5")
            .await
            .unwrap_err();
        assert_eq!(closed.code(), "InvalidArgumentException");
        // The new starting key must fall after the shard's first key and within its range.
        for bad in ["0", "abc", mid.as_str()] {
            let err = h
                .kinesis
                .split_shard("s", "shardId-000000000002", bad)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "InvalidArgumentException", "{bad}");
        }
        assert_eq!(
            h.kinesis
                .split_shard("s", "shardId-000000000042", "5")
                .await
                .unwrap_err()
                .code(),
            "ResourceNotFoundException"
        );
        assert_eq!(h.kinesis.list_shards("s").await.unwrap().len(), 3);
    }

    pub async fn merges_take_adjacent_open_shards(h: Harness) {
        h.kinesis.create_stream("s", 3).await.unwrap();
        let err = h
            .kinesis
            .merge_shards("s", "shardId-000000000000", "shardId-000000000002")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidArgumentException");
        h.kinesis
            .merge_shards("s", "shardId-000000000001", "shardId-000000000000")
            .await
            .unwrap();
        let shards = h.kinesis.list_shards("s").await.unwrap();
        let child = &shards[3];
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some("shardId-000000000001")
        );
        assert_eq!(
            child.adjacent_parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
        assert_eq!(child.starting_hash_key, "0");
        assert_eq!(child.ending_hash_key, shards[1].ending_hash_key);
        assert_tiles(&shards);
        let again = h
            .kinesis
            .merge_shards("s", "shardId-000000000001", "shardId-000000000002")
            .await
            .unwrap_err();
        assert_eq!(again.code(), "InvalidArgumentException");
    }

    pub async fn update_shard_count_scales_uniformly(h: Harness) {
        h.kinesis.create_stream("s", 3).await.unwrap();
        for (target, ok) in [
            (7, false),
            (1, false),
            (6, true),
            (4, true),
            (2, true),
            (3, true),
        ] {
            let result = h.kinesis.update_shard_count("s", target).await;
            if !ok {
                let refused = result.unwrap_err();
                assert_eq!(refused.code(), "LimitExceededException", "{target}");
                let rule = if target > 3 {
                    "cannot scale up over double your current open shard count. Current open shard count: 3 Target shard count: 7"
                } else {
                    "cannot scale down below half your current open shard count. Current open shard count: 3 Target shard count: 1"
                };
                assert!(refused.to_string().contains(rule), "{refused}");
                continue;
            }
            result.unwrap();
            let shards = h.kinesis.list_shards("s").await.unwrap();
            assert_tiles(&shards);
            let open = open(&shards);
            assert_eq!(open.len(), target as usize);
            // Uniform: each open shard starts where Kinesis's uniform layout starts it.
            let n = u128::from(target);
            let width = if n == 1 {
                0
            } else {
                (u128::MAX / n) + u128::from(u128::MAX % n + 1 == n)
            };
            for (i, s) in open.iter().enumerate() {
                assert_eq!(
                    s.starting_hash_key,
                    (i as u128 * width).to_string(),
                    "target {target}"
                );
            }
        }
        assert_eq!(
            h.kinesis
                .update_shard_count("s", 0)
                .await
                .unwrap_err()
                .code(),
            "ValidationException"
        );
        // Ten scalings in any 24 hours, then LimitExceeded until the oldest is a day old.
        h.kinesis.create_stream("busy", 1).await.unwrap();
        for i in 0..10u32 {
            h.kinesis
                .update_shard_count("busy", if i % 2 == 0 { 2 } else { 1 })
                .await
                .unwrap();
            h.clock.advance(Duration::from_secs(60));
        }
        let eleventh = h.kinesis.update_shard_count("busy", 2).await.unwrap_err();
        assert_eq!(eleventh.code(), "LimitExceededException", "{eleventh}");
        assert_eq!(
            h.kinesis
                .describe_stream("busy")
                .await
                .unwrap()
                .shards
                .iter()
                .filter(|s| s.is_open())
                .count(),
            1,
            "a refused scaling changes nothing"
        );
        h.clock.advance(Duration::from_secs(24 * 3600 - 10 * 60));
        h.kinesis.update_shard_count("busy", 2).await.unwrap();
        h.kinesis.create_on_demand_stream("auto").await.unwrap();
        let on_demand = h.kinesis.update_shard_count("auto", 5).await.unwrap_err();
        assert_eq!(on_demand.code(), "InvalidArgumentException");
        // Nor may an on-demand stream's shards be split or merged by hand.
        let on_demand = h
            .kinesis
            .split_shard("auto", "shardId-000000000000", "5")
            .await
            .unwrap_err();
        assert_eq!(on_demand.code(), "InvalidArgumentException", "{on_demand}");
        let on_demand = h
            .kinesis
            .merge_shards("auto", "shardId-000000000000", "shardId-000000000001")
            .await
            .unwrap_err();
        assert_eq!(on_demand.code(), "InvalidArgumentException", "{on_demand}");
        assert_eq!(
            h.kinesis
                .describe_stream("auto")
                .await
                .unwrap()
                .shards
                .len(),
            4
        );
    }

    pub async fn records_survive_a_restart(h: Harness) {
        h.kinesis.create_stream("s", 2).await.unwrap();
        let entries = (0..20)
            .map(|i| PutRecordsEntry::new(format!("k{i}"), format!("{i}")))
            .collect();
        h.kinesis.put_records("s", entries).await.unwrap();
        h.kinesis
            .split_shard("s", "shardId-000000000000", "12345")
            .await
            .unwrap();
        let h = h.restart().await;
        let shards = h.kinesis.list_shards("s").await.unwrap();
        assert_eq!(shards.len(), 4);
        let mut total = 0;
        for s in &shards {
            total += read_all(&h, "s", &s.shard_id).await.len();
        }
        assert_eq!(total, 20);
    }

    pub async fn subscriptions_push_batches_and_follow_children(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "1"), None)
            .await
            .unwrap();
        let mut sub = h
            .kinesis
            .subscribe_to_shard("s", "shardId-000000000000", StartingPosition::TrimHorizon)
            .unwrap();
        let first = sub.next().await.unwrap().unwrap();
        assert_eq!(first.records[0].data, "1");
        // The subscription waits for the next put, woken by it.
        let kinesis = h.kinesis.clone();
        let waiter = tokio::spawn(async move {
            let batch = sub.next().await.unwrap().unwrap();
            (batch, sub)
        });
        tokio::task::yield_now().await;
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "2"), None)
            .await
            .unwrap();
        let (second, mut sub) = waiter.await.unwrap();
        assert_eq!(second.records[0].data, "2");
        // After a split, it follows both children.
        kinesis
            .split_shard("s", "shardId-000000000000", &(1u128 << 127).to_string())
            .await
            .unwrap();
        kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("a", "low").with_explicit_hash_key("1"),
                None,
            )
            .await
            .unwrap();
        kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("b", "high").with_explicit_hash_key(u128::MAX.to_string()),
                None,
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let batch = sub.next().await.unwrap().unwrap();
            seen.extend(
                batch
                    .records
                    .into_iter()
                    .map(|r| (batch.shard_id.clone(), r.data)),
            );
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                ("shardId-000000000001".to_owned(), Bytes::from("low")),
                ("shardId-000000000002".to_owned(), Bytes::from("high"))
            ]
        );
        assert!(
            h.kinesis
                .subscribe_to_shard("s", "shardId-000000000007", StartingPosition::Latest)
                .is_err()
        );
    }

    pub async fn consumer_groups_share_shards_and_resume_from_checkpoints(h: Harness) {
        h.kinesis.create_stream("s", 4).await.unwrap();
        let entries = (0..40)
            .map(|i| PutRecordsEntry::new(format!("k{i}"), format!("{i}")))
            .collect();
        h.kinesis.put_records("s", entries).await.unwrap();
        let options = ConsumerOptions::default()
            .with_lease_duration(Duration::from_secs(10))
            .with_batch_size(3);
        let mut a = h.kinesis.consumer("s", "app", "worker-a", options);
        let first = a.next_batch().await.unwrap();
        // Alone, a worker takes every shard.
        assert_eq!(a.shards().len(), 4);
        a.checkpoint(&first).await.unwrap();
        let unacked = a.next_batch().await.unwrap();
        // worker-a stops renewing; once its leases lapse, worker-b takes them over and
        // resumes at the checkpoints: the unacknowledged batch comes again.
        h.clock.advance(Duration::from_secs(11));
        let mut b = h.kinesis.consumer("s", "app", "worker-b", options);
        let mut got = Vec::new();
        loop {
            let batch = b.next_batch().await.unwrap();
            got.extend(
                batch
                    .records
                    .iter()
                    .map(|r| String::from_utf8(r.data.to_vec()).unwrap()),
            );
            b.checkpoint(&batch).await.unwrap();
            if got.len() + first.records.len() >= 40 {
                break;
            }
        }
        assert_eq!(b.shards().len(), 4);
        for r in &unacked.records {
            assert!(got.contains(&String::from_utf8(r.data.to_vec()).unwrap()));
        }
        let mut all: Vec<String> = first
            .records
            .iter()
            .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
            .chain(got)
            .collect();
        all.sort_by_key(|v| v.parse::<u32>().unwrap());
        assert_eq!(all, (0..40).map(|i| i.to_string()).collect::<Vec<_>>());
        // worker-a lost its leases: its checkpoint is refused.
        assert_eq!(
            a.checkpoint(&unacked).await.unwrap_err().code(),
            "InvalidArgumentException"
        );
        // A new worker takes its share from a busy one.
        b.shutdown().await.unwrap();
        let mut c = h.kinesis.consumer("s", "app", "worker-c", options);
        let shards = h.kinesis.list_shards("s").await.unwrap();
        for s in &shards {
            let entry =
                PutRecordsEntry::new("n", "x").with_explicit_hash_key(s.starting_hash_key.clone());
            h.kinesis.put_record("s", entry, None).await.unwrap();
        }
        let _ = c.next_batch().await.unwrap();
        assert_eq!(c.shards().len(), 4);
        let mut b = h.kinesis.consumer("s", "app", "worker-b", options);
        let _ = b.next_batch().await.unwrap();
        assert_eq!(b.shards().len(), 2, "{:?}", b.shards());
    }

    /// Splits stream `s`'s first shard at hash key 5 and puts the record `child` into the
    /// lower child.
    async fn split_and_put_a_child(h: &Harness) {
        h.kinesis
            .split_shard("s", "shardId-000000000000", "5")
            .await
            .unwrap();
        h.kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "child").with_explicit_hash_key("1"),
                None,
            )
            .await
            .unwrap();
    }

    pub async fn children_wait_for_their_parents(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "parent-1"), None)
            .await
            .unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "parent-2"), None)
            .await
            .unwrap();
        split_and_put_a_child(&h).await;
        let options = ConsumerOptions::default().with_batch_size(1);
        let mut worker = h.kinesis.consumer("s", "app", "w", options);
        let mut order = Vec::new();
        for _ in 0..3 {
            let batch = worker.next_batch().await.unwrap();
            if batch.shard_id == "shardId-000000000000" {
                // The children are not leased while the parent is unfinished.
                assert!(
                    !worker.shards().iter().any(|s| s != "shardId-000000000000"),
                    "{:?}",
                    worker.shards()
                );
            }
            order.extend(batch.records.iter().map(|r| r.data.clone()));
            worker.checkpoint(&batch).await.unwrap();
        }
        assert_eq!(order, ["parent-1", "parent-2", "child"]);
    }

    pub async fn a_worker_taking_over_a_finished_parent_goes_on_to_its_children(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "parent"), None)
            .await
            .unwrap();
        let options = ConsumerOptions::default().with_batch_size(10);
        // A worker reads and checkpoints the parent while it is still open, then stops.
        let mut first = h.kinesis.consumer("s", "app", "first", options);
        let batch = first.next_batch().await.unwrap();
        assert_eq!(batch.records.len(), 1);
        first.checkpoint(&batch).await.unwrap();
        drop(first);
        split_and_put_a_child(&h).await;
        // Once its lease expires, another worker takes the parent over at its checkpoint,
        // finds it finished, and goes on to the child without reading the parent again.
        h.clock.advance(options.lease_duration);
        let mut second = h.kinesis.consumer("s", "app", "second", options);
        let batch = second.next_batch().await.unwrap();
        let data: Vec<_> = batch.records.iter().map(|r| r.data.clone()).collect();
        assert_eq!(data, ["child"], "from {}", batch.shard_id);
    }

    pub async fn a_stream_is_a_sink(h: Harness) {
        use cloudlet_core::{Message, MessageAttribute, Sink};
        h.kinesis.create_stream("s", 2).await.unwrap();
        let sink = StreamSink::new(h.kinesis.clone(), "s").with_key_attribute("customer");
        sink.deliver(Message::new("grouped").with_group_id("g1"))
            .await
            .unwrap();
        sink.deliver(
            Message::new("keyed").with_attribute("customer", MessageAttribute::string("c7")),
        )
        .await
        .unwrap();
        sink.deliver(Message::new("plain")).await.unwrap();
        let mut keys = Vec::new();
        for shard in h.kinesis.list_shards("s").await.unwrap() {
            keys.extend(
                read_all(&h, "s", &shard.shard_id)
                    .await
                    .into_iter()
                    .map(|(k, _)| k),
            );
        }
        keys.sort();
        assert!(keys.contains(&"g1".to_owned()) && keys.contains(&"c7".to_owned()));
        assert_eq!(keys.len(), 3);
        let missing = StreamSink::new(h.kinesis.clone(), "none")
            .deliver(Message::new("x"))
            .await
            .unwrap_err();
        assert!(!missing.is_retryable());
        // A body over the record limit can never be put: not retried.
        let too_big = StreamSink::new(h.kinesis.clone(), "s")
            .deliver(Message::new(vec![b'x'; (1 << 20) + 1]))
            .await
            .unwrap_err();
        assert!(!too_big.is_retryable(), "{too_big:?}");
    }

    pub async fn expired_records_stay_expired_and_numbers_name_their_shard(h: Harness) {
        h.kinesis.create_stream("s", 2).await.unwrap();
        let low = h
            .kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "old").with_explicit_hash_key("0"),
                None,
            )
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(25 * 3600));
        // Not trimmed yet, but expired: a longer retention does not bring it back.
        h.kinesis.increase_retention_period("s", 72).await.unwrap();
        assert!(read_all(&h, "s", &low.shard_id).await.is_empty());
        // A sequence number from another shard, or never issued, is refused.
        let high = h
            .kinesis
            .put_record(
                "s",
                PutRecordsEntry::new("k", "new").with_explicit_hash_key(u128::MAX.to_string()),
                None,
            )
            .await
            .unwrap();
        let wrong_shard = h
            .kinesis
            .get_shard_iterator(
                "s",
                &low.shard_id,
                StartingPosition::AtSequenceNumber(high.sequence_number.clone()),
            )
            .await;
        assert_eq!(wrong_shard.unwrap_err().code(), "InvalidArgumentException");
        let beyond = format!("49{}{:020}", "9".repeat(34), 1);
        let err = h
            .kinesis
            .get_shard_iterator(
                "s",
                &high.shard_id,
                StartingPosition::AfterSequenceNumber(beyond),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidArgumentException");
        let ok = h
            .kinesis
            .get_shard_iterator(
                "s",
                &high.shard_id,
                StartingPosition::AtSequenceNumber(high.sequence_number),
            )
            .await;
        assert!(ok.is_ok());
    }

    pub async fn an_unacknowledged_last_batch_comes_again(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        h.kinesis
            .put_record("s", PutRecordsEntry::new("k", "last"), None)
            .await
            .unwrap();
        split_and_put_a_child(&h).await;
        let mut worker = h
            .kinesis
            .consumer("s", "app", "w", ConsumerOptions::default());
        let first = worker.next_batch().await.unwrap();
        assert!(first.end_of_shard);
        // Not checkpointed: asked again, the worker hands the same batch back.
        let again = worker.next_batch().await.unwrap();
        assert_eq!(again.records, first.records);
        worker.checkpoint(&again).await.unwrap();
        let child = worker.next_batch().await.unwrap();
        assert_eq!(child.records[0].data, "child");
    }

    /// A put's records for one shard are stored together: every way of starting a read
    /// lands on the right record inside such a put, and pages split it anywhere.
    pub async fn a_put_reads_back_from_any_of_its_records(h: Harness) {
        h.kinesis.create_stream("s", 3).await.unwrap();
        let mut sent = Vec::new();
        for round in 0..3 {
            let entries: Vec<PutRecordsEntry> = (0..200)
                .map(|i| PutRecordsEntry::new(format!("key-{i}"), format!("r{round}-{i}")))
                .collect();
            let out = h.kinesis.put_records("s", entries).await.unwrap();
            assert_eq!(out.failed_record_count, 0);
            for (i, result) in out.records.into_iter().enumerate() {
                let PutRecordsResult::Ok(put) = result else {
                    panic!("{result:?}");
                };
                sent.push((put.shard_id, put.sequence_number, format!("r{round}-{i}")));
            }
            h.clock.advance(Duration::from_secs(10));
        }
        for shard in [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
        ] {
            let mine: Vec<&(String, String, String)> =
                sent.iter().filter(|(s, _, _)| s == shard).collect();
            assert!(mine.len() > 100, "{shard} got {}", mine.len());
            // Pages of 7 from the horizon: every record once, in order.
            let mut it = h
                .kinesis
                .get_shard_iterator("s", shard, StartingPosition::TrimHorizon)
                .await
                .unwrap();
            let mut read = Vec::new();
            loop {
                let got = h.kinesis.get_records(&it, Some(7)).await.unwrap();
                if got.records.is_empty() {
                    break;
                }
                assert!(got.records.len() <= 7);
                read.extend(got.records.into_iter().map(|r| (r.sequence_number, r.data)));
                it = got.next_shard_iterator.unwrap();
            }
            let expected: Vec<(String, Bytes)> = mine
                .iter()
                .map(|(_, n, d)| (n.clone(), Bytes::from(d.clone())))
                .collect();
            assert_eq!(read, expected);
            // AT and AFTER a record in the middle of a put.
            for (at, (_, n, data)) in mine.iter().enumerate().skip(1).step_by(37) {
                let got = read_from(&h, shard, StartingPosition::AtSequenceNumber(n.clone())).await;
                assert_eq!(got[0].data, data.as_str());
                let after =
                    read_from(&h, shard, StartingPosition::AfterSequenceNumber(n.clone())).await;
                match mine.get(at + 1) {
                    Some((_, _, next)) => assert_eq!(after[0].data, next.as_str()),
                    None => assert!(after.is_empty()),
                }
            }
            // AT_TIMESTAMP of the second put: its first record for this shard.
            let second_put = h.clock.now().saturating_sub(Duration::from_secs(20));
            let got = read_from(&h, shard, StartingPosition::AtTimestamp(second_put)).await;
            let first_of_second = mine.iter().find(|(_, _, d)| d.starts_with("r1-")).unwrap();
            assert_eq!(got[0].data, first_of_second.2.as_str());
            // LATEST: nothing until the next put.
            let latest = h
                .kinesis
                .get_shard_iterator("s", shard, StartingPosition::Latest)
                .await
                .unwrap();
            assert!(
                h.kinesis
                    .get_records(&latest, None)
                    .await
                    .unwrap()
                    .records
                    .is_empty()
            );
        }
    }

    pub async fn shard_limits_throttle_only_when_turned_on(h: Harness) {
        h.kinesis.create_stream("s", 1).await.unwrap();
        let many = |n: usize| -> Vec<PutRecordsEntry> {
            (0..n)
                .map(|i| PutRecordsEntry::new(format!("k{i}"), "x"))
                .collect()
        };
        // Off by default: 2,000 records in one second are taken.
        for _ in 0..4 {
            let out = h.kinesis.put_records("s", many(500)).await.unwrap();
            assert_eq!(out.failed_record_count, 0);
        }

        let limited = h.kinesis.clone().with_shard_limits(ShardLimits::KINESIS);
        limited.create_stream("t", 1).await.unwrap();
        let first = limited.put_records("t", many(500)).await.unwrap();
        assert_eq!(first.failed_record_count, 0);
        let second = limited.put_records("t", many(500)).await.unwrap();
        assert_eq!(second.failed_record_count, 0);
        // The shard's 1,000 records of this second are spent.
        let third = limited.put_records("t", many(10)).await.unwrap();
        assert_eq!(third.failed_record_count, 10);
        let PutRecordsResult::Failed {
            error_code,
            error_message,
        } = &third.records[0]
        else {
            panic!("{third:?}");
        };
        assert_eq!(error_code, "ProvisionedThroughputExceededException");
        assert!(error_message.contains("Rate exceeded for shard shardId-000000000000 in stream t"));
        let single = limited
            .put_record("t", PutRecordsEntry::new("k", "x"), None)
            .await
            .unwrap_err();
        assert!(matches!(
            single,
            Error::ProvisionedThroughputExceeded { .. }
        ));
        // Refused records were not stored: the shard holds exactly the first 1,000.
        assert_eq!(read_all_with(&limited, "t", 1_000).await, 1_000);

        // A tenth of a second later, a tenth of a second's worth.
        h.clock.advance(Duration::from_millis(100));
        let later = limited.put_records("t", many(150)).await.unwrap();
        assert_eq!(later.failed_record_count, 50);

        // Five reads a second.
        h.clock.advance(Duration::from_secs(1));
        let it = limited
            .get_shard_iterator("t", "shardId-000000000000", StartingPosition::TrimHorizon)
            .await
            .unwrap();
        for _ in 0..5 {
            limited.get_records(&it, Some(1)).await.unwrap();
        }
        let err = limited.get_records(&it, Some(1)).await.unwrap_err();
        assert!(
            matches!(err, Error::ProvisionedThroughputExceeded { .. }),
            "{err}"
        );
        h.clock.advance(Duration::from_millis(200));
        limited.get_records(&it, Some(1)).await.unwrap();
    }
}

/// Reads every record of shard 0 of `stream` through `kinesis`, in pages of at most `page`,
/// advancing no clock; returns how many there were. The reads count against read limits, so
/// it reads in one call when it can.
async fn read_all_with(kinesis: &StreamService, stream: &str, page: usize) -> usize {
    let it = kinesis
        .get_shard_iterator(
            stream,
            "shardId-000000000000",
            StartingPosition::TrimHorizon,
        )
        .await
        .unwrap();
    let got = kinesis.get_records(&it, Some(page + 1)).await.unwrap();
    got.records.len()
}

/// The first two records of stream `s`'s `shard` from `position`.
async fn read_from(
    h: &Harness,
    shard: &str,
    position: StartingPosition,
) -> Vec<cloudlet_stream::Record> {
    let it = h
        .kinesis
        .get_shard_iterator("s", shard, position)
        .await
        .unwrap();
    h.kinesis.get_records(&it, Some(2)).await.unwrap().records
}
