//! [`TopicService`]: topics, subscriptions and publishing, over a [`Store`] and a clock.
//!
//! A publish is one transaction: the topic's subscriptions are matched (through the topic's
//! [`PolicySet`]) and the message each matching subscription must receive is pushed onto that
//! subscription's outbox. Each subscription's outbox is delivered by its own background task to
//! the [`Sink`] its endpoint names, with retries on the clock, so one failing subscriber never
//! delays another, and an acknowledged publish reaches every matching subscriber at least
//! once, across crashes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::outbox::{Outbox, OutboxPolicy};
use cloudlet_core::{
    BackgroundTask, Direction, Durability, IdGenerator, Message, MessageAttribute, ReadView,
    SharedClock, Sink, Store,
};
use serde::{Deserialize, Serialize};

use crate::delivery::{HttpPolicy, RetryPolicy};
use crate::envelope::{Notification, envelope};
use crate::filter::{FilterPolicy, FilterPolicyScope, PolicySet};
use crate::{Error, Result};

const KS_TOPICS: &str = "pubsub.topics";
const KS_SUBSCRIPTIONS: &str = "pubsub.subscriptions";
const KS_META: &str = "pubsub.meta";
/// Subscriptions removed whose queued messages are still to be deleted (id → empty).
const KS_REMOVED: &str = "pubsub.removed";
/// Ids of live topics: a publish checks its topic still exists without decoding it.
const KS_LIVE: &str = "pubsub.live";
/// FIFO topics: deduplication ids, by (topic id, scope, id).
const KS_DEDUP: &str = "pubsub.dedup";
/// The same records by (expiry, key), so expired ones are found and removed.
const KS_DEDUP_EXPIRY: &str = "pubsub.dedup_expiry";
/// How many expired deduplication records a publish removes, at most.
const DEDUP_PURGE: usize = 16;
/// How long a FIFO topic remembers a deduplication id.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// A remembered deduplication id.
#[derive(Debug, Serialize, Deserialize)]
struct DedupRecord {
    expires: cloudlet_core::Timestamp,
    message_id: String,
    sequence_number: String,
}

/// The most entries of a PublishBatch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The most tags on a topic.
pub const MAX_TAGS: usize = 50;

/// What PublishBatch returns: the entries published and the ones that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishBatchResult {
    /// Entry id and what its publish returned.
    pub successful: Vec<(String, PublishResult)>,
    /// The entries that failed.
    pub failed: Vec<BatchResultErrorEntry>,
}

/// One failed entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResultErrorEntry {
    /// The entry's id.
    pub id: String,
    /// The error's name.
    pub code: String,
    /// Its message.
    pub message: String,
    /// True when the request was at fault.
    pub sender_fault: bool,
}

/// What a publish returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResult {
    /// The message's id (a duplicate on a FIFO topic gets the original's).
    pub message_id: String,
    /// FIFO topics: the message's sequence number in the topic.
    pub sequence_number: Option<String>,
}

/// A sink found by name in the service's registry when a message is delivered.
struct NamedSink {
    sinks: Arc<Mutex<HashMap<String, Arc<dyn Sink>>>>,
    name: String,
}

impl fmt::Debug for NamedSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSink")
            .field("name", &self.name)
            .finish()
    }
}

#[async_trait::async_trait]
impl Sink for NamedSink {
    async fn deliver(
        &self,
        message: Message,
    ) -> std::result::Result<(), cloudlet_core::DeliveryError> {
        let sink = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.name)
            .cloned();
        match sink {
            Some(sink) => sink.deliver(message).await,
            None => Err(cloudlet_core::DeliveryError::unavailable(format!(
                "no sink is registered as {}",
                self.name
            ))),
        }
    }
}

/// A topic as a core [`Sink`]; see [`TopicService::sink`].
#[derive(Debug, Clone)]
pub struct TopicSink {
    service: TopicService,
    topic_arn: String,
}

#[async_trait::async_trait]
impl Sink for TopicSink {
    async fn deliver(
        &self,
        message: Message,
    ) -> std::result::Result<(), cloudlet_core::DeliveryError> {
        let Ok(text) = String::from_utf8(message.body.to_vec()) else {
            return Err(cloudlet_core::DeliveryError::rejected(
                "a topic takes text messages",
            ));
        };
        let publish = Publish {
            message: text,
            attributes: message.attributes,
            group_id: message.group_id,
            dedup_id: message.dedup_id,
            ..Publish::default()
        };
        match self.service.publish(&self.topic_arn, publish).await {
            Ok(_) => Ok(()),
            Err(Error::Storage(error)) => {
                Err(cloudlet_core::DeliveryError::unavailable(error.to_string()))
            }
            Err(other) => Err(cloudlet_core::DeliveryError::rejected(other.to_string())),
        }
    }
}

/// The largest message by default, body and attributes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// The largest message size a service can be configured for: 1 MiB.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 1024 * 1024;
/// The most message attributes.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The longest subject.
pub const MAX_SUBJECT_LENGTH: usize = 100;

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TopicRecord {
    id: u64,
    name: String,
    attributes: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl TopicRecord {
    fn fifo(&self) -> bool {
        self.attributes
            .get("FifoTopic")
            .is_some_and(|v| v == "true")
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SubscriptionRecord {
    id: u64,
    topic: String,
    /// Delivered strictly in order (a FIFO topic's subscription).
    #[serde(default)]
    ordered: bool,
    /// False for an HTTP subscription until its endpoint confirms it.
    #[serde(default = "confirmed_by_default")]
    confirmed: bool,
    /// The confirmation token sent to an HTTP endpoint.
    #[serde(default)]
    token: Option<String>,
    protocol: String,
    endpoint: String,
    attributes: BTreeMap<String, String>,
}

fn confirmed_by_default() -> bool {
    true
}

/// A subscription as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its ARN.
    pub subscription_arn: String,
    /// The topic's ARN.
    pub topic_arn: String,
    /// `sink` (a sink registered with [`TopicService::register_sink`]), `http` or `https`.
    pub protocol: String,
    /// The sink's name, or the endpoint's URL.
    pub endpoint: String,
}

/// A Publish request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// The message.
    pub message: String,
    /// A subject (up to 100 printable ASCII characters), for the envelope.
    pub subject: Option<String>,
    /// Message attributes (up to 10).
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// `json`: `message` is a JSON object with a `default` message and one per protocol.
    pub message_structure: Option<String>,
    /// FIFO topics: the message group.
    pub group_id: Option<String>,
    /// FIFO topics: the deduplication id (or content-based deduplication).
    pub dedup_id: Option<String>,
}

impl Publish {
    /// A message with no subject or attributes.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// With a message attribute.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, attribute: MessageAttribute) -> Self {
        self.attributes.insert(name.into(), attribute);
        self
    }

    /// With a subject.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// With a message group (FIFO topics).
    #[must_use]
    pub fn with_group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }
}

/// Topics and their compiled subscriptions, cached; `generation` keeps stale loads out.
#[derive(Default)]
struct Cache {
    generation: u64,
    compiled: HashMap<u64, Arc<Compiled>>,
    topics: HashMap<String, Arc<TopicRecord>>,
}

/// A topic's subscriptions, with their filter policies compiled into one [`PolicySet`].
struct Compiled {
    policies: PolicySet<u64>,
    subscriptions: HashMap<u64, SubscriptionRecord>,
}

