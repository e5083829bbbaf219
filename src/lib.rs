//! cloudlet: the AWS serverless toolbox as embeddable Rust crates.
//!
//! This facade re-exports the foundation, [`cloudlet_core`], and each primitive crate behind a
//! feature of the same name as it lands (`queue`, `kv`, `pubsub`, `objectstore`, `stream` and
//! `workflow` now; `sql`, `functions` to come), and wires them together in a [`Cloud`]: one store
//! and one clock shared by every primitive. Everything runs inside your own tokio process, on
//! an in-memory engine for tests or a durable on-disk engine (feature `redb`, on by default).
//!
//! ```
//! # #[cfg(feature = "queue")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use cloudlet::queue::{Queues, ReceiveMessage, SendMessage};
//! use cloudlet::{Cloud, ManualClock};
//!
//! let clock = ManualClock::default();
//! let cloud = Cloud::builder().clock(clock.shared()).build()?; // in memory
//! let sqs = cloud.queues();
//! let url = sqs.create_queue("jobs", Default::default(), Default::default()).await?;
//! sqs.send_message(&url, SendMessage::new("job 1").with_delay_seconds(60)).await?;
//! assert!(sqs.receive_message(&url, ReceiveMessage::max(1)).await?.is_empty());
//! clock.advance(Duration::from_secs(60)); // no sleeping
//! assert_eq!(sqs.receive_message(&url, ReceiveMessage::max(1)).await?.len(), 1);
//! # Ok(()) }
//! # #[cfg(not(feature = "queue"))]
//! # fn main() {}
//! ```

use std::path::PathBuf;

pub use bytes::Bytes;
pub use cloudlet_core;
pub use cloudlet_core::{
    BackgroundTask, ChannelSink, Clock, DeliveryError, Direction, Durability, Error, IdGenerator,
    KeyRange, ManualClock, Message, MessageAttribute, ReadView, SharedClock, Sink, Snapshot, Store,
    SystemClock, Timestamp, WriteTxn, clock, engine, ids, keys, message, outbox, task,
};
#[cfg(feature = "kv")]
pub use cloudlet_kv as kv;
#[cfg(feature = "objectstore")]
pub use cloudlet_objectstore as objectstore;
#[cfg(feature = "pubsub")]
pub use cloudlet_pubsub as pubsub;
#[cfg(feature = "queue")]
pub use cloudlet_queue as queue;
#[cfg(feature = "sql")]
pub use cloudlet_sql as sql;
#[cfg(feature = "stream")]
pub use cloudlet_stream as stream;
#[cfg(feature = "workflow")]
pub use cloudlet_workflow as workflow;

/// The primitives of one process, sharing one store and one clock.
#[derive(Debug, Clone)]
pub struct Cloud {
    store: Store,
    clock: SharedClock,
    #[cfg(feature = "queue")]
    queues: cloudlet_queue::QueueService,
    #[cfg(feature = "kv")]
    tables: cloudlet_kv::KvService,
    #[cfg(feature = "pubsub")]
    topics: cloudlet_pubsub::TopicService,
    #[cfg(feature = "objectstore")]
    buckets: cloudlet_objectstore::ObjectService,
    #[cfg(feature = "stream")]
    streams: cloudlet_stream::StreamService,
    #[cfg(feature = "workflow")]
    workflows: cloudlet_workflow::WorkflowService,
    #[cfg(feature = "sql")]
    sql: cloudlet_sql::SqlService,
}

impl Cloud {
    /// Everything in memory, on the system clock.
    pub fn memory() -> Self {
        let clock = SystemClock::shared();
        let store = Store::memory();
        Self::assemble(
            store.clone(),
            clock.clone(),
            #[cfg(feature = "objectstore")]
            cloudlet_objectstore::ObjectService::new(store.clone(), clock.clone()),
            #[cfg(feature = "workflow")]
            cloudlet_workflow::WorkflowService::new(store, clock),
            #[cfg(feature = "sql")]
            None,
        )
    }

