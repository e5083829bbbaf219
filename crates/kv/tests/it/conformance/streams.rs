//! Change streams, their delivery to sinks, and time to live.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{ChannelSink, DeliveryError, Message, sink_fn};
use cloudlet_kv::stream::EventName;
use cloudlet_kv::{
    AttributeValue, CreateTable, DeleteItem, Error, GetItem, Item, KeyAttribute, PutItem, Query,
    SecondaryIndex, ShardIteratorType, StartingPosition, StreamViewType, TransactWriteItem,
    TransactWriteItems, UpdateItem, item,
};

use super::Harness;

fn key(pk: &str) -> Item {
    item([("pk", pk.into())])
}

async fn streamed_table(h: &Harness, view: StreamViewType) {
    h.kv.create_table(CreateTable::new("events", KeyAttribute::s("pk")).with_stream(view))
        .await
        .unwrap();
}

fn all_records(h: &Harness) -> Vec<cloudlet_kv::StreamRecord> {
    let iterator = h
        .service
        .get_shard_iterator("events", ShardIteratorType::TRIM_HORIZON)
        .unwrap();
    h.service.get_records(&iterator, None).unwrap().records
}

pub async fn stream_records_every_change_once_in_order(h: Harness) {
    streamed_table(&h, StreamViewType::NEW_AND_OLD_IMAGES).await;
    let v1 = item([("pk", "a".into()), ("v", 1.into())]);
    h.kv.put_item(PutItem::new("events", v1.clone()))
        .await
        .unwrap();
    // The identical item again changes nothing and records nothing.
    h.kv.put_item(PutItem::new("events", v1.clone()))
        .await
        .unwrap();
    h.kv.update_item(UpdateItem::new("events", key("a"), "SET v = v + :one").with_value(":one", 1))
        .await
        .unwrap();
    // A failed condition records nothing.
    let failed =
        h.kv.put_item(PutItem::new("events", key("a")).with_condition("attribute_not_exists(pk)"))
            .await;
    assert!(matches!(failed, Err(Error::ConditionalCheckFailed { .. })));
    // An update that creates the item is an INSERT.
    h.kv.update_item(UpdateItem::new("events", key("b"), "SET v = :one").with_value(":one", 1))
        .await
        .unwrap();
    h.kv.transact_write_items(TransactWriteItems {
        transact_items: vec![
            TransactWriteItem::Delete(DeleteItem::new("events", key("a"))),
            TransactWriteItem::Put(PutItem::new("events", key("c"))),
        ],
        client_request_token: None,
    })
    .await
    .unwrap();
    let records = all_records(&h);
    let names: Vec<(EventName, String)> = records
        .iter()
        .map(|r| (r.event_name, r.keys["pk"].as_s().unwrap().to_owned()))
        .collect();
    assert_eq!(
        names,
        [
            (EventName::INSERT, "a".to_owned()),
            (EventName::MODIFY, "a".to_owned()),
            (EventName::INSERT, "b".to_owned()),
            (EventName::REMOVE, "a".to_owned()),
            (EventName::INSERT, "c".to_owned()),
        ]
    );
    assert_eq!(records[0].new_image, Some(v1.clone()));
    assert_eq!(records[0].old_image, None);
    assert_eq!(records[1].old_image, Some(v1));
    assert_eq!(records[1].new_image.as_ref().unwrap()["v"], 2.into());
    assert!(records[3].new_image.is_none());
    assert!(records.iter().all(|r| r.user_identity.is_none()));
    let sequences: Vec<&str> = records.iter().map(|r| r.sequence_number.as_str()).collect();
    let mut sorted = sequences.clone();
    sorted.sort();
    assert_eq!(sequences, sorted, "sequence numbers increase");
    // LATEST sees only later changes; AFTER_SEQUENCE_NUMBER resumes.
    let latest = h
        .service
        .get_shard_iterator("events", ShardIteratorType::LATEST)
        .unwrap();
    assert!(
        h.service
            .get_records(&latest, None)
            .unwrap()
            .records
            .is_empty()
    );
    h.kv.put_item(PutItem::new("events", key("d")))
        .await
        .unwrap();
    let later = h.service.get_records(&latest, None).unwrap();
    assert_eq!(later.records.len(), 1);
    assert_eq!(later.records[0].keys, key("d"));
    let next = h
        .service
        .get_records(later.next_shard_iterator.as_ref().unwrap(), None)
        .unwrap();
    assert!(next.records.is_empty());
    let after = h
        .service
        .get_shard_iterator(
            "events",
            ShardIteratorType::AFTER_SEQUENCE_NUMBER(records[3].sequence_number.clone()),
        )
        .unwrap();
    let rest = h.service.get_records(&after, Some(1)).unwrap();
    assert_eq!(rest.records[0].keys, key("c"));
}

