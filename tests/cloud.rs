//! The facade wires one store and one clock into every primitive.
#![allow(clippy::unwrap_used, missing_docs)]

#[cfg(feature = "queue")]
#[tokio::test]
async fn a_durable_cloud_keeps_its_queues_across_a_reopen() {
    use cloudlet::Cloud;
    use cloudlet::queue::{Queues, ReceiveMessage, SendMessage};

    let dir = tempfile::tempdir().unwrap();
    {
        let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
        let url = cloud
            .queues()
            .create_queue("orders", Default::default(), Default::default())
            .await
            .unwrap();
        cloud
            .queues()
            .send_message(&url, SendMessage::new("o-1"))
            .await
            .unwrap();
    }
    let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
    let url = cloud.queues().get_queue_url("orders").await.unwrap();
    let got = cloud
        .queues()
        .receive_message(&url, ReceiveMessage::max(1))
        .await
        .unwrap();
    assert_eq!(got[0].body, "o-1");
}

/// A queue's message-move task keeps its service, and so the store, busy; shutting the cloud
/// down lets the directory open again, and the task goes on there.
#[cfg(feature = "queue")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_cloud_reopens_and_its_move_task_goes_on() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use cloudlet::queue::{Queues, SendMessage};
    use cloudlet::{Cloud, ManualClock};

    const DLQ_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:dlq";
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::default();
    let cloud = Cloud::builder()
        .data_dir(dir.path())
        .clock(clock.shared())
        .build()
        .unwrap();
    let sqs = cloud.queues();
    let dlq = sqs
        .create_queue("dlq", BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    let policy = format!(r#"{{"deadLetterTargetArn":"{DLQ_ARN}","maxReceiveCount":1}}"#);
    sqs.create_queue(
        "work",
        BTreeMap::from([("RedrivePolicy".to_owned(), policy)]),
        BTreeMap::new(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        sqs.send_message(&dlq, SendMessage::new(format!("m{i}")))
            .await
            .unwrap();
    }
    sqs.start_message_move_task(
        DLQ_ARN,
        Some("arn:aws:sqs:us-east-1:000000000000:work"),
        Some(1),
    )
    .await
    .unwrap();
    // The task moved one and waits a second on the clock.
    clock.wait_for_timers(1).await;
    cloud.shutdown().await;
    let cloud = Cloud::builder()
        .data_dir(dir.path())
        .clock(clock.shared())
        .build()
        .unwrap();
    let tasks = cloud
        .queues()
        .list_message_move_tasks(DLQ_ARN, None)
        .await
        .unwrap();
    assert_eq!(tasks[0].status, "RUNNING");
    // One moved before; the resumed task may have moved the next already.
    assert!((1..=2).contains(&tasks[0].approximate_number_of_messages_moved));
    clock.wait_for_timers(1).await;
    clock.advance(Duration::from_secs(1));
    cloud.shutdown().await;
}

#[tokio::test]
async fn a_memory_cloud_shares_its_clock() {
    use cloudlet::{Clock, Cloud, ManualClock};
    let clock = ManualClock::default();
    let cloud = Cloud::builder().clock(clock.shared()).build().unwrap();
    clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(cloud.clock().now(), clock.now());
    let _ = Cloud::memory();
}

#[cfg(all(feature = "objectstore", feature = "queue"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_events_land_in_a_queue_and_large_bodies_in_files() {
    use std::sync::Arc;

    use cloudlet::Cloud;
    use cloudlet::objectstore::{Buckets, GetObject, NotificationRule, PutObject};
    use cloudlet::queue::{QueueSink, Queues, ReceiveMessage};

    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
    let url = cloud
        .queues()
        .create_queue("uploads", Default::default(), Default::default())
        .await
        .unwrap();
    let s3 = cloud.buckets();
    s3.register_target(
        "uploads",
        Arc::new(QueueSink::new(cloud.queues().clone(), url.clone())),
    );
    s3.create_bucket("media").await.unwrap();
    s3.put_bucket_notifications(
        "media",
        vec![NotificationRule::new(
            "all",
            "uploads",
            ["s3:ObjectCreated:*"],
        )],
    )
    .await
    .unwrap();
    let body = vec![7u8; 512 * 1024];
    s3.put_object(PutObject::new("media", "video.mp4", body.clone()))
        .await
        .unwrap();
    let files = std::fs::read_dir(dir.path().join("objects/bodies"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
    let got = s3
        .get_object(GetObject::new("media", "video.mp4"))
        .await
        .unwrap();
    assert_eq!(got.body.bytes().await.unwrap(), body);
    // A long poll: it returns as soon as the event lands.
    let request = ReceiveMessage::max(1).with_wait_time_seconds(20);
    let messages = cloud.queues().receive_message(&url, request).await.unwrap();
    let event: serde_json::Value = serde_json::from_slice(&messages[0].body).unwrap();
    assert_eq!(event["Records"][0]["s3"]["object"]["key"], "video.mp4");
    s3.shutdown().await;
}

#[cfg(feature = "stream")]
#[tokio::test]
async fn a_durable_cloud_keeps_its_streams_across_a_reopen() {
    use cloudlet::Cloud;
    use cloudlet::stream::{PutRecordsEntry, StartingPosition, Streams};

    let dir = tempfile::tempdir().unwrap();
    let put = {
        let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
        cloud.streams().create_stream("clicks", 2).await.unwrap();
        cloud
            .streams()
            .put_record("clicks", PutRecordsEntry::new("u1", "home"), None)
            .await
            .unwrap()
    };
    let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
    let it = cloud
        .streams()
        .get_shard_iterator("clicks", &put.shard_id, StartingPosition::TrimHorizon)
        .await
        .unwrap();
    let got = cloud.streams().get_records(&it, None).await.unwrap();
    assert_eq!(got.records[0].data, "home");
}

#[cfg(all(feature = "workflow", feature = "queue", feature = "pubsub"))]
#[tokio::test]
async fn state_machines_send_to_queues_and_publish_to_topics() {
    use cloudlet::queue::{Queues, ReceiveMessage};
    use cloudlet::workflow::{ExecutionStatus, StateMachineType};
    use cloudlet::{Cloud, ManualClock};
    use serde_json::json;

    let cloud = Cloud::builder()
        .clock(ManualClock::default().shared())
        .build()
        .unwrap();
    let url = cloud
        .queues()
        .create_queue("shipments", Default::default(), Default::default())
        .await
        .unwrap();
    let topic = cloud
        .topics()
        .create_topic("orders", Default::default())
        .await
        .unwrap();
    let definition = json!({
        "StartAt": "Ship",
        "States": {
            "Ship": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": url, "MessageBody": {"order.$": "$.order"}},
                "ResultPath": "$.sent", "Next": "Announce"
            },
            "Announce": {
                "Type": "Task", "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic, "Message.$": "$.order"},
                "ResultPath": "$.published", "Next": "Missing"
            },
            "Missing": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": "nowhere", "MessageBody": "x"},
                "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Done"}],
                "End": true
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let sfn = cloud.workflows();
    let machine = sfn
        .create_state_machine("ship", &definition.to_string(), StateMachineType::Standard)
        .await
        .unwrap();
    let arn = sfn
        .start_execution(&machine, None, r#"{"order": "o-9"}"#)
        .await
        .unwrap();
    let done = sfn.wait_for_execution(&arn).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert!(output["sent"]["MessageId"].is_string());
    assert!(output["published"]["MessageId"].is_string());
    assert!(
        output["error"]["Error"]
            .as_str()
            .unwrap()
            .starts_with("SQS.")
    );
    let got = cloud
        .queues()
        .receive_message(&url, ReceiveMessage::max(1))
        .await
        .unwrap();
    assert_eq!(got[0].body, r#"{"order":"o-9"}"#);
}

#[cfg(all(feature = "workflow", feature = "kv"))]
#[tokio::test]
async fn state_machines_read_and_write_tables() {
    use cloudlet::kv::{CreateTable, KeyAttribute, Tables};
    use cloudlet::workflow::{ExecutionStatus, StateMachineType};
    use cloudlet::{Cloud, ManualClock};
    use serde_json::json;

    let cloud = Cloud::builder()
        .clock(ManualClock::default().shared())
        .build()
        .unwrap();
    cloud
        .tables()
        .create_table(CreateTable::new("orders", KeyAttribute::s("id")))
        .await
        .unwrap();
    let definition = json!({
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": "orders", "Item": {"id": {"S.$": "$.id"}, "qty": {"N": "3"}}},
                "ResultPath": null, "Next": "Get"
            },
            "Get": {
                "Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": "orders", "Key": {"id": {"S.$": "$.id"}}},
                "ResultSelector": {"qty.$": "$.Item.qty.N"},
                "ResultPath": "$.found", "Next": "PutAgain"
            },
            "PutAgain": {
                "Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": "orders", "Item": {"id": {"S.$": "$.id"}},
                               "ConditionExpression": "attribute_not_exists(id)"},
                "Catch": [{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "ResultPath": "$.conflict", "Next": "Done"}],
                "End": true
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let sfn = cloud.workflows();
    let machine = sfn
        .create_state_machine(
            "tables",
            &definition.to_string(),
            StateMachineType::Standard,
        )
        .await
        .unwrap();
    let arn = sfn
        .start_execution(&machine, None, r#"{"id": "o-1"}"#)
        .await
        .unwrap();
    let done = sfn.wait_for_execution(&arn).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert_eq!(output["found"], json!({"qty": "3"}));
    assert_eq!(
        output["conflict"]["Error"],
        "DynamoDB.ConditionalCheckFailedException"
    );
}
