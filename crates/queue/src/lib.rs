//! cloudlet-queue: SQS semantics as a library, over cloudlet's storage and clock.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_queue::{QueueService, Queues, ReceiveMessage, SendMessage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_queue::Error> {
//! let clock = ManualClock::default();
//! let sqs = QueueService::new(Store::memory(), clock.shared());
//! let url = sqs.create_queue("orders", BTreeMap::new(), BTreeMap::new()).await?;
//! sqs.send_message(&url, SendMessage::new("order 1")).await?;
//!
//! let received = sqs.receive_message(&url, ReceiveMessage::max(10)).await?;
//! assert_eq!(received[0].body, "order 1");
//! // Not deleted: after the 30-second visibility timeout it is delivered again.
//! clock.advance(std::time::Duration::from_secs(30));
//! let again = sqs.receive_message(&url, ReceiveMessage::max(10)).await?;
//! sqs.delete_message(&url, &again[0].receipt_handle).await?;
//! # Ok(()) }
//! ```
//!
//! # Status against SQS
//!
//! | feature | status |
//! |---|---|
//! | queue names, attributes with SQS's defaults and ranges, create (idempotent), URL, list, delete, tags, purge (60 s rule) | yes |
//! | send, send batch (per-entry results), receive (1-10, visibility timeout, long polling woken by sends and by the clock), delete, change visibility (12-hour cap) | yes |
//! | per-message and queue delays, retention expiry, counters, MD5 digests, system attributes | yes |
//! | a stale receipt handle: delete accepted, nothing deleted (standard queues) | yes |
//! | delete and change-visibility batches; dead-letter queues (`RedrivePolicy`: a message received `maxReceiveCount` times moves on the next receive); `QueueSink` | yes |
//! | FIFO queues: group id required, strict order within a group, an in-flight message holds back only its group, consecutive messages of a group in one receive, deduplication ids (explicit or SHA-256 of the body) for five minutes past deletion, scope queue or message group, sequence numbers, expired receipt handles refused, `ReceiveRequestAttemptId` | yes |
//! | redrive: message-move tasks back to the source queues or to a destination, rate-limited on the clock, listed and cancelled; kept in the store, so a running task goes on in the next service over the same store | yes |
//! | fair queues: a standard queue whose messages carry group ids serves quiet groups (smaller backlogs, and ungrouped messages) before a noisy one, looking at up to 1,000 due messages per receive; nothing is dropped | yes |
//! | message bodies checked for the characters SQS allows (`InvalidMessageContents`); a FIFO queue's `DelaySeconds` change applies to the messages already waiting (retroactive, as SQS documents; not on standard queues) | yes |
//! | the cap on in-flight messages (120,000, settable for tests): `OverLimit` for a short-polling receive from a standard queue, no messages for other receives | yes |
//!
//! # Deliberate divergences
//!
//! - Message ids are UUIDv7 (time-ordered) where SQS issues random ones; both are opaque.
//! - Receipt handles are 48 hex characters naming the message and its receive; SQS's are longer
//!   opaque strings. Treat both as opaque.
//! - `SenderId` is a constant; there are no IAM principals.
//! - Queue URLs and ARNs use the region and account given to
//!   [`QueueService::with_account`] (`us-east-1`, `000000000000` by default).
//! - `Policy` and `KmsMasterKeyId` are stored and returned, not enforced: nothing is encrypted.
//! - Finished message-move tasks stay listed for as long as the store keeps them. A task runs
//!   only while a service over its store is open, and resumes when one next writes.
//! - Counters are exact, where SQS's are approximate.

mod api;
pub mod attributes;
mod error;
pub mod md5;
pub mod names;
mod receive;
mod record;
mod redrive;
mod send;
mod service;

pub use api::{
    BatchResult, BatchResultErrorEntry, ChangeVisibilityEntry, MessageMoveTask, QueuePage, Queues,
    ReceiveMessage, ReceivedMessage, SendMessage, SendMessageBatchEntry, SendMessageBatchResult,
    SendMessageResult,
};
pub use attributes::{DeduplicationScope, FifoThroughputLimit, QueueAttributes, RedrivePolicy};
pub use error::{Error, Result};
pub use service::{IN_FLIGHT_LIMIT, QueueService, QueueSink};
