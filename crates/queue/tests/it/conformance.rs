//! The queue conformance suite: each check runs on every engine through `Arc<dyn Queues>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{Direction, ManualClock, MessageAttribute, ReadView as _, Store};
use cloudlet_queue::{
    Error, QueueService, Queues, ReceiveMessage, SendMessage, SendMessageBatchEntry,
};
use tempfile::TempDir;

/// A queue service under test, on a manual clock.
pub struct Harness {
    pub sqs: Arc<dyn Queues>,
    pub service: QueueService,
    pub clock: ManualClock,
    pub store: Store,
    _dir: Option<TempDir>,
}

impl Harness {
    fn memory() -> Self {
        Self::over(Store::memory(), None)
    }

    fn over(store: Store, dir: Option<TempDir>) -> Self {
        let clock = ManualClock::default();
        let service = QueueService::new(store.clone(), clock.shared());
        Self {
            sqs: Arc::new(service.clone()),
            service,
            clock,
            store,
            _dir: dir,
        }
    }

    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(RedbEngine::open(dir.path()).unwrap());
        Self::over(store, Some(dir))
    }
}

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                create_is_idempotent_only_with_matching_attributes, names_are_validated,
                attributes_have_sqs_defaults_and_ranges, list_get_url_and_delete, tags,
                list_queues_pages_with_max_results,
                send_receive_delete, fair_queue_serves_quiet_groups_first, fifo_delay_change_moves_every_waiting_message, queue_delay_changes_are_retroactive_only_on_fifo_queues, visibility_timeout_redelivers, stale_receipt_handle_deletes_nothing,
                change_visibility, delays, retention_expiry, long_poll_wakes_on_send,
                long_poll_times_out_on_the_clock, long_poll_wakes_when_a_delayed_message_is_due,
                batch_send, purge, rejected_sends_change_nothing, attribute_selection_on_receive,
                fifo_needs_group_and_deduplication, fifo_group_in_flight_blocks_only_itself,
                fifo_order_holds_after_a_visibility_timeout, fifo_dedup_survives_delete,
                fifo_content_based_and_group_scoped_dedup, fifo_expired_receipt_is_rejected,
                fifo_retried_receive_attempt_gets_the_same_messages,
                fifo_blocked_group_does_not_starve_others, fifo_delete_wakes_a_long_poll,
                redrive_policy_needs_a_matching_target, zero_visibility_never_returns_a_message_twice,
                dead_letter_queue_after_max_receives,
                delete_and_visibility_batches, queue_is_a_sink, redrive_moves_messages_back_to_their_sources,
                redrive_is_rate_limited_on_the_clock_and_cancellable, redrive_start_is_validated,
                redrive_fails_at_a_message_with_nowhere_to_go,
                redrive_keeps_ten_tasks_and_forgets_them_with_the_queue,
                redrive_allow_policy_decides_which_queues_may_use_a_dead_letter_queue,
                dead_letter_source_queues_are_listed,
                in_flight_cap_answers_over_limit_to_short_polls_only,
                in_flight_cap_counts_dead_lettered_messages_where_they_are,
                in_flight_cap_counts_only_live_messages_of_the_queue,
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

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

mod checks {
    use super::*;

    /// A plain receive of up to `max` messages.
    async fn receive(h: &Harness, url: &str, max: u32) -> Vec<cloudlet_queue::ReceivedMessage> {
        h.sqs
            .receive_message(url, ReceiveMessage::max(max))
            .await
            .unwrap()
    }

    async fn queue(h: &Harness, name: &str, attributes: &[(&str, &str)]) -> String {
        h.sqs
            .create_queue(name, map(attributes), BTreeMap::new())
            .await
            .unwrap()
    }