    /// A builder: choose a data directory (durable) and a clock.
    pub fn builder() -> CloudBuilder {
        CloudBuilder::default()
    }

    fn assemble(
        store: Store,
        clock: SharedClock,
        #[cfg(feature = "objectstore")] buckets: cloudlet_objectstore::ObjectService,
        #[cfg(feature = "workflow")] workflows: cloudlet_workflow::WorkflowService,
        #[cfg(feature = "sql")] sql: Option<cloudlet_sql::SqlService>,
    ) -> Self {
        #[cfg(feature = "sql")]
        let sql = sql.unwrap_or_else(|| {
            cloudlet_sql::SqlService::new(store.clone(), clock.clone(), buckets.clone())
        });
        Self {
            #[cfg(feature = "sql")]
            sql,
            #[cfg(feature = "workflow")]
            workflows,
            #[cfg(feature = "objectstore")]
            buckets,
            #[cfg(feature = "stream")]
            streams: cloudlet_stream::StreamService::new(store.clone(), clock.clone()),
            #[cfg(feature = "queue")]
            queues: cloudlet_queue::QueueService::new(store.clone(), clock.clone()),
            #[cfg(feature = "kv")]
            tables: cloudlet_kv::KvService::new(store.clone(), clock.clone()),
            #[cfg(feature = "pubsub")]
            topics: cloudlet_pubsub::TopicService::new(store.clone(), clock.clone()),
            store,
            clock,
        }
        .with_integrations()
    }

