//! The topic conformance suite: each check runs on the memory and the redb engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{
    ChannelSink, DeliveryError, ManualClock, Message, MessageAttribute, Store, sink_fn,
};
use cloudlet_pubsub::{Error, Publish, TopicService};
use tempfile::TempDir;

pub struct Harness {
    pub sns: TopicService,
    pub clock: ManualClock,
    store: Store,
    _dir: Option<TempDir>,
}

impl Harness {
    fn memory() -> Self {
        let clock = ManualClock::default();
        let store = Store::memory();
        Self {
            sns: TopicService::new(store.clone(), clock.shared()),
            clock,
            store,
            _dir: None,
        }
    }

    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::default();
        let store = Store::new(RedbEngine::open(dir.path()).unwrap());
        Self {
            sns: TopicService::new(store.clone(), clock.shared()),
            clock,
            store,
            _dir: Some(dir),
        }
    }

    /// A new service over the same data, as after a restart.
    async fn restart(mut self) -> Self {
        self.sns.shutdown().await;
        let store = match &self._dir {
            Some(dir) => {
                let old = std::mem::replace(&mut self.store, Store::memory());
                drop(self.sns);
                old.close().await;
                Store::new(RedbEngine::open(dir.path()).unwrap())
            }
            None => self.store.clone(),
        };
        Self {
            sns: TopicService::new(store.clone(), self.clock.shared()),
            clock: self.clock,
            store,
            _dir: self._dir,
        }
    }
}

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                topics_create_list_and_delete,
                publish_fans_out_to_matching_subscriptions,
                raw_delivery_and_message_structure,
                publish_is_validated,
                failed_deliveries_retry_on_the_clock_then_dead_letter,
                a_failing_subscriber_does_not_delay_others,
                accepted_publishes_are_delivered_after_a_restart,
                fifo_topics_deduplicate_and_deliver_in_order,
                a_topic_is_a_sink,
                batches_tags_and_attributes,
                a_dead_letter_sink_registered_later_is_used,
                fifo_deliveries_carry_the_deduplication_id,
                sinks_retry_as_sns_retries_managed_endpoints,
                the_message_size_limit_goes_up_to_one_mebibyte,
                removed_subscriptions_leave_nothing_queued,
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

mod checks {
    use super::*;

    fn json(message: &Message) -> serde_json::Value {
        serde_json::from_slice(&message.body).unwrap()
    }

    pub async fn topics_create_list_and_delete(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        assert_eq!(arn, "arn:aws:sns:us-east-1:000000000000:orders");
        assert_eq!(
            h.sns.create_topic("orders", BTreeMap::new()).await.unwrap(),
            arn
        );
        let other = BTreeMap::from([("DisplayName".to_owned(), "Orders".to_owned())]);
        let differs = h.sns.create_topic("orders", other).await;
        assert!(
            matches!(differs, Err(Error::InvalidParameter { .. })),
            "{differs:?}"
        );
        for bad in ["", "has space", "dot.name", &"x".repeat(257)] {
            assert!(
                h.sns.create_topic(bad, BTreeMap::new()).await.is_err(),
                "{bad:?}"
            );
        }
        let fifo = BTreeMap::from([("FifoTopic".to_owned(), "true".to_owned())]);
        assert!(
            h.sns.create_topic("events", fifo.clone()).await.is_err(),
            "FIFO names end in .fifo"
        );
        h.sns.create_topic("events.fifo", fifo).await.unwrap();
        assert_eq!(h.sns.list_topics().unwrap().len(), 2);
        let attributes = h.sns.get_topic_attributes(&arn).unwrap();
        assert_eq!(attributes["TopicArn"], arn);
        assert_eq!(attributes["SubscriptionsConfirmed"], "0");
        h.sns.delete_topic(&arn).await.unwrap();
        h.sns.delete_topic(&arn).await.unwrap();
        assert!(matches!(
            h.sns.get_topic_attributes(&arn),
            Err(Error::NotFound { .. })
        ));
    }