/// SNS semantics over cloudlet storage: every topic of one account and region.
#[derive(Clone)]
pub struct TopicService {
    store: Store,
    clock: SharedClock,
    ids: Arc<IdGenerator>,
    region: String,
    account: String,
    sinks: Arc<Mutex<HashMap<String, Arc<dyn Sink>>>>,
    deliveries: Arc<Mutex<HashMap<u64, BackgroundTask>>>,
    cache: Arc<RwLock<Cache>>,
    policy: OutboxPolicy,
    /// The largest message, attributes included.
    max_message_size: usize,
    /// Held while a delivery task is restarted, so two restarts never overlap.
    restarts: Arc<tokio::sync::Mutex<()>>,
    /// Set by `shutdown`: no delivery task starts after it.
    closed: Arc<AtomicBool>,
    /// Set once the deliveries of stored subscriptions have been started in this process.
    resumed: Arc<AtomicBool>,
    /// The authorities HTTPS endpoints' certificates must chain to.
    roots: crate::http::TrustedRoots,
}

impl fmt::Debug for TopicService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicService")
            .field("region", &self.region)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn corrupt(keyspace: &str, reason: impl Into<String>) -> Error {
    Error::Storage(cloudlet_core::Error::corrupt(keyspace, reason))
}

pub(crate) fn invalid(field: &'static str, reason: impl fmt::Display) -> Error {
    Error::InvalidParameter {
        field,
        message: format!("Invalid parameter: {field} Reason: {reason}"),
    }
}

fn not_found(what: &str) -> Error {
    Error::NotFound {
        message: format!("{what} does not exist"),
    }
}

/// HTTP and HTTPS subscriptions: confirmed by a handshake, delivered by POST, with a
/// delivery policy.
fn is_http(protocol: &str) -> bool {
    matches!(protocol, "http" | "https")
}