    /// Registers the Step Functions service integrations the other primitives answer:
    /// `arn:aws:states:::sqs:sendMessage` (QueueUrl, MessageBody, DelaySeconds, MessageGroupId,
    /// MessageDeduplicationId), `arn:aws:states:::sns:publish` (TopicArn, Message, Subject,
    /// MessageGroupId) and `arn:aws:states:::dynamodb:getItem` / `putItem` / `deleteItem`
    /// (TableName, Key or Item in DynamoDB JSON, ProjectionExpression, ConditionExpression). A body or message that is not a string is sent as its JSON
    /// text, as Step Functions sends it; a primitive's error fails the task as
    /// `SQS.<code>`, `SNS.<code>` or `DynamoDB.<code>`.
    fn with_integrations(self) -> Self {
        #[cfg(all(feature = "workflow", feature = "queue"))]
        {
            use cloudlet_queue::Queues as _;
            let queues = self.queues.clone();
            self.workflows
                .tasks()
                .register_fn("arn:aws:states:::sqs:sendMessage", move |req| {
                    let queues = queues.clone();
                    async move {
                        let p = &req.input;
                        let url = p["QueueUrl"].as_str().ok_or_else(|| {
                            cloudlet_workflow::TaskFailure::new(
                                "SQS.MissingParameter",
                                "QueueUrl is required",
                            )
                        })?;
                        let body = match &p["MessageBody"] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            other => other.to_string(),
                        };
                        let mut message = cloudlet_queue::SendMessage::new(body);
                        message.delay_seconds = p["DelaySeconds"]
                            .as_u64()
                            .map(|d| d.min(u64::from(u32::MAX)) as u32);
                        message.group_id = p["MessageGroupId"].as_str().map(str::to_string);
                        message.dedup_id = p["MessageDeduplicationId"].as_str().map(str::to_string);
                        let sent = queues.send_message(url, message).await.map_err(|e| {
                            cloudlet_workflow::TaskFailure::new(
                                format!("SQS.{}", e.code()),
                                e.to_string(),
                            )
                        })?;
                        Ok(serde_json::json!({
                            "MessageId": sent.message_id,
                            "MD5OfMessageBody": sent.md5_of_message_body,
                        }))
                    }
                });
        }
        #[cfg(all(feature = "workflow", feature = "pubsub"))]
        {
            let topics = self.topics.clone();
            self.workflows
                .tasks()
                .register_fn("arn:aws:states:::sns:publish", move |req| {
                    let topics = topics.clone();
                    async move {
                        let p = &req.input;
                        let arn = p["TopicArn"].as_str().ok_or_else(|| {
                            cloudlet_workflow::TaskFailure::new(
                                "SNS.InvalidParameter",
                                "TopicArn is required",
                            )
                        })?;
                        let text = match &p["Message"] {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let mut publish = cloudlet_pubsub::Publish::new(text);
                        publish.subject = p["Subject"].as_str().map(str::to_string);
                        publish.group_id = p["MessageGroupId"].as_str().map(str::to_string);
                        let published = topics.publish(arn, publish).await.map_err(|e| {
                            cloudlet_workflow::TaskFailure::new(
                                format!("SNS.{}", e.code()),
                                e.to_string(),
                            )
                        })?;
                        Ok(serde_json::json!({"MessageId": published.message_id}))
                    }
                });
        }
        #[cfg(all(feature = "workflow", feature = "kv"))]
        {
            use cloudlet_kv::Tables as _;
            fn item(
                value: &serde_json::Value,
                field: &str,
            ) -> Result<cloudlet_kv::Item, cloudlet_workflow::TaskFailure> {
                serde_json::from_value(value.clone()).map_err(|e| {
                    cloudlet_workflow::TaskFailure::new(
                        "DynamoDB.ValidationException",
                        format!("{field}: {e}"),
                    )
                })
            }
            fn table(p: &serde_json::Value) -> Result<String, cloudlet_workflow::TaskFailure> {
                p["TableName"].as_str().map(str::to_string).ok_or_else(|| {
                    cloudlet_workflow::TaskFailure::new(
                        "DynamoDB.ValidationException",
                        "TableName is required",
                    )
                })
            }
            fn failed(e: cloudlet_kv::Error) -> cloudlet_workflow::TaskFailure {
                cloudlet_workflow::TaskFailure::new(format!("DynamoDB.{}", e.code()), e.to_string())
            }
            let tables = self.tables.clone();
            self.workflows
                .tasks()
                .register_fn("arn:aws:states:::dynamodb:getItem", move |req| {
                    let tables = tables.clone();
                    async move {
                        let p = &req.input;
                        let mut get = cloudlet_kv::GetItem::new(table(p)?, item(&p["Key"], "Key")?);
                        get.projection_expression =
                            p["ProjectionExpression"].as_str().map(str::to_string);
                        let found = tables.get_item(get).await.map_err(failed)?;
                        Ok(match found {
                            Some(found) => serde_json::json!({ "Item": found }),
                            None => serde_json::json!({}),
                        })
                    }
                });
            let tables = self.tables.clone();
            self.workflows
                .tasks()
                .register_fn("arn:aws:states:::dynamodb:putItem", move |req| {
                    let tables = tables.clone();
                    async move {
                        let p = &req.input;
                        let mut put =
                            cloudlet_kv::PutItem::new(table(p)?, item(&p["Item"], "Item")?);
                        put.condition_expression =
                            p["ConditionExpression"].as_str().map(str::to_string);
                        tables.put_item(put).await.map_err(failed)?;
                        Ok(serde_json::json!({}))
                    }
                });
            let tables = self.tables.clone();
            self.workflows.tasks().register_fn(
                "arn:aws:states:::dynamodb:deleteItem",
                move |req| {
                    let tables = tables.clone();
                    async move {
                        let p = &req.input;
                        let delete =
                            cloudlet_kv::DeleteItem::new(table(p)?, item(&p["Key"], "Key")?);
                        tables.delete_item(delete).await.map_err(failed)?;
                        Ok(serde_json::json!({}))
                    }
                },
            );
        }
        self
    }

