//! Crash test: a child process commits durably in a loop from several tasks and prints each
//! acknowledged commit; the parent kills it with SIGKILL at random moments, reopens the data
//! directory, and checks that every acknowledged commit is present and none is half-applied.

use cloudlet_testkit::crash::{Rng, report, run_child};

use cloudlet_core::engine::{RedbEngine, RedbOptions};
use cloudlet_core::{Bytes, Direction, Durability, Error, KeyRange, ReadView, Store};

const CHILD_DIR: &str = "CLOUDLET_CRASH_CHILD_DIR";
const ROUNDS: usize = 24;
const WRITERS: u64 = 8;

fn payload(i: u64) -> Bytes {
    let mut v = vec![(i % 251) as u8; 96];
    v.extend_from_slice(&i.to_be_bytes());
    Bytes::from(v)
}

/// The child: runs until killed (or a bounded number of commits).
#[test]
#[ignore = "the child process of acknowledged_commits_survive_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        // Small thresholds, so kills land during flushes and checkpoints too.
        let options = RedbOptions::default()
            .with_flush_commits(4)
            .with_checkpoint_bytes(64 << 10);
        let store = Store::new(RedbEngine::open_with(&dir, options).unwrap());
        let start = match store
            .snapshot()
            .unwrap()
            .first("a", &KeyRange::all(), Direction::Reverse)
            .unwrap()
        {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().unwrap()) + 1,
            None => 0,
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..50_000 {
                    let i = start + n * WRITERS + w;
                    store
                        .write(Durability::Durable, move |t| {
                            let key = i.to_be_bytes().to_vec();
                            t.put("a", key.clone(), payload(i));
                            t.put("b", key, payload(i));
                            Ok::<_, Error>(())
                        })
                        .await
                        .unwrap();
                    report(&format!("ack {i}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let mut rng = Rng::from_env("crash test");
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = 0usize;
    for round in 0..ROUNDS {
        let kill_after = rng.between(1, 400);
        let mut acked = Vec::new();
        run_child(
            "crash::child_entry",
            CHILD_DIR,
            dir.path(),
            kill_after,
            |line| {
                let Some(i) = line.strip_prefix("ack ") else {
                    return false;
                };
                acked.push(i.parse::<u64>().unwrap());
                true
            },
        );

        let store = Store::open(dir.path()).unwrap();
        let snap = store.snapshot().unwrap();
        for &i in &acked {
            let key = i.to_be_bytes();
            assert_eq!(
                snap.get("a", &key).unwrap(),
                Some(payload(i)),
                "round {round}: acked {i} lost"
            );
            assert_eq!(
                snap.get("b", &key).unwrap(),
                Some(payload(i)),
                "round {round}: acked {i} half-applied"
            );
        }
        let a: Vec<(Bytes, Bytes)> = snap
            .range("a", &KeyRange::all(), Direction::Forward)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let b: Vec<(Bytes, Bytes)> = snap
            .range("b", &KeyRange::all(), Direction::Forward)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            a, b,
            "round {round}: a commit was applied to one keyspace only"
        );
        for (k, v) in &a {
            let i = u64::from_be_bytes(k.as_ref().try_into().unwrap());
            assert_eq!(v, &payload(i), "round {round}: corrupt value for {i}");
        }
        acked_total += acked.len();
        drop(snap);
        drop(store);
    }
    println!("crash test: {ROUNDS} rounds, {acked_total} acknowledged commits verified");
}