/// Non-empty, and only ASCII letters, digits, hyphens and underscores (names and batch ids).
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Topic names: 1-256 letters, digits, hyphens and underscores (`.fifo` at the end of a FIFO
/// topic's).
fn validate_topic_name(name: &str, fifo: bool) -> Result<()> {
    let base = if fifo {
        name.strip_suffix(".fifo").ok_or_else(|| {
            invalid("Name", "Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.")
        })?
    } else {
        name
    };
    let valid = name.len() <= 256 && is_word(base);
    if !valid {
        return Err(invalid(
            "Name",
            "Topic names must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.",
        ));
    }
    Ok(())
}

impl TopicService {
    /// The service over `store`, in region `us-east-1`, account `000000000000`.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            ids: Arc::new(IdGenerator::new(clock.clone())),
            store,
            clock,
            region: "us-east-1".to_owned(),
            account: "000000000000".to_owned(),
            sinks: Arc::default(),
            deliveries: Arc::default(),
            cache: Arc::default(),
            resumed: Arc::default(),
            roots: crate::http::TrustedRoots::default(),
            // SNS's policy for managed endpoints: every sink is one.
            policy: OutboxPolicy::default()
                .with_schedule(|failed| RetryPolicy::MANAGED.delay(failed))
                .with_max_attempts(RetryPolicy::MANAGED.max_attempts()),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            restarts: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// The same service with another largest message size (attributes included), up to
    /// [`MAX_MESSAGE_SIZE_LIMIT`] (1 MiB); SNS's default is 256 KiB.
    ///
    /// # Errors
    /// `InvalidParameter` naming `MaximumMessageSize` for 0 or more than 1 MiB.
    pub fn with_max_message_size(mut self, bytes: usize) -> Result<Self> {
        if bytes == 0 || bytes > MAX_MESSAGE_SIZE_LIMIT {
            return Err(invalid(
                "MaximumMessageSize",
                format!(
                    "the maximum message size is {bytes} bytes; it must be between 1 and {MAX_MESSAGE_SIZE_LIMIT}"
                ),
            ));
        }
        self.max_message_size = bytes;
        Ok(self)
    }

    /// The same service with another delivery policy for every sink subscription (HTTP
    /// subscriptions follow their `DeliveryPolicy`).
    #[must_use]
    pub fn with_delivery_policy(mut self, policy: OutboxPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Trusts the certificate authorities in `pem` (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks) for HTTPS endpoints, besides the Mozilla roots every service trusts: for an
    /// endpoint whose certificate a private authority issued, such as a test server's.
    /// A later call replaces the authorities an earlier one gave. Subscriptions whose
    /// deliveries are already running keep the roots they started with.
    ///
    /// # Errors
    /// `InvalidParameter` naming `Certificates` when `pem` holds no certificate, or one that
    /// does not parse.
    pub fn with_trusted_certificates(mut self, pem: &[u8]) -> Result<Self> {
        self.roots = crate::http::TrustedRoots::from_pem(pem)
            .map_err(|reason| invalid("Certificates", reason))?;
        Ok(self)
    }

    fn topic_arn(&self, name: &str) -> String {
        format!("arn:aws:sns:{}:{}:{name}", self.region, self.account)
    }

    fn subscription_arn(&self, topic: &str, id: u64) -> String {
        format!("{}:{id:016x}", self.topic_arn(topic))
    }

    fn topic_name(arn: &str) -> &str {
        arn.rsplit(':').next().unwrap_or(arn)
    }

    fn load_topic(view: &impl ReadView, name: &str) -> Result<TopicRecord> {
        let raw = view
            .get(KS_TOPICS, name.as_bytes())?
            .ok_or_else(|| not_found("Topic"))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TOPICS, e.to_string()))
    }

    fn subscriptions(view: &impl ReadView, topic_id: u64) -> Result<Vec<SubscriptionRecord>> {
        view.prefix(
            KS_SUBSCRIPTIONS,
            &Tuple::new().u64(topic_id).build(),
            Direction::Forward,
        )?
        .map(|entry| {
            let (_, raw) = entry?;
            serde_json::from_slice(&raw).map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))
        })
        .collect()
    }

    fn forget(&self, topic_id: u64) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.compiled.remove(&topic_id);
    }

    fn forget_topic(&self, name: &str) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.topics.remove(name);
    }

    /// The topic called `name`, cached until it changes.
    fn topic(&self, name: &str) -> Result<Arc<TopicRecord>> {
        let generation = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(topic) = cache.topics.get(name) {
                return Ok(Arc::clone(topic));
            }
            cache.generation
        };
        let topic = Arc::new(Self::load_topic(&self.store.snapshot()?, name)?);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.topics.insert(name.to_owned(), Arc::clone(&topic));
        }
        Ok(topic)
    }

    /// The topic's subscriptions with their filter policies compiled, cached until a
    /// subscription changes.
    fn compiled(&self, topic_id: u64) -> Result<Arc<Compiled>> {
        let generation = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(compiled) = cache.compiled.get(&topic_id) {
                return Ok(Arc::clone(compiled));
            }
            cache.generation
        };
        let subscriptions: Vec<SubscriptionRecord> =
            Self::subscriptions(&self.store.snapshot()?, topic_id)?
                .into_iter()
                // An HTTP subscription receives nothing until its endpoint confirms it.
                .filter(|s| s.confirmed)
                .collect();
        let mut entries = Vec::new();
        for subscription in &subscriptions {
            entries.push((subscription.id, compile_policy(&subscription.attributes)?));
        }
        let compiled = Arc::new(Compiled {
            policies: PolicySet::from_entries(entries),
            subscriptions: subscriptions.into_iter().map(|s| (s.id, s)).collect(),
        });
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.compiled.insert(topic_id, Arc::clone(&compiled));
        }
        Ok(compiled)
    }

    /// CreateTopic: idempotent when the attributes match; returns the topic's ARN.
    ///
    /// # Errors
    /// `InvalidParameter` for a bad name or attribute, or a topic of that name with other
    /// attributes.
    pub async fn create_topic(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<String> {
        let fifo = attributes.get("FifoTopic").is_some_and(|v| v == "true");
        validate_topic_name(name, fifo)?;
        for (key, value) in &attributes {
            match key.as_str() {
                "FifoTopic" | "ContentBasedDeduplication" => {
                    if value != "true" && value != "false" {
                        return Err(invalid(
                            "Attributes",
                            format!("{key} must be true or false"),
                        ));
                    }
                }
                "DeliveryPolicy" => crate::delivery::check_topic_policy(value)?,
                "DisplayName"
                | "Policy"
                | "KmsMasterKeyId"
                | "SignatureVersion"
                | "TracingConfig"
                | "FifoThroughputScope" => {}
                other => {
                    return Err(invalid(
                        "AttributeName",
                        format!("Unknown attribute {other}"),
                    ));
                }
            }
        }
        let name = name.to_owned();
        let record = self
            .store
            .write(Durability::Durable, move |txn| {
                if let Some(raw) = txn.get(KS_TOPICS, name.as_bytes())? {
                    let existing: TopicRecord = serde_json::from_slice(&raw)
                        .map_err(|e| corrupt(KS_TOPICS, e.to_string()))?;
                    if existing.attributes != attributes {
                        return Err(invalid(
                            "Attributes",
                            "Topic already exists with different attributes",
                        ));
                    }
                    return Ok(existing);
                }
                let id = txn.next_sequence(KS_META, b"topic-id")?;
                let record = TopicRecord {
                    id,
                    name: name.clone(),
                    attributes,
                    tags: BTreeMap::new(),
                };
                let json =
                    serde_json::to_vec(&record).map_err(|e| corrupt(KS_TOPICS, e.to_string()))?;
                txn.put(KS_TOPICS, name, json);
                txn.put(KS_LIVE, Tuple::new().u64(id).build(), Bytes::new());
                Ok(record)
            })
            .await?;
        self.forget_topic(&record.name);
        Ok(self.topic_arn(&record.name))
    }

    /// DeleteTopic, with its subscriptions. Deleting a missing topic succeeds, as on SNS.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_topic(&self, topic_arn: &str) -> Result<()> {
        let name = Self::topic_name(topic_arn).to_owned();
        let removed = self
            .store
            .write(Durability::Durable, move |txn| {
                let Ok(topic) = Self::load_topic(txn, &name) else {
                    return Ok(Vec::new());
                };
                let subscriptions = Self::subscriptions(txn, topic.id)?;
                for subscription in &subscriptions {
                    txn.delete(
                        KS_SUBSCRIPTIONS,
                        Tuple::new().u64(topic.id).u64(subscription.id).build(),
                    );
                    txn.put(
                        KS_REMOVED,
                        Tuple::new().u64(subscription.id).build(),
                        Bytes::new(),
                    );
                }
                txn.delete(KS_TOPICS, name);
                txn.delete(KS_LIVE, Tuple::new().u64(topic.id).build());
                Ok::<_, Error>(
                    subscriptions
                        .into_iter()
                        .map(|s| (topic.id, s.id))
                        .collect(),
                )
            })
            .await?;
        self.forget_topic(Self::topic_name(topic_arn));
        for &(topic_id, subscription) in &removed {
            self.forget(topic_id);
            self.stop_delivery(subscription);
        }
        for (_, subscription) in removed {
            self.drop_queued_or_log(subscription).await;
        }
        Ok(())
    }

    /// [`drop_queued`](Self::drop_queued) after a removal has committed: a failure is logged,
    /// not returned (the removal happened; the marker has the next `resume` finish it).
    async fn drop_queued_or_log(&self, subscription: u64) {
        if let Err(e) = self.drop_queued(subscription).await {
            tracing::warn!(subscription, error = %e, "could not yet delete a removed subscription's queued messages");
        }
    }

    /// Deletes what was queued for a removed subscription, then its removal marker (a crash
    /// in between is finished by the next `resume`).
    async fn drop_queued(&self, subscription: u64) -> Result<()> {
        Self::outbox(subscription).clear(&self.store).await?;
        self.store
            .write(Durability::Durable, move |txn| {
                txn.delete(KS_REMOVED, Tuple::new().u64(subscription).build());
                Ok::<_, Error>(())
            })
            .await
    }

    /// ListTopics: every topic's ARN, by name.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list_topics(&self) -> Result<Vec<String>> {
        self.store
            .snapshot()?
            .prefix(KS_TOPICS, b"", Direction::Forward)?
            .map(|entry| {
                let (name, _) = entry?;
                Ok(self.topic_arn(&String::from_utf8_lossy(&name)))
            })
            .collect()
    }

    /// GetTopicAttributes: the attributes set, plus `TopicArn` and the subscription counts.
    ///
    /// # Errors
    /// `NotFound` for a missing topic.
    pub fn get_topic_attributes(&self, topic_arn: &str) -> Result<BTreeMap<String, String>> {
        let snapshot = self.store.snapshot()?;
        let topic = Self::load_topic(&snapshot, Self::topic_name(topic_arn))?;
        let count = Self::subscriptions(&snapshot, topic.id)?.len();
        let mut attributes = topic.attributes.clone();
        attributes.insert("TopicArn".to_owned(), self.topic_arn(&topic.name));
        attributes.insert("SubscriptionsConfirmed".to_owned(), count.to_string());
        attributes.insert("SubscriptionsPending".to_owned(), "0".to_owned());
        attributes.insert("SubscriptionsDeleted".to_owned(), "0".to_owned());
        attributes.entry("DisplayName".to_owned()).or_default();
        let http = HttpPolicy::effective(
            topic.attributes.get("DeliveryPolicy").map(String::as_str),
            None,
        )
        .unwrap_or_default();
        let mut effective = serde_json::json!({"http": {
            "defaultHealthyRetryPolicy": http.retry.to_json(),
            "disableSubscriptionOverrides": topic
                .attributes
                .get("DeliveryPolicy")
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|p| p["http"]["disableSubscriptionOverrides"].as_bool())
                .unwrap_or(false),
            "defaultRequestPolicy": {
                "headerContentType": http
                    .content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=UTF-8"),
            },
        }});
        if let Some(rate) = http.max_receives_per_second {
            effective["http"]["defaultThrottlePolicy"] =
                serde_json::json!({"maxReceivesPerSecond": rate});
        }
        attributes.insert("EffectiveDeliveryPolicy".to_owned(), effective.to_string());
        Ok(attributes)
    }

    /// Registers `sink` under `name`: subscriptions with protocol `sink` and that endpoint
    /// deliver to it (and deliveries that waited for it start).
    pub async fn register_sink(&self, name: &str, sink: Arc<dyn Sink>) -> Result<()> {
        let replaced = self
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), sink)
            .is_some();
        self.resume()?;
        for subscription in Self::all_subscriptions(&self.store.snapshot()?)? {
            if subscription.endpoint == name {
                if replaced {
                    // The old sink's task stops; the new sink takes over from the outbox.
                    self.stop_delivery(subscription.id);
                }
                self.start_delivery(&subscription);
            }
        }
        Ok(())
    }

    fn all_subscriptions(view: &impl ReadView) -> Result<Vec<SubscriptionRecord>> {
        view.prefix(KS_SUBSCRIPTIONS, b"", Direction::Forward)?
            .map(|entry| {
                let (_, raw) = entry?;
                serde_json::from_slice(&raw).map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))
            })
            .collect()
    }

    /// Starts the deliveries of the subscriptions stored by an earlier run (HTTP ones, and
    /// those whose sink is registered), once per service. Every async entry point calls it.
    fn resume(&self) -> Result<()> {
        if self.resumed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = self.store.snapshot()?;
        for subscription in Self::all_subscriptions(&snapshot)? {
            self.start_delivery(&subscription);
        }
        // Queued messages of subscriptions removed just before a crash.
        let mut removed = Vec::new();
        for entry in snapshot.prefix(KS_REMOVED, b"", Direction::Forward)? {
            let (key, _) = entry?;
            removed.push(cloudlet_core::keys::TupleReader::new(&key).u64()?);
        }
        if !removed.is_empty() {
            let service = self.clone();
            tokio::spawn(async move {
                for id in removed {
                    if let Err(e) = service.drop_queued(id).await {
                        tracing::warn!(subscription = id, error = %e, "could not delete a removed subscription's queued messages");
                    }
                }
            });
        }
        Ok(())
    }

    fn outbox(subscription: u64) -> Outbox {
        Outbox::new(format!("pubsub.subscription.{subscription}"))
    }

    fn start_delivery(&self, subscription: &SubscriptionRecord) {
        let mut policy = self.policy.clone();
        let sink: Option<Arc<dyn Sink>> = if is_http(&subscription.protocol) {
            let http = self.http_policy(subscription);
            let retry = http.retry;
            policy = policy
                .with_schedule(move |failed| retry.delay(failed))
                .with_max_attempts(retry.max_attempts());
            crate::http::Endpoint::parse(&subscription.endpoint).map(|endpoint| {
                Arc::new(crate::http::HttpSink::new(
                    endpoint,
                    self.roots.clone(),
                    http.content_type,
                    http.max_receives_per_second
                        .map(|rate| (self.clock.clone(), rate)),
                )) as Arc<dyn Sink>
            })
        } else {
            self.sinks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&subscription.endpoint)
                .cloned()
        };
        let Some(sink) = sink else {
            return;
        };
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `shutdown` drains: a task either starts before the drain
        // (and is stopped by it) or not at all.
        if deliveries.contains_key(&subscription.id) || self.closed.load(Ordering::Acquire) {
            return;
        }
        if subscription.ordered {
            // Each group in publish order: a failing message holds back the ones after it in
            // its group, and no other group.
            policy = policy.ordered();
        }
        if let Some(name) = subscription
            .attributes
            .get("RedrivePolicy")
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned))
        {
            // Looked up at each dead-lettering: the sink may be registered later.
            policy = policy.with_dead_letter(Arc::new(NamedSink {
                sinks: Arc::clone(&self.sinks),
                name,
            }));
        }
        let task = Self::outbox(subscription.id).start(
            self.store.clone(),
            self.clock.clone(),
            sink,
            policy,
        );
        deliveries.insert(subscription.id, task);
    }

    /// The delivery policy an HTTP subscription follows now (SNS's default when the stored
    /// policies cannot be read, which validation on the way in prevents).
    fn http_policy(&self, subscription: &SubscriptionRecord) -> HttpPolicy {
        let topic = self
            .store
            .snapshot()
            .ok()
            .and_then(|s| Self::load_topic(&s, &subscription.topic).ok());
        let topic_policy = topic
            .as_ref()
            .and_then(|t| t.attributes.get("DeliveryPolicy"))
            .map(String::as_str);
        HttpPolicy::effective(
            topic_policy,
            subscription
                .attributes
                .get("DeliveryPolicy")
                .map(String::as_str),
        )
        .unwrap_or_default()
    }

    /// Restarts a subscription's delivery task after its settings changed, letting it finish
    /// the delivery in progress so nothing is sent twice.
    /// It starts from the subscription as stored then: one removed meanwhile stays stopped.
    async fn restart_delivery(&self, subscription: &SubscriptionRecord) {
        let _restarting = self.restarts.lock().await;
        let task = self
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&subscription.id);
        if let Some(task) = task {
            task.shutdown().await;
        }
        let current = self.store.snapshot().ok().and_then(|snapshot| {
            let topic = Self::load_topic(&snapshot, &subscription.topic).ok()?;
            let raw = snapshot
                .get(
                    KS_SUBSCRIPTIONS,
                    &Tuple::new().u64(topic.id).u64(subscription.id).build(),
                )
                .ok()??;
            serde_json::from_slice::<SubscriptionRecord>(&raw).ok()
        });
        if let Some(current) = current {
            self.start_delivery(&current);
        }
    }

    /// Stops a subscription's delivery task without waiting for a delivery in progress (a
    /// sink that never answers must not hang the caller).
    fn stop_delivery(&self, subscription: u64) {
        let task = self
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&subscription);
        drop(task);
    }

    /// Subscribe: protocol `sink`, endpoint the name of a sink given to
    /// [`register_sink`](Self::register_sink) (before or after); or protocol `http` or
    /// `https`, endpoint a URL of that scheme, which is sent a SubscriptionConfirmation and
    /// answers `pending confirmation` until [`confirm_subscription`](Self::confirm_subscription).
    /// Attributes: `FilterPolicy`, `FilterPolicyScope`, `RawMessageDelivery`, `RedrivePolicy`
    /// (`deadLetterTargetArn` naming a registered sink), `DeliveryPolicy` (HTTP/S). Returns the
    /// subscription's ARN.
    ///
    /// # Errors
    /// `NotFound` for a missing topic; `InvalidParameter` for an unknown protocol or attribute,
    /// an endpoint whose scheme is not the protocol's, or an invalid filter policy.
    pub async fn subscribe(
        &self,
        topic_arn: &str,
        protocol: &str,
        endpoint: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<String> {
        let http = match protocol {
            "sink" => false,
            "http" | "https" => {
                let Some(parsed) = crate::http::Endpoint::parse(endpoint) else {
                    return Err(invalid(
                        "Endpoint",
                        format!("{endpoint} is not an http:// or https:// URL with a host"),
                    ));
                };
                if parsed.protocol() != protocol {
                    return Err(Error::InvalidParameter {
                        field: "Endpoint",
                        message: "Invalid parameter: Endpoint must match the specified protocol"
                            .to_owned(),
                    });
                }
                true
            }
            other => {
                return Err(invalid(
                    "Protocol",
                    format!("Invalid protocol type: {other}"),
                ));
            }
        };
        check_subscription_attributes(protocol, &attributes)?;
        self.resume()?;
        let (name, endpoint) = (Self::topic_name(topic_arn).to_owned(), endpoint.to_owned());
        let (protocol, token) = (
            protocol.to_owned(),
            http.then(|| self.ids.next_id().simple().to_string()),
        );
        let (topic_arn, now, message_id) = (
            self.topic_arn(&name),
            self.clock.now(),
            self.ids.next_id().to_string(),
        );
        let region = self.region.clone();
        let record = self
            .store
            .write(Durability::Durable, move |txn| {
                let topic = Self::load_topic(txn, &name)?;
                // Subscribing the same endpoint again returns the existing subscription.
                if let Some(existing) = Self::subscriptions(txn, topic.id)?
                    .into_iter()
                    .find(|s| s.protocol == protocol && s.endpoint == endpoint)
                {
                    // Still pending: the confirmation is sent again (it may have been lost).
                    if let (false, Some(token)) = (existing.confirmed, &existing.token) {
                        let message =
                            confirmation_message(&message_id, &topic_arn, token, &region, now);
                        Self::outbox(existing.id).push(txn, &message)?;
                    }
                    return Ok((topic.id, existing));
                }
                let id = txn.next_sequence(KS_META, b"subscription-id")?;
                let record = SubscriptionRecord {
                    id,
                    ordered: topic.fifo(),
                    confirmed: !http,
                    token: token.clone(),
                    topic: name,
                    protocol,
                    endpoint,
                    attributes,
                };
                let json = serde_json::to_vec(&record)
                    .map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))?;
                txn.put(
                    KS_SUBSCRIPTIONS,
                    Tuple::new().u64(topic.id).u64(id).build(),
                    json,
                );
                if let Some(token) = &token {
                    let confirmation =
                        crate::envelope::confirmation(&message_id, &topic_arn, token, &region, now);
                    let message = Message::new(confirmation.to_string())
                        .with_attribute(
                            "x-amz-sns-message-type",
                            MessageAttribute::string("SubscriptionConfirmation"),
                        )
                        .with_attribute(
                            "x-amz-sns-message-id",
                            MessageAttribute::string(message_id.clone()),
                        )
                        .with_attribute(
                            "x-amz-sns-topic-arn",
                            MessageAttribute::string(topic_arn.clone()),
                        );
                    Self::outbox(id).push(txn, &message)?;
                }
                Ok::<_, Error>((topic.id, record))
            })
            .await?;
        let (topic_id, record) = record;
        self.forget(topic_id);
        self.start_delivery(&record);
        if record.confirmed {
            Ok(self.subscription_arn(&record.topic, record.id))
        } else {
            Ok("pending confirmation".to_owned())
        }
    }

    /// ConfirmSubscription: the token an HTTP endpoint received in its
    /// `SubscriptionConfirmation`. From then on the subscription receives publishes. Returns the
    /// subscription's ARN.
    ///
    /// # Errors
    /// `NotFound` for a missing topic; `InvalidParameter` for a token no pending subscription
    /// of the topic was sent.
    pub async fn confirm_subscription(&self, topic_arn: &str, token: &str) -> Result<String> {
        self.resume()?;
        let (name, token) = (Self::topic_name(topic_arn).to_owned(), token.to_owned());
        let (topic_id, record) = self
            .store
            .write(Durability::Durable, move |txn| {
                let topic = Self::load_topic(txn, &name)?;
                let mut record = Self::subscriptions(txn, topic.id)?
                    .into_iter()
                    .find(|s| s.token.as_deref() == Some(token.as_str()))
                    .ok_or_else(|| invalid("Token", "Invalid token"))?;
                record.confirmed = true;
                let json = serde_json::to_vec(&record)
                    .map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))?;
                txn.put(
                    KS_SUBSCRIPTIONS,
                    Tuple::new().u64(topic.id).u64(record.id).build(),
                    json,
                );
                Ok::<_, Error>((topic.id, record))
            })
            .await?;
        self.forget(topic_id);
        Ok(self.subscription_arn(&record.topic, record.id))
    }

    fn parse_subscription_arn(arn: &str) -> Result<(String, u64)> {
        let (topic, id) = arn
            .rsplit_once(':')
            .ok_or_else(|| not_found("Subscription"))?;
        let id = u64::from_str_radix(id, 16).map_err(|_| not_found("Subscription"))?;
        Ok((Self::topic_name(topic).to_owned(), id))
    }

    /// Unsubscribe. Messages already accepted for it are not delivered, and are deleted.
    ///
    /// # Errors
    /// `NotFound` for a missing subscription.
    pub async fn unsubscribe(&self, subscription_arn: &str) -> Result<()> {
        let (topic, id) = Self::parse_subscription_arn(subscription_arn)?;
        let topic_id = self
            .store
            .write(Durability::Durable, move |txn| {
                let topic = Self::load_topic(txn, &topic)?;
                let key = Tuple::new().u64(topic.id).u64(id).build();
                if txn.get(KS_SUBSCRIPTIONS, &key)?.is_none() {
                    return Err(not_found("Subscription"));
                }
                txn.delete(KS_SUBSCRIPTIONS, key);
                txn.put(KS_REMOVED, Tuple::new().u64(id).build(), Bytes::new());
                Ok::<_, Error>(topic.id)
            })
            .await?;
        self.forget(topic_id);
        self.stop_delivery(id);
        self.drop_queued_or_log(id).await;
        Ok(())
    }

    /// ListSubscriptionsByTopic.
    ///
    /// # Errors
    /// `NotFound` for a missing topic.
    pub fn list_subscriptions_by_topic(&self, topic_arn: &str) -> Result<Vec<Subscription>> {
        let snapshot = self.store.snapshot()?;
        let topic = Self::load_topic(&snapshot, Self::topic_name(topic_arn))?;
        Ok(Self::subscriptions(&snapshot, topic.id)?
            .into_iter()
            .map(|s| Subscription {
                subscription_arn: if s.confirmed {
                    self.subscription_arn(&topic.name, s.id)
                } else {
                    "PendingConfirmation".to_owned()
                },
                topic_arn: self.topic_arn(&topic.name),
                protocol: s.protocol,
                endpoint: s.endpoint,
            })
            .collect())
    }

    /// SetSubscriptionAttributes.
    ///
    /// # Errors
    /// `NotFound`; `InvalidParameter` for an unknown attribute or an invalid filter policy.
    pub async fn set_subscription_attribute(
        &self,
        subscription_arn: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let change = BTreeMap::from([(name.to_owned(), value.to_owned())]);
        let name_changed = name.to_owned();
        let (topic, id) = Self::parse_subscription_arn(subscription_arn)?;
        let topic_id = self
            .store
            .write(Durability::Durable, move |txn| {
                let topic = Self::load_topic(txn, &topic)?;
                let key = Tuple::new().u64(topic.id).u64(id).build();
                let raw = txn
                    .get(KS_SUBSCRIPTIONS, &key)?
                    .ok_or_else(|| not_found("Subscription"))?;
                let mut record: SubscriptionRecord = serde_json::from_slice(&raw)
                    .map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))?;
                // The changed attribute is checked, and the filter policy it may complete; what
                // was stored before is not checked again.
                check_subscription_attributes(&record.protocol, &change)?;
                record.attributes.extend(change);
                compile_policy(&record.attributes)?;
                let json = serde_json::to_vec(&record)
                    .map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))?;
                txn.put(KS_SUBSCRIPTIONS, key, json);
                Ok::<_, Error>((topic.id, record))
            })
            .await?;
        let (topic_id, record) = topic_id;
        self.forget(topic_id);
        if name_changed == "RedrivePolicy" || name_changed == "DeliveryPolicy" {
            // The delivery task holds the dead-letter and retry settings.
            self.restart_delivery(&record).await;
        }
        Ok(())
    }

    /// Publish: matches the topic's subscriptions and queues the message for each matching
    /// one, durably, in one transaction. On a FIFO topic a message with a deduplication id
    /// (explicit, or the SHA-256 of the message with `ContentBasedDeduplication`) seen in the
    /// last five minutes is accepted and not sent again; subscriptions receive messages in
    /// publish order with their group and deduplication ids.
    ///
    /// # Errors
    /// `NotFound`; `InvalidParameter` for an empty or oversized message, a bad subject, too
    /// many attributes, a `json` structure without `default`, or a missing group id on a FIFO
    /// topic.
    ///
    /// # Cancel safety
    /// Not cancel safe: once called, the publish may commit even if the future is dropped.
    pub async fn publish(&self, topic_arn: &str, publish: Publish) -> Result<PublishResult> {
        check_publish(&publish, self.max_message_size)?;
        self.resume()?;
        let name = Self::topic_name(topic_arn).to_owned();
        let topic = self.topic(&name)?;
        let dedup = check_fifo(&topic, &publish)?;
        // FIFO subscribers (a FIFO queue) get the deduplication id, computed or explicit.
        let mut publish = publish;
        if let Some((_, id)) = &dedup {
            publish.dedup_id = Some(id.clone());
        }
        let compiled = self.compiled(topic.id)?;
        let matching = compiled
            .policies
            .matching(&publish.message, &publish.attributes);
        let message_id = self.ids.next_id().to_string();
        let now = self.clock.now();
        let topic_arn = self.topic_arn(&name);
        self.store
            .write(Durability::Durable, move |txn| {
                // Deleted (or deleted and re-created) since it was looked up: not this topic.
                if txn
                    .get(KS_LIVE, &Tuple::new().u64(topic.id).build())?
                    .is_none()
                {
                    return Err(not_found("Topic"));
                }
                let mut sequence_number = None;
                if let Some((key, _)) = &dedup {
                    if let Some(raw) = txn.get(KS_DEDUP, key)? {
                        let record: DedupRecord = serde_json::from_slice(&raw)
                            .map_err(|e| corrupt(KS_DEDUP, e.to_string()))?;
                        if record.expires > now {
                            // A duplicate within five minutes: accepted, not sent again.
                            return Ok(PublishResult {
                                message_id: record.message_id,
                                sequence_number: Some(record.sequence_number),
                            });
                        }
                    }
                    let seq =
                        txn.next_sequence(KS_META, &Tuple::new().str("seq").u64(topic.id).build())?;
                    let sequence = format!("{seq:020}");
                    let record = DedupRecord {
                        expires: now.saturating_add(DEDUP_WINDOW),
                        message_id: message_id.clone(),
                        sequence_number: sequence.clone(),
                    };
                    let json = serde_json::to_vec(&record)
                        .map_err(|e| corrupt(KS_DEDUP, e.to_string()))?;
                    txn.put(KS_DEDUP, key.clone(), json);
                    let expiry = Tuple::new()
                        .u64(record.expires.as_nanos())
                        .bytes(key)
                        .build();
                    txn.put(KS_DEDUP_EXPIRY, expiry, Bytes::new());
                    purge_dedup(txn, now)?;
                    sequence_number = Some(sequence);
                }
                for id in matching {
                    // Unsubscribed since the policies were compiled: skip.
                    let key = Tuple::new().u64(topic.id).u64(id).build();
                    let (Some(subscription), Some(_)) = (
                        compiled.subscriptions.get(&id),
                        txn.get(KS_SUBSCRIPTIONS, &key)?,
                    ) else {
                        continue;
                    };
                    let message = delivery_message(
                        &publish,
                        subscription,
                        &Notification {
                            message_id: &message_id,
                            topic_arn: &topic_arn,
                            subscription_arn: &format!("{topic_arn}:{id:016x}"),
                            subject: publish.subject.as_deref(),
                            message: &publish.message,
                            timestamp: now,
                            attributes: &publish.attributes,
                            sequence_number: sequence_number.as_deref(),
                        },
                    )?;
                    Self::outbox(id).push(txn, &message)?;
                }
                Ok::<_, Error>(PublishResult {
                    message_id,
                    sequence_number,
                })
            })
            .await
    }

    /// PublishBatch: up to 10 entries, each with an id (1-80 letters, digits, `-`, `_`),
    /// published one by one; each entry succeeds or fails on its own.
    ///
    /// # Errors
    /// `EmptyBatchRequest`, `TooManyEntriesInBatchRequest`, `BatchEntryIdsNotDistinct`,
    /// `InvalidBatchEntryId` (as `InvalidParameter` naming them), `BatchRequestTooLong` (over
    /// 256 KiB in all); nothing is published then.
    pub async fn publish_batch(
        &self,
        topic_arn: &str,
        entries: Vec<(String, Publish)>,
    ) -> Result<PublishBatchResult> {
        if entries.is_empty() {
            return Err(invalid(
                "PublishBatchRequestEntries",
                "EmptyBatchRequest: The batch request doesn't contain any entries",
            ));
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(invalid(
                "PublishBatchRequestEntries",
                format!(
                    "TooManyEntriesInBatchRequest: The batch request contains more entries than permissible ({} > {MAX_BATCH_ENTRIES})",
                    entries.len()
                ),
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut total = 0;
        for (id, publish) in &entries {
            let valid = id.len() <= 80 && is_word(id);
            if !valid {
                return Err(invalid(
                    "Id",
                    format!(
                        "InvalidBatchEntryId: The Id of a batch entry in a batch request doesn't abide by the specification: {id}"
                    ),
                ));
            }
            if !ids.insert(id.as_str()) {
                return Err(invalid(
                    "Id",
                    format!(
                        "BatchEntryIdsNotDistinct: Two or more batch entries in the request have the same Id: {id}"
                    ),
                ));
            }
            total += publish.message.len();
        }
        if total > self.max_message_size {
            return Err(invalid(
                "PublishBatchRequestEntries",
                format!(
                    "BatchRequestTooLong: The length of all the messages put together is more than the limit ({total} > {} bytes)",
                    self.max_message_size
                ),
            ));
        }
        let mut result = PublishBatchResult::default();
        for (id, publish) in entries {
            match self.publish(topic_arn, publish).await {
                Ok(published) => result.successful.push((id, published)),
                Err(error @ Error::Storage(_)) => return Err(error),
                Err(error) => result.failed.push(BatchResultErrorEntry {
                    id,
                    code: error.code().to_owned(),
                    message: error.to_string(),
                    sender_fault: true,
                }),
            }
        }
        Ok(result)
    }

    /// TagResource: adds or replaces tags on a topic (at most 50; keys 1-128, values up to 256
    /// characters).
    ///
    /// # Errors
    /// `NotFound`; `InvalidParameter` past the limits (nothing changes).
    pub async fn tag_topic(&self, topic_arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        for (key, value) in &tags {
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                return Err(invalid(
                    "Tags",
                    "Tag keys must be 1-128 characters and values at most 256",
                ));
            }
        }
        self.change_topic(topic_arn, move |topic| {
            topic.tags.extend(tags);
            if topic.tags.len() > MAX_TAGS {
                return Err(invalid("Tags", format!("Could not complete request: tag quota of per resource exceeded (at most {MAX_TAGS})")));
            }
            Ok(())
        })
        .await
    }

    /// UntagResource.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn untag_topic(&self, topic_arn: &str, keys: Vec<String>) -> Result<()> {
        self.change_topic(topic_arn, move |topic| {
            for key in keys {
                topic.tags.remove(&key);
            }
            Ok(())
        })
        .await
    }

    /// ListTagsForResource.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn topic_tags(&self, topic_arn: &str) -> Result<BTreeMap<String, String>> {
        Ok(Self::load_topic(&self.store.snapshot()?, Self::topic_name(topic_arn))?.tags)
    }

    /// SetTopicAttributes: `DisplayName`, `Policy`, `DeliveryPolicy`, `KmsMasterKeyId`,
    /// `SignatureVersion`, `TracingConfig`, and (FIFO topics) `ContentBasedDeduplication`.
    ///
    /// # Errors
    /// `NotFound`; `InvalidParameter` for other attributes (`FifoTopic` cannot change).
    pub async fn set_topic_attribute(
        &self,
        topic_arn: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let delivery = name == "DeliveryPolicy";
        let (name, value) = (name.to_owned(), value.to_owned());
        self.change_topic(topic_arn, move |topic| {
            match name.as_str() {
                "DeliveryPolicy" => crate::delivery::check_topic_policy(&value)?,
                "DisplayName" | "Policy" | "KmsMasterKeyId" | "SignatureVersion"
                | "TracingConfig" => {}
                "ContentBasedDeduplication" | "FifoThroughputScope" if topic.fifo() => {}
                other => {
                    return Err(invalid(
                        "AttributeName",
                        format!("Invalid attribute name: {other}"),
                    ));
                }
            }
            topic.attributes.insert(name, value);
            Ok(())
        })
        .await?;
        if delivery {
            // HTTP subscriptions follow the topic's policy unless they have their own: their
            // tasks restart in the background (each finishes the delivery it is in first).
            let snapshot = self.store.snapshot()?;
            let subscriptions = match Self::load_topic(&snapshot, Self::topic_name(topic_arn)) {
                Ok(topic) => Self::subscriptions(&snapshot, topic.id)?,
                // Deleted meanwhile: nothing to restart.
                Err(_) => Vec::new(),
            };
            let service = self.clone();
            tokio::spawn(async move {
                for subscription in subscriptions {
                    if is_http(&subscription.protocol) {
                        service.restart_delivery(&subscription).await;
                    }
                }
            });
        }
        Ok(())
    }

    /// GetSubscriptionAttributes: what was set, plus SNS's read-only attributes
    /// (`SubscriptionArn`, `TopicArn`, `Owner`, `Protocol`, `Endpoint`, `PendingConfirmation`,
    /// `ConfirmationWasAuthenticated`, `RawMessageDelivery`, and for HTTP subscriptions the
    /// `EffectiveDeliveryPolicy` they follow).
    ///
    /// # Errors
    /// `NotFound` for a missing subscription.
    pub fn get_subscription_attributes(
        &self,
        subscription_arn: &str,
    ) -> Result<BTreeMap<String, String>> {
        let (topic, id) = Self::parse_subscription_arn(subscription_arn)?;
        let snapshot = self.store.snapshot()?;
        let topic = Self::load_topic(&snapshot, &topic)?;
        let raw = snapshot
            .get(
                KS_SUBSCRIPTIONS,
                &Tuple::new().u64(topic.id).u64(id).build(),
            )?
            .ok_or_else(|| not_found("Subscription"))?;
        let record: SubscriptionRecord =
            serde_json::from_slice(&raw).map_err(|e| corrupt(KS_SUBSCRIPTIONS, e.to_string()))?;
        let mut attributes = record.attributes.clone();
        attributes.insert(
            "SubscriptionArn".to_owned(),
            self.subscription_arn(&topic.name, record.id),
        );
        attributes.insert("TopicArn".to_owned(), self.topic_arn(&topic.name));
        attributes.insert("Owner".to_owned(), self.account.clone());
        attributes.insert("Protocol".to_owned(), record.protocol.clone());
        attributes.insert("Endpoint".to_owned(), record.endpoint.clone());
        attributes.insert(
            "PendingConfirmation".to_owned(),
            (!record.confirmed).to_string(),
        );
        attributes.insert(
            "ConfirmationWasAuthenticated".to_owned(),
            (!is_http(&record.protocol)).to_string(),
        );
        attributes
            .entry("RawMessageDelivery".to_owned())
            .or_insert_with(|| "false".to_owned());
        if record.attributes.contains_key("FilterPolicy") {
            attributes
                .entry("FilterPolicyScope".to_owned())
                .or_insert_with(|| "MessageAttributes".to_owned());
        }
        if is_http(&record.protocol) {
            attributes.insert(
                "EffectiveDeliveryPolicy".to_owned(),
                self.http_policy(&record).to_json().to_string(),
            );
        }
        Ok(attributes)
    }

    async fn change_topic(
        &self,
        topic_arn: &str,
        change: impl FnOnce(&mut TopicRecord) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let name = Self::topic_name(topic_arn).to_owned();
        self.store
            .write(Durability::Durable, move |txn| {
                let mut topic = Self::load_topic(txn, &name)?;
                change(&mut topic)?;
                let json =
                    serde_json::to_vec(&topic).map_err(|e| corrupt(KS_TOPICS, e.to_string()))?;
                txn.put(KS_TOPICS, name.clone(), json);
                Ok(name)
            })
            .await
            .map(|name| self.forget_topic(&name))
    }

    /// The topic as a core [`Sink`]: each message delivered to it is published (its body as the
    /// message, its attributes, group and deduplication ids kept).
    pub fn sink(&self, topic_arn: &str) -> TopicSink {
        TopicSink {
            service: self.clone(),
            topic_arn: topic_arn.to_owned(),
        }
    }

    /// How many messages wait for delivery to a subscription (accepted by publishes, not yet
    /// taken by its sink).
    ///
    /// # Errors
    /// `NotFound` for a malformed subscription ARN; storage errors.
    pub fn pending_deliveries(&self, subscription_arn: &str) -> Result<usize> {
        let (_, id) = Self::parse_subscription_arn(subscription_arn)?;
        Ok(Self::outbox(id).pending(&self.store.snapshot()?)?)
    }

    /// Stops every delivery task, waiting for each, including restarts still running in the
    /// background (after a change of a topic's DeliveryPolicy). Final: no delivery starts
    /// again in this service or its clones; queued messages wait in the store for a new
    /// service over it.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        // A restart in progress has taken its task out of the map; wait for it to finish,
        // after which it cannot start one again.
        let _restarting = self.restarts.lock().await;
        let tasks: Vec<BackgroundTask> = self
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in tasks {
            task.shutdown().await;
        }
    }
}