    /// Stops every primitive's background work and waits for it: topic deliveries, object
    /// event deliveries, running executions, message-move tasks. Then closes the store if
    /// this was its last handle, so the data directory can be opened again at once. Work
    /// left running in a durable store goes on in the next cloud built over it.
    pub async fn shutdown(self) {
        #[cfg(feature = "pubsub")]
        self.topics.shutdown().await;
        #[cfg(feature = "objectstore")]
        self.buckets.shutdown().await;
        #[cfg(feature = "workflow")]
        self.workflows.shutdown().await;
        #[cfg(feature = "queue")]
        self.queues.shutdown().await;
        let store = self.store.clone();
        drop(self);
        store.close().await;
    }

    /// The store every primitive writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock every primitive reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The topics (SNS).
    #[cfg(feature = "pubsub")]
    pub fn topics(&self) -> &cloudlet_pubsub::TopicService {
        &self.topics
    }

    /// The tables (DynamoDB).
    #[cfg(feature = "kv")]
    pub fn tables(&self) -> &cloudlet_kv::KvService {
        &self.tables
    }

    /// SQL over the buckets (Athena): its catalog lives in the cloud's store.
    #[cfg(feature = "sql")]
    pub fn sql(&self) -> &cloudlet_sql::SqlService {
        &self.sql
    }

    /// The buckets (S3): bodies over 128 KiB in files under `<data dir>/objects` when the
    /// cloud is durable.
    #[cfg(feature = "objectstore")]
    pub fn buckets(&self) -> &cloudlet_objectstore::ObjectService {
        &self.buckets
    }

    /// The streams (Kinesis).
    #[cfg(feature = "stream")]
    pub fn streams(&self) -> &cloudlet_stream::StreamService {
        &self.streams
    }

    /// The state machines (Step Functions). A durable cloud loads its state machines and
    /// executions when it is built; call `resume_executions` once the task handlers are
    /// registered to carry on the executions that were running.
    #[cfg(feature = "workflow")]
    pub fn workflows(&self) -> &cloudlet_workflow::WorkflowService {
        &self.workflows
    }

    /// The queues (SQS).
    #[cfg(feature = "queue")]
    pub fn queues(&self) -> &cloudlet_queue::QueueService {
        &self.queues
    }
}

/// Builds a [`Cloud`].
#[derive(Debug, Default)]
pub struct CloudBuilder {
    data_dir: Option<PathBuf>,
    clock: Option<SharedClock>,
}

impl CloudBuilder {
    /// Keep everything durably in `dir` (the redb engine); without it, everything is in memory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Use `clock` (a [`ManualClock`] in tests); the system clock otherwise.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Opens the store and wires the primitives to it.
    ///
    /// # Errors
    /// [`Error::Storage`] when the data directory cannot be opened; [`Error::InvalidArgument`]
    /// when a data directory is given without the `redb` feature.
    pub fn build(self) -> Result<Cloud, Error> {
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let store = match &self.data_dir {
            #[cfg(feature = "redb")]
            Some(dir) => Store::open(dir)?,
            #[cfg(not(feature = "redb"))]
            Some(_) => {
                return Err(Error::invalid(
                    "data_dir",
                    "durable storage needs the `redb` feature",
                ));
            }
            None => Store::memory(),
        };
        #[cfg(feature = "objectstore")]
        let buckets = match &self.data_dir {
            Some(dir) => cloudlet_objectstore::ObjectService::open(
                store.clone(),
                clock.clone(),
                dir.join("objects"),
            )
            .map_err(Error::storage)?,
            None => cloudlet_objectstore::ObjectService::new(store.clone(), clock.clone()),
        };
        #[cfg(feature = "workflow")]
        let workflows = cloudlet_workflow::WorkflowService::open(
            store.clone(),
            clock.clone(),
            Default::default(),
        )
        .map_err(Error::storage)?;
        #[cfg(feature = "sql")]
        let sql = cloudlet_sql::SqlService::open(store.clone(), clock.clone(), buckets.clone())
            .map_err(Error::storage)?;
        Ok(Cloud::assemble(
            store,
            clock,
            #[cfg(feature = "objectstore")]
            buckets,
            #[cfg(feature = "workflow")]
            workflows,
            #[cfg(feature = "sql")]
            Some(sql),
        ))
    }
}
