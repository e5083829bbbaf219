//! HTTP endpoints against a real HTTP server on 127.0.0.1: the confirmation handshake,
//! notifications with SNS's headers, raw and envelope bodies, retries after 500s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{Clock as _, ManualClock, Store};
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

/// Confirms an HTTP subscription made with `attributes`; returns its ARN.
async fn confirmed(
    sns: &TopicService,
    topic: &str,
    url: &str,
    attributes: BTreeMap<String, String>,
    requests: &mut mpsc::UnboundedReceiver<Received>,
) -> String {
    sns.subscribe(topic, "http", url, attributes).await.unwrap();
    let confirmation = requests.recv().await.unwrap();
    let token = json(&confirmation.body)["Token"]
        .as_str()
        .unwrap()
        .to_owned();
    sns.confirm_subscription(topic, &token).await.unwrap()
}

async fn delivery_policies(store: Store) {
    let clock = ManualClock::default();
    let sns = TopicService::new(store, clock.shared());
    let topic = sns.create_topic("policies", BTreeMap::new()).await.unwrap();
    let (dead, mut dead_rx) = cloudlet_core::ChannelSink::new();
    sns.register_sink("dlq", Arc::new(dead)).await.unwrap();
    let (url, mut requests, script) = server().await;
    let policy = r#"{"healthyRetryPolicy": {"numRetries": 2, "minDelayTarget": 5, "maxDelayTarget": 5},
                     "requestPolicy": {"headerContentType": "application/json"}}"#;
    let arn = confirmed(
        &sns,
        &topic,
        &url,
        BTreeMap::from([
            ("DeliveryPolicy".to_owned(), policy.to_owned()),
            ("RawMessageDelivery".to_owned(), "true".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                r#"{"deadLetterTargetArn": "dlq"}"#.to_owned(),
            ),
        ]),
        &mut requests,
    )
    .await;
    let attributes = sns.get_subscription_attributes(&arn).unwrap();
    assert_eq!(attributes["Protocol"], "http");
    assert_eq!(attributes["PendingConfirmation"], "false");
    let effective = json(&attributes["EffectiveDeliveryPolicy"]);
    assert_eq!(effective["healthyRetryPolicy"]["numRetries"], 2);
    assert_eq!(effective["healthyRetryPolicy"]["minDelayTarget"], 5);

    // Every attempt fails: the first and two retries 5 s apart, then the dead-letter sink.
    script.lock().unwrap().extend([500, 500, 500, 500]);
    let start = clock.now();
    sns.publish(&topic, Publish::new("doomed")).await.unwrap();
    // One step at a time: the clock moves only once the attempt before has arrived and the
    // next one's timer is set.
    let mut attempts = Vec::new();
    for attempt in 0..3 {
        if attempt > 0 {
            clock.wait_for_timers(1).await;
            clock.advance_to_next();
        }
        let received = requests.recv().await.unwrap();
        assert_eq!(received.headers["content-type"], "application/json");
        attempts.push(clock.now().saturating_duration_since(start).as_secs());
    }
    let dead_lettered = dead_rx.recv().await.unwrap();
    assert_eq!(attempts, [0, 5, 10]);
    assert_eq!(dead_lettered.body, "doomed");
    script.lock().unwrap().clear();

    // One POST a second at most: three messages published at once arrive a second apart.
    sns.set_subscription_attribute(
        &arn,
        "DeliveryPolicy",
        r#"{"throttlePolicy": {"maxReceivesPerSecond": 1}}"#,
    )
    .await
    .unwrap();
    let start = clock.now();
    for n in 0..3 {
        sns.publish(&topic, Publish::new(format!("m{n}")))
            .await
            .unwrap();
    }
    let mut times = Vec::new();
    for n in 0..3 {
        if n > 0 {
            clock.wait_for_timers(1).await;
            clock.advance_to_next();
        }
        let received = requests.recv().await.unwrap();
        // Back to SNS's default content type.
        assert_eq!(
            received.headers["content-type"],
            "text/plain; charset=UTF-8"
        );
        assert_eq!(received.body, format!("m{n}"));
        times.push(clock.now().saturating_duration_since(start).as_secs());
    }
    assert_eq!(times, [0, 1, 2]);

    // Bad policies are refused and change nothing; sink subscriptions take none.
    for bad in [
        r#"{"healthyRetryPolicy": {"numRetries": 101}}"#,
        r#"{"healthyRetryPolicy": {"numRetries": 100, "minDelayTarget": 60, "maxDelayTarget": 60}}"#,
        r#"{"throttlePolicy": {"maxReceivesPerSecond": 0}}"#,
        "{",
    ] {
        let err = sns
            .set_subscription_attribute(&arn, "DeliveryPolicy", bad)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("DeliveryPolicy"), "{err}");
    }
    assert_eq!(
        json(&sns.get_subscription_attributes(&arn).unwrap()["DeliveryPolicy"])["throttlePolicy"]["maxReceivesPerSecond"],
        1
    );
    assert!(
        sns.subscribe(
            &topic,
            "sink",
            "dlq",
            BTreeMap::from([("DeliveryPolicy".to_owned(), "{}".to_owned())]),
        )
        .await
        .is_err()
    );
    // A topic's policy is checked too, and shows as its effective policy.
    assert!(
        sns.set_topic_attribute(&topic, "DeliveryPolicy", r#"{"http": {"bad": 1}}"#)
            .await
            .is_err()
    );
    sns.set_topic_attribute(
        &topic,
        "DeliveryPolicy",
        r#"{"http": {"defaultHealthyRetryPolicy": {"numRetries": 7}}}"#,
    )
    .await
    .unwrap();
    let topic_attributes = sns.get_topic_attributes(&topic).unwrap();
    let effective = json(&topic_attributes["EffectiveDeliveryPolicy"]);
    assert_eq!(
        effective["http"]["defaultHealthyRetryPolicy"]["numRetries"],
        7
    );
    sns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_delivery_policies() {
    delivery_policies(Store::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_delivery_policies() {
    let dir = tempfile::tempdir().unwrap();
    delivery_policies(Store::open(dir.path()).unwrap()).await;
}
