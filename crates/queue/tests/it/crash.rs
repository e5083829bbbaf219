//! Crash test: a child process sends and deletes durably and reports each acknowledgement;
//! the parent kills it with SIGKILL at random moments. After reopening, every acknowledged
//! send is still there (or was acknowledged deleted), no acknowledged delete comes back, and
//! messages that were in flight reappear once their visibility timeout has passed.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use cloudlet_testkit::crash::{Rng, report, run_child, run_rounds};

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

/// Receives from `url` until nothing is visible (the clock stands still, so what is received
/// stays in flight); returns the bodies in the order received.
async fn drain(sqs: &QueueService, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs
            .receive_message(url, ReceiveMessage::max(10))
            .await
            .unwrap();
        if got.is_empty() {
            return bodies;
        }
        bodies.extend(
            got.into_iter()
                .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
        );
    }
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
    for body in drain(&sqs, &url).await {
        assert!(
            remaining.insert(body.clone()),
            "{body} delivered twice in one drain"
        );
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

/// Message-move tasks are kept in the store, as SQS keeps them across its own restarts: a
/// task running when its service shut down goes on in the next service over the same
/// directory, from where it stopped, and moves every message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_move_tasks_go_on_after_a_restart() {
    const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:dlq";
    const WORK_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:work";
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_system_time(SystemTime::now()));
    let sqs = QueueService::new(Store::open(dir.path()).unwrap(), clock.shared());
    let dlq = sqs
        .create_queue("dlq", BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    let policy = format!(r#"{{"deadLetterTargetArn":"{DLQ_ARN}","maxReceiveCount":1}}"#);
    let work = sqs
        .create_queue(
            "work",
            BTreeMap::from([("RedrivePolicy".to_owned(), policy)]),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    for i in 0..5 {
        sqs.send_message(&dlq, SendMessage::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let handle = sqs
        .start_message_move_task(DLQ_ARN, Some(WORK_ARN), Some(1))
        .await
        .unwrap();
    // One a second: the first moves at once, the second after a second.
    clock.wait_for_timers(1).await;
    clock.advance(Duration::from_secs(1));
    clock.wait_for_timers(1).await;
    sqs.shutdown().await;
    let before = sqs.list_message_move_tasks(DLQ_ARN, None).await.unwrap();
    assert_eq!(before[0].status, "RUNNING");
    assert_eq!(before[0].approximate_number_of_messages_moved, 2);
    drop(sqs);

    let sqs = QueueService::new(Store::open(dir.path()).unwrap(), clock.shared());
    let after = sqs.list_message_move_tasks(DLQ_ARN, None).await.unwrap();
    assert_eq!(after[0].task_handle.as_deref(), Some(handle.as_str()));
    assert_eq!(after[0].approximate_number_of_messages_moved, 2);
    assert_eq!(after[0].approximate_number_of_messages_to_move, 5);
    // Resumed, it moves the third at once, then one a second.
    for _ in 0..2 {
        clock.wait_for_timers(1).await;
        clock.advance(Duration::from_secs(1));
    }
    let mut done = None;
    for _ in 0..100_000 {
        let tasks = sqs.list_message_move_tasks(DLQ_ARN, None).await.unwrap();
        if tasks[0].status == "COMPLETED" {
            done = Some(tasks[0].clone());
            break;
        }
        tokio::task::yield_now().await;
    }
    let done = done.expect("the resumed task completes");
    assert_eq!(done.approximate_number_of_messages_moved, 5);
    let mut bodies = drain(&sqs, &work).await;
    bodies.sort();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(
        sqs.receive_message(&dlq, ReceiveMessage::max(10))
            .await
            .unwrap()
            .is_empty()
    );
    sqs.shutdown().await;
}

const MOVE_DIR: &str = "CLOUDLET_QUEUE_MOVE_CRASH_DIR";
const MOVE_MESSAGES: usize = 2000;
const MOVE_DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:dlq";

#[test]
#[ignore = "the child process of a_message_move_task_killed_mid_way_moves_each_message_once"]
fn move_child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(MOVE_DIR) else {
        return;
    };
    runtime.block_on(async move {
        // Listing resumes the stored task; every change of its count is an acknowledgement.
        let sqs = QueueService::new(Store::open(&dir).unwrap(), SystemClock::shared());
        let mut last = None;
        loop {
            let task = sqs
                .list_message_move_tasks(MOVE_DLQ_ARN, None)
                .await
                .unwrap()
                .remove(0);
            let now = (
                task.status.clone(),
                task.approximate_number_of_messages_moved,
            );
            if last.as_ref() != Some(&now) || task.status != "RUNNING" {
                report(&format!("task {} {}", now.0, now.1));
                last = Some(now);
            }
            tokio::task::yield_now().await;
        }
    });
}

/// A move task whose process is killed with SIGKILL at random moments, and resumed by the
/// next, moves every message exactly once: each step moves a batch and counts it in one
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_move_task_killed_mid_way_moves_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_system_time(SystemTime::now()));
    {
        let sqs = QueueService::new(Store::open(dir.path()).unwrap(), clock.shared());
        let dlq = sqs
            .create_queue("dlq", BTreeMap::new(), BTreeMap::new())
            .await
            .unwrap();
        let policy = format!(r#"{{"deadLetterTargetArn":"{MOVE_DLQ_ARN}","maxReceiveCount":1}}"#);
        sqs.create_queue(
            "work",
            BTreeMap::from([("RedrivePolicy".to_owned(), policy)]),
            BTreeMap::new(),
        )
        .await
        .unwrap();
        for batch in 0..MOVE_MESSAGES / 10 {
            let entries = (0..10)
                .map(|i| {
                    let n = batch * 10 + i;
                    cloudlet_queue::SendMessageBatchEntry::new(
                        format!("e{i}"),
                        SendMessage::new(format!("m{n}")),
                    )
                })
                .collect();
            sqs.send_message_batch(&dlq, entries).await.unwrap();
        }
        sqs.start_message_move_task(
            MOVE_DLQ_ARN,
            Some("arn:aws:sqs:us-east-1:000000000000:work"),
            None,
        )
        .await
        .unwrap();
        sqs.shutdown().await;
    }
    let mut rng = Rng::from_env("queue move crash test");
    let mut seen = 0;
    for _ in 0..6 {
        let kill_after = rng.between(1, 4);
        run_child(
            "crash::move_child_entry",
            MOVE_DIR,
            dir.path(),
            kill_after,
            |line| {
                let is_ack = line.starts_with("task ");
                seen += usize::from(is_ack);
                is_ack
            },
        );
    }
    // Finish it here, then count what arrived, on a clock past the children's moves (they
    // ran on the system clock).
    clock.advance(Duration::from_secs(3600));
    let sqs = QueueService::new(Store::open(dir.path()).unwrap(), clock.shared());
    let mut done = None;
    for _ in 0..1_000_000 {
        let task = sqs
            .list_message_move_tasks(MOVE_DLQ_ARN, None)
            .await
            .unwrap()
            .remove(0);
        if task.status != "RUNNING" {
            done = Some(task);
            break;
        }
        tokio::task::yield_now().await;
    }
    let done = done.expect("the task finishes");
    assert_eq!(done.status, "COMPLETED");
    assert_eq!(
        done.approximate_number_of_messages_moved,
        MOVE_MESSAGES as u64
    );
    let work = sqs.get_queue_url("work").await.unwrap();
    let mut bodies = HashSet::new();
    for body in drain(&sqs, &work).await {
        assert!(bodies.insert(body.clone()), "{body} moved twice");
    }
    assert_eq!(bodies.len(), MOVE_MESSAGES, "every message moved once");
    let dlq = sqs.get_queue_url("dlq").await.unwrap();
    assert!(
        sqs.receive_message(&dlq, ReceiveMessage::max(10))
            .await
            .unwrap()
            .is_empty()
    );
    println!("queue move crash test: 6 kills, {seen} progress reports");
    sqs.shutdown().await;
}