pub async fn stream_view_types_shape_records(h: Harness) {
    streamed_table(&h, StreamViewType::KEYS_ONLY).await;
    h.kv.put_item(PutItem::new(
        "events",
        item([("pk", "a".into()), ("v", 1.into())]),
    ))
    .await
    .unwrap();
    let records = all_records(&h);
    assert_eq!(records[0].keys, key("a"));
    assert_eq!(
        (records[0].new_image.as_ref(), records[0].old_image.as_ref()),
        (None, None)
    );
    let no_stream =
        h.kv.create_table(CreateTable::new("plain", KeyAttribute::s("pk")))
            .await;
    assert!(no_stream.is_ok());
    assert!(h.service.describe_stream("plain").is_err());
    assert!(
        h.service
            .describe_stream("events")
            .unwrap()
            .stream_arn
            .contains("table/events/stream/")
    );
}

pub async fn stream_iterators_expire_and_records_are_trimmed_after_a_day(h: Harness) {
    streamed_table(&h, StreamViewType::NEW_IMAGE).await;
    h.kv.put_item(PutItem::new("events", key("a")))
        .await
        .unwrap();
    let iterator = h
        .service
        .get_shard_iterator("events", ShardIteratorType::TRIM_HORIZON)
        .unwrap();
    h.clock.advance(Duration::from_secs(15 * 60));
    assert!(matches!(
        h.service.get_records(&iterator, None),
        Err(Error::ExpiredIterator)
    ));
    h.clock.advance(Duration::from_secs(24 * 3600));
    h.kv.put_item(PutItem::new("events", key("b")))
        .await
        .unwrap();
    let report = h.service.sweep().await.unwrap();
    assert_eq!(report.trimmed_records, 1);
    let records = all_records(&h);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].keys, key("b"));
    let trimmed = h.service.get_shard_iterator(
        "events",
        ShardIteratorType::AT_SEQUENCE_NUMBER("1".to_owned()),
    );
    assert!(
        matches!(trimmed, Err(Error::TrimmedDataAccess)),
        "{trimmed:?}"
    );
}

pub async fn ttl_deletes_expired_items_as_the_service(h: Harness) {
    h.kv.create_table(
        CreateTable::new("events", KeyAttribute::s("pk"))
            .with_stream(StreamViewType::OLD_IMAGE)
            .with_global_index(SecondaryIndex::new("byKind", KeyAttribute::s("kind"))),
    )
    .await
    .unwrap();
    let now = cloudlet_core::Clock::now(&h.clock).as_secs() as i64;
    let put = |pk: &str, expires: AttributeValue| {
        PutItem::new(
            "events",
            item([
                ("pk", pk.into()),
                ("kind", "k".into()),
                ("expires", expires),
            ]),
        )
    };
    // Items written before TTL is enabled are indexed when it is.
    h.kv.put_item(put("early", (now - 10).into()))
        .await
        .unwrap();
    let ttl = h
        .service
        .update_time_to_live("events", Some("expires".to_owned()))
        .await
        .unwrap();
    assert_eq!(ttl.time_to_live_status, "ENABLED");
    h.kv.put_item(put("past", (now - 1).into())).await.unwrap();
    h.kv.put_item(put("future", (now + 100).into()))
        .await
        .unwrap();
    h.kv.put_item(put("text", "not a number".into()))
        .await
        .unwrap();
    // Expired but not yet swept: still readable, as on DynamoDB.
    assert!(
        h.kv.get_item(GetItem::new("events", key("past")))
            .await
            .unwrap()
            .is_some()
    );
    let report = h.service.sweep().await.unwrap();
    assert_eq!(report.expired_items, 2);
    for gone in ["early", "past"] {
        assert!(
            h.kv.get_item(GetItem::new("events", key(gone)))
                .await
                .unwrap()
                .is_none()
        );
    }
    let by_kind =
        h.kv.query(
            Query::new("events", "kind = :k")
                .with_index("byKind")
                .with_value(":k", "k"),
        )
        .await
        .unwrap();
    assert_eq!(by_kind.count, 2, "the index forgets expired items too");
    let removals: Vec<_> = all_records(&h)
        .into_iter()
        .filter(|r| r.event_name == EventName::REMOVE)
        .collect();
    assert_eq!(removals.len(), 2);
    for record in &removals {
        let identity = record.user_identity.as_ref().unwrap();
        assert_eq!(
            (identity.kind.as_str(), identity.principal_id.as_str()),
            ("Service", "dynamodb.amazonaws.com")
        );
        assert!(record.old_image.is_some());
    }
    h.clock.advance(Duration::from_secs(200));
    assert_eq!(h.service.sweep().await.unwrap().expired_items, 1);
    // One change an hour.
    let again = h.service.update_time_to_live("events", None).await;
    assert!(
        matches!(&again, Err(Error::Validation { message, .. }) if message.contains("multiple times")),
        "{again:?}"
    );
    h.clock.advance(Duration::from_secs(3600));
    h.service.update_time_to_live("events", None).await.unwrap();
    assert_eq!(
        h.service
            .describe_time_to_live("events")
            .await
            .unwrap()
            .time_to_live_status,
        "DISABLED"
    );
}

