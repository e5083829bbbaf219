//! cloudlet-pubsub: SNS semantics as a library, over cloudlet's storage and clock.
//!
//! [`TopicService`]: topics, subscriptions to any core `Sink` (registered by name), and
//! publishing: matched through each subscription's filter policy, queued durably on the
//! subscription's outbox in the publish's transaction, delivered with retries on the clock and
//! a dead-letter sink, as SNS's envelope or raw.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use cloudlet_core::{ChannelSink, ManualClock, MessageAttribute, Store};
//! use cloudlet_pubsub::{Publish, TopicService};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_pubsub::Error> {
//! let sns = TopicService::new(Store::memory(), ManualClock::default().shared());
//! let topic = sns.create_topic("orders", BTreeMap::new()).await?;
//! let (sink, mut received) = ChannelSink::new();
//! sns.register_sink("billing", Arc::new(sink)).await?;
//! let filter = BTreeMap::from([("FilterPolicy".to_owned(), r#"{"kind": ["paid"]}"#.to_owned())]);
//! sns.subscribe(&topic, "sink", "billing", filter).await?;
//! sns.publish(&topic, Publish::new("order 7").with_attribute("kind", MessageAttribute::string("paid"))).await?;
//! let envelope: serde_json::Value = serde_json::from_slice(&received.recv().await.unwrap().body).unwrap();
//! assert_eq!(envelope["Message"], "order 7");
//! sns.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Filter policies: [`FilterPolicy`], subscription filter policies in AWS's JSON syntax, validated as
//! SNS validates them and matched against message attributes or a JSON message body; and
//! [`PolicySet`], a topic's policies indexed by their exact-match keys, so publishing to 1,000
//! subscriptions does not evaluate 1,000 policies.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cloudlet_core::MessageAttribute;
//! use cloudlet_pubsub::{FilterPolicy, FilterPolicyScope};
//!
//! let policy = FilterPolicy::parse(
//!     r#"{"store": ["example_corp"], "price": [{"numeric": [">", 0, "<=", 100]}]}"#,
//!     FilterPolicyScope::MessageAttributes,
//! )?;
//! let attributes = BTreeMap::from([
//!     ("store".to_owned(), MessageAttribute::string("example_corp")),
//!     ("price".to_owned(), MessageAttribute::number("99.5")),
//! ]);
//! assert!(policy.matches_attributes(&attributes));
//! # Ok::<(), cloudlet_pubsub::Error>(())
//! ```
//!
//! # Status against SNS
//!
//! | feature | status |
//! |---|---|
//! | filter policies: exact strings, numbers, booleans and null; `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values, numbers, `prefix`), `numeric` comparisons and ranges, `exists`, `cidr`, `$or`, nested keys (MessageBody scope); validation with SNS's messages (5 keys, 150 combinations, operator shapes) | yes |
//! | matching compiled per topic ([`PolicySet`]): sub-linear in the number of exact-match policies | yes |
//! | topics (create idempotent, names, FIFO names, list, attributes, delete), subscriptions to registered sinks (filter policy and scope, RawMessageDelivery, RedrivePolicy to a dead-letter sink), publish (subject, attributes, `json` message structure, 256 KiB by default, up to 1 MiB with [`TopicService::with_max_message_size`]), the SNS envelope, GetSubscriptionAttributes | yes |
//! | durable per-subscription delivery (outbox in the publish's transaction), retries on the clock as SNS's delivery policies have them (sinks: the managed-endpoint policy, 100,015 attempts; HTTP: three retries 20 s apart, or the subscription's or topic's `DeliveryPolicy` with its four phases, backoff function, throttle and content type; see [`delivery`]), dead-letter sink, one subscriber's failures never delay another; unsubscribing deletes what was queued | yes |
//! | FIFO topics: group id required, deduplication for five minutes (explicit or content-based SHA-256; scope topic or message group), sequence numbers, each subscription receiving each group in publish order (a failing message holds back its own group only) with group and deduplication ids passed on | yes |
//! | a topic as a core `Sink` ([`TopicService::sink`]) | yes |
//! | PublishBatch (10 entries, ids, per-entry results), topic tags, SetTopicAttributes | yes |
//! | HTTP and HTTPS endpoints: the SubscriptionConfirmation handshake (`confirm_subscription`), notifications POSTed with SNS's `x-amz-sns-*` headers, raw or envelope bodies, retries on 429, 5xx, timeouts and refused connections; TLS with certificates checked against the Mozilla roots and [`TopicService::with_trusted_certificates`]; SNI; `user:password@` in the URL answered to a Basic or Digest (MD5) challenge | yes |
//! | SNS's jitter on retry waits (left out so waits are exact on a manual clock); SHA-256 Digest; masking credentials in listed endpoints | not yet |

pub mod delivery;
mod envelope;
mod error;
pub mod filter;
mod http;
mod service;

pub use envelope::iso8601;
pub use error::{Error, Result};
pub use filter::{FilterPolicy, FilterPolicyScope, PolicySet};
pub use service::{
    BatchResultErrorEntry, DEDUP_WINDOW, DEFAULT_MAX_MESSAGE_SIZE, MAX_BATCH_ENTRIES,
    MAX_MESSAGE_ATTRIBUTES, MAX_MESSAGE_SIZE_LIMIT, MAX_SUBJECT_LENGTH, MAX_TAGS, Publish,
    PublishBatchResult, PublishResult, Subscription, TopicService, TopicSink,
};
