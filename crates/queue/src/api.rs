//! The queue API: requests, results and the [`Queues`] trait.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use cloudlet_core::MessageAttribute;

use crate::Result;

/// SendMessage's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendMessage {
    /// The body: 1 byte up to the queue's `MaximumMessageSize` (with the attributes).
    pub body: Bytes,
    /// Per-message delay, 0-900 seconds (standard queues only); the queue's `DelaySeconds`
    /// when `None`.
    pub delay_seconds: Option<u32>,
    /// Up to 10 message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// `MessageGroupId`: required on FIFO queues; on standard queues it marks a fair-queue tenant.
    pub group_id: Option<String>,
    /// `MessageDeduplicationId` (FIFO).
    pub dedup_id: Option<String>,
}

impl SendMessage {
    /// A message with `body`.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// With a delay.
    pub fn with_delay_seconds(mut self, seconds: u32) -> Self {
        self.delay_seconds = Some(seconds);
        self
    }

    /// With one more attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, attribute: MessageAttribute) -> Self {
        self.attributes.insert(name.into(), attribute);
        self
    }

    /// With a message group.
    pub fn with_group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// With a deduplication id.
    pub fn with_dedup_id(mut self, dedup_id: impl Into<String>) -> Self {
        self.dedup_id = Some(dedup_id.into());
        self
    }
}

/// SendMessage's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendMessageResult {
    /// `MessageId`.
    pub message_id: String,
    /// `MD5OfMessageBody`.
    pub md5_of_message_body: String,
    /// `MD5OfMessageAttributes`, when there are attributes.
    pub md5_of_message_attributes: Option<String>,
    /// `SequenceNumber` (FIFO).
    pub sequence_number: Option<String>,
}

/// One entry of SendMessageBatch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendMessageBatchEntry {
    /// The entry's id: 1-80 letters, digits, `-`, `_`; distinct within the batch.
    pub id: String,
    /// The message.
    pub message: SendMessage,
}

impl SendMessageBatchEntry {
    /// An entry.
    pub fn new(id: impl Into<String>, message: SendMessage) -> Self {
        Self {
            id: id.into(),
            message,
        }
    }
}

/// A batch entry that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchResultErrorEntry {
    /// The entry's id.
    pub id: String,
    /// The error code, as SQS names it.
    pub code: String,
    /// What was wrong.
    pub message: String,
    /// True when the caller's input was at fault (`SenderFault`).
    pub sender_fault: bool,
}

/// SendMessageBatch's result: successes and failures, by entry id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendMessageBatchResult {
    /// The entries sent.
    pub successful: Vec<(String, SendMessageResult)>,
    /// The entries refused.
    pub failed: Vec<BatchResultErrorEntry>,
}

/// The result of a delete or change-visibility batch: ids that succeeded, entries that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchResult {
    /// The ids of the entries that succeeded.
    pub successful: Vec<String>,
    /// The entries that failed.
    pub failed: Vec<BatchResultErrorEntry>,
}

/// One entry of ChangeMessageVisibilityBatch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeVisibilityEntry {
    /// The entry's id.
    pub id: String,
    /// The receipt handle.
    pub receipt_handle: String,
    /// Seconds from now, 0-43,200.
    pub visibility_timeout: u32,
}

impl ChangeVisibilityEntry {
    /// An entry.
    pub fn new(
        id: impl Into<String>,
        receipt_handle: impl Into<String>,
        visibility_timeout: u32,
    ) -> Self {
        Self {
            id: id.into(),
            receipt_handle: receipt_handle.into(),
            visibility_timeout,
        }
    }
}