    /// The queue names at the end of `urls`.
    fn names(urls: Vec<String>) -> Vec<String> {
        urls.into_iter()
            .map(|u| u.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    async fn attribute(h: &Harness, url: &str, name: &str) -> String {
        h.sqs
            .get_queue_attributes(url, &[name])
            .await
            .unwrap()
            .remove(name)
            .unwrap()
    }

    pub async fn create_is_idempotent_only_with_matching_attributes(h: Harness) {
        let url = queue(&h, "orders", &[("VisibilityTimeout", "60")]).await;
        assert_eq!(
            url,
            "https://sqs.us-east-1.amazonaws.com/000000000000/orders"
        );
        assert_eq!(
            queue(&h, "orders", &[("VisibilityTimeout", "60")]).await,
            url
        );
        assert_eq!(
            queue(&h, "orders", &[]).await,
            url,
            "no attributes given: nothing to differ"
        );
        let err = h
            .sqs
            .create_queue(
                "orders",
                map(&[("VisibilityTimeout", "30")]),
                BTreeMap::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::QueueNameExists { ref attribute, .. } if attribute == "VisibilityTimeout"),
            "{err}"
        );
        assert_eq!(err.code(), "QueueAlreadyExists");
        assert_eq!(attribute(&h, &url, "VisibilityTimeout").await, "60");
    }

    pub async fn names_are_validated(h: Harness) {
        for bad in ["", "has space", "dot.name", &"x".repeat(81), "ünïcode"] {
            let err = h
                .sqs
                .create_queue(bad, BTreeMap::new(), BTreeMap::new())
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidParameterValue { ref field, .. } if field == "QueueName"),
                "{bad:?}: {err}"
            );
        }
        queue(&h, &"x".repeat(80), &[]).await;
        queue(&h, "with-dash_and_underscore", &[]).await;
        // .fifo needs FifoQueue=true, and FifoQueue=true needs .fifo.
        assert!(
            h.sqs
                .create_queue("a.fifo", BTreeMap::new(), BTreeMap::new())
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .create_queue("a", map(&[("FifoQueue", "true")]), BTreeMap::new())
                .await
                .is_err()
        );
        queue(
            &h,
            &format!("{}.fifo", "f".repeat(75)),
            &[("FifoQueue", "true")],
        )
        .await;
        assert!(
            h.sqs
                .create_queue(
                    &format!("{}.fifo", "f".repeat(76)),
                    map(&[("FifoQueue", "true")]),
                    BTreeMap::new()
                )
                .await
                .is_err()
        );
        let err = h.sqs.get_queue_url("nope").await.unwrap_err();
        assert_eq!(err.code(), "AWS.SimpleQueueService.NonExistentQueue");
    }

    pub async fn attributes_have_sqs_defaults_and_ranges(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        queue(&h, "dlq", &[]).await;
        let all = h.sqs.get_queue_attributes(&url, &["All"]).await.unwrap();
        for (name, value) in [
            ("VisibilityTimeout", "30"),
            ("DelaySeconds", "0"),
            ("MessageRetentionPeriod", "345600"),
            ("MaximumMessageSize", "262144"),
            ("ReceiveMessageWaitTimeSeconds", "0"),
            ("ApproximateNumberOfMessages", "0"),
            ("ApproximateNumberOfMessagesNotVisible", "0"),
            ("ApproximateNumberOfMessagesDelayed", "0"),
            ("QueueArn", "arn:aws:sqs:us-east-1:000000000000:q"),
        ] {
            assert_eq!(all.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!all.contains_key("FifoQueue") && !all.contains_key("ContentBasedDeduplication"));
        for (name, value) in [
            ("VisibilityTimeout", "43201"),
            ("DelaySeconds", "901"),
            ("MessageRetentionPeriod", "59"),
            ("MessageRetentionPeriod", "1209601"),
            ("MaximumMessageSize", "1023"),
            ("MaximumMessageSize", "1048577"),
            ("ReceiveMessageWaitTimeSeconds", "21"),
            ("VisibilityTimeout", "-1"),
            (
                "RedrivePolicy",
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":1001}"#,
            ),
            ("RedrivePolicy", "not json"),
        ] {
            let err = h
                .sqs
                .set_queue_attributes(&url, map(&[(name, value)]))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidAttributeValue { .. }),
                "{name}={value}: {err}"
            );
        }
        let err = h
            .sqs
            .set_queue_attributes(&url, map(&[("ContentBasedDeduplication", "true")]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidAttributeName { .. }),
            "FIFO-only on a standard queue: {err}"
        );
        let err = h
            .sqs
            .set_queue_attributes(&url, map(&[("Bogus", "1")]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidAttributeName { .. }));
        // A rejected change changes nothing, even when other attributes in it were valid.
        let err = h
            .sqs
            .set_queue_attributes(
                &url,
                map(&[("DelaySeconds", "5"), ("VisibilityTimeout", "99999")]),
            )
            .await;
        assert!(err.is_err());
        assert_eq!(attribute(&h, &url, "DelaySeconds").await, "0");
        h.sqs
            .set_queue_attributes(
                &url,
                map(&[
                    ("VisibilityTimeout", "43200"),
                    ("MaximumMessageSize", "1048576"),
                    ("RedrivePolicy", r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"5"}"#),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(attribute(&h, &url, "VisibilityTimeout").await, "43200");
        assert_eq!(
            attribute(&h, &url, "RedrivePolicy").await,
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":5}"#
        );
        let fifo = queue(&h, "f.fifo", &[("FifoQueue", "true")]).await;
        assert_eq!(attribute(&h, &fifo, "FifoQueue").await, "true");
        assert_eq!(attribute(&h, &fifo, "DeduplicationScope").await, "queue");
        assert!(
            h.sqs
                .set_queue_attributes(&fifo, map(&[("FifoThroughputLimit", "perMessageGroupId")]))
                .await
                .is_err()
        );
        h.sqs
            .set_queue_attributes(
                &fifo,
                map(&[
                    ("DeduplicationScope", "messageGroup"),
                    ("FifoThroughputLimit", "perMessageGroupId"),
                ]),
            )
            .await
            .unwrap();
        assert!(
            h.sqs
                .set_queue_attributes(&fifo, map(&[("FifoQueue", "true")]))
                .await
                .is_err(),
            "fixed at creation"
        );
        let err = h
            .sqs
            .get_queue_attributes(&url, &["Nope"])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidAttributeName { .. }));
    }

    pub async fn list_get_url_and_delete(h: Harness) {
        for name in ["beta", "alpha-1", "alpha-2"] {
            queue(&h, name, &[]).await;
        }
        assert_eq!(
            names(h.sqs.list_queues(None).await.unwrap()),
            ["alpha-1", "alpha-2", "beta"]
        );
        assert_eq!(
            names(h.sqs.list_queues(Some("alpha")).await.unwrap()),
            ["alpha-1", "alpha-2"]
        );
        let url = h.sqs.get_queue_url("beta").await.unwrap();
        h.sqs
            .send_message(&url, SendMessage::new("m"))
            .await
            .unwrap();
        h.sqs.delete_queue(&url).await.unwrap();
        assert!(matches!(
            h.sqs.get_queue_url("beta").await.unwrap_err(),
            Error::QueueDoesNotExist { .. }
        ));
        assert!(matches!(
            h.sqs
                .send_message(&url, SendMessage::new("m"))
                .await
                .unwrap_err(),
            Error::QueueDoesNotExist { .. }
        ));
        // The name stays taken for 60 seconds, as SQS has it.
        let again = h
            .sqs
            .create_queue("beta", BTreeMap::new(), BTreeMap::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&again, Error::QueueDeletedRecently { name } if name == "beta"),
            "{again}"
        );
        assert_eq!(again.code(), "AWS.SimpleQueueService.QueueDeletedRecently");
        h.clock.advance(Duration::from_secs(59));
        assert!(
            h.sqs
                .create_queue("beta", BTreeMap::new(), BTreeMap::new())
                .await
                .is_err()
        );
        h.clock.advance(Duration::from_secs(1));
        // Then a new queue of the same name starts empty.
        let url = queue(&h, "beta", &[]).await;
        assert!(receive(&h, &url, 10).await.is_empty());
    }

    pub async fn list_queues_pages_with_max_results(h: Harness) {
        for name in ["p0", "p1", "p2", "p3", "p4", "other"] {
            queue(&h, name, &[]).await;
        }
        let mut pages = Vec::new();
        let mut token = None;
        loop {
            let page = h
                .sqs
                .list_queues_page(Some("p"), 2, token.as_deref())
                .await
                .unwrap();
            pages.push(names(page.queue_urls));
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, [vec!["p0", "p1"], vec!["p2", "p3"], vec!["p4"]]);
        let all = h.sqs.list_queues_page(None, 1000, None).await.unwrap();
        assert_eq!(all.queue_urls.len(), 6);
        assert_eq!(all.next_token, None);
        for max in [0, 1001] {
            assert!(
                h.sqs.list_queues_page(None, max, None).await.is_err(),
                "{max}"
            );
        }
        // Not hex, odd, and a name outside the prefix ("other").
        for token in ["zz", "abc", "6f74686572"] {
            assert!(
                h.sqs
                    .list_queues_page(Some("p"), 2, Some(token))
                    .await
                    .is_err(),
                "{token}"
            );
        }
    }

    pub async fn tags(h: Harness) {
        let url = h
            .sqs
            .create_queue("t", BTreeMap::new(), map(&[("team", "a")]))
            .await
            .unwrap();
        h.sqs
            .tag_queue(&url, map(&[("env", "test")]))
            .await
            .unwrap();
        assert_eq!(
            h.sqs.list_queue_tags(&url).await.unwrap(),
            map(&[("env", "test"), ("team", "a")])
        );
        h.sqs.untag_queue(&url, &["team"]).await.unwrap();
        assert_eq!(
            h.sqs.list_queue_tags(&url).await.unwrap(),
            map(&[("env", "test")])
        );
        // Limits, on create as on tag: 50 tags, keys of 1-128 characters (not bytes), values
        // of up to 256; a refused request changes nothing.
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        for tags in [
            many.clone(),
            map(&[("k".repeat(129).as_str(), "v")]),
            map(&[("", "v")]),
            map(&[("k", "v".repeat(257).as_str())]),
        ] {
            let refused = h
                .sqs
                .create_queue("tagged", BTreeMap::new(), tags.clone())
                .await;
            assert!(
                matches!(refused, Err(Error::InvalidParameterValue { .. })),
                "{refused:?}"
            );
            assert!(h.sqs.tag_queue(&url, tags).await.is_err());
        }
        assert!(
            h.sqs.get_queue_url("tagged").await.is_err(),
            "nothing was created"
        );
        assert_eq!(h.sqs.list_queue_tags(&url).await.unwrap().len(), 1);
        let wide = "é".repeat(128);
        h.sqs
            .tag_queue(&url, map(&[(wide.as_str(), "ü")]))
            .await
            .unwrap();
        let fifty: BTreeMap<String, String> =
            (0..48).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        h.sqs.tag_queue(&url, fifty).await.unwrap();
        assert!(
            h.sqs
                .tag_queue(&url, map(&[("one-more", "v")]))
                .await
                .is_err(),
            "the 51st tag"
        );
        assert_eq!(h.sqs.list_queue_tags(&url).await.unwrap().len(), 50);
    }

    pub async fn queue_delay_changes_are_retroactive_only_on_fifo_queues(h: Harness) {
        let standard = queue(&h, "plain", &[("DelaySeconds", "60")]).await;
        let fifo = queue(
            &h,
            "ordered.fifo",
            &[
                ("FifoQueue", "true"),
                ("ContentBasedDeduplication", "true"),
                ("DelaySeconds", "60"),
            ],
        )
        .await;
        h.sqs
            .send_message(&standard, SendMessage::new("s"))
            .await
            .unwrap();
        h.sqs
            .send_message(&fifo, SendMessage::new("f").with_group_id("g"))
            .await
            .unwrap();
        let no_delay = BTreeMap::from([("DelaySeconds".to_owned(), "0".to_owned())]);
        h.sqs
            .set_queue_attributes(&standard, no_delay.clone())
            .await
            .unwrap();
        h.sqs.set_queue_attributes(&fifo, no_delay).await.unwrap();
        // The FIFO queue's message is visible at once; the standard queue's keeps its delay.
        let got = receive(&h, &fifo, 10).await;
        assert_eq!(got.len(), 1);
        h.sqs
            .delete_message(&fifo, &got[0].receipt_handle)
            .await
            .unwrap();
        assert!(receive(&h, &standard, 10).await.is_empty());
        h.clock.advance(Duration::from_secs(60));
        assert_eq!(receive(&h, &standard, 10).await.len(), 1);
        // A longer delay holds back FIFO messages already waiting, from when they were sent.
        h.sqs
            .send_message(&fifo, SendMessage::new("later").with_group_id("h"))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(10));
        let longer = BTreeMap::from([("DelaySeconds".to_owned(), "30".to_owned())]);
        h.sqs.set_queue_attributes(&fifo, longer).await.unwrap();
        assert!(receive(&h, &fifo, 10).await.is_empty());
        h.clock.advance(Duration::from_secs(20));
        assert_eq!(receive(&h, &fifo, 10).await.len(), 1);
    }

    pub async fn fifo_delay_change_moves_every_waiting_message(h: Harness) {
        let fifo = queue(
            &h,
            "many.fifo",
            &[
                ("FifoQueue", "true"),
                ("ContentBasedDeduplication", "true"),
                ("DelaySeconds", "900"),
            ],
        )
        .await;
        // More messages than one chunk of the change moves at a time.
        for n in 0..250 {
            h.sqs
                .send_message(
                    &fifo,
                    SendMessage::new(format!("m{n}")).with_group_id(format!("g{n}")),
                )
                .await
                .unwrap();
        }
        let no_delay = BTreeMap::from([("DelaySeconds".to_owned(), "0".to_owned())]);
        h.sqs.set_queue_attributes(&fifo, no_delay).await.unwrap();
        let mut received = 0;
        loop {
            let got = receive(&h, &fifo, 10).await;
            if got.is_empty() {
                break;
            }
            received += got.len();
        }
        assert_eq!(received, 250);
    }

    pub async fn fair_queue_serves_quiet_groups_first(h: Harness) {
        let url = queue(&h, "fair", &[]).await;
        for n in 0..50 {
            h.sqs
                .send_message(
                    &url,
                    SendMessage::new(format!("noisy {n}")).with_group_id("noisy"),
                )
                .await
                .unwrap();
        }
        for n in 0..2 {
            h.sqs
                .send_message(
                    &url,
                    SendMessage::new(format!("quiet {n}")).with_group_id("quiet"),
                )
                .await
                .unwrap();
        }
        h.sqs
            .send_message(&url, SendMessage::new("alone"))
            .await
            .unwrap();
        let body =
            |m: &cloudlet_queue::ReceivedMessage| String::from_utf8(m.body.to_vec()).unwrap();
        // Behind 50 noisy messages, the quiet group and the ungrouped message come first.
        let first = receive(&h, &url, 1).await;
        assert_eq!(body(&first[0]), "alone");
        let next: Vec<String> = receive(&h, &url, 10).await.iter().map(body).collect();
        assert_eq!(&next[..3], ["quiet 0", "noisy 0", "quiet 1"]);
        assert!(next[3..].iter().all(|b| b.starts_with("noisy")));
        // Nothing is dropped: everything else arrives, each once, the noisy group in order.
        let mut rest = Vec::new();
        loop {
            let got = receive(&h, &url, 10).await;
            if got.is_empty() {
                break;
            }
            rest.extend(got.iter().map(body));
        }
        assert_eq!(1 + next.len() + rest.len(), 53);
        let noisy: Vec<String> = next
            .iter()
            .chain(&rest)
            .filter(|b| b.starts_with("noisy"))
            .cloned()
            .collect();
        let expected: Vec<String> = (0..50).map(|n| format!("noisy {n}")).collect();
        assert_eq!(noisy, expected);
    }

    pub async fn send_receive_delete(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        let sent = h
            .sqs
            .send_message(
                &url,
                SendMessage::new("hello")
                    .with_attribute("City", MessageAttribute::string("Any City")),
            )
            .await
            .unwrap();
        assert_eq!(sent.md5_of_message_body, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            sent.md5_of_message_attributes.as_deref(),
            Some("0c32cb5c844c01fbd5b6b434b52cf670")
        );
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10).with_all_attributes())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(
            (m.message_id.as_str(), m.body.as_ref()),
            (sent.message_id.as_str(), &b"hello"[..])
        );
        assert_eq!(m.md5_of_body, sent.md5_of_message_body);
        assert_eq!(m.md5_of_message_attributes, sent.md5_of_message_attributes);
        assert_eq!(m.attributes["ApproximateReceiveCount"], "1");
        assert_eq!(m.attributes["SentTimestamp"], h.clock_millis());
        assert_eq!(
            m.attributes["ApproximateFirstReceiveTimestamp"],
            h.clock_millis()
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesNotVisible").await,
            "1"
        );
        assert!(receive(&h, &url, 10).await.is_empty(), "in flight");
        h.sqs.delete_message(&url, &m.receipt_handle).await.unwrap();
        h.sqs.delete_message(&url, &m.receipt_handle).await.unwrap();
        h.clock.advance(Duration::from_secs(3600));
        assert!(receive(&h, &url, 10).await.is_empty(), "deleted for good");
        let err = h.sqs.delete_message(&url, "garbage").await.unwrap_err();
        assert!(matches!(err, Error::ReceiptHandleIsInvalid { .. }));
    }

    pub async fn visibility_timeout_redelivers(h: Harness) {
        let url = queue(&h, "q", &[("VisibilityTimeout", "30")]).await;
        h.sqs
            .send_message(&url, SendMessage::new("m"))
            .await
            .unwrap();
        let first = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(29));
        assert!(receive(&h, &url, 1).await.is_empty());
        h.clock.advance(Duration::from_secs(1));
        let second = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1).with_all_attributes())
            .await
            .unwrap();
        assert_eq!(second[0].message_id, first[0].message_id);
        assert_eq!(second[0].attributes["ApproximateReceiveCount"], "2");
        assert_ne!(second[0].receipt_handle, first[0].receipt_handle);
        // A per-receive visibility timeout overrides the queue's.
        h.clock.advance(Duration::from_secs(30));
        h.sqs
            .receive_message(&url, ReceiveMessage::max(1).with_visibility_timeout(5))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(5));
        assert_eq!(receive(&h, &url, 1).await.len(), 1);
    }

    /// SQS caps a queue's in-flight messages (received, not deleted, still invisible): a
    /// short-polling receive from a standard queue then fails with `OverLimit`; a long poll
    /// or a FIFO receive gets nothing. The cap is lowered to 3 here.
    pub async fn in_flight_cap_answers_over_limit_to_short_polls_only(h: Harness) {
        let sqs: Arc<dyn Queues> = Arc::new(h.service.clone().with_in_flight_limit(3));
        let url = queue(&h, "q", &[]).await;
        for i in 0..6 {
            send_to(&*sqs, &url, format!("m{i}")).await;
        }
        let first = take(&*sqs, &url, 2).await;
        assert_eq!(first.len(), 2);
        // A receive may take the queue to the cap, not past it.
        let second = take(&*sqs, &url, 1).await;
        assert_eq!(second.len(), 1);
        let refused = sqs.receive_message(&url, ReceiveMessage::max(1)).await;
        match refused {
            Err(error @ Error::OverLimit { limit: 3 }) => assert_eq!(error.code(), "OverLimit"),
            other => panic!("expected OverLimit, got {other:?}"),
        }
        // Refused, it changed nothing.
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "3"
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesNotVisible").await,
            "3"
        );
        // A long poll gets no error and no message, when its wait ends.
        let (waiter, u) = (Arc::clone(&sqs), url.clone());
        let waiting = tokio::spawn(async move {
            waiter
                .receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(2))
                .await
        });
        h.clock.wait_for_timers(1).await;
        h.clock.advance(Duration::from_secs(2));
        assert!(waiting.await.unwrap().unwrap().is_empty());
        // A deleted message is no longer in flight.
        sqs.delete_message(&url, &first[0].receipt_handle)
            .await
            .unwrap();
        assert_eq!(take(&*sqs, &url, 10).await.len(), 1);
        assert!(matches!(
            sqs.receive_message(&url, ReceiveMessage::max(1)).await,
            Err(Error::OverLimit { .. })
        ));
        // Nor is one whose visibility timeout ended: all three come back.
        h.clock.advance(Duration::from_secs(30));
        assert_eq!(take(&*sqs, &url, 10).await.len(), 3);
        // A purge empties the count with the queue.
        h.sqs.purge_queue(&url).await.unwrap();
        for i in 0..3 {
            send_to(&*sqs, &url, format!("n{i}")).await;
        }
        assert_eq!(take(&*sqs, &url, 10).await.len(), 3);
        // A FIFO queue at the cap returns nothing, without an error.
        let sqs: Arc<dyn Queues> = Arc::new(h.service.clone().with_in_flight_limit(1));
        let fifo = fifo(&h, &[]).await;
        sqs.send_message(&fifo, in_group("a1", "a")).await.unwrap();
        sqs.send_message(&fifo, in_group("b1", "b")).await.unwrap();
        assert_eq!(take(&*sqs, &fifo, 1).await.len(), 1);
        assert!(take(&*sqs, &fifo, 1).await.is_empty());
    }

    /// A message moved to a dead-letter queue after receives counts as received there: the
    /// dead-letter queue's cap holds for it, and deleting it does not free room for another.
    pub async fn in_flight_cap_counts_dead_lettered_messages_where_they_are(h: Harness) {
        let sqs: Arc<dyn Queues> = Arc::new(h.service.clone().with_in_flight_limit(1));
        let (url, dlq) = work_with_dead_letter_queue(&h, 1).await;
        send_to(&*sqs, &url, "poison").await;
        assert_eq!(receive(&h, &url, 1).await.len(), 1);
        h.clock.advance(Duration::from_secs(10));
        // Received once already: this receive moves it.
        assert!(receive(&h, &url, 1).await.is_empty());
        let dead = take(&*sqs, &dlq, 1).await;
        assert_eq!(dead.len(), 1);
        send_to(&*sqs, &dlq, "fresh").await;
        assert!(matches!(
            sqs.receive_message(&dlq, ReceiveMessage::max(1)).await,
            Err(Error::OverLimit { limit: 1 })
        ));
        sqs.delete_message(&dlq, &dead[0].receipt_handle)
            .await
            .unwrap();
        let fresh = take(&*sqs, &dlq, 1).await;
        assert_eq!(fresh[0].body, "fresh");
        send_to(&*sqs, &dlq, "third").await;
        assert!(matches!(
            sqs.receive_message(&dlq, ReceiveMessage::max(1)).await,
            Err(Error::OverLimit { limit: 1 })
        ));
    }

    /// The exact in-flight count (taken once the queue has received as many messages as the
    /// cap) leaves out messages past their retention period and other queues' messages; a
    /// long poll at the cap wakes when the first in-flight message is due again.
    pub async fn in_flight_cap_counts_only_live_messages_of_the_queue(h: Harness) {
        let sqs: Arc<dyn Queues> = Arc::new(h.service.clone().with_in_flight_limit(1));
        let short = queue(&h, "short", &[("MessageRetentionPeriod", "60")]).await;
        let other = queue(&h, "other", &[]).await;
        send_to(&*sqs, &short, "old").await;
        let in_flight = |url: &str, seconds: u32| {
            let (sqs, url) = (Arc::clone(&sqs), url.to_owned());
            async move {
                sqs.receive_message(
                    &url,
                    ReceiveMessage::max(1).with_visibility_timeout(seconds),
                )
                .await
                .unwrap()
                .len()
            }
        };
        assert_eq!(in_flight(&short, 300).await, 1);
        // In flight in another queue, from 30 s to 70 s, and inside `short`'s retention too.
        h.clock.advance(Duration::from_secs(30));
        send_to(&*sqs, &other, "elsewhere").await;
        assert_eq!(in_flight(&other, 40).await, 1);
        // "old" is still invisible, but past the retention period: SQS has dropped it.
        h.clock.advance(Duration::from_secs(31));
        send_to(&*sqs, &short, "new").await;
        assert_eq!(
            in_flight(&short, 300).await,
            1,
            "an expired message is not in flight"
        );
        assert!(matches!(
            sqs.receive_message(&short, ReceiveMessage::max(1)).await,
            Err(Error::OverLimit { limit: 1 })
        ));
        // A long poll at the cap (until 81 s) looks again when the in-flight message's
        // visibility ends (70 s), not only at the end of its wait.
        let started = h.clock_now();
        send_to(&*sqs, &other, "later").await;
        let (waiter, u) = (Arc::clone(&sqs), other.clone());
        let waiting = tokio::spawn(async move {
            waiter
                .receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(20))
                .await
        });
        h.clock.wait_for_timers(1).await;
        assert_eq!(
            h.clock.next_deadline(),
            Some(started + Duration::from_secs(9))
        );
        h.clock.advance(Duration::from_secs(9));
        assert_eq!(
            waiting.await.unwrap().unwrap().len(),
            1,
            "woken when room freed"
        );
    }

    pub async fn stale_receipt_handle_deletes_nothing(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        h.sqs
            .send_message(&url, SendMessage::new("m"))
            .await
            .unwrap();
        let old = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(30));
        let new = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        h.sqs
            .delete_message(&url, &old[0].receipt_handle)
            .await
            .unwrap();
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesNotVisible").await,
            "1",
            "still there"
        );
        h.sqs
            .delete_message(&url, &new[0].receipt_handle)
            .await
            .unwrap();
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesNotVisible").await,
            "0"
        );
    }

    pub async fn change_visibility(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        h.sqs
            .send_message(&url, SendMessage::new("m"))
            .await
            .unwrap();
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        let handle = &got[0].receipt_handle;
        h.sqs
            .change_message_visibility(&url, handle, 120)
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(100));
        assert!(receive(&h, &url, 1).await.is_empty());
        h.sqs
            .change_message_visibility(&url, handle, 0)
            .await
            .unwrap();
        let again = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        // The old handle is no longer the message's.
        assert!(matches!(
            h.sqs.change_message_visibility(&url, handle, 10).await,
            Err(Error::MessageNotInflight)
        ));
        // At most 12 hours from the receive that issued the handle.
        let handle = &again[0].receipt_handle;
        h.clock.advance(Duration::from_secs(20));
        let err = h
            .sqs
            .change_message_visibility(&url, handle, 43_200)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidParameterValue { .. }), "{err}");
        h.sqs
            .change_message_visibility(&url, handle, 43_180)
            .await
            .unwrap();
        assert!(
            h.sqs
                .change_message_visibility(&url, handle, 43_181)
                .await
                .is_err()
        );
        // Shortening is always allowed.
        h.sqs
            .change_message_visibility(&url, handle, 10)
            .await
            .unwrap();
        h.sqs
            .change_message_visibility(&url, handle, 43_100)
            .await
            .unwrap();
        // A visible message is not in flight.
        h.clock.advance(Duration::from_secs(43_100));
        assert!(matches!(
            h.sqs.change_message_visibility(&url, handle, 10).await,
            Err(Error::MessageNotInflight)
        ));
    }

    pub async fn delays(h: Harness) {
        let url = queue(&h, "q", &[("DelaySeconds", "10")]).await;
        h.sqs
            .send_message(&url, SendMessage::new("queue-delay"))
            .await
            .unwrap();
        h.sqs
            .send_message(&url, SendMessage::new("own-delay").with_delay_seconds(0))
            .await
            .unwrap();
        h.sqs
            .send_message(&url, SendMessage::new("long").with_delay_seconds(900))
            .await
            .unwrap();
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesDelayed").await,
            "2"
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "1"
        );
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10))
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_ref()).collect::<Vec<_>>(),
            [&b"own-delay"[..]]
        );
        h.clock.advance(Duration::from_secs(10));
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10))
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_ref()).collect::<Vec<_>>(),
            [&b"queue-delay"[..]]
        );
        assert!(
            h.sqs
                .send_message(&url, SendMessage::new("x").with_delay_seconds(901))
                .await
                .is_err()
        );
    }

    pub async fn retention_expiry(h: Harness) {
        let url = queue(&h, "q", &[("MessageRetentionPeriod", "60")]).await;
        h.sqs
            .send_message(&url, SendMessage::new("old"))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(59));
        h.sqs
            .send_message(&url, SendMessage::new("new"))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(1));
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "1"
        );
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10))
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_ref()).collect::<Vec<_>>(),
            [&b"new"[..]]
        );
    }

    pub async fn long_poll_wakes_on_send(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        let (sqs, u) = (h.sqs.clone(), url.clone());
        let waiting = tokio::spawn(async move {
            sqs.receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(20))
                .await
        });
        h.clock.wait_for_timers(1).await;
        h.sqs
            .send_message(&url, SendMessage::new("wake"))
            .await
            .unwrap();
        let got = waiting.await.unwrap().unwrap();
        assert_eq!(got[0].body, "wake");
    }

    pub async fn long_poll_times_out_on_the_clock(h: Harness) {
        let url = queue(&h, "q", &[("ReceiveMessageWaitTimeSeconds", "20")]).await;
        let (sqs, u) = (h.sqs.clone(), url.clone());
        let waiting =
            tokio::spawn(async move { sqs.receive_message(&u, ReceiveMessage::max(1)).await });
        h.clock.wait_for_timers(1).await;
        h.clock.advance(Duration::from_secs(19));
        assert!(!waiting.is_finished());
        h.clock.advance(Duration::from_secs(1));
        assert!(waiting.await.unwrap().unwrap().is_empty());
    }

    pub async fn long_poll_wakes_when_a_delayed_message_is_due(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        h.sqs
            .send_message(&url, SendMessage::new("later").with_delay_seconds(5))
            .await
            .unwrap();
        let (sqs, u) = (h.sqs.clone(), url.clone());
        let waiting = tokio::spawn(async move {
            sqs.receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(20))
                .await
        });
        h.clock.wait_for_timers(1).await;
        assert_eq!(
            h.clock.next_deadline(),
            Some(h.clock_now() + Duration::from_secs(5))
        );
        h.clock.advance(Duration::from_secs(5));
        assert_eq!(waiting.await.unwrap().unwrap()[0].body, "later");
    }

    pub async fn batch_send(h: Harness) {
        let url = queue(&h, "q", &[("MaximumMessageSize", "1024")]).await;
        let entry = |id: &str, body: &str| {
            SendMessageBatchEntry::new(id, SendMessage::new(body.to_owned()))
        };
        let result = h
            .sqs
            .send_message_batch(
                &url,
                vec![entry("a", "one"), entry("b", ""), entry("c", "three")],
            )
            .await
            .unwrap();
        assert_eq!(
            result
                .successful
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(result.failed.len(), 1);
        assert_eq!(result.failed[0].id, "b");
        assert!(result.failed[0].sender_fault);
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "2"
        );
        let eleven = (0..11).map(|i| entry(&format!("e{i}"), "x")).collect();
        assert!(matches!(
            h.sqs.send_message_batch(&url, eleven).await,
            Err(Error::TooManyEntriesInBatchRequest { count: 11 })
        ));
        assert!(matches!(
            h.sqs.send_message_batch(&url, vec![]).await,
            Err(Error::EmptyBatchRequest)
        ));
        assert!(matches!(
            h.sqs
                .send_message_batch(&url, vec![entry("d", "x"), entry("d", "y")])
                .await,
            Err(Error::BatchEntryIdsNotDistinct { .. })
        ));
        assert!(matches!(
            h.sqs
                .send_message_batch(&url, vec![entry("bad id", "x")])
                .await,
            Err(Error::InvalidBatchEntryId { .. })
        ));
        // Each entry is checked against the queue's maximum; the batch against 1 MiB.
        let big = vec![entry("p", &"x".repeat(600)), entry("q", &"y".repeat(600))];
        let result = h.sqs.send_message_batch(&url, big).await.unwrap();
        assert_eq!(result.successful.len(), 2);
        let wide = queue(&h, "wide", &[("MaximumMessageSize", "1048576")]).await;
        let huge = vec![
            entry("p", &"x".repeat(600_000)),
            entry("q", &"y".repeat(600_000)),
        ];
        assert!(matches!(
            h.sqs.send_message_batch(&wide, huge).await,
            Err(Error::BatchRequestTooLong {
                size: 1_200_000,
                limit: 1_048_576
            })
        ));
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "4",
            "rejected batches sent nothing"
        );
        assert_eq!(
            attribute(&h, &wide, "ApproximateNumberOfMessages").await,
            "0"
        );
    }

    pub async fn purge(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        for i in 0..5 {
            h.sqs
                .send_message(&url, SendMessage::new(format!("m{i}")))
                .await
                .unwrap();
        }
        receive(&h, &url, 2).await;
        h.sqs.purge_queue(&url).await.unwrap();
        assert!(matches!(
            h.sqs.purge_queue(&url).await,
            Err(Error::PurgeQueueInProgress)
        ));
        h.clock.advance(Duration::from_secs(60));
        assert!(receive(&h, &url, 10).await.is_empty());
        h.sqs.purge_queue(&url).await.unwrap();
    }

    pub async fn rejected_sends_change_nothing(h: Harness) {
        let url = queue(&h, "q", &[("MaximumMessageSize", "1024")]).await;
        let too_big = h
            .sqs
            .send_message(&url, SendMessage::new("x".repeat(1025)))
            .await
            .unwrap_err();
        assert!(
            matches!(too_big, Error::InvalidParameterValue { ref field, .. } if field == "MessageBody"),
            "{too_big}"
        );
        for bad in [
            &b"nul \0 inside"[..],
            &b"\xff\xfe not UTF-8"[..],
            "bell \u{7}".as_bytes(),
            "not a character \u{FFFE}".as_bytes(),
            "nor this \u{FFFF}".as_bytes(),
        ] {
            let rejected = h
                .sqs
                .send_message(&url, SendMessage::new(bytes::Bytes::copy_from_slice(bad)))
                .await
                .unwrap_err();
            assert!(
                matches!(rejected, Error::InvalidMessageContents { .. }),
                "{rejected}"
            );
            assert_eq!(rejected.code(), "InvalidMessageContents");
        }
        let nul = h
            .sqs
            .send_message(&url, SendMessage::new("a\u{0}b"))
            .await
            .unwrap_err();
        assert!(nul.to_string().contains("'#x0'"), "{nul}");
        // Tabs, newlines and characters outside the BMP are fine.
        h.sqs
            .send_message(&url, SendMessage::new("tab\tline\r\n😀"))
            .await
            .unwrap();
        let got = receive(&h, &url, 10).await;
        h.sqs
            .delete_message(&url, &got[0].receipt_handle)
            .await
            .unwrap();
        let mut eleven = SendMessage::new("x");
        for i in 0..11 {
            eleven = eleven.with_attribute(format!("a{i}"), MessageAttribute::string("v"));
        }
        assert!(h.sqs.send_message(&url, eleven).await.is_err());
        for bad in ["AWS.x", ".x", "x.", "a..b", "sp ace"] {
            let m = SendMessage::new("x").with_attribute(bad, MessageAttribute::string("v"));
            assert!(h.sqs.send_message(&url, m).await.is_err(), "{bad}");
        }
        let nan = SendMessage::new("x").with_attribute("n", MessageAttribute::number("twelve"));
        assert!(h.sqs.send_message(&url, nan).await.is_err());
        // A string attribute value has the body's restrictions on its characters.
        for bad in ["nul \0", "bell \u{7}", "\u{FFFE}"] {
            let m = SendMessage::new("x").with_attribute("s", MessageAttribute::string(bad));
            let refused = h.sqs.send_message(&url, m).await.unwrap_err();
            assert!(
                matches!(&refused, Error::InvalidParameterValue { field, .. } if field == "MessageAttribute.s"),
                "{refused}"
            );
        }
        let fine = SendMessage::new("x").with_attribute("s", MessageAttribute::string("tab\t😀"));
        h.sqs.send_message(&url, fine).await.unwrap();
        let got = receive(&h, &url, 10).await;
        h.sqs
            .delete_message(&url, &got[0].receipt_handle)
            .await
            .unwrap();
        assert!(
            h.sqs
                .send_message(&url, SendMessage::new(""))
                .await
                .is_err()
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "0"
        );
        assert!(
            h.sqs
                .receive_message(&url, ReceiveMessage::max(11))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .receive_message(&url, ReceiveMessage::max(0))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .receive_message(&url, ReceiveMessage::max(1).with_wait_time_seconds(21))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .receive_message(&url, ReceiveMessage::max(1).with_visibility_timeout(43_201))
                .await
                .is_err()
        );
    }

    pub async fn attribute_selection_on_receive(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        let m = SendMessage::new("x")
            .with_attribute("trace.id", MessageAttribute::string("1"))
            .with_attribute("trace.span", MessageAttribute::string("2"))
            .with_attribute("other", MessageAttribute::number("3"));
        h.sqs.send_message(&url, m).await.unwrap();
        let mut request = ReceiveMessage::max(1);
        request.message_attribute_names = vec!["trace.*".to_owned()];
        request.attribute_names = vec!["SentTimestamp".to_owned()];
        let got = h.sqs.receive_message(&url, request).await.unwrap();
        assert_eq!(
            got[0].message_attributes.keys().collect::<Vec<_>>(),
            ["trace.id", "trace.span"]
        );
        assert_eq!(
            got[0].attributes.keys().collect::<Vec<_>>(),
            ["SentTimestamp"]
        );
        let expected = cloudlet_queue::md5::md5_of_attributes(&got[0].message_attributes);
        assert_eq!(
            got[0].md5_of_message_attributes, expected,
            "the digest covers what is returned"
        );
    }

    pub async fn dead_letter_queue_after_max_receives(h: Harness) {
        let (url, dlq) = work_with_dead_letter_queue(&h, 2).await;
        let sent = h
            .sqs
            .send_message(&url, SendMessage::new("poison"))
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(receive(&h, &url, 1).await.len(), 1);
            h.clock.advance(Duration::from_secs(10));
        }
        // The third receive finds it received twice already: it moves instead.
        assert!(receive(&h, &url, 1).await.is_empty());
        let dead = h
            .sqs
            .receive_message(&dlq, ReceiveMessage::max(1).with_all_attributes())
            .await
            .unwrap();
        assert_eq!(dead[0].message_id, sent.message_id);
        assert_eq!(dead[0].body, "poison");
        assert_eq!(dead[0].attributes["ApproximateReceiveCount"], "3");
        assert_eq!(
            dead[0].attributes["DeadLetterQueueSourceArn"],
            "arn:aws:sqs:us-east-1:000000000000:work"
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "0"
        );
    }

    pub async fn delete_and_visibility_batches(h: Harness) {
        let url = queue(&h, "q", &[]).await;
        for i in 0..3 {
            h.sqs
                .send_message(&url, SendMessage::new(format!("m{i}")))
                .await
                .unwrap();
        }
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(3))
            .await
            .unwrap();
        let entries = vec![
            cloudlet_queue::ChangeVisibilityEntry::new("a", got[0].receipt_handle.clone(), 0),
            cloudlet_queue::ChangeVisibilityEntry::new("b", "not-a-handle", 0),
        ];
        let result = h
            .sqs
            .change_message_visibility_batch(&url, entries)
            .await
            .unwrap();
        assert_eq!(result.successful, ["a"]);
        assert_eq!(result.failed[0].id, "b");
        assert_eq!(result.failed[0].code, "ReceiptHandleIsInvalid");
        let entries = got[1..]
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("d{i}"), m.receipt_handle.clone()))
            .collect();
        let result = h.sqs.delete_message_batch(&url, entries).await.unwrap();
        assert_eq!(result.successful, ["d0", "d1"]);
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "1"
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessagesNotVisible").await,
            "0"
        );
        assert!(matches!(
            h.sqs.delete_message_batch(&url, vec![]).await,
            Err(Error::EmptyBatchRequest)
        ));
    }

    pub async fn queue_is_a_sink(h: Harness) {
        use cloudlet_core::Sink;
        let url = queue(&h, "events", &[]).await;
        let sink = cloudlet_queue::QueueSink::new(h.service.clone(), url.clone());
        sink.deliver(cloudlet_core::Message::new("from a topic"))
            .await
            .unwrap();
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        assert_eq!(got[0].body, "from a topic");
        let err = sink
            .deliver(cloudlet_core::Message::new(""))
            .await
            .unwrap_err();
        assert!(
            !err.is_retryable(),
            "an invalid message is rejected, not retried"
        );
    }

    async fn send_to(sqs: &dyn Queues, url: &str, body: impl Into<String>) {
        sqs.send_message(url, SendMessage::new(body.into()))
            .await
            .unwrap();
    }

    async fn take(sqs: &dyn Queues, url: &str, max: u32) -> Vec<cloudlet_queue::ReceivedMessage> {
        sqs.receive_message(url, ReceiveMessage::max(max))
            .await
            .unwrap()
    }

    /// Queues `work` (visibility timeout 10 s) and its dead-letter queue `dlq`, which takes a
    /// message received `max_receives` times; returns their URLs.
    async fn work_with_dead_letter_queue(h: &Harness, max_receives: u32) -> (String, String) {
        let dlq = queue(h, "dlq", &[]).await;
        let policy = format!(
            r#"{{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":{max_receives}}}"#
        );
        let url = queue(
            h,
            "work",
            &[("RedrivePolicy", &policy), ("VisibilityTimeout", "10")],
        )
        .await;
        (url, dlq)
    }

    async fn fifo(h: &Harness, attributes: &[(&str, &str)]) -> String {
        let mut all = vec![("FifoQueue", "true")];
        all.extend_from_slice(attributes);
        queue(h, "jobs.fifo", &all).await
    }

    fn in_group(body: &str, group: &str) -> SendMessage {
        SendMessage::new(body.to_owned())
            .with_group_id(group)
            .with_dedup_id(body)
    }

    fn bodies(messages: &[cloudlet_queue::ReceivedMessage]) -> Vec<String> {
        messages
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect()
    }

    pub async fn fifo_needs_group_and_deduplication(h: Harness) {
        let url = fifo(&h, &[]).await;
        let err = h
            .sqs
            .send_message(&url, SendMessage::new("x").with_dedup_id("d"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::MissingParameter { ref field, .. } if field == "MessageGroupId"),
            "{err}"
        );
        let err = h
            .sqs
            .send_message(&url, SendMessage::new("x").with_group_id("g"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidParameterValue { ref field, .. } if field == "MessageDeduplicationId"),
            "{err}"
        );
        let err = h
            .sqs
            .send_message(&url, in_group("x", "g").with_delay_seconds(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidParameterValue { ref field, .. } if field == "DelaySeconds"),
            "{err}"
        );
        assert!(
            h.sqs
                .send_message(&url, in_group("x", &"g".repeat(129)))
                .await
                .is_err()
        );
        let standard = queue(&h, "std", &[]).await;
        assert!(
            h.sqs
                .send_message(&standard, SendMessage::new("x").with_dedup_id("d"))
                .await
                .is_err()
        );
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "0"
        );
        let first = h.sqs.send_message(&url, in_group("a", "g")).await.unwrap();
        let second = h.sqs.send_message(&url, in_group("b", "g")).await.unwrap();
        let (first, second) = (
            first.sequence_number.unwrap(),
            second.sequence_number.unwrap(),
        );
        assert!(second > first, "sequence numbers grow: {first} < {second}");
    }

    pub async fn fifo_group_in_flight_blocks_only_itself(h: Harness) {
        let url = fifo(&h, &[]).await;
        for (body, group) in [("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a")] {
            h.sqs
                .send_message(&url, in_group(body, group))
                .await
                .unwrap();
        }
        let one = |h: &Harness| {
            let (sqs, url) = (h.sqs.clone(), url.clone());
            async move {
                sqs.receive_message(&url, ReceiveMessage::max(1))
                    .await
                    .unwrap()
            }
        };
        let a1 = one(&h).await;
        assert_eq!(bodies(&a1), ["a1"]);
        assert_eq!(
            bodies(&one(&h).await),
            ["b1"],
            "group a is blocked, b is not"
        );
        assert!(
            one(&h).await.is_empty(),
            "both groups have a message in flight"
        );
        h.sqs
            .delete_message(&url, &a1[0].receipt_handle)
            .await
            .unwrap();
        // One receive takes as many consecutive messages of a group as it can.
        let rest = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10))
            .await
            .unwrap();
        assert_eq!(bodies(&rest), ["a2", "a3"]);
    }

    pub async fn fifo_order_holds_after_a_visibility_timeout(h: Harness) {
        let url = fifo(&h, &[("VisibilityTimeout", "30")]).await;
        for body in ["m1", "m2", "m3"] {
            h.sqs.send_message(&url, in_group(body, "g")).await.unwrap();
        }
        assert_eq!(bodies(&receive(&h, &url, 2).await), ["m1", "m2"]);
        h.clock.advance(Duration::from_secs(30));
        // The timed-out messages come back first, in order, before m3.
        assert_eq!(bodies(&receive(&h, &url, 10).await), ["m1", "m2", "m3"]);
    }

    pub async fn fifo_dedup_survives_delete(h: Harness) {
        let url = fifo(&h, &[]).await;
        let first = h
            .sqs
            .send_message(&url, in_group("once", "g"))
            .await
            .unwrap();
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        h.sqs
            .delete_message(&url, &got[0].receipt_handle)
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(299));
        let again = h
            .sqs
            .send_message(&url, in_group("once", "g"))
            .await
            .unwrap();
        assert_eq!(
            again.message_id, first.message_id,
            "a duplicate answers with the original"
        );
        assert!(receive(&h, &url, 1).await.is_empty());
        h.clock.advance(Duration::from_secs(1));
        let later = h
            .sqs
            .send_message(&url, in_group("once", "g"))
            .await
            .unwrap();
        assert_ne!(
            later.message_id, first.message_id,
            "five minutes on, it is new"
        );
        assert_eq!(receive(&h, &url, 1).await.len(), 1);
    }

    pub async fn fifo_content_based_and_group_scoped_dedup(h: Harness) {
        let url = fifo(
            &h,
            &[
                ("ContentBasedDeduplication", "true"),
                ("DeduplicationScope", "messageGroup"),
            ],
        )
        .await;
        let same = |group: &str| SendMessage::new("same body").with_group_id(group);
        h.sqs.send_message(&url, same("g1")).await.unwrap();
        h.sqs.send_message(&url, same("g1")).await.unwrap();
        h.sqs.send_message(&url, same("g2")).await.unwrap();
        // An explicit id overrides the body's hash.
        h.sqs
            .send_message(&url, same("g1").with_dedup_id("explicit"))
            .await
            .unwrap();
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "3"
        );
    }

    pub async fn fifo_retried_receive_attempt_gets_the_same_messages(h: Harness) {
        let url = fifo(&h, &[]).await;
        for body in ["m1", "m2"] {
            h.sqs.send_message(&url, in_group(body, "g")).await.unwrap();
        }
        let attempt = |id: &str| ReceiveMessage::max(10).with_receive_request_attempt_id(id);
        let first = h.sqs.receive_message(&url, attempt("try-1")).await.unwrap();
        assert_eq!(bodies(&first), ["m1", "m2"]);
        h.clock.advance(Duration::from_secs(20));
        let retried = h.sqs.receive_message(&url, attempt("try-1")).await.unwrap();
        assert_eq!(retried, first, "same messages, same receipt handles");
        // The retry restarted the 30-second visibility timeout.
        h.clock.advance(Duration::from_secs(20));
        assert!(
            h.sqs
                .receive_message(&url, attempt("try-2"))
                .await
                .unwrap()
                .is_empty()
        );
        // After a visibility change the attempt no longer repeats.
        h.sqs
            .change_message_visibility(&url, &first[1].receipt_handle, 100)
            .await
            .unwrap();
        assert!(
            h.sqs
                .receive_message(&url, attempt("try-1"))
                .await
                .unwrap()
                .is_empty()
        );
        // Once one of them is deleted the attempt no longer repeats.
        h.sqs
            .delete_message(&url, &first[0].receipt_handle)
            .await
            .unwrap();
        assert!(
            h.sqs
                .receive_message(&url, attempt("try-1"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            h.sqs
                .receive_message(&url, attempt("bad id "))
                .await
                .is_err()
        );
    }

    pub async fn fifo_blocked_group_does_not_starve_others(h: Harness) {
        let url = fifo(&h, &[]).await;
        for batch in 0..110 {
            let entries = (0..10)
                .map(|i| {
                    let body = format!("a{batch}-{i}");
                    SendMessageBatchEntry::new(format!("e{i}"), in_group(&body, "busy"))
                })
                .collect();
            h.sqs.send_message_batch(&url, entries).await.unwrap();
        }
        let head = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        assert_eq!(bodies(&head), ["a0-0"]);
        h.sqs
            .send_message(&url, in_group("quiet", "other"))
            .await
            .unwrap();
        // 1,099 visible messages of the blocked group come first; the other group is served.
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10).with_all_attributes())
            .await
            .unwrap();
        assert_eq!(bodies(&got), ["quiet"]);
        assert_eq!(got[0].attributes["MessageGroupId"], "other");
        assert_eq!(got[0].attributes["MessageDeduplicationId"], "quiet");
        assert!(got[0].attributes.contains_key("SequenceNumber"));
    }

    pub async fn fifo_delete_wakes_a_long_poll(h: Harness) {
        let url = fifo(&h, &[]).await;
        for body in ["m1", "m2"] {
            h.sqs.send_message(&url, in_group(body, "g")).await.unwrap();
        }
        let first = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        let (sqs, u) = (h.sqs.clone(), url.clone());
        let waiting = tokio::spawn(async move {
            sqs.receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(20))
                .await
        });
        h.clock.wait_for_timers(1).await;
        h.sqs
            .delete_message(&url, &first[0].receipt_handle)
            .await
            .unwrap();
        assert_eq!(bodies(&waiting.await.unwrap().unwrap()), ["m2"]);
    }

    pub async fn redrive_policy_needs_a_matching_target(h: Harness) {
        let policy = |name: &str| {
            format!(
                r#"{{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:{name}","maxReceiveCount":3}}"#
            )
        };
        let err = h
            .sqs
            .create_queue(
                "src",
                map(&[("RedrivePolicy", &policy("missing"))]),
                BTreeMap::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidParameterValue { ref field, .. } if field == "RedrivePolicy"),
            "{err}"
        );
        assert!(
            h.sqs.get_queue_url("src").await.is_err(),
            "a rejected create creates nothing"
        );
        fifo(&h, &[]).await;
        let url = queue(&h, "src", &[]).await;
        assert!(
            h.sqs
                .set_queue_attributes(&url, map(&[("RedrivePolicy", &policy("jobs.fifo"))]))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .set_queue_attributes(&url, map(&[("RedrivePolicy", &policy("src"))]))
                .await
                .is_err()
        );
        queue(&h, "dead", &[]).await;
        h.sqs
            .set_queue_attributes(&url, map(&[("RedrivePolicy", &policy("dead"))]))
            .await
            .unwrap();
    }

    pub async fn zero_visibility_never_returns_a_message_twice(h: Harness) {
        let url = queue(&h, "q", &[("MessageRetentionPeriod", "60")]).await;
        for i in 0..39 {
            h.sqs
                .send_message(&url, SendMessage::new(format!("old{i}")))
                .await
                .unwrap();
        }
        h.clock.advance(Duration::from_secs(60));
        h.sqs
            .send_message(&url, SendMessage::new("new"))
            .await
            .unwrap();
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(10).with_visibility_timeout(0))
            .await
            .unwrap();
        assert_eq!(bodies(&got), ["new"]);
    }

    /// A source queue, its dead-letter queue, and `n` messages moved into the latter.
    async fn dead_lettered(h: &Harness, n: usize) -> (String, String) {
        let dlq = queue(h, "dlq", &[]).await;
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":1}"#;
        let src = queue(
            h,
            "src",
            &[("RedrivePolicy", policy), ("VisibilityTimeout", "10")],
        )
        .await;
        for i in 0..n {
            h.sqs
                .send_message(&src, SendMessage::new(format!("m{i}")))
                .await
                .unwrap();
        }
        assert_eq!(receive(h, &src, 10).await.len(), n);
        h.clock.advance(Duration::from_secs(10));
        assert!(receive(h, &src, 10).await.is_empty());
        assert_eq!(
            attribute(h, &dlq, "ApproximateNumberOfMessages").await,
            n.to_string()
        );
        (src, dlq)
    }

    const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:dlq";

    async fn wait_for_status(h: &Harness, status: &str) -> cloudlet_queue::MessageMoveTask {
        for _ in 0..100_000 {
            let tasks = h.sqs.list_message_move_tasks(DLQ_ARN, None).await.unwrap();
            if tasks[0].status == status {
                return tasks[0].clone();
            }
            tokio::task::yield_now().await;
        }
        panic!("the move task never became {status}");
    }

    pub async fn redrive_moves_messages_back_to_their_sources(h: Harness) {
        let (src, dlq) = dead_lettered(&h, 3).await;
        let handle = h
            .sqs
            .start_message_move_task(DLQ_ARN, None, None)
            .await
            .unwrap();
        assert!(handle.starts_with("dlq:"));
        let done = wait_for_status(&h, "COMPLETED").await;
        assert_eq!(done.approximate_number_of_messages_moved, 3);
        assert_eq!(done.approximate_number_of_messages_to_move, 3);
        assert_eq!(done.task_handle, None);
        assert_eq!(
            attribute(&h, &dlq, "ApproximateNumberOfMessages").await,
            "0"
        );
        let back = h
            .sqs
            .receive_message(&src, ReceiveMessage::max(10).with_all_attributes())
            .await
            .unwrap();
        assert_eq!(bodies(&back).len(), 3);
        assert_eq!(
            back[0].attributes["ApproximateReceiveCount"], "1",
            "counted afresh"
        );
    }

    pub async fn dead_letter_source_queues_are_listed(h: Harness) {
        let dlq = queue(&h, "dlq", &[]).await;
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":3}"#;
        queue(&h, "src-b", &[("RedrivePolicy", policy)]).await;
        queue(&h, "src-a", &[("RedrivePolicy", policy)]).await;
        let unrelated = queue(&h, "unrelated", &[]).await;
        assert_eq!(
            names(h.sqs.list_dead_letter_source_queues(&dlq).await.unwrap()),
            ["src-a", "src-b"]
        );
        assert!(
            h.sqs
                .list_dead_letter_source_queues(&unrelated)
                .await
                .unwrap()
                .is_empty()
        );
        // A source that drops its RedrivePolicy is no longer listed.
        let src_a = h.sqs.get_queue_url("src-a").await.unwrap();
        h.sqs
            .set_queue_attributes(&src_a, map(&[("RedrivePolicy", "")]))
            .await
            .unwrap();
        assert_eq!(
            names(h.sqs.list_dead_letter_source_queues(&dlq).await.unwrap()),
            ["src-b"]
        );
        let missing = h
            .sqs
            .list_dead_letter_source_queues("nope")
            .await
            .unwrap_err();
        assert!(
            matches!(missing, Error::QueueDoesNotExist { .. }),
            "{missing}"
        );
    }

    pub async fn redrive_allow_policy_decides_which_queues_may_use_a_dead_letter_queue(h: Harness) {
        let dlq = queue(
            &h,
            "dlq",
            &[("RedriveAllowPolicy", r#"{"redrivePermission":"denyAll"}"#)],
        )
        .await;
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":3}"#;
        let denied = h
            .sqs
            .create_queue("src", map(&[("RedrivePolicy", policy)]), BTreeMap::new())
            .await
            .unwrap_err();
        assert!(denied.to_string().contains("denyAll"), "{denied}");
        h.sqs
            .set_queue_attributes(
                &dlq,
                map(&[(
                    "RedriveAllowPolicy",
                    r#"{"redrivePermission":"byQueue","sourceQueueArns":["arn:aws:sqs:us-east-1:000000000000:src"]}"#,
                )]),
            )
            .await
            .unwrap();
        queue(&h, "src", &[("RedrivePolicy", policy)]).await;
        let other = queue(&h, "other", &[]).await;
        let unlisted = h
            .sqs
            .set_queue_attributes(&other, map(&[("RedrivePolicy", policy)]))
            .await
            .unwrap_err();
        assert!(unlisted.to_string().contains("byQueue"), "{unlisted}");
        assert!(
            !h.sqs
                .get_queue_attributes(&other, &["All"])
                .await
                .unwrap()
                .contains_key("RedrivePolicy"),
            "a refused change changes nothing"
        );
        h.sqs
            .set_queue_attributes(
                &dlq,
                map(&[("RedriveAllowPolicy", r#"{"redrivePermission":"allowAll"}"#)]),
            )
            .await
            .unwrap();
        h.sqs
            .set_queue_attributes(&other, map(&[("RedrivePolicy", policy)]))
            .await
            .unwrap();
    }

    pub async fn redrive_keeps_ten_tasks_and_forgets_them_with_the_queue(h: Harness) {
        let (_src, dlq) = dead_lettered(&h, 1).await;
        let stored = || {
            h.store
                .snapshot()
                .unwrap()
                .prefix("queue.moves", b"", Direction::Forward)
                .unwrap()
                .count()
        };
        let mut handles = Vec::new();
        for _ in 0..12 {
            handles.push(
                h.sqs
                    .start_message_move_task(DLQ_ARN, None, None)
                    .await
                    .unwrap(),
            );
            wait_for_status(&h, "COMPLETED").await;
            h.clock.advance(Duration::from_secs(1));
        }
        assert_eq!(stored(), 10, "only the ten most recent tasks are kept");
        let tasks = h
            .sqs
            .list_message_move_tasks(DLQ_ARN, Some(10))
            .await
            .unwrap();
        assert_eq!(tasks.len(), 10);
        assert_eq!(
            tasks
                .iter()
                .map(|t| t.started_timestamp)
                .collect::<Vec<_>>(),
            {
                let mut newest_first = tasks
                    .iter()
                    .map(|t| t.started_timestamp)
                    .collect::<Vec<_>>();
                newest_first.sort_unstable_by(|a, b| b.cmp(a));
                newest_first
            },
            "newest first"
        );
        // The first task moved the message; the ten kept found the queue empty.
        assert!(
            tasks
                .iter()
                .all(|t| t.approximate_number_of_messages_moved == 0)
        );
        // A deleted queue takes its tasks with it; a new queue of the name starts with none.
        h.sqs.delete_queue(&dlq).await.unwrap();
        assert_eq!(stored(), 0);
        h.clock.advance(Duration::from_secs(60));
        queue(&h, "dlq", &[]).await;
        assert!(
            h.sqs
                .list_message_move_tasks(DLQ_ARN, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(handles.len(), 12);
    }

    pub async fn redrive_is_rate_limited_on_the_clock_and_cancellable(h: Harness) {
        let (_src, dlq) = dead_lettered(&h, 3).await;
        let handle = h
            .sqs
            .start_message_move_task(DLQ_ARN, None, Some(1))
            .await
            .unwrap();
        // One message a second: after the first, the task waits on the clock.
        h.clock.wait_for_timers(1).await;
        assert_eq!(
            attribute(&h, &dlq, "ApproximateNumberOfMessages").await,
            "2"
        );
        h.clock.advance(Duration::from_secs(1));
        h.clock.wait_for_timers(1).await;
        assert_eq!(
            attribute(&h, &dlq, "ApproximateNumberOfMessages").await,
            "1"
        );
        assert_eq!(h.sqs.cancel_message_move_task(&handle).await.unwrap(), 2);
        assert_eq!(
            h.sqs.list_message_move_tasks(DLQ_ARN, None).await.unwrap()[0].status,
            "CANCELLING"
        );
        h.clock.advance(Duration::from_secs(1));
        let cancelled = wait_for_status(&h, "CANCELLED").await;
        assert_eq!(cancelled.approximate_number_of_messages_moved, 2);
        assert_eq!(
            attribute(&h, &dlq, "ApproximateNumberOfMessages").await,
            "1"
        );
        assert!(
            h.sqs.cancel_message_move_task(&handle).await.is_err(),
            "no longer running"
        );
    }

    /// A message sent to the dead-letter queue directly has no source to go back to: the task
    /// moves what comes before it, then fails saying why, instead of running forever.
    pub async fn redrive_fails_at_a_message_with_nowhere_to_go(h: Harness) {
        let (src, dlq) = dead_lettered(&h, 2).await;
        h.clock.advance(Duration::from_secs(1));
        h.sqs
            .send_message(&dlq, SendMessage::new("orphan"))
            .await
            .unwrap();
        h.sqs
            .start_message_move_task(DLQ_ARN, None, None)
            .await
            .unwrap();
        let failed = wait_for_status(&h, "FAILED").await;
        assert_eq!(failed.approximate_number_of_messages_moved, 2);
        assert_eq!(failed.task_handle, None);
        let reason = failed.failure_reason.unwrap();
        assert!(reason.contains("DestinationArn"), "{reason}");
        assert_eq!(
            attribute(&h, &src, "ApproximateNumberOfMessages").await,
            "2"
        );
        assert_eq!(
            attribute(&h, &dlq, "ApproximateNumberOfMessages").await,
            "1"
        );
        // A task with a destination takes it.
        let src_arn = "arn:aws:sqs:us-east-1:000000000000:src";
        h.sqs
            .start_message_move_task(DLQ_ARN, Some(src_arn), None)
            .await
            .unwrap();
        wait_for_status(&h, "COMPLETED").await;
        assert_eq!(
            attribute(&h, &src, "ApproximateNumberOfMessages").await,
            "3"
        );
    }

    pub async fn redrive_start_is_validated(h: Harness) {
        // Three messages at one a second on a clock that does not move: the task stays running.
        let (src, _dlq) = dead_lettered(&h, 3).await;
        let src_arn = "arn:aws:sqs:us-east-1:000000000000:src";
        assert!(
            h.sqs
                .start_message_move_task(src_arn, None, None)
                .await
                .is_err(),
            "src is no dead-letter queue"
        );
        assert!(
            h.sqs
                .start_message_move_task(DLQ_ARN, None, Some(0))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .start_message_move_task(DLQ_ARN, None, Some(501))
                .await
                .is_err()
        );
        assert!(
            h.sqs
                .start_message_move_task(
                    DLQ_ARN,
                    Some("arn:aws:sqs:us-east-1:000000000000:nope"),
                    None
                )
                .await
                .is_err()
        );
        h.sqs
            .start_message_move_task(DLQ_ARN, Some(src_arn), Some(1))
            .await
            .unwrap();
        assert!(
            h.sqs
                .start_message_move_task(DLQ_ARN, None, None)
                .await
                .is_err(),
            "one running task per source"
        );
        assert!(
            h.sqs
                .list_message_move_tasks(DLQ_ARN, Some(11))
                .await
                .is_err()
        );
        let _ = src;
    }

    pub async fn fifo_expired_receipt_is_rejected(h: Harness) {
        let url = fifo(&h, &[("VisibilityTimeout", "30")]).await;
        h.sqs.send_message(&url, in_group("m", "g")).await.unwrap();
        let got = h
            .sqs
            .receive_message(&url, ReceiveMessage::max(1))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(30));
        let err = h
            .sqs
            .delete_message(&url, &got[0].receipt_handle)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ReceiptHandleIsInvalid { .. }), "{err}");
        assert_eq!(
            attribute(&h, &url, "ApproximateNumberOfMessages").await,
            "1"
        );
    }
}

impl Harness {
    fn clock_now(&self) -> cloudlet_core::Timestamp {
        use cloudlet_core::Clock;
        self.clock.now()
    }

    fn clock_millis(&self) -> String {
        self.clock_now().as_millis().to_string()
    }
}