/// Checks a publish against a FIFO topic's rules; returns the deduplication key to remember
/// and the deduplication id.
fn check_fifo(topic: &TopicRecord, publish: &Publish) -> Result<Option<(Bytes, String)>> {
    if !topic.fifo() {
        // A standard topic passes a group id on (for fair queues); deduplication is FIFO's.
        if publish.dedup_id.is_some() {
            return Err(invalid(
                "MessageDeduplicationId",
                "The request includes MessageDeduplicationId parameter that is not valid for this topic type",
            ));
        }
        return Ok(None);
    }
    let Some(group) = &publish.group_id else {
        return Err(invalid(
            "MessageGroupId",
            "The MessageGroupId parameter is required for FIFO topics",
        ));
    };
    let content_based = topic
        .attributes
        .get("ContentBasedDeduplication")
        .is_some_and(|v| v == "true");
    let id = match (&publish.dedup_id, content_based) {
        (Some(id), _) => id.clone(),
        (None, true) => {
            use sha2::Digest as _;
            sha2::Sha256::digest(publish.message.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        (None, false) => {
            return Err(invalid(
                "MessageDeduplicationId",
                "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    };
    let scope = match topic
        .attributes
        .get("FifoThroughputScope")
        .map(String::as_str)
    {
        Some("MessageGroup") => group.as_str(),
        _ => "",
    };
    let key = Tuple::new().u64(topic.id).str(scope).str(&id).build();
    Ok(Some((key, id)))
}

/// Removes a few deduplication records whose five minutes have passed (each FIFO publish
/// does, so they never pile up).
fn purge_dedup(txn: &mut cloudlet_core::WriteTxn<'_>, now: cloudlet_core::Timestamp) -> Result<()> {
    let range = cloudlet_core::KeyRange {
        start: std::ops::Bound::Unbounded,
        end: std::ops::Bound::Included(Tuple::new().u64(now.as_nanos()).build()),
    };
    let expired: Vec<Bytes> = txn
        .range(KS_DEDUP_EXPIRY, &range, Direction::Forward)?
        .take(DEDUP_PURGE)
        .map(|entry| entry.map(|(key, _)| key))
        .collect::<cloudlet_core::Result<_>>()?;
    for entry in expired {
        let mut reader = cloudlet_core::keys::TupleReader::new(&entry);
        let expires = reader.u64()?;
        let key = reader.bytes()?;
        // Only if the record is still the one this entry was written for.
        let current = txn
            .get(KS_DEDUP, &key)?
            .and_then(|raw| serde_json::from_slice::<DedupRecord>(&raw).ok())
            .is_some_and(|r| r.expires.as_nanos() == expires);
        if current {
            txn.delete(KS_DEDUP, key);
        }
        txn.delete(KS_DEDUP_EXPIRY, entry);
    }
    Ok(())
}

/// The SubscriptionConfirmation POST for an HTTP endpoint.
fn confirmation_message(
    message_id: &str,
    topic_arn: &str,
    token: &str,
    region: &str,
    now: cloudlet_core::Timestamp,
) -> Message {
    let body = crate::envelope::confirmation(message_id, topic_arn, token, region, now);
    Message::new(body.to_string())
        .with_attribute(
            "x-amz-sns-message-type",
            MessageAttribute::string("SubscriptionConfirmation"),
        )
        .with_attribute("x-amz-sns-message-id", MessageAttribute::string(message_id))
        .with_attribute("x-amz-sns-topic-arn", MessageAttribute::string(topic_arn))
}

/// The subscription's filter policy, compiled.
fn compile_policy(attributes: &BTreeMap<String, String>) -> Result<Option<FilterPolicy>> {
    let Some(policy) = attributes
        .get("FilterPolicy")
        .filter(|p| !p.trim().is_empty())
    else {
        return Ok(None);
    };
    let scope = match attributes.get("FilterPolicyScope") {
        Some(scope) => scope.parse()?,
        None => FilterPolicyScope::MessageAttributes,
    };
    FilterPolicy::parse(policy, scope).map(Some)
}

fn check_subscription_attributes(
    protocol: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<()> {
    for (key, value) in attributes {
        match key.as_str() {
            "FilterPolicy" | "FilterPolicyScope" => {}
            "RawMessageDelivery" => {
                if value != "true" && value != "false" {
                    return Err(invalid(
                        "Attributes",
                        "RawMessageDelivery: Invalid value. Must be true or false.",
                    ));
                }
            }
            "DeliveryPolicy" if is_http(protocol) => {
                crate::delivery::check_subscription_policy(value)?;
            }
            "DeliveryPolicy" => {
                return Err(invalid(
                    "DeliveryPolicy",
                    "Delivery policy can only be set for HTTP/S subscriptions",
                ));
            }
            "RedrivePolicy" | "SubscriptionRoleArn" => {}
            other => {
                return Err(invalid(
                    "AttributeName",
                    format!("Unknown attribute {other}"),
                ));
            }
        }
    }
    compile_policy(attributes).map(|_| ())
}

fn check_publish(publish: &Publish, max_size: usize) -> Result<()> {
    if publish.message.is_empty() {
        return Err(invalid("Message", "Empty message"));
    }
    let size = publish.message.len()
        + publish
            .attributes
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v.data_type().len()
                    + match &v.value {
                        cloudlet_core::AttributeValue::String(s)
                        | cloudlet_core::AttributeValue::Number(s) => s.len(),
                        cloudlet_core::AttributeValue::Binary(b) => b.len(),
                        _ => 0,
                    }
            })
            .sum::<usize>();
    if size > max_size {
        return Err(invalid(
            "Message",
            format!("Message too long: {size} bytes, the maximum is {max_size}"),
        ));
    }
    if let Some(subject) = &publish.subject
        && (subject.is_empty()
            || subject.len() > MAX_SUBJECT_LENGTH
            || !subject.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return Err(invalid(
            "Subject",
            "Subject must be ASCII text that begins with a letter, number, or punctuation mark; must not include line breaks or control characters; and must be less than 100 characters long",
        ));
    }
    if publish.attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(invalid(
            "MessageAttributes",
            format!(
                "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
                publish.attributes.len()
            ),
        ));
    }
    if let Some(structure) = &publish.message_structure {
        if structure != "json" {
            return Err(invalid(
                "MessageStructure",
                "Invalid value: only json is supported",
            ));
        }
        let parsed: serde_json::Value = serde_json::from_str(&publish.message).map_err(|_| {
            invalid(
                "Message",
                "Message Structure - JSON message body failed to parse",
            )
        })?;
        if !parsed["default"].is_string() {
            return Err(invalid(
                "Message",
                "Message Structure - No default entry in JSON message body",
            ));
        }
    }
    Ok(())
}

/// The message a subscription receives: the envelope, or the raw message with its
/// attributes when `RawMessageDelivery` is on.
fn delivery_message(
    publish: &Publish,
    subscription: &SubscriptionRecord,
    notification: &Notification<'_>,
) -> Result<Message> {
    let text = match publish.message_structure.as_deref() {
        Some("json") => {
            let parsed: serde_json::Value =
                serde_json::from_str(&publish.message).map_err(|_| {
                    invalid(
                        "Message",
                        "Message Structure - JSON message body failed to parse",
                    )
                })?;
            parsed[subscription.protocol.as_str()]
                .as_str()
                .or_else(|| parsed["default"].as_str())
                .unwrap_or_default()
                .to_owned()
        }
        _ => publish.message.clone(),
    };
    let raw = subscription
        .attributes
        .get("RawMessageDelivery")
        .is_some_and(|v| v == "true");
    let http = is_http(&subscription.protocol);
    let mut message = if raw {
        let mut message = Message::new(Bytes::from(text));
        // Raw HTTP deliveries carry the body alone, as SNS's do.
        if !http {
            for (name, attribute) in &publish.attributes {
                message = message.with_attribute(name.clone(), attribute.clone());
            }
        }
        message
    } else {
        let notification = Notification {
            message: &text,
            ..notification.clone()
        };
        Message::new(envelope(&notification).to_string())
    };
    if http {
        for (header, value) in [
            ("x-amz-sns-message-type", "Notification"),
            ("x-amz-sns-message-id", notification.message_id),
            ("x-amz-sns-topic-arn", notification.topic_arn),
            ("x-amz-sns-subscription-arn", notification.subscription_arn),
            ("x-amz-sns-rawdelivery", if raw { "true" } else { "false" }),
        ] {
            message = message.with_attribute(header, MessageAttribute::string(value));
        }
    }
    if let Some(group) = &publish.group_id {
        message = message.with_group_id(group.clone());
    }
    if let Some(dedup) = &publish.dedup_id {
        message = message.with_dedup_id(dedup.clone());
    }
    Ok(message)
}
