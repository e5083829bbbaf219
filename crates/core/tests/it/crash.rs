//! Crash test: a child process commits durably in a loop from several tasks and prints each
//! acknowledged commit; the parent kills it with SIGKILL at random moments, reopens the data
//! directory, and checks that every acknowledged commit is present and none is half-applied.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

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
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
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
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {i}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// A small deterministic generator, seeded and printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let seed = std::env::var("CLOUDLET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (set CLOUDLET_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_total = 0usize;
    for round in 0..ROUNDS {
        let kill_after = 1 + (rng.next() % 400) as usize;
        let mut child = Command::new(&exe)
            .args([
                "crash::child_entry",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        let mut killed = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("ack ") {
                acked.push(i.parse::<u64>().unwrap());
                if acked.len() >= kill_after {
                    child.kill().unwrap();
                    killed = true;
                    break;
                }
            }
        }
        // Acks printed before the kill landed are acknowledged too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix("ack ") {
                acked.push(i.parse::<u64>().unwrap());
            }
        }
        let status = child.wait().unwrap();
        assert!(
            killed,
            "round {round}: the child exited by itself: {status}"
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
