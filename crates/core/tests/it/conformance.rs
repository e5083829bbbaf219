//! One engine conformance suite, run through `Store` on every engine: each check is its own
//! named test per engine (`conformance::memory::…`, `conformance::redb::…`).

use crate::support::{Harness, b, collect, keys};

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                put_get_delete, missing_keyspace_is_empty, engine_panic_poisons_instead_of_hanging, snapshot_is_isolated_from_later_commits,
                reader_never_sees_uncommitted_writes, reader_never_sees_half_a_commit,
                forward_scan_is_in_byte_order, reverse_scan_is_in_reverse_order, range_bounds,
                empty_and_inverted_ranges_yield_nothing, prefix_scan, scan_larger_than_a_chunk,
                transaction_reads_its_own_writes, transaction_scan_merges_pending_writes,
                failed_transaction_changes_nothing, panicking_transaction_affects_no_one,
                large_values, many_keyspaces, sequences_are_gap_free, eventual_writes_are_visible,
                failed_commit_poisons_the_store, on_commit_hooks_run_only_after_commit,
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

/// Durable data survives the store being dropped and the directory reopened.
#[tokio::test]
async fn redb_reopen_after_drop() {
    let h = Harness::redb();
    let path = h.path().unwrap();
    h.store
        .write(Durability::Durable, |t| {
            t.put("a", "k1", "v1");
            t.put("b", "k2", "v2");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    h.store
        .write(Durability::Eventual, |t| {
            t.put("a", "k3", "v3");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    drop(h.store);
    let store = Store::open(&path).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.get("a", b"k1").unwrap(), Some(b("v1")));
    assert_eq!(snap.get("b", b"k2").unwrap(), Some(b("v2")));
    // A clean close keeps eventual writes too.
    assert_eq!(snap.get("a", b"k3").unwrap(), Some(b("v3")));
    drop(snap);
    drop(store);
    // And again, after a second reopen.
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.snapshot().unwrap().get("a", b"k1").unwrap(),
        Some(b("v1"))
    );
}

/// Two stores cannot share one data directory.
#[tokio::test]
async fn redb_second_open_of_a_directory_fails() {
    let h = Harness::redb();
    let err = Store::open(h.path().unwrap()).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err}");
}

use cloudlet_core::{Durability, Error, ReadView, Store};

mod checks {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use cloudlet_core::engine::{Engine, EngineSnapshot, MemoryEngine, WriteBatch};
    use cloudlet_core::{Bytes, Direction, Durability, Error, KeyRange, ReadView, Store};

    use super::*;

    async fn try_put(store: &Store, ks: &'static str, k: &str, v: &str) -> Result<(), Error> {
        let (k, v) = (b(k), b(v));
        store
            .write(Durability::Durable, move |t| {
                t.put(ks, k, v);
                Ok::<_, Error>(())
            })
            .await
    }

    async fn put(store: &Store, ks: &'static str, k: &str, v: &str) {
        try_put(store, ks, k, v).await.unwrap();
    }

    async fn fill(store: &Store, ks: &'static str, keys: &[&str]) {
        let keys: Vec<Bytes> = keys.iter().map(|k| b(k)).collect();
        store
            .write(Durability::Durable, move |t| {
                for k in keys {
                    t.put(ks, k.clone(), k);
                }
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
    }

    pub async fn put_get_delete(h: Harness) {
        let s = &h.store;
        put(s, "t", "a", "1").await;
        assert_eq!(s.snapshot().unwrap().get("t", b"a").unwrap(), Some(b("1")));
        put(s, "t", "a", "2").await;
        assert_eq!(s.snapshot().unwrap().get("t", b"a").unwrap(), Some(b("2")));
        s.write(Durability::Durable, |t| {
            t.delete("t", "a");
            t.delete("t", "never-existed");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.get("t", b"a").unwrap(), None);
        assert!(collect(&snap, "t", &KeyRange::all(), Direction::Forward).is_empty());
        // Point reads see the latest commit without a snapshot.
        assert_eq!(s.get("t", b"a").unwrap(), None);
        assert_eq!(s.get("nope", b"a").unwrap(), None);
        put(s, "t", "a", "3").await;
        assert_eq!(s.get("t", b"a").unwrap(), Some(b("3")));
        assert_eq!(
            snap.get("t", b"a").unwrap(),
            None,
            "the older snapshot is unchanged"
        );
        // Empty keys and values are ordinary.
        put(s, "t", "", "").await;
        assert_eq!(
            s.snapshot().unwrap().get("t", b"").unwrap(),
            Some(Bytes::new())
        );
    }

    pub async fn missing_keyspace_is_empty(h: Harness) {
        let snap = h.store.snapshot().unwrap();
        assert_eq!(snap.get("nope", b"k").unwrap(), None);
        assert!(collect(&snap, "nope", &KeyRange::all(), Direction::Reverse).is_empty());
        // The empty name is a keyspace like any other.
        put(&h.store, "", "k", "v").await;
        let snap = h.store.snapshot().unwrap();
        assert_eq!(snap.get("", b"k").unwrap(), Some(b("v")));
        assert_eq!(keys(&snap, "", &KeyRange::all(), Direction::Forward), ["k"]);
    }

    pub async fn snapshot_is_isolated_from_later_commits(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["a", "b"]).await;
        let before = s.snapshot().unwrap();
        put(s, "t", "c", "c").await;
        s.write(Durability::Durable, |t| {
            t.delete("t", "a");
            t.put("t", "b", "changed");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert_eq!(
            keys(&before, "t", &KeyRange::all(), Direction::Forward),
            ["a", "b"]
        );
        assert_eq!(before.get("t", b"b").unwrap(), Some(b("b")));
        let after = s.snapshot().unwrap();
        assert_eq!(
            keys(&after, "t", &KeyRange::all(), Direction::Forward),
            ["b", "c"]
        );
        assert_eq!(after.get("t", b"b").unwrap(), Some(b("changed")));
    }

    pub async fn reader_never_sees_uncommitted_writes(h: Harness) {
        let store = h.store.clone();
        let (inside_tx, inside_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // The writer pauses inside its transaction, after writing, until the reader has looked.
        let writer = std::thread::spawn(move || {
            store.write_blocking(Durability::Durable, move |t| {
                t.put("t", "k", "uncommitted");
                inside_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok::<_, Error>(())
            })
        });
        inside_rx.recv().unwrap();
        let snap = h.store.snapshot().unwrap();
        assert_eq!(snap.get("t", b"k").unwrap(), None);
        assert!(collect(&snap, "t", &KeyRange::all(), Direction::Forward).is_empty());
        release_tx.send(()).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(
            snap.get("t", b"k").unwrap(),
            None,
            "an old snapshot stays old"
        );
        assert_eq!(
            h.store.snapshot().unwrap().get("t", b"k").unwrap(),
            Some(b("uncommitted"))
        );
    }

    pub async fn reader_never_sees_half_a_commit(h: Harness) {
        // Each commit rewrites 50 keys in two keyspaces to one generation; a reader must always
        // see a single generation across all of them.
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (store, done) = (h.store.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut seen = 0;
                while !done.load(Ordering::Acquire) || seen == 0 {
                    let snap = store.snapshot().unwrap();
                    let mut values: Vec<Bytes> =
                        collect(&snap, "x", &KeyRange::all(), Direction::Forward)
                            .into_iter()
                            .chain(collect(&snap, "y", &KeyRange::all(), Direction::Reverse))
                            .map(|(_, v)| v)
                            .collect();
                    values.dedup();
                    assert!(values.len() <= 1, "saw a mix of generations: {values:?}");
                    if let Some(v) = values.first() {
                        assert_eq!(
                            collect(&snap, "x", &KeyRange::all(), Direction::Forward).len(),
                            50
                        );
                        assert_eq!(snap.get("y", b"key-07").unwrap().as_ref(), Some(v));
                    }
                    seen += 1;
                }
                seen
            })
        };
        for generation in 0..40u32 {
            let g = Bytes::from(generation.to_string());
            h.store
                .write(Durability::Eventual, move |t| {
                    for i in 0..50 {
                        t.put("x", format!("key-{i:02}"), g.clone());
                        t.put("y", format!("key-{i:02}"), g.clone());
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    }

    pub async fn forward_scan_is_in_byte_order(h: Harness) {
        let s = &h.store;
        let raw: Vec<Bytes> = vec![
            Bytes::from_static(b"b"),
            Bytes::from_static(b"a"),
            Bytes::from_static(b"\xff"),
            Bytes::from_static(b"\x00"),
            Bytes::from_static(b"ab"),
            Bytes::from_static(b"a\x00"),
            Bytes::from_static(b"B"),
        ];
        let to_write = raw.clone();
        s.write(Durability::Durable, move |t| {
            for k in to_write {
                t.put("t", k.clone(), k);
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let mut expected = raw;
        expected.sort();
        let got: Vec<Bytes> = collect(
            &s.snapshot().unwrap(),
            "t",
            &KeyRange::all(),
            Direction::Forward,
        )
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(k, v);
            k
        })
        .collect();
        assert_eq!(got, expected);
    }

    pub async fn reverse_scan_is_in_reverse_order(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["c", "a", "d", "b"]).await;
        let snap = s.snapshot().unwrap();
        assert_eq!(
            keys(&snap, "t", &KeyRange::all(), Direction::Reverse),
            ["d", "c", "b", "a"]
        );
        assert_eq!(
            keys(
                &snap,
                "t",
                &KeyRange::new(b"b".as_slice()..b"d".as_slice()),
                Direction::Reverse
            ),
            ["c", "b"]
        );
        let last = snap
            .first("t", &KeyRange::all(), Direction::Reverse)
            .unwrap()
            .unwrap();
        assert_eq!(last.0, b("d"));
    }

    pub async fn range_bounds(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["a", "b", "c", "d", "e"]).await;
        let snap = s.snapshot().unwrap();
        let k = |r: KeyRange| keys(&snap, "t", &r, Direction::Forward);
        let (bb, dd) = (b"b".as_slice(), b"d".as_slice());
        assert_eq!(k(KeyRange::new(bb..dd)), ["b", "c"]);
        assert_eq!(k(KeyRange::new(bb..=dd)), ["b", "c", "d"]);
        assert_eq!(k(KeyRange::new(bb..)), ["b", "c", "d", "e"]);
        assert_eq!(k(KeyRange::new(..dd)), ["a", "b", "c"]);
        use std::ops::Bound::*;
        let excl = KeyRange {
            start: Excluded(b("b")),
            end: Included(b("d")),
        };
        assert_eq!(k(excl.clone()), ["c", "d"]);
        assert_eq!(keys(&snap, "t", &excl, Direction::Reverse), ["d", "c"]);
    }

    pub async fn empty_and_inverted_ranges_yield_nothing(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["a", "b", "c"]).await;
        let snap = s.snapshot().unwrap();
        use std::ops::Bound::*;
        for range in [
            KeyRange {
                start: Included(b("c")),
                end: Included(b("a")),
            },
            KeyRange {
                start: Excluded(b("b")),
                end: Excluded(b("b")),
            },
            KeyRange {
                start: Included(b("b")),
                end: Excluded(b("b")),
            },
            KeyRange {
                start: Excluded(b("b")),
                end: Included(b("b")),
            },
        ] {
            for dir in [Direction::Forward, Direction::Reverse] {
                assert!(collect(&snap, "t", &range, dir).is_empty(), "{range:?}");
            }
        }
    }

    pub async fn prefix_scan(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["app", "apple", "apply", "apq", "ap", "b"]).await;
        let snap = s.snapshot().unwrap();
        let got: Vec<String> = snap
            .prefix("t", b"app", Direction::Forward)
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().0.to_vec()).unwrap())
            .collect();
        assert_eq!(got, ["app", "apple", "apply"]);
        // A prefix of 0xFF bytes has no successor: the range runs to the end.
        let ff = Bytes::from_static(b"\xff\xff");
        let ff2 = ff.clone();
        s.write(Durability::Durable, move |t| {
            t.put("t", ff2.clone(), "x");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(
            collect(&snap, "t", &KeyRange::prefix(b"\xff"), Direction::Forward)[0].0,
            ff
        );
    }

    pub async fn scan_larger_than_a_chunk(h: Harness) {
        let s = &h.store;
        s.write(Durability::Durable, |t| {
            for i in 0..2000u32 {
                t.put("t", i.to_be_bytes().to_vec(), i.to_string());
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        // Delete every third key so scans must skip dead entries too.
        s.write(Durability::Durable, |t| {
            for i in (0..2000u32).step_by(3) {
                t.delete("t", i.to_be_bytes().to_vec());
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let snap = s.snapshot().unwrap();
        let expected: Vec<u32> = (0..2000).filter(|i| i % 3 != 0).collect();
        let decode = |(k, _): (Bytes, Bytes)| u32::from_be_bytes(k.as_ref().try_into().unwrap());
        let fwd: Vec<u32> = collect(&snap, "t", &KeyRange::all(), Direction::Forward)
            .into_iter()
            .map(decode)
            .collect();
        assert_eq!(fwd, expected);
        let mut rev: Vec<u32> = collect(&snap, "t", &KeyRange::all(), Direction::Reverse)
            .into_iter()
            .map(decode)
            .collect();
        rev.reverse();
        assert_eq!(rev, expected);
    }

    pub async fn transaction_reads_its_own_writes(h: Harness) {
        let s = &h.store;
        put(s, "t", "a", "old").await;
        let seen = s
            .write(Durability::Durable, |t| {
                let before = t.get("t", b"a")?;
                t.put("t", "a", "new");
                let after = t.get("t", b"a")?;
                t.delete("t", "a");
                let deleted = t.get("t", b"a")?;
                t.put("t", "a", "final");
                Ok::<_, Error>((before, after, deleted))
            })
            .await
            .unwrap();
        assert_eq!(seen, (Some(b("old")), Some(b("new")), None));
        assert_eq!(
            s.snapshot().unwrap().get("t", b"a").unwrap(),
            Some(b("final"))
        );
    }

    pub async fn transaction_scan_merges_pending_writes(h: Harness) {
        let s = &h.store;
        fill(s, "t", &["a", "c", "e", "g"]).await;
        let (fwd, rev) = s
            .write(Durability::Durable, |t| {
                t.put("t", "b", "b");
                t.delete("t", "c");
                t.put("t", "e", "E");
                t.put("t", "h", "h");
                t.delete("t", "zz-missing");
                let all = KeyRange::all();
                let fwd: Vec<(Bytes, Bytes)> = t
                    .range("t", &all, Direction::Forward)?
                    .collect::<Result<_, _>>()?;
                let rev: Vec<(Bytes, Bytes)> = t
                    .range(
                        "t",
                        &KeyRange::new(b"b".as_slice()..b"h".as_slice()),
                        Direction::Reverse,
                    )?
                    .collect::<Result<_, _>>()?;
                Ok::<_, Error>((fwd, rev))
            })
            .await
            .unwrap();
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (b(k), b(v))).collect::<Vec<_>>();
        assert_eq!(
            fwd,
            pairs(&[("a", "a"), ("b", "b"), ("e", "E"), ("g", "g"), ("h", "h")])
        );
        assert_eq!(rev, pairs(&[("g", "g"), ("e", "E"), ("b", "b")]));
    }

    pub async fn failed_transaction_changes_nothing(h: Harness) {
        let s = &h.store;
        put(s, "t", "a", "1").await;
        let err = s
            .write(Durability::Durable, |t| {
                t.put("t", "a", "2");
                t.put("t", "b", "2");
                t.delete("t", "a");
                Err::<(), _>(Error::invalid("test", "refused"))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { field: "test", .. }));
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.get("t", b"a").unwrap(), Some(b("1")));
        assert_eq!(snap.get("t", b"b").unwrap(), None);
        assert!(!s.is_poisoned());
    }

    pub async fn panicking_transaction_affects_no_one(h: Harness) {
        let s = h.store.clone();
        let panicked = tokio::spawn(async move {
            s.write(Durability::Durable, |t| {
                t.put("t", "p", "p");
                if t.get("t", b"p")?.is_some() {
                    panic!("boom");
                }
                Ok::<_, Error>(())
            })
            .await
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        put(&h.store, "t", "ok", "ok").await;
        let snap = h.store.snapshot().unwrap();
        assert_eq!(snap.get("t", b"p").unwrap(), None);
        assert_eq!(snap.get("t", b"ok").unwrap(), Some(b("ok")));
    }

    pub async fn large_values(h: Harness) {
        let s = &h.store;
        let big = Bytes::from(
            (0..8 * 1024 * 1024)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        let v = big.clone();
        s.write(Durability::Durable, move |t| {
            t.put("blobs", "big", v);
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.get("blobs", b"big").unwrap().unwrap(), big);
        assert_eq!(
            collect(&snap, "blobs", &KeyRange::all(), Direction::Forward)[0].1,
            big
        );
    }

    pub async fn many_keyspaces(h: Harness) {
        let s = &h.store;
        s.write(Durability::Durable, |t| {
            for i in 0..300 {
                let ks = format!("keyspace-{i}");
                t.put(&ks, "k", i.to_string());
                t.put(&ks, "j", "j");
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        let snap = s.snapshot().unwrap();
        for i in 0..300 {
            let ks = format!("keyspace-{i}");
            assert_eq!(
                snap.get(&ks, b"k").unwrap(),
                Some(Bytes::from(i.to_string()))
            );
            assert_eq!(
                keys(&snap, &ks, &KeyRange::all(), Direction::Forward),
                ["j", "k"]
            );
        }
    }

    pub async fn sequences_are_gap_free(h: Harness) {
        let s = &h.store;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.write(Durability::Durable, |t| t.next_sequence("seq", b"orders"))
                    .await
                    .unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort();
        assert_eq!(got, (1..=20).collect::<Vec<u64>>());
        // A failed transaction does not consume a number.
        let _ = s
            .write(Durability::Durable, |t| {
                t.next_sequence("seq", b"orders")?;
                Err::<(), _>(Error::invalid("x", "no"))
            })
            .await;
        assert_eq!(
            s.write(Durability::Durable, |t| t.next_sequence("seq", b"orders"))
                .await
                .unwrap(),
            21
        );
    }

    pub async fn eventual_writes_are_visible(h: Harness) {
        let s = &h.store;
        s.write(Durability::Eventual, |t| {
            t.put("t", "e", "1");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert_eq!(s.snapshot().unwrap().get("t", b"e").unwrap(), Some(b("1")));
        // A read-only durable transaction afterwards succeeds (and makes the read durable).
        let v = s
            .write(Durability::Durable, |t| t.get("t", b"e"))
            .await
            .unwrap();
        assert_eq!(v, Some(b("1")));
    }

    pub async fn failed_commit_poisons_the_store(h: Harness) {
        // A fresh engine of the harness's kind, failing its commits as a failed fsync would.
        let faulty = h.faulty();
        let s = faulty.store();
        put(&s, "t", "before", "1").await;
        faulty.fail_after(0);
        let err = try_put(&s, "t", "during", "1").await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
        assert!(s.is_poisoned());
        faulty.heal();
        let err = try_put(&s, "t", "after", "1").await.unwrap_err();
        assert!(matches!(err, Error::Poisoned(_)), "{err}");
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.get("t", b"before").unwrap(), Some(b("1")));
        assert_eq!(snap.get("t", b"after").unwrap(), None);
    }

    pub async fn engine_panic_poisons_instead_of_hanging(h: Harness) {
        // A panicking engine of the same threading as the harness's (inline for memory, a
        // writer thread for redb) must fail its callers and poison, never strand them.
        let blocks = h.dir.is_some();
        let s = Store::new(PanickingEngine {
            inner: MemoryEngine::new(),
            blocks,
        });
        let err = try_put(&s, "t", "k", "v").await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
        let err = try_put(&s, "t", "k", "v").await.unwrap_err();
        assert!(matches!(err, Error::Poisoned(_)), "{err}");
    }

    #[derive(Debug)]
    struct PanickingEngine {
        inner: MemoryEngine,
        blocks: bool,
    }

    impl Engine for PanickingEngine {
        fn snapshot(&self) -> Result<Box<dyn EngineSnapshot>, Error> {
            self.inner.snapshot()
        }
        fn commit(&self, _: WriteBatch, _: Durability) -> Result<(), Error> {
            panic!("engine bug")
        }
        fn commit_blocks(&self) -> bool {
            self.blocks
        }
    }

    pub async fn on_commit_hooks_run_only_after_commit(h: Harness) {
        let s = &h.store;
        let fired = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&fired);
        let _ = s
            .write(Durability::Durable, move |t| {
                t.on_commit(move || f.store(true, Ordering::SeqCst));
                Err::<(), _>(Error::invalid("x", "no"))
            })
            .await;
        assert!(!fired.load(Ordering::SeqCst));
        let f = Arc::clone(&fired);
        s.write(Durability::Durable, move |t| {
            t.put("t", "k", "v");
            t.on_commit(move || f.store(true, Ordering::SeqCst));
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert!(fired.load(Ordering::SeqCst));
    }
}

/// Versions kept for a snapshot are freed once the snapshot is gone, even for keys that are
/// never written again.
#[tokio::test]
async fn memory_frees_versions_kept_for_dropped_snapshots() {
    use cloudlet_core::engine::MemoryEngine;
    let engine = MemoryEngine::new();
    let store = Store::new(engine.clone());
    store
        .write(Durability::Durable, |t| {
            for i in 0..100u32 {
                t.put("q", i.to_be_bytes().to_vec(), "body");
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let pinned = store.snapshot().unwrap();
    store
        .write(Durability::Durable, |t| {
            for i in 0..100u32 {
                t.delete("q", i.to_be_bytes().to_vec());
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(
        engine.stored_versions(),
        200,
        "the snapshot still needs the bodies"
    );
    assert_eq!(
        pinned.get("q", &7u32.to_be_bytes()).unwrap(),
        Some(crate::support::b("body"))
    );
    drop(pinned);
    store
        .write(Durability::Durable, |t| {
            t.put("other", "k", "v");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert_eq!(engine.stored_versions(), 1);
}

/// A checkpoint makes the B-tree durable and empties the log; the data survives reopening.
#[tokio::test]
async fn redb_checkpoint_empties_the_log() {
    use cloudlet_core::engine::RedbEngine;
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(RedbEngine::open(dir.path()).unwrap());
    let store = Store::from_engine(engine.clone());
    store
        .write(Durability::Durable, |t| {
            t.put("t", "k", "v");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    assert!(engine.log_bytes() > 0);
    engine.checkpoint().unwrap();
    assert_eq!(engine.log_bytes(), 0);
    drop(store);
    drop(engine);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.snapshot().unwrap().get("t", b"k").unwrap().is_some());
}

/// After a power loss the log may lack an unsynced (eventual) commit that a flush had already
/// made durable in the B-tree. Replaying the older records over it must not build a state that
/// never existed.
#[tokio::test]
async fn redb_replay_skips_commits_the_btree_already_holds() {
    use std::io::{Read, Seek, SeekFrom, Write};

    use cloudlet_core::engine::{Engine, RedbEngine, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let put = |pairs: &[(&str, &str)]| {
        let mut batch = WriteBatch::new();
        for (k, v) in pairs {
            batch.put("t", crate::support::b(k), crate::support::b(v));
        }
        batch
    };
    {
        let engine = RedbEngine::open(dir.path()).unwrap();
        engine
            .commit(put(&[("x", "1")]), Durability::Durable)
            .unwrap();
        engine
            .commit(put(&[("x", "2"), ("y", "2")]), Durability::Eventual)
            .unwrap();
        engine.flush().unwrap();
        // Closing makes the B-tree durable, with the eventual commit in it.
    }
    // Power loss: the unsynced second record never reached the disk. A fresh directory's active
    // segment is `cloudlet.wal.0`; keep its first record and zero what follows.
    let mut segment = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("cloudlet.wal.0"))
        .unwrap();
    let mut len = [0u8; 4];
    segment.seek(SeekFrom::Start(4096)).unwrap();
    segment.read_exact(&mut len).unwrap();
    let second = 4096 + 8 + u64::from(u32::from_be_bytes(len));
    segment.seek(SeekFrom::Start(second)).unwrap();
    segment.write_all(&[0u8; 256]).unwrap();
    drop(segment);

    let store = Store::open(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.get("t", b"x").unwrap(), Some(crate::support::b("2")));
    assert_eq!(snap.get("t", b"y").unwrap(), Some(crate::support::b("2")));
}

/// `close` shuts the last handle down without blocking the runtime; the directory reopens at
/// once. With another handle alive it leaves the store open.
#[tokio::test]
async fn redb_close_then_reopen() {
    let h = Harness::redb();
    let path = h.path().unwrap();
    let other = h.store.clone();
    h.store
        .write(Durability::Durable, |t| {
            t.put("t", "k", "v");
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    h.store.close().await;
    assert_eq!(other.get("t", b"k").unwrap(), Some(crate::support::b("v")));
    other.close().await;
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("t", b"k").unwrap(), Some(crate::support::b("v")));
}
