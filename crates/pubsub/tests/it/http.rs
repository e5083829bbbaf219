//! HTTP and HTTPS endpoints against a real HTTP server on 127.0.0.1 (over TLS with a
//! certificate from a private authority for HTTPS): the confirmation handshake, notifications
//! with SNS's headers, raw and envelope bodies, retries after 500s, untrusted certificates.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{Clock as _, ManualClock, Store};
use cloudlet_pubsub::{Error, Publish, TopicService};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// One test of `check` per engine: `$memory` on the memory engine, `$redb` on a durable one.
macro_rules! on_both_engines {
    ($check:ident => $memory:ident, $redb:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $memory() {
            $check(Store::memory()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redb() {
            let dir = tempfile::tempdir().unwrap();
            $check(Store::open(dir.path()).unwrap()).await;
        }
    };
}

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
    let (url, receiver, script, _) = serve(None).await;
    (url, receiver, script)
}

/// The server, over TLS when `tls` is given (its URL is then `https://localhost:port/hook`);
/// the last receiver reports each TLS handshake that failed.
async fn serve(
    tls: Option<TlsAcceptor>,
) -> (
    String,
    mpsc::UnboundedReceiver<Received>,
    Arc<Mutex<VecDeque<u16>>>,
    mpsc::UnboundedReceiver<String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = match tls {
        Some(_) => format!("https://localhost:{port}/hook"),
        None => format!("http://127.0.0.1:{port}/hook"),
    };
    let (sender, receiver) = mpsc::unbounded_channel();
    let (failed_sender, failed) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let answers = Arc::clone(&script);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            match &tls {
                None => answer(stream, &answers, &sender).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => answer(stream, &answers, &sender).await,
                    Err(error) => {
                        let _ = failed_sender.send(error.to_string());
                    }
                },
            }
        }
    });
    (url, receiver, script, failed)
}

/// Reads one request from `stream`, answers it with the next scripted status, reports it.
async fn answer(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    answers: &Mutex<VecDeque<u16>>,
    sender: &mpsc::UnboundedSender<Received>,
) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
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
    let Some(head_end) = head_end else { return };
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
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
    // A 401 challenges the client for Basic credentials.
    let challenge = if status == 401 {
        "WWW-Authenticate: Basic realm=\"hooks\"\r\n"
    } else {
        ""
    };
    let reply =
        format!("HTTP/1.1 {status} X\r\n{challenge}Content-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
    let _ = sender.send(Received {
        headers,
        body,
        status,
    });
}

