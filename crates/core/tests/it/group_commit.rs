//! Group commit: many concurrent writers, some failing their conditions, each get the right
//! answer, and the data equals a serial run in the order the writer ran them.

use std::sync::{Arc, Mutex};

use cloudlet_core::{Bytes, Direction, Durability, Error, KeyRange, ReadView, Store};

use crate::support::{Harness, collect};

const WRITERS: u64 = 64;
const START_BALANCE: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Debited(u64),
    Insufficient,
    Refused,
}

fn cost(i: u64) -> u64 {
    10 + (i * 37) % 50
}

fn read_u64(v: Option<Bytes>) -> u64 {
    v.map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
        .unwrap_or(0)
}

async fn check(store: Store) {
    store
        .write(Durability::Durable, |t| {
            t.put("acct", "balance", START_BALANCE.to_be_bytes().to_vec());
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let (store, order) = (store.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let result = store
                .write(Durability::Durable, move |t| {
                    order.lock().unwrap().push(i);
                    // Writes made before failing must vanish with the failure.
                    t.put("acct", format!("attempt-{i}"), "x");
                    if i % 7 == 3 {
                        return Err(Error::invalid("writer", "refused by design"));
                    }
                    let balance = read_u64(t.get("acct", b"balance")?);
                    if balance < cost(i) {
                        return Err(Error::invalid("balance", "insufficient"));
                    }
                    let left = balance - cost(i);
                    t.put("acct", "balance", left.to_be_bytes().to_vec());
                    t.put("log", format!("{i:03}"), left.to_be_bytes().to_vec());
                    t.delete("acct", format!("attempt-{i}"));
                    Ok(left)
                })
                .await;
            let outcome = match result {
                Ok(left) => Outcome::Debited(left),
                Err(Error::InvalidArgument {
                    field: "balance", ..
                }) => Outcome::Insufficient,
                Err(Error::InvalidArgument {
                    field: "writer", ..
                }) => Outcome::Refused,
                Err(e) => panic!("unexpected error {e}"),
            };
            (i, outcome)
        }));
    }
    let mut answers = vec![None; WRITERS as usize];
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        answers[i as usize] = Some(outcome);
    }

    // Replay serially in the order the writer ran the closures.
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order.len(),
        WRITERS as usize,
        "each closure ran exactly once"
    );
    let mut balance = START_BALANCE;
    let mut expected_log = Vec::new();
    for &i in &order {
        let expected = if i % 7 == 3 {
            Outcome::Refused
        } else if balance < cost(i) {
            Outcome::Insufficient
        } else {
            balance -= cost(i);
            expected_log.push((format!("{i:03}"), balance));
            Outcome::Debited(balance)
        };
        assert_eq!(answers[i as usize].as_ref(), Some(&expected), "writer {i}");
    }
    assert!(
        expected_log.len() < WRITERS as usize,
        "some writers must run out of money"
    );

    let snap = store.snapshot().unwrap();
    assert_eq!(read_u64(snap.get("acct", b"balance").unwrap()), balance);
    let mut log: Vec<(String, u64)> = collect(&snap, "log", &KeyRange::all(), Direction::Forward)
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), read_u64(Some(v))))
        .collect();
    expected_log.sort();
    log.sort();
    assert_eq!(log, expected_log);
    // No failed writer left anything behind; successful ones removed their marker.
    assert_eq!(
        collect(
            &snap,
            "acct",
            &KeyRange::prefix(b"attempt-"),
            Direction::Forward
        )
        .len(),
        0
    );
    let stats = store.stats();
    assert!(stats.commits <= stats.transactions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_writers_match_serial_outcome() {
    check(Harness::memory().store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_concurrent_writers_match_serial_outcome() {
    let h = Harness::redb();
    check(h.store.clone()).await;
}
