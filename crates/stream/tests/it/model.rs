//! Model test: for any sequence of puts and reshards, reading every shard after its parents
//! returns every record exactly once, in put order for each partition key, and the open
//! shards always tile the hash range.

use std::collections::{BTreeMap, HashSet};

use cloudlet_core::{ManualClock, Store};
use cloudlet_stream::{PutRecordsEntry, StartingPosition, StreamService, Streams};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    Split(usize, u64),
    Merge(usize),
    Scale(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..6u8).prop_map(Op::Put),
        1 => (0..16usize, any::<u64>()).prop_map(|(i, at)| Op::Split(i, at)),
        1 => (0..16usize).prop_map(Op::Merge),
        1 => (1..9u8).prop_map(Op::Scale),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reads_in_lineage_order_see_every_record_once_in_key_order(ops in prop::collection::vec(op(), 1..50)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let kinesis = StreamService::new(Store::memory(), ManualClock::default().shared());
            kinesis.create_stream("m", 2).await.unwrap();
            let mut put: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut n = 0;
            for op in ops {
                let shards = kinesis.list_shards("m").await.unwrap();
                let mut open: Vec<_> = shards.iter().filter(|s| s.is_open()).collect();
                open.sort_by_key(|s| s.starting_hash_key.parse::<u128>().unwrap());
                match op {
                    Op::Put(key) => {
                        let key = format!("key-{key}");
                        n += 1;
                        kinesis.put_record("m", PutRecordsEntry::new(&key, format!("{n}")), None).await.unwrap();
                        put.entry(key).or_default().push(format!("{n}"));
                    }
                    Op::Split(i, at) => {
                        let s = open[i % open.len()];
                        let start: u128 = s.starting_hash_key.parse().unwrap();
                        let end: u128 = s.ending_hash_key.parse().unwrap();
                        // SplitShard wants start + 1 < key < end.
                        if end - start > 3 {
                            let at = start + 2 + (u128::from(at) % (end - start - 2));
                            kinesis.split_shard("m", &s.shard_id, &at.to_string()).await.unwrap();
                        }
                    }
                    Op::Merge(i) => {
                        if open.len() >= 2 {
                            let i = i % (open.len() - 1);
                            kinesis.merge_shards("m", &open[i].shard_id, &open[i + 1].shard_id).await.unwrap();
                        }
                    }
                    Op::Scale(target) => {
                        let _ = kinesis.update_shard_count("m", u32::from(target)).await;
                    }
                }
            }
            // Read shards once all their parents are read.
            let shards = kinesis.list_shards("m").await.unwrap();
            let mut done: HashSet<String> = HashSet::new();
            let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
            while done.len() < shards.len() {
                let ready = shards
                    .iter()
                    .find(|s| {
                        !done.contains(&s.shard_id)
                            && s.parent_shard_id.iter().chain(&s.adjacent_parent_shard_id).all(|p| done.contains(p))
                    })
                    .unwrap();
                let mut it = kinesis.get_shard_iterator("m", &ready.shard_id, StartingPosition::TrimHorizon).await.unwrap();
                loop {
                    let page = kinesis.get_records(&it, Some(7)).await.unwrap();
                    let empty = page.records.is_empty();
                    for r in page.records {
                        got.entry(r.partition_key).or_default().push(String::from_utf8(r.data.to_vec()).unwrap());
                    }
                    match page.next_shard_iterator {
                        Some(next) if !empty => it = next,
                        _ => break,
                    }
                }
                done.insert(ready.shard_id.clone());
            }
            assert_eq!(got, put);
        });
    }
}