/// ReceiveMessage's input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveMessage {
    /// 1-10; default 1.
    pub max_number_of_messages: u32,
    /// How long the received messages stay hidden; the queue's `VisibilityTimeout` when `None`.
    pub visibility_timeout: Option<u32>,
    /// Long polling, 0-20 seconds; the queue's `ReceiveMessageWaitTimeSeconds` when `None`.
    pub wait_time_seconds: Option<u32>,
    /// System attributes to return (`All`, or names such as `ApproximateReceiveCount`).
    pub attribute_names: Vec<String>,
    /// Message attributes to return (`All`, `.*`, `prefix.*`, or names).
    pub message_attribute_names: Vec<String>,
    /// `ReceiveRequestAttemptId` (FIFO): a retry with the same id within five minutes returns
    /// the same messages and receipt handles, while they are still in flight unchanged.
    pub receive_request_attempt_id: Option<String>,
}

impl Default for ReceiveMessage {
    fn default() -> Self {
        Self {
            max_number_of_messages: 1,
            visibility_timeout: None,
            wait_time_seconds: None,
            attribute_names: Vec::new(),
            message_attribute_names: Vec::new(),
            receive_request_attempt_id: None,
        }
    }
}

impl ReceiveMessage {
    /// Up to `max` messages.
    pub fn max(max: u32) -> Self {
        Self {
            max_number_of_messages: max,
            ..Self::default()
        }
    }

    /// With a visibility timeout.
    pub fn with_visibility_timeout(mut self, seconds: u32) -> Self {
        self.visibility_timeout = Some(seconds);
        self
    }

    /// With long polling.
    pub fn with_wait_time_seconds(mut self, seconds: u32) -> Self {
        self.wait_time_seconds = Some(seconds);
        self
    }

    /// With a `ReceiveRequestAttemptId`.
    pub fn with_receive_request_attempt_id(mut self, id: impl Into<String>) -> Self {
        self.receive_request_attempt_id = Some(id.into());
        self
    }

    /// Returning every system and message attribute.
    pub fn with_all_attributes(mut self) -> Self {
        self.attribute_names = vec!["All".to_owned()];
        self.message_attribute_names = vec!["All".to_owned()];
        self
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedMessage {
    /// `MessageId`.
    pub message_id: String,
    /// `ReceiptHandle`: only the latest one of a message is valid.
    pub receipt_handle: String,
    /// `Body`.
    pub body: Bytes,
    /// `MD5OfBody`.
    pub md5_of_body: String,
    /// `MD5OfMessageAttributes` of the attributes returned.
    pub md5_of_message_attributes: Option<String>,
    /// The system attributes asked for (`SentTimestamp`, `ApproximateReceiveCount`, ...).
    pub attributes: BTreeMap<String, String>,
    /// The message attributes asked for.
    pub message_attributes: BTreeMap<String, MessageAttribute>,
}

/// One page of ListQueues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuePage {
    /// The queues' URLs, in name order.
    pub queue_urls: Vec<String>,
    /// Set when more queues follow: pass it to get the next page.
    pub next_token: Option<String>,
}

/// A redrive task, as ListMessageMoveTasks describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageMoveTask {
    /// `TaskHandle`, present while the task runs.
    pub task_handle: Option<String>,
    /// `RUNNING`, `COMPLETED`, `CANCELLING`, `CANCELLED` or `FAILED`.
    pub status: String,
    /// `SourceArn`: the dead-letter queue.
    pub source_arn: String,
    /// `DestinationArn`; `None` sends each message back to the queue it came from.
    pub destination_arn: Option<String>,
    /// `MaxNumberOfMessagesPerSecond`.
    pub max_number_of_messages_per_second: Option<u32>,
    /// `ApproximateNumberOfMessagesMoved`.
    pub approximate_number_of_messages_moved: u64,
    /// `ApproximateNumberOfMessagesToMove`, counted at the start.
    pub approximate_number_of_messages_to_move: u64,
    /// `FailureReason`, when it failed.
    pub failure_reason: Option<String>,
    /// `StartedTimestamp`, milliseconds since the epoch.
    pub started_timestamp: u64,
}