pub async fn stream_delivers_to_a_sink_in_order_with_retries(h: Harness) {
    streamed_table(&h, StreamViewType::NEW_IMAGE).await;
    h.kv.put_item(PutItem::new("events", key("before")))
        .await
        .unwrap();
    let (sink, mut delivered) = ChannelSink::new();
    let task = h
        .service
        .subscribe_stream(
            "events",
            "copy",
            StartingPosition::LATEST,
            Arc::new(sink),
            OutboxPolicy::default(),
        )
        .await
        .unwrap();
    for pk in ["a", "b", "c"] {
        h.kv.put_item(PutItem::new("events", key(pk)))
            .await
            .unwrap();
    }
    for pk in ["a", "b", "c"] {
        let message = delivered.recv().await.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(event["eventName"], "INSERT");
        assert_eq!(event["eventSource"], "aws:dynamodb");
        assert_eq!(event["dynamodb"]["Keys"]["pk"]["S"], pk);
        assert_eq!(event["dynamodb"]["NewImage"]["pk"]["S"], pk);
    }
    task.shutdown().await;

    // A flaky sink: every delivery fails twice before it succeeds; order holds.
    let attempts = Arc::new(AtomicUsize::new(0));
    let (forward, mut received) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let seen = Arc::clone(&attempts);
    let flaky = sink_fn(move |message: Message| {
        let (seen, forward) = (Arc::clone(&seen), forward.clone());
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) % 3 < 2 {
                return Err(DeliveryError::unavailable("not yet"));
            }
            forward.send(message).unwrap();
            Ok(())
        }
    });
    let task = h
        .service
        .subscribe_stream(
            "events",
            "flaky",
            StartingPosition::TRIM_HORIZON,
            Arc::new(flaky),
            OutboxPolicy::default().with_batch_size(1),
        )
        .await
        .unwrap();
    for expected in ["before", "a", "b", "c"] {
        let message = loop {
            tokio::select! {
                message = received.recv() => break message.unwrap(),
                () = h.clock.wait_for_timers(1) => { h.clock.advance_to_next(); }
            }
        };
        let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(event["dynamodb"]["Keys"]["pk"]["S"], expected);
    }
    task.shutdown().await;
    // A restarted subscription resumes after its checkpoint: nothing is delivered twice.
    let (sink, mut again) = ChannelSink::new();
    let task = h
        .service
        .subscribe_stream(
            "events",
            "copy",
            StartingPosition::TRIM_HORIZON,
            Arc::new(sink),
            OutboxPolicy::default(),
        )
        .await
        .unwrap();
    h.kv.put_item(PutItem::new("events", key("d")))
        .await
        .unwrap();
    let message = again.recv().await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(event["dynamodb"]["Keys"]["pk"]["S"], "d");
    task.shutdown().await;
}
