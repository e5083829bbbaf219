//! Crash test: a child process sends and deletes durably and reports each acknowledgement;
//! the parent kills it with SIGKILL at random moments. After reopening, every acknowledged
//! send is still there (or was acknowledged deleted), no acknowledged delete comes back, and
//! messages that were in flight reappear once their visibility timeout has passed.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use cloudlet_testkit::crash::{report, run_rounds};

use cloudlet_core::{ManualClock, Store, SystemClock, Timestamp};
use cloudlet_queue::{QueueService, Queues, ReceiveMessage, SendMessage};

const CHILD_DIR: &str = "CLOUDLET_QUEUE_CRASH_DIR";
const ROUNDS: usize = 12;

#[test]
#[ignore = "the child process of acknowledged_sends_and_deletes_survive_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        let sqs = QueueService::new(Store::open(&dir).unwrap(), SystemClock::shared());
        let url = sqs
            .create_queue("crash", BTreeMap::new(), BTreeMap::new())
            .await
            .unwrap();
        let start = std::process::id() as u64 * 1_000_000;
        let mut tasks = Vec::new();
        for worker in 0..4u64 {
            let (sqs, url) = (sqs.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..100_000u64 {
                    let body = format!("m{}", start + n * 4 + worker);
                    sqs.send_message(&url, SendMessage::new(body.clone()))
                        .await
                        .unwrap();
                    report(&format!("sent {body}"));
                    if n % 3 == 0 {
                        for m in sqs
                            .receive_message(&url, ReceiveMessage::max(5))
                            .await
                            .unwrap()
                        {
                            let body = String::from_utf8(m.body.to_vec()).unwrap();
                            // Some are left in flight: they must come back after the timeout.
                            if body.len().is_multiple_of(2) {
                                // Said before the delete: a kill can land after the delete
                                // commits and before its acknowledgement is printed.
                                report(&format!("deleting {body}"));
                                sqs.delete_message(&url, &m.receipt_handle).await.unwrap();
                                report(&format!("deleted {body}"));
                            }
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_and_deletes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sent, mut deleting, mut deleted) = (HashSet::new(), HashSet::new(), HashSet::new());
    run_rounds(
        "queue crash test",
        ROUNDS,
        (20, 300),
        CHILD_DIR,
        dir.path(),
        |line| {
            if let Some(body) = line.strip_prefix("sent ") {
                sent.insert(body.to_owned());
            } else if let Some(body) = line.strip_prefix("deleting ") {
                deleting.insert(body.to_owned());
            } else if let Some(body) = line.strip_prefix("deleted ") {
                deleted.insert(body.to_owned());
            }
            true
        },
    );

    // Reopen on a clock past every visibility timeout, and drain the queue.
    let clock = ManualClock::new(Timestamp::from_system_time(SystemTime::now()));
    clock.advance(Duration::from_secs(60));
    let sqs = QueueService::new(Store::open(dir.path()).unwrap(), clock.shared());
    let url = sqs.get_queue_url("crash").await.unwrap();
    let mut remaining = HashSet::new();
    loop {
        let got = sqs
            .receive_message(&url, ReceiveMessage::max(10))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            let body = String::from_utf8(m.body.to_vec()).unwrap();
            assert!(
                remaining.insert(body.clone()),
                "{body} delivered twice in one drain"
            );
            sqs.delete_message(&url, &m.receipt_handle).await.unwrap();
        }
    }
    for body in &deleted {
        assert!(
            !remaining.contains(body),
            "acknowledged delete of {body} came back"
        );
    }
    for body in sent.difference(&deleting) {
        assert!(
            remaining.contains(body),
            "acknowledged send of {body} was lost"
        );
    }
    println!(
        "queue crash test: {ROUNDS} rounds, {} sends and {} deletes acknowledged, {} left",
        sent.len(),
        deleted.len(),
        remaining.len()
    );
}