/// SQS's operations on queues and messages.
///
/// Queues are named by URL (as SQS returns them) or by bare name.
#[async_trait]
pub trait Queues: Send + Sync + Debug + 'static {
    /// CreateQueue: idempotent when the attributes given match the existing queue's.
    async fn create_queue(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<String>;
    /// GetQueueUrl.
    async fn get_queue_url(&self, name: &str) -> Result<String>;
    /// ListQueues without MaxResults: URLs of the queues whose names start with `prefix`, in
    /// name order, at most 1,000, as SQS answers it.
    async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<String>>;
    /// ListQueues with MaxResults (1-1,000) and NextToken: one page, and a token for the next
    /// while more queues follow.
    async fn list_queues_page(
        &self,
        prefix: Option<&str>,
        max_results: u32,
        next_token: Option<&str>,
    ) -> Result<QueuePage>;
    /// DeleteQueue, with its messages.
    async fn delete_queue(&self, queue: &str) -> Result<()>;
    /// GetQueueAttributes: `All` or named attributes, counters included.
    async fn get_queue_attributes(
        &self,
        queue: &str,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>>;
    /// SetQueueAttributes.
    async fn set_queue_attributes(
        &self,
        queue: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<()>;
    /// TagQueue.
    async fn tag_queue(&self, queue: &str, tags: BTreeMap<String, String>) -> Result<()>;
    /// UntagQueue.
    async fn untag_queue(&self, queue: &str, keys: &[&str]) -> Result<()>;
    /// ListQueueTags.
    async fn list_queue_tags(&self, queue: &str) -> Result<BTreeMap<String, String>>;
    /// ListDeadLetterSourceQueues: the URLs of the queues whose RedrivePolicy names `queue` as
    /// their dead-letter queue, in name order, at most 1,000.
    async fn list_dead_letter_source_queues(&self, queue: &str) -> Result<Vec<String>>;
    /// PurgeQueue: deletes every message; once per 60 seconds.
    async fn purge_queue(&self, queue: &str) -> Result<()>;
    /// SendMessage.
    async fn send_message(&self, queue: &str, message: SendMessage) -> Result<SendMessageResult>;
    /// SendMessageBatch: up to 10 entries, each succeeding or failing on its own.
    async fn send_message_batch(
        &self,
        queue: &str,
        entries: Vec<SendMessageBatchEntry>,
    ) -> Result<SendMessageBatchResult>;
    /// ReceiveMessage.
    ///
    /// # Cancel safety
    /// Messages are taken in one transaction that commits before the future completes; if the
    /// future is dropped after that commit, the messages taken stay hidden for their visibility
    /// timeout and then return to the queue, as with a consumer that crashed. Dropping it while
    /// it waits (long polling) takes nothing.
    async fn receive_message(
        &self,
        queue: &str,
        request: ReceiveMessage,
    ) -> Result<Vec<ReceivedMessage>>;
    /// DeleteMessage.
    async fn delete_message(&self, queue: &str, receipt_handle: &str) -> Result<()>;
    /// ChangeMessageVisibility: hides the message for `timeout` seconds from now.
    async fn change_message_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: u32,
    ) -> Result<()>;
    /// DeleteMessageBatch: entries are (id, receipt handle); each succeeds or fails on its own.
    async fn delete_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String)>,
    ) -> Result<BatchResult>;
    /// ChangeMessageVisibilityBatch.
    async fn change_message_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<ChangeVisibilityEntry>,
    ) -> Result<BatchResult>;
    /// StartMessageMoveTask: moves a dead-letter queue's messages back to the queues they
    /// came from, or to `destination_arn`, at most `max_per_second` a second. Returns the task
    /// handle. The task runs in the background of this process.
    async fn start_message_move_task(
        &self,
        source_arn: &str,
        destination_arn: Option<&str>,
        max_per_second: Option<u32>,
    ) -> Result<String>;
    /// ListMessageMoveTasks: the most recent tasks of a source, newest first, up to
    /// `max_results` (1-10, default 1).
    async fn list_message_move_tasks(
        &self,
        source_arn: &str,
        max_results: Option<u32>,
    ) -> Result<Vec<MessageMoveTask>>;
    /// CancelMessageMoveTask: stops a running task; returns how many messages it moved.
    async fn cancel_message_move_task(&self, task_handle: &str) -> Result<u64>;
}
