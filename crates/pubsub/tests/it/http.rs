//! HTTP endpoints against a real HTTP server on 127.0.0.1: the confirmation handshake,
//! notifications with SNS's headers, raw and envelope bodies, retries after 500s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{ManualClock, Store};
use cloudlet_pubsub::{Publish, TopicService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request the server received: lower-case headers, body, and the status it answered.
#[derive(Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    status: u16,
}

/// A minimal HTTP/1.1 server: answers each request with the next scripted status (200 once
/// the script runs out) and reports what it received.
async fn server() -> (
    String,
    mpsc::UnboundedReceiver<Received>,
    Arc<Mutex<VecDeque<u16>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let answers = Arc::clone(&script);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut data = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break (None, 0);
                }
                data.extend_from_slice(&chunk[..n]);
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..at]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    break (Some(at + 4), length);
                }
            };
            let Some(head_end) = head_end else { continue };
            while data.len() < head_end + length {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            let body = String::from_utf8_lossy(&data[head_end..]).into_owned();
            let status = answers.lock().unwrap().pop_front().unwrap_or(200);
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = sender.send(Received {
                headers,
                body,
                status,
            });
        }
    });
    (url, receiver, script)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

async fn confirmation_and_delivery(store: Store) {
    let clock = ManualClock::default();
    let sns = TopicService::new(store.clone(), clock.shared()).with_delivery_policy(
        OutboxPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(20), 2),
    );
    let topic = sns.create_topic("hooks", BTreeMap::new()).await.unwrap();
    let (url, mut requests, script) = server().await;
    assert!(
        sns.subscribe(&topic, "http", "https://x/", BTreeMap::new())
            .await
            .is_err()
    );
    let pending = sns
        .subscribe(&topic, "http", &url, BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(pending, "pending confirmation");
    let confirmation = requests.recv().await.unwrap();
    assert_eq!(
        confirmation.headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    assert_eq!(confirmation.headers["x-amz-sns-topic-arn"], topic);
    let body = json(&confirmation.body);
    assert_eq!(body["Type"], "SubscriptionConfirmation");
    assert!(
        body["SubscribeURL"]
            .as_str()
            .unwrap()
            .contains("Action=ConfirmSubscription")
    );
    let token = body["Token"].as_str().unwrap().to_owned();
    // Not yet confirmed: publishes do not reach it.
    sns.publish(&topic, Publish::new("too early"))
        .await
        .unwrap();
    assert!(sns.confirm_subscription(&topic, "wrong").await.is_err());
    let arn = sns.confirm_subscription(&topic, &token).await.unwrap();
    assert!(arn.starts_with(&topic));
    sns.publish(&topic, Publish::new("hello").with_subject("greeting"))
        .await
        .unwrap();
    let notification = requests.recv().await.unwrap();
    assert_eq!(
        notification.headers["x-amz-sns-message-type"],
        "Notification"
    );
    assert_eq!(notification.headers["x-amz-sns-subscription-arn"], arn);
    assert_eq!(notification.headers["x-amz-sns-rawdelivery"], "false");
    assert_eq!(json(&notification.body)["Message"], "hello");
    assert_eq!(json(&notification.body)["Subject"], "greeting");
    // Raw delivery posts the bare message.
    sns.set_subscription_attribute(&arn, "RawMessageDelivery", "true")
        .await
        .unwrap();
    sns.publish(&topic, Publish::new("raw body")).await.unwrap();
    let raw = requests.recv().await.unwrap();
    assert_eq!(raw.body, "raw body");
    assert_eq!(raw.headers["x-amz-sns-rawdelivery"], "true");
    // Two 500s, then success: retried on the clock until delivered, once.
    script.lock().unwrap().extend([500, 500]);
    sns.publish(&topic, Publish::new("retry me")).await.unwrap();
    let mut answers = Vec::new();
    loop {
        tokio::select! {
            received = requests.recv() => {
                let received = received.unwrap();
                assert_eq!(received.body, "retry me");
                answers.push(received.status);
                if received.status == 200 {
                    break;
                }
            }
            () = clock.wait_for_timers(1) => {
                clock.advance_to_next();
            }
        }
    }
    assert_eq!(answers, [500, 500, 200]);
    sns.shutdown().await;
    assert!(
        requests.try_recv().is_err(),
        "nothing was posted twice or too early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_confirmation_notifications_and_retries() {
    confirmation_and_delivery(Store::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_confirmation_notifications_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    confirmation_and_delivery(Store::open(dir.path()).unwrap()).await;
}