/// A private certificate authority and a TLS acceptor whose certificate for `localhost` it
/// issued: the authority's certificate as PEM, and the acceptor.
fn private_authority() -> (String, TlsAcceptor) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cloudlet test authority");
    let authority =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &authority)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    (authority.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// Subscribes `url` with `protocol`: checks that the subscription waits for confirmation and
/// that the endpoint was sent SNS's SubscriptionConfirmation, which it returns.
async fn pending_confirmation(
    sns: &TopicService,
    topic: &str,
    protocol: &str,
    url: &str,
    attributes: BTreeMap<String, String>,
    requests: &mut mpsc::UnboundedReceiver<Received>,
) -> Received {
    let pending = sns
        .subscribe(topic, protocol, url, attributes)
        .await
        .unwrap();
    assert_eq!(pending, "pending confirmation");
    let confirmation = requests.recv().await.unwrap();
    assert_eq!(
        confirmation.headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    confirmation
}

/// The next request, checked to be a notification of `message` for the subscription `arn`
/// in SNS's envelope.
async fn notification(
    requests: &mut mpsc::UnboundedReceiver<Received>,
    arn: &str,
    message: &str,
) -> Received {
    let notification = requests.recv().await.unwrap();
    assert_eq!(
        notification.headers["x-amz-sns-message-type"],
        "Notification"
    );
    assert_eq!(notification.headers["x-amz-sns-subscription-arn"], arn);
    assert_eq!(json(&notification.body)["Message"], message);
    notification
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
    let confirmation =
        pending_confirmation(&sns, &topic, "http", &url, BTreeMap::new(), &mut requests).await;
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
    let notification = notification(&mut requests, &arn, "hello").await;
    assert_eq!(notification.headers["x-amz-sns-rawdelivery"], "false");
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

on_both_engines!(confirmation_and_delivery => memory_confirmation_notifications_and_retries, redb_confirmation_notifications_and_retries);

/// Confirms an HTTP subscription made with `attributes`; returns its ARN.
async fn confirmed(
    sns: &TopicService,
    topic: &str,
    url: &str,
    attributes: BTreeMap<String, String>,
    requests: &mut mpsc::UnboundedReceiver<Received>,
) -> String {
    let confirmation = pending_confirmation(sns, topic, "http", url, attributes, requests).await;
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

on_both_engines!(delivery_policies => memory_delivery_policies, redb_delivery_policies);

async fn https_endpoints(store: Store) {
    let clock = ManualClock::default();
    let (authority, acceptor) = private_authority();
    let untrusting = TopicService::new(store.clone(), clock.shared());
    let Err(Error::InvalidParameter { field, .. }) = untrusting
        .clone()
        .with_trusted_certificates(b"not a certificate")
    else {
        panic!("a PEM without a certificate was accepted");
    };
    assert_eq!(field, "Certificates");
    let topic = untrusting
        .create_topic("secure", BTreeMap::new())
        .await
        .unwrap();
    // The endpoint's scheme must be the protocol's.
    for (protocol, endpoint) in [
        ("http", "https://localhost/hook"),
        ("https", "http://localhost/hook"),
    ] {
        let error = untrusting
            .subscribe(&topic, protocol, endpoint, BTreeMap::new())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "InvalidParameter: Invalid parameter: Endpoint must match the specified protocol"
        );
    }
    assert!(
        untrusting
            .list_subscriptions_by_topic(&topic)
            .unwrap()
            .is_empty()
    );

    // A certificate from an authority the service does not trust: the handshake fails, the
    // confirmation is retried on the clock and never posted.
    let (url, mut requests, _, mut failed) = serve(Some(acceptor.clone())).await;
    untrusting
        .subscribe(&topic, "https", &url, BTreeMap::new())
        .await
        .unwrap();
    let refused = within(failed.recv()).await.unwrap();
    assert!(refused.contains("UnknownCA"), "{refused}");
    within(async {
        loop {
            tokio::select! {
                _ = failed.recv() => break,
                () = clock.wait_for_timers(1) => {
                    clock.advance_to_next();
                }
            }
        }
    })
    .await;
    untrusting.shutdown().await;
    assert!(requests.try_recv().is_err(), "nothing was posted");

    // Trusting the authority: the handshake and notifications go over TLS.
    let sns = TopicService::new(store, clock.shared())
        .with_trusted_certificates(authority.as_bytes())
        .unwrap();
    let (url, mut requests, _, _) = serve(Some(acceptor.clone())).await;
    let confirmation = within(pending_confirmation(
        &sns,
        &topic,
        "https",
        &url,
        BTreeMap::new(),
        &mut requests,
    ))
    .await;
    assert_eq!(confirmation.headers["host"], url[8..url.len() - 5]);
    let token = json(&confirmation.body)["Token"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = sns.confirm_subscription(&topic, &token).await.unwrap();
    let attributes = sns.get_subscription_attributes(&arn).unwrap();
    assert_eq!(attributes["Protocol"], "https");
    assert_eq!(attributes["Endpoint"], url);
    assert_eq!(attributes["ConfirmationWasAuthenticated"], "false");
    assert!(attributes.contains_key("EffectiveDeliveryPolicy"));
    sns.publish(&topic, Publish::new("over TLS")).await.unwrap();
    within(notification(&mut requests, &arn, "over TLS")).await;

    // The certificate names `localhost`: reached as 127.0.0.1, it does not name the host.
    let (url, mut requests, _, mut failed) = serve(Some(acceptor.clone())).await;
    let by_address = url.replace("localhost", "127.0.0.1");
    sns.subscribe(&topic, "https", &by_address, BTreeMap::new())
        .await
        .unwrap();
    let refused = within(failed.recv()).await.unwrap();
    assert!(refused.contains("BadCertificate"), "{refused}");
    assert!(requests.try_recv().is_err(), "nothing was posted");

    // Credentials in the URL answer the endpoint's 401 challenge, over TLS, and only then.
    let (url, mut requests, script, _) = serve(Some(acceptor)).await;
    script.lock().unwrap().push_back(401);
    let with_credentials = url.replace("https://", "https://hook-user:s3cret@");
    sns.subscribe(&topic, "https", &with_credentials, BTreeMap::new())
        .await
        .unwrap();
    let challenged = within(requests.recv()).await.unwrap();
    assert_eq!(challenged.status, 401);
    assert!(!challenged.headers.contains_key("authorization"));
    let answered = within(requests.recv()).await.unwrap();
    assert_eq!(answered.status, 200);
    assert_eq!(
        answered.headers["authorization"],
        "Basic aG9vay11c2VyOnMzY3JldA=="
    );
    assert_eq!(answered.headers["host"], url[8..url.len() - 5]);
    assert_eq!(
        answered.headers["x-amz-sns-message-type"],
        "SubscriptionConfirmation"
    );
    sns.shutdown().await;
}

/// `future`, or a failed test if it takes a minute: a bound on real I/O that never delays a
/// passing test, so a broken handshake fails instead of hanging.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the endpoint was not reached within a minute")
}

on_both_engines!(https_endpoints => memory_https_endpoints_need_a_trusted_certificate, redb_https_endpoints_need_a_trusted_certificate);