    pub async fn publish_fans_out_to_matching_subscriptions(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let (all, mut all_rx) = ChannelSink::new();
        let (corp, mut corp_rx) = ChannelSink::new();
        let (other, mut other_rx) = ChannelSink::new();
        h.sns.register_sink("all", Arc::new(all)).await.unwrap();
        h.sns.register_sink("corp", Arc::new(corp)).await.unwrap();
        h.sns.register_sink("other", Arc::new(other)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "all", BTreeMap::new())
            .await
            .unwrap();
        let filter = |store: &str| {
            BTreeMap::from([(
                "FilterPolicy".to_owned(),
                format!(r#"{{"store": ["{store}"]}}"#),
            )])
        };
        h.sns
            .subscribe(&arn, "sink", "corp", filter("example_corp"))
            .await
            .unwrap();
        h.sns
            .subscribe(&arn, "sink", "other", filter("other_corp"))
            .await
            .unwrap();
        let bad = h
            .sns
            .subscribe(
                &arn,
                "sink",
                "x",
                BTreeMap::from([("FilterPolicy".to_owned(), "{\"a\": []}".to_owned())]),
            )
            .await;
        assert!(
            matches!(bad, Err(Error::InvalidParameter { .. })),
            "{bad:?}"
        );
        assert_eq!(h.sns.list_subscriptions_by_topic(&arn).unwrap().len(), 3);
        let id = h
            .sns
            .publish(
                &arn,
                Publish::new("order 1")
                    .with_subject("New order")
                    .with_attribute("store", MessageAttribute::string("example_corp")),
            )
            .await
            .unwrap();
        for rx in [&mut all_rx, &mut corp_rx] {
            let envelope = json(&rx.recv().await.unwrap());
            assert_eq!(envelope["Type"], "Notification");
            assert_eq!(envelope["MessageId"], id.message_id.as_str());
            assert_eq!(envelope["TopicArn"], arn.as_str());
            assert_eq!(envelope["Subject"], "New order");
            assert_eq!(envelope["Message"], "order 1");
            assert_eq!(envelope["MessageAttributes"]["store"]["Type"], "String");
            assert_eq!(
                envelope["MessageAttributes"]["store"]["Value"],
                "example_corp"
            );
            let timestamp = envelope["Timestamp"].as_str().unwrap();
            assert!(
                timestamp.ends_with('Z') && timestamp.len() == 24,
                "{timestamp}"
            );
        }
        // The filtered-out subscriber gets nothing; a later matching message reaches it.
        h.sns
            .publish(
                &arn,
                Publish::new("order 2")
                    .with_attribute("store", MessageAttribute::string("other_corp")),
            )
            .await
            .unwrap();
        assert_eq!(json(&other_rx.recv().await.unwrap())["Message"], "order 2");
        assert_eq!(json(&all_rx.recv().await.unwrap())["Message"], "order 2");
        assert!(corp_rx.try_recv().is_err());
        // Unsubscribed: nothing more.
        let subscriptions = h.sns.list_subscriptions_by_topic(&arn).unwrap();
        let all_arn = &subscriptions
            .iter()
            .find(|s| s.endpoint == "all")
            .unwrap()
            .subscription_arn;
        h.sns.unsubscribe(all_arn).await.unwrap();
        assert!(matches!(
            h.sns.unsubscribe(all_arn).await,
            Err(Error::NotFound { .. })
        ));
        h.sns.publish(&arn, Publish::new("order 3")).await.unwrap();
        h.sns.shutdown().await;
        assert!(all_rx.try_recv().is_err());
    }

    pub async fn raw_delivery_and_message_structure(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let (raw, mut raw_rx) = ChannelSink::new();
        h.sns.register_sink("raw", Arc::new(raw)).await.unwrap();
        let attributes = BTreeMap::from([("RawMessageDelivery".to_owned(), "true".to_owned())]);
        h.sns
            .subscribe(&arn, "sink", "raw", attributes)
            .await
            .unwrap();
        h.sns
            .publish(
                &arn,
                Publish::new("plain body").with_attribute("kind", MessageAttribute::string("k")),
            )
            .await
            .unwrap();
        let message = raw_rx.recv().await.unwrap();
        assert_eq!(message.body, "plain body");
        assert_eq!(message.attributes["kind"], MessageAttribute::string("k"));
        let mut structured = Publish::new(r#"{"default": "for everyone", "sink": "for sinks"}"#);
        structured.message_structure = Some("json".to_owned());
        h.sns.publish(&arn, structured).await.unwrap();
        assert_eq!(raw_rx.recv().await.unwrap().body, "for sinks");
        h.sns.shutdown().await;
    }

    pub async fn publish_is_validated(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let fifo = h
            .sns
            .create_topic(
                "orders.fifo",
                BTreeMap::from([("FifoTopic".to_owned(), "true".to_owned())]),
            )
            .await
            .unwrap();
        let (sink, mut rx) = ChannelSink::new();
        h.sns.register_sink("s", Arc::new(sink)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        let mut eleven = Publish::new("m");
        for i in 0..11 {
            eleven = eleven.with_attribute(format!("a{i}"), MessageAttribute::string("v"));
        }
        let mut no_default = Publish::new(r#"{"sink": "x"}"#);
        no_default.message_structure = Some("json".to_owned());
        for bad in [
            Publish::new(""),
            Publish::new("x".repeat(256 * 1024 + 1)),
            Publish::new("m").with_subject("line\nbreak"),
            Publish::new("m").with_subject("s".repeat(101)),
            eleven,
            no_default,
        ] {
            let rejected = h.sns.publish(&arn, bad).await;
            assert!(
                matches!(rejected, Err(Error::InvalidParameter { .. })),
                "{rejected:?}"
            );
        }
        let no_group = h.sns.publish(&fifo, Publish::new("m")).await;
        assert!(
            matches!(no_group, Err(Error::InvalidParameter { .. })),
            "{no_group:?}"
        );
        let missing = h
            .sns
            .publish("arn:aws:sns:us-east-1:000000000000:nope", Publish::new("m"))
            .await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
        // Nothing rejected was delivered; the next good one is the first to arrive.
        h.sns.publish(&arn, Publish::new("good")).await.unwrap();
        assert_eq!(json(&rx.recv().await.unwrap())["Message"], "good");
        h.sns.shutdown().await;
    }

    pub async fn sinks_retry_as_sns_retries_managed_endpoints(h: Harness) {
        use cloudlet_core::Clock as _;
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let (tx, mut attempts) = tokio::sync::mpsc::unbounded_channel();
        let clock = h.clock.clone();
        let down = sink_fn(move |_message: Message| {
            let _ = tx.send(clock.now());
            async { Err(DeliveryError::unavailable("down")) }
        });
        h.sns.register_sink("down", Arc::new(down)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "down", BTreeMap::new())
            .await
            .unwrap();
        let start = h.clock.now();
        h.sns.publish(&arn, Publish::new("m")).await.unwrap();
        let mut times = Vec::new();
        while times.len() < 17 {
            tokio::select! {
                at = attempts.recv() => {
                    times.push(at.unwrap().saturating_duration_since(start).as_secs());
                }
                () = h.clock.wait_for_timers(1) => { h.clock.advance_to_next(); }
            }
        }
        // The first attempt, 3 immediate retries, 2 a second apart, 10 backing off from 1 s
        // to 20 s, then 20 s apart.
        assert_eq!(
            times,
            [0, 0, 0, 0, 1, 2, 3, 5, 9, 17, 33, 53, 73, 93, 113, 133, 153]
        );
        h.sns.shutdown().await;
    }

    pub async fn removed_subscriptions_leave_nothing_queued(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let other = h.sns.create_topic("other", BTreeMap::new()).await.unwrap();
        let down = sink_fn(|_message: Message| async { Err(DeliveryError::unavailable("down")) });
        h.sns.register_sink("down", Arc::new(down)).await.unwrap();
        let first = h
            .sns
            .subscribe(&arn, "sink", "down", BTreeMap::new())
            .await
            .unwrap();
        let second = h
            .sns
            .subscribe(&other, "sink", "down", BTreeMap::new())
            .await
            .unwrap();
        for n in 0..5 {
            h.sns
                .publish(&arn, Publish::new(format!("m{n}")))
                .await
                .unwrap();
            h.sns
                .publish(&other, Publish::new(format!("o{n}")))
                .await
                .unwrap();
        }
        assert_eq!(h.sns.pending_deliveries(&first).unwrap(), 5);
        assert_eq!(h.sns.pending_deliveries(&second).unwrap(), 5);
        // Unsubscribing, and deleting a topic, delete what was queued for the subscription.
        h.sns.unsubscribe(&first).await.unwrap();
        assert_eq!(h.sns.pending_deliveries(&first).unwrap(), 0);
        h.sns.delete_topic(&other).await.unwrap();
        assert_eq!(h.sns.pending_deliveries(&second).unwrap(), 0);
        use cloudlet_core::ReadView as _;
        let snapshot = h.store.snapshot().unwrap();
        let left = snapshot
            .range(
                cloudlet_core::outbox::OUTBOX_KEYSPACE,
                &cloudlet_core::KeyRange::all(),
                cloudlet_core::Direction::Forward,
            )
            .unwrap()
            .count();
        assert_eq!(left, 0, "no outbox row is left");
        h.sns.shutdown().await;
    }

    pub async fn the_message_size_limit_goes_up_to_one_mebibyte(h: Harness) {
        let big = "x".repeat(300 * 1024);
        let arn = h.sns.create_topic("big", BTreeMap::new()).await.unwrap();
        assert!(
            h.sns
                .publish(&arn, Publish::new(big.clone()))
                .await
                .is_err()
        );
        let sns = h.sns.clone().with_max_message_size(1024 * 1024).unwrap();
        sns.publish(&arn, Publish::new(big)).await.unwrap();
        let too_big = sns
            .publish(&arn, Publish::new("x".repeat(1024 * 1024 + 1)))
            .await
            .unwrap_err();
        assert!(too_big.to_string().contains("1048576"), "{too_big}");
        let err = h
            .sns
            .clone()
            .with_max_message_size(1024 * 1024 + 1)
            .unwrap_err();
        assert!(err.to_string().contains("MaximumMessageSize"), "{err}");
        h.sns.shutdown().await;
    }

    pub async fn failed_deliveries_retry_on_the_clock_then_dead_letter(h: Harness) {
        let sns = h.sns.clone().with_delivery_policy(
            OutboxPolicy::default()
                .with_backoff(Duration::from_secs(1), Duration::from_secs(60), 2)
                .with_max_attempts(3),
        );
        let arn = sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&attempts);
        let down = sink_fn(move |_message: Message| {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                Err(DeliveryError::unavailable("down"))
            }
        });
        let (dead, mut dead_rx) = ChannelSink::new();
        sns.register_sink("down", Arc::new(down)).await.unwrap();
        sns.register_sink("dlq", Arc::new(dead)).await.unwrap();
        let redrive = BTreeMap::from([(
            "RedrivePolicy".to_owned(),
            r#"{"deadLetterTargetArn": "dlq"}"#.to_owned(),
        )]);
        sns.subscribe(&arn, "sink", "down", redrive).await.unwrap();
        sns.publish(&arn, Publish::new("doomed")).await.unwrap();
        let dead_lettered = loop {
            tokio::select! {
                message = dead_rx.recv() => break message.unwrap(),
                () = h.clock.wait_for_timers(1) => { h.clock.advance_to_next(); }
            }
        };
        assert_eq!(json(&dead_lettered)["Message"], "doomed");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        sns.shutdown().await;
    }

    pub async fn a_failing_subscriber_does_not_delay_others(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let down = sink_fn(|_message: Message| async { Err(DeliveryError::unavailable("down")) });
        let (up, mut up_rx) = ChannelSink::new();
        h.sns.register_sink("down", Arc::new(down)).await.unwrap();
        h.sns.register_sink("up", Arc::new(up)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "down", BTreeMap::new())
            .await
            .unwrap();
        h.sns
            .subscribe(&arn, "sink", "up", BTreeMap::new())
            .await
            .unwrap();
        for n in 0..5 {
            h.sns
                .publish(&arn, Publish::new(format!("m{n}")))
                .await
                .unwrap();
        }
        // Without the clock moving, the healthy subscriber gets everything.
        for n in 0..5 {
            assert_eq!(
                json(&up_rx.recv().await.unwrap())["Message"],
                format!("m{n}")
            );
        }
        h.sns.shutdown().await;
    }

    pub async fn fifo_topics_deduplicate_and_deliver_in_order(h: Harness) {
        let attributes = BTreeMap::from([
            ("FifoTopic".to_owned(), "true".to_owned()),
            ("ContentBasedDeduplication".to_owned(), "true".to_owned()),
        ]);
        let arn = h.sns.create_topic("orders.fifo", attributes).await.unwrap();
        let (sink, mut rx) = ChannelSink::new();
        h.sns.register_sink("s", Arc::new(sink)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        let first = h
            .sns
            .publish(&arn, Publish::new("a").with_group_id("g"))
            .await
            .unwrap();
        let again = h
            .sns
            .publish(&arn, Publish::new("a").with_group_id("g"))
            .await
            .unwrap();
        assert_eq!(
            again, first,
            "a duplicate gets the original's id and sequence number"
        );
        let second = h
            .sns
            .publish(&arn, Publish::new("b").with_group_id("g"))
            .await
            .unwrap();
        assert!(second.sequence_number > first.sequence_number);
        for expected in ["a", "b"] {
            let message = rx.recv().await.unwrap();
            assert_eq!(message.group_id.as_deref(), Some("g"));
            let envelope = json(&message);
            assert_eq!(envelope["Message"], expected);
            assert!(envelope["SequenceNumber"].is_string());
        }
        // Five minutes later the same content is new again.
        h.clock.advance(Duration::from_secs(301));
        let later = h
            .sns
            .publish(&arn, Publish::new("a").with_group_id("g"))
            .await
            .unwrap();
        assert_ne!(later.message_id, first.message_id);
        assert_eq!(json(&rx.recv().await.unwrap())["Message"], "a");
        let plain = h
            .sns
            .create_topic(
                "plain.fifo",
                BTreeMap::from([("FifoTopic".to_owned(), "true".to_owned())]),
            )
            .await
            .unwrap();
        let no_dedup = h
            .sns
            .publish(&plain, Publish::new("x").with_group_id("g"))
            .await;
        assert!(
            matches!(no_dedup, Err(Error::InvalidParameter { .. })),
            "{no_dedup:?}"
        );
        h.sns.shutdown().await;
    }

    pub async fn a_topic_is_a_sink(h: Harness) {
        use cloudlet_core::Sink as _;
        let arn = h.sns.create_topic("events", BTreeMap::new()).await.unwrap();
        let (sink, mut rx) = ChannelSink::new();
        h.sns.register_sink("s", Arc::new(sink)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        let topic = h.sns.sink(&arn);
        topic
            .deliver(
                Message::new("object created")
                    .with_attribute("bucket", MessageAttribute::string("b")),
            )
            .await
            .unwrap();
        let envelope = json(&rx.recv().await.unwrap());
        assert_eq!(envelope["Message"], "object created");
        assert_eq!(envelope["MessageAttributes"]["bucket"]["Value"], "b");
        assert!(
            topic
                .deliver(Message::new(vec![0xffu8, 0xfe]))
                .await
                .is_err()
        );
        h.sns.shutdown().await;
    }

    pub async fn batches_tags_and_attributes(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let (sink, mut rx) = ChannelSink::new();
        h.sns.register_sink("s", Arc::new(sink)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        let result = h
            .sns
            .publish_batch(
                &arn,
                vec![
                    ("one".to_owned(), Publish::new("1")),
                    ("empty".to_owned(), Publish::new("")),
                    ("two".to_owned(), Publish::new("2")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            result
                .successful
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(result.failed.len(), 1);
        assert_eq!(
            (result.failed[0].id.as_str(), result.failed[0].code.as_str()),
            ("empty", "InvalidParameter")
        );
        assert_eq!(json(&rx.recv().await.unwrap())["Message"], "1");
        assert_eq!(json(&rx.recv().await.unwrap())["Message"], "2");
        let eleven: Vec<(String, Publish)> = (0..11)
            .map(|i| (format!("e{i}"), Publish::new("m")))
            .collect();
        assert!(h.sns.publish_batch(&arn, eleven).await.is_err());
        let twins = vec![
            ("a".to_owned(), Publish::new("m")),
            ("a".to_owned(), Publish::new("m")),
        ];
        assert!(h.sns.publish_batch(&arn, twins).await.is_err());
        assert!(h.sns.publish_batch(&arn, Vec::new()).await.is_err());
        assert!(
            h.sns
                .publish_batch(&arn, vec![("bad id!".to_owned(), Publish::new("m"))])
                .await
                .is_err()
        );
        assert!(rx.try_recv().is_err(), "a refused batch publishes nothing");
        h.sns
            .tag_topic(
                &arn,
                BTreeMap::from([("team".to_owned(), "core".to_owned())]),
            )
            .await
            .unwrap();
        assert_eq!(h.sns.topic_tags(&arn).unwrap()["team"], "core");
        h.sns
            .untag_topic(&arn, vec!["team".to_owned()])
            .await
            .unwrap();
        assert!(h.sns.topic_tags(&arn).unwrap().is_empty());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(h.sns.tag_topic(&arn, many).await.is_err());
        assert!(
            h.sns.topic_tags(&arn).unwrap().is_empty(),
            "a refused change changes nothing"
        );
        h.sns
            .set_topic_attribute(&arn, "DisplayName", "Orders")
            .await
            .unwrap();
        assert_eq!(
            h.sns.get_topic_attributes(&arn).unwrap()["DisplayName"],
            "Orders"
        );
        assert!(
            h.sns
                .set_topic_attribute(&arn, "FifoTopic", "true")
                .await
                .is_err()
        );
        h.sns.shutdown().await;
    }

    pub async fn a_dead_letter_sink_registered_later_is_used(h: Harness) {
        let sns = h.sns.clone().with_delivery_policy(
            OutboxPolicy::default()
                .with_backoff(Duration::from_secs(1), Duration::from_secs(60), 2)
                .with_max_attempts(2),
        );
        let arn = sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        let down = sink_fn(|_message: Message| async { Err(DeliveryError::unavailable("down")) });
        sns.register_sink("down", Arc::new(down)).await.unwrap();
        let redrive = BTreeMap::from([(
            "RedrivePolicy".to_owned(),
            r#"{"deadLetterTargetArn": "dlq"}"#.to_owned(),
        )]);
        sns.subscribe(&arn, "sink", "down", redrive).await.unwrap();
        // The dead-letter sink comes after the subscriber's own.
        let (dead, mut dead_rx) = ChannelSink::new();
        sns.register_sink("dlq", Arc::new(dead)).await.unwrap();
        sns.publish(&arn, Publish::new("doomed")).await.unwrap();
        let dead_lettered = loop {
            tokio::select! {
                message = dead_rx.recv() => break message.unwrap(),
                () = h.clock.wait_for_timers(1) => { h.clock.advance_to_next(); }
            }
        };
        assert_eq!(json(&dead_lettered)["Message"], "doomed");
        sns.shutdown().await;
    }

    pub async fn fifo_deliveries_carry_the_deduplication_id(h: Harness) {
        let attributes = BTreeMap::from([
            ("FifoTopic".to_owned(), "true".to_owned()),
            ("ContentBasedDeduplication".to_owned(), "true".to_owned()),
        ]);
        let arn = h.sns.create_topic("feed.fifo", attributes).await.unwrap();
        let (sink, mut rx) = ChannelSink::new();
        h.sns.register_sink("s", Arc::new(sink)).await.unwrap();
        h.sns
            .subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        h.sns
            .publish(&arn, Publish::new("hello").with_group_id("g"))
            .await
            .unwrap();
        let message = rx.recv().await.unwrap();
        // SHA-256 of "hello": what a FIFO queue downstream deduplicates on.
        assert_eq!(
            message.dedup_id.as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        h.sns.shutdown().await;
    }

    pub async fn accepted_publishes_are_delivered_after_a_restart(h: Harness) {
        let arn = h.sns.create_topic("orders", BTreeMap::new()).await.unwrap();
        // The subscriber's sink is not registered yet: the publish waits in its outbox.
        h.sns
            .subscribe(&arn, "sink", "late", BTreeMap::new())
            .await
            .unwrap();
        h.sns.publish(&arn, Publish::new("kept")).await.unwrap();
        let h = h.restart().await;
        let (late, mut late_rx) = ChannelSink::new();
        h.sns.register_sink("late", Arc::new(late)).await.unwrap();
        assert_eq!(json(&late_rx.recv().await.unwrap())["Message"], "kept");
        h.sns.shutdown().await;
    }
}
