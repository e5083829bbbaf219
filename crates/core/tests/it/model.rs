//! Model test: random sequences of transactions run on RedbEngine and on MemoryEngine, both
//! compared with a plain ordered map. Reads inside transactions, failed transactions, and the
//! whole contents after each commit must agree.

use std::collections::BTreeMap;
use std::ops::Bound;

use cloudlet_core::engine::{MemoryEngine, RedbEngine, RedbOptions};
use cloudlet_core::{Bytes, Direction, Durability, Error, KeyRange, ReadView, Store, WriteTxn};
use proptest::prelude::*;

const KEYSPACES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>, Vec<u8>),
    Delete(usize, Vec<u8>),
    Get(usize, Vec<u8>),
    Range(usize, Bound<Vec<u8>>, Bound<Vec<u8>>, bool),
}

#[derive(Debug, Clone)]
struct Txn {
    ops: Vec<Op>,
    fail: bool,
    durable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Value(Option<Vec<u8>>),
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet so keys collide, with 0x00 and 0xFF edge bytes.
    prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xFF]), 0..4)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ks = 0..KEYSPACES.len();
    prop_oneof![
        4 => (ks.clone(), key(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(s, k, v)| Op::Put(s, k, v)),
        2 => (ks.clone(), key()).prop_map(|(s, k)| Op::Delete(s, k)),
        2 => (ks.clone(), key()).prop_map(|(s, k)| Op::Get(s, k)),
        2 => (ks, bound(), bound(), any::<bool>()).prop_map(|(s, a, b, r)| Op::Range(s, a, b, r)),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    (
        prop::collection::vec(op(), 1..12),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(ops, fail, durable)| Txn { ops, fail, durable })
}

fn to_range(start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> KeyRange {
    let own = |b: &Bound<Vec<u8>>| match b {
        Bound::Included(k) => Bound::Included(Bytes::from(k.clone())),
        Bound::Excluded(k) => Bound::Excluded(Bytes::from(k.clone())),
        Bound::Unbounded => Bound::Unbounded,
    };
    KeyRange {
        start: own(start),
        end: own(end),
    }
}

type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

/// Runs `txn` on the reference model; returns what it saw, and applies it unless it fails.
fn run_model(model: &mut Model, txn: &Txn) -> Vec<Seen> {
    let mut work = model.clone();
    let mut seen = Vec::new();
    for op in &txn.ops {
        match op {
            Op::Put(s, k, v) => {
                work.insert((*s, k.clone()), v.clone());
            }
            Op::Delete(s, k) => {
                work.remove(&(*s, k.clone()));
            }
            Op::Get(s, k) => seen.push(Seen::Value(work.get(&(*s, k.clone())).cloned())),
            Op::Range(s, start, end, reverse) => {
                let range = to_range(start, end);
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> = work
                    .iter()
                    .filter(|((ks, k), _)| ks == s && range.contains(k))
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                if *reverse {
                    entries.reverse();
                }
                seen.push(Seen::Entries(entries));
            }
        }
    }
    if !txn.fail {
        *model = work;
    }
    seen
}

fn run_ops(t: &mut WriteTxn<'_>, ops: &[Op]) -> Result<Vec<Seen>, Error> {
    let mut seen = Vec::new();
    for op in ops {
        match op {
            Op::Put(s, k, v) => t.put(KEYSPACES[*s], k.clone(), v.clone()),
            Op::Delete(s, k) => t.delete(KEYSPACES[*s], k.clone()),
            Op::Get(s, k) => seen.push(Seen::Value(t.get(KEYSPACES[*s], k)?.map(|v| v.to_vec()))),
            Op::Range(s, start, end, reverse) => {
                let dir = if *reverse {
                    Direction::Reverse
                } else {
                    Direction::Forward
                };
                let entries = t
                    .range(KEYSPACES[*s], &to_range(start, end), dir)?
                    .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
                    .collect::<Result<_, _>>()?;
                seen.push(Seen::Entries(entries));
            }
        }
    }
    Ok(seen)
}

fn run_store(store: &Store, txn: &Txn) -> Option<Vec<Seen>> {
    let (ops, fail) = (txn.ops.clone(), txn.fail);
    let durability = if txn.durable {
        Durability::Durable
    } else {
        Durability::Eventual
    };
    let result = store.write_blocking(durability, move |t| {
        let seen = run_ops(t, &ops)?;
        if fail {
            // Hand back what was seen through the error path.
            return Err(Failed(Some(seen)));
        }
        Ok(seen)
    });
    match result {
        Ok(seen) => Some(seen),
        Err(Failed(seen)) => seen,
    }
}

struct Failed(Option<Vec<Seen>>);

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        panic!("storage error in model test: {e}")
    }
}

fn contents(store: &Store) -> Model {
    let snap = store.snapshot().unwrap();
    let mut all = Model::new();
    for (s, ks) in KEYSPACES.iter().enumerate() {
        for entry in snap
            .range(ks, &KeyRange::all(), Direction::Forward)
            .unwrap()
        {
            let (k, v) = entry.unwrap();
            all.insert((s, k.to_vec()), v.to_vec());
        }
    }
    all
}

proptest! {
    // 48 cases in CI; PROPTEST_CASES=2000 for a deeper run by hand.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn redb_and_memory_agree_with_the_model(
        txns in prop::collection::vec(txn(), 1..24),
        flush_rarely in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Tiny thresholds, so flushes into the B-tree and checkpoints happen within a case;
        // or no flush before a checkpoint, so the held commits pile up and merge in memory.
        let options = if flush_rarely {
            RedbOptions::default().with_flush_commits(1 << 20).with_checkpoint_bytes(1024)
        } else {
            RedbOptions::default().with_flush_commits(3).with_checkpoint_bytes(512)
        };
        let redb = Store::new(RedbEngine::open_with(dir.path(), options).unwrap());
        let memory = Store::new(MemoryEngine::new());
        let mut model = Model::new();
        // A long-lived snapshot must keep seeing the state it was taken at.
        let mut pinned: Option<(cloudlet_core::Snapshot, cloudlet_core::Snapshot, Model)> = None;
        for (n, txn) in txns.iter().enumerate() {
            let expected = run_model(&mut model, txn);
            let on_redb = run_store(&redb, txn);
            let on_memory = run_store(&memory, txn);
            prop_assert_eq!(on_redb.as_ref(), Some(&expected), "redb reads, txn {}", n);
            prop_assert_eq!(on_memory.as_ref(), Some(&expected), "memory reads, txn {}", n);
            prop_assert_eq!(&contents(&redb), &model, "redb contents after txn {}", n);
            prop_assert_eq!(&contents(&memory), &model, "memory contents after txn {}", n);
            if n == txns.len() / 3 {
                pinned = Some((memory.snapshot().unwrap(), redb.snapshot().unwrap(), model.clone()));
            }
        }
        if let Some((on_memory, on_redb, at)) = pinned {
            for snap in [on_memory, on_redb] {
                let mut seen = Model::new();
                for (s, ks) in KEYSPACES.iter().enumerate() {
                    for entry in snap.range(ks, &KeyRange::all(), Direction::Forward).unwrap() {
                        let (k, v) = entry.unwrap();
                        seen.insert((s, k.to_vec()), v.to_vec());
                    }
                }
                prop_assert_eq!(&seen, &at);
            }
        }
        // Everything survives a reopen: replayed from the log or read from the B-tree.
        drop(redb);
        let reopened = Store::new(RedbEngine::open_with(dir.path(), options).unwrap());
        prop_assert_eq!(&contents(&reopened), &model, "redb contents after reopening");
    }
}
