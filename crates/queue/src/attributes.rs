//! Queue attributes: SQS's names, defaults and ranges.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Error, Result};

/// The 12-hour cap on visibility timeouts, and on a message's total time in flight.
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
/// The largest message a queue can be set to accept: 1 MiB.
pub const MAX_MESSAGE_SIZE: u32 = 1_048_576;

/// Where the deduplication window applies on a FIFO queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DeduplicationScope {
    /// Across the whole queue.
    #[default]
    Queue,
    /// Within each message group.
    MessageGroup,
}

/// How a FIFO queue's throughput quota applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum FifoThroughputLimit {
    /// One quota for the queue.
    #[default]
    PerQueue,
    /// One quota per message group (high-throughput mode).
    PerMessageGroupId,
}

/// `RedrivePolicy`: where messages go after too many receives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RedrivePolicy {
    /// The dead-letter queue's ARN.
    #[serde(rename = "deadLetterTargetArn")]
    pub dead_letter_target_arn: String,
    /// Receives after which a message moves there: 1-1,000.
    #[serde(rename = "maxReceiveCount")]
    pub max_receive_count: u32,
}

/// A queue's settable attributes, with SQS's defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct QueueAttributes {
    /// `VisibilityTimeout`, seconds: 0-43,200, default 30.
    pub visibility_timeout: u32,
    /// `DelaySeconds`: 0-900, default 0.
    pub delay_seconds: u32,
    /// `MessageRetentionPeriod`, seconds: 60-1,209,600 (14 days), default 345,600 (4 days).
    pub message_retention_period: u32,
    /// `MaximumMessageSize`, bytes: 1,024-1,048,576, default 262,144.
    pub maximum_message_size: u32,
    /// `ReceiveMessageWaitTimeSeconds`: 0-20, default 0.
    pub receive_message_wait_time_seconds: u32,
    /// `RedrivePolicy`.
    pub redrive_policy: Option<RedrivePolicy>,
    /// `RedriveAllowPolicy`, as the JSON document given.
    pub redrive_allow_policy: Option<String>,
    /// `Policy`, as the JSON document given (stored, not enforced).
    pub policy: Option<String>,
    /// `KmsMasterKeyId` (stored, not used: messages are not encrypted).
    pub kms_master_key_id: Option<String>,
    /// `KmsDataKeyReusePeriodSeconds`: 60-86,400, default 300.
    pub kms_data_key_reuse_period_seconds: u32,
    /// `SqsManagedSseEnabled`, default true.
    pub sqs_managed_sse_enabled: bool,
    /// `FifoQueue`: fixed at creation.
    pub fifo_queue: bool,
    /// `ContentBasedDeduplication` (FIFO only), default false.
    pub content_based_deduplication: bool,
    /// `DeduplicationScope` (FIFO only).
    pub deduplication_scope: DeduplicationScope,
    /// `FifoThroughputLimit` (FIFO only).
    pub fifo_throughput_limit: FifoThroughputLimit,
}

impl Default for QueueAttributes {
    fn default() -> Self {
        Self {
            visibility_timeout: 30,
            delay_seconds: 0,
            message_retention_period: 345_600,
            maximum_message_size: 262_144,
            receive_message_wait_time_seconds: 0,
            redrive_policy: None,
            redrive_allow_policy: None,
            policy: None,
            kms_master_key_id: None,
            kms_data_key_reuse_period_seconds: 300,
            sqs_managed_sse_enabled: true,
            fifo_queue: false,
            content_based_deduplication: false,
            deduplication_scope: DeduplicationScope::Queue,
            fifo_throughput_limit: FifoThroughputLimit::PerQueue,
        }
    }
}

/// Attribute names that exist only on FIFO queues.
const FIFO_ONLY: [&str; 3] = [
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

fn seconds(name: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            Error::invalid_attribute(
                name,
                format!("`{value}` is not an integer from {min} to {max}"),
            )
        })
}

fn boolean(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid_attribute(
            name,
            format!("`{value}` is not true or false"),
        )),
    }
}

fn json_object(name: &str, value: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Error::invalid_attribute(name, "is not a JSON object")),
    }
}

impl QueueAttributes {
    /// The defaults for a standard (`fifo` false) or FIFO queue.
    pub fn new(fifo: bool) -> Self {
        Self {
            fifo_queue: fifo,
            ..Self::default()
        }
    }

    /// The visibility timeout as a duration.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout.into())
    }

    /// Applies `name = value` as SetQueueAttributes or CreateQueue would. `creating` allows
    /// `FifoQueue`, which cannot change afterwards.
    ///
    /// # Errors
    /// [`Error::InvalidAttributeName`] for an unknown name (or a FIFO-only one on a standard
    /// queue), [`Error::InvalidAttributeValue`] for a value out of range.
    pub fn set(&mut self, name: &str, value: &str, creating: bool) -> Result<()> {
        if FIFO_ONLY.contains(&name) && !self.fifo_queue {
            return Err(Error::InvalidAttributeName {
                name: name.to_owned(),
            });
        }
        match name {
            "VisibilityTimeout" => {
                self.visibility_timeout = seconds(name, value, 0, MAX_VISIBILITY_TIMEOUT)?
            }
            "DelaySeconds" => self.delay_seconds = seconds(name, value, 0, 900)?,
            "MessageRetentionPeriod" => {
                self.message_retention_period = seconds(name, value, 60, 1_209_600)?
            }
            "MaximumMessageSize" => {
                self.maximum_message_size = seconds(name, value, 1_024, MAX_MESSAGE_SIZE)?
            }
            "ReceiveMessageWaitTimeSeconds" => {
                self.receive_message_wait_time_seconds = seconds(name, value, 0, 20)?
            }
            "KmsDataKeyReusePeriodSeconds" => {
                self.kms_data_key_reuse_period_seconds = seconds(name, value, 60, 86_400)?;
            }
            "SqsManagedSseEnabled" => self.sqs_managed_sse_enabled = boolean(name, value)?,
            "KmsMasterKeyId" => {
                self.kms_master_key_id = (!value.is_empty()).then(|| value.to_owned())
            }
            "Policy" => {
                self.policy = if value.is_empty() {
                    None
                } else {
                    json_object(name, value)?;
                    Some(value.to_owned())
                };
            }
            "RedrivePolicy" => self.redrive_policy = parse_redrive_policy(value)?,
            "RedriveAllowPolicy" => self.redrive_allow_policy = parse_redrive_allow_policy(value)?,
            "FifoQueue" => {
                let fifo = boolean(name, value)?;
                if fifo != self.fifo_queue || !creating {
                    return Err(Error::invalid_attribute(
                        name,
                        if creating {
                            "a FIFO queue's name must end in .fifo, and only a FIFO queue's name may"
                        } else {
                            "FifoQueue cannot be changed after the queue is created"
                        },
                    ));
                }
            }
            "ContentBasedDeduplication" => self.content_based_deduplication = boolean(name, value)?,
            "DeduplicationScope" => {
                self.deduplication_scope = match value {
                    "queue" => DeduplicationScope::Queue,
                    "messageGroup" => DeduplicationScope::MessageGroup,
                    _ => {
                        return Err(Error::invalid_attribute(
                            name,
                            format!("`{value}` is not queue or messageGroup"),
                        ));
                    }
                };
            }
            "FifoThroughputLimit" => {
                self.fifo_throughput_limit = match value {
                    "perQueue" => FifoThroughputLimit::PerQueue,
                    "perMessageGroupId" => FifoThroughputLimit::PerMessageGroupId,
                    _ => {
                        return Err(Error::invalid_attribute(
                            name,
                            format!("`{value}` is not perQueue or perMessageGroupId"),
                        ));
                    }
                };
            }
            _ => {
                return Err(Error::InvalidAttributeName {
                    name: name.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Applies every attribute of `attributes`, then checks the combination.
    ///
    /// # Errors
    /// As [`set`](Self::set); also when `perMessageGroupId` throughput is asked for without
    /// `messageGroup` deduplication scope, as SQS requires.
    pub fn apply(&mut self, attributes: &BTreeMap<String, String>, creating: bool) -> Result<()> {
        for (name, value) in attributes {
            self.set(name, value, creating)?;
        }
        if self.fifo_throughput_limit == FifoThroughputLimit::PerMessageGroupId
            && self.deduplication_scope != DeduplicationScope::MessageGroup
        {
            return Err(Error::invalid_attribute(
                "FifoThroughputLimit",
                "perMessageGroupId requires DeduplicationScope messageGroup",
            ));
        }
        Ok(())
    }

    /// The value of one attribute as SQS returns it, or `None` when it is unset or does not
    /// exist on this kind of queue.
    pub fn get(&self, name: &str) -> Option<String> {
        if FIFO_ONLY.contains(&name) && !self.fifo_queue {
            return None;
        }
        Some(match name {
            "VisibilityTimeout" => self.visibility_timeout.to_string(),
            "DelaySeconds" => self.delay_seconds.to_string(),
            "MessageRetentionPeriod" => self.message_retention_period.to_string(),
            "MaximumMessageSize" => self.maximum_message_size.to_string(),
            "ReceiveMessageWaitTimeSeconds" => self.receive_message_wait_time_seconds.to_string(),
            "KmsDataKeyReusePeriodSeconds" if self.kms_master_key_id.is_some() => {
                self.kms_data_key_reuse_period_seconds.to_string()
            }
            "SqsManagedSseEnabled" => self.sqs_managed_sse_enabled.to_string(),
            "KmsMasterKeyId" => self.kms_master_key_id.clone()?,
            "Policy" => self.policy.clone()?,
            "RedrivePolicy" => serde_json::to_string(self.redrive_policy.as_ref()?).ok()?,
            "RedriveAllowPolicy" => self.redrive_allow_policy.clone()?,
            "FifoQueue" if self.fifo_queue => "true".to_owned(),
            "ContentBasedDeduplication" => self.content_based_deduplication.to_string(),
            "DeduplicationScope" => match self.deduplication_scope {
                DeduplicationScope::Queue => "queue",
                DeduplicationScope::MessageGroup => "messageGroup",
            }
            .to_owned(),
            "FifoThroughputLimit" => match self.fifo_throughput_limit {
                FifoThroughputLimit::PerQueue => "perQueue",
                FifoThroughputLimit::PerMessageGroupId => "perMessageGroupId",
            }
            .to_owned(),
            _ => return None,
        })
    }

    /// Every settable attribute with a value, by name.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        SETTABLE
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), self.get(name)?)))
            .collect()
    }
}

/// The attributes `set` understands, in SQS's documentation order.
pub const SETTABLE: [&str; 15] = [
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

fn parse_redrive_policy(value: &str) -> Result<Option<RedrivePolicy>> {
    const NAME: &str = "RedrivePolicy";
    if value.is_empty() {
        return Ok(None);
    }
    let map = json_object(NAME, value)?;
    let arn = map
        .get("deadLetterTargetArn")
        .and_then(serde_json::Value::as_str)
        .filter(|arn| arn.starts_with("arn:"))
        .ok_or_else(|| Error::invalid_attribute(NAME, "deadLetterTargetArn must be a queue ARN"))?;
    // SQS accepts the count as a number or a numeric string.
    let count = match map.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| (1..=1000).contains(n))
    .ok_or_else(|| {
        Error::invalid_attribute(NAME, "maxReceiveCount must be an integer from 1 to 1000")
    })?;
    if let Some(extra) = map
        .keys()
        .find(|k| *k != "deadLetterTargetArn" && *k != "maxReceiveCount")
    {
        return Err(Error::invalid_attribute(
            NAME,
            format!("unknown field `{extra}`"),
        ));
    }
    Ok(Some(RedrivePolicy {
        dead_letter_target_arn: arn.to_owned(),
        max_receive_count: count as u32,
    }))
}

fn parse_redrive_allow_policy(value: &str) -> Result<Option<String>> {
    const NAME: &str = "RedriveAllowPolicy";
    if value.is_empty() {
        return Ok(None);
    }
    let map = json_object(NAME, value)?;
    let permission = map
        .get("redrivePermission")
        .and_then(serde_json::Value::as_str);
    let sources = map
        .get("sourceQueueArns")
        .and_then(serde_json::Value::as_array);
    match (permission, sources) {
        (Some("allowAll" | "denyAll"), None) => {}
        (Some("byQueue"), Some(arns))
            if (1..=10).contains(&arns.len())
                && arns
                    .iter()
                    .all(|a| a.as_str().is_some_and(|s| s.starts_with("arn:"))) => {}
        (Some("byQueue"), _) => {
            return Err(Error::invalid_attribute(
                NAME,
                "byQueue needs sourceQueueArns, 1 to 10 queue ARNs",
            ));
        }
        (Some("allowAll" | "denyAll"), Some(_)) => {
            return Err(Error::invalid_attribute(
                NAME,
                "sourceQueueArns is allowed only with byQueue",
            ));
        }
        _ => {
            return Err(Error::invalid_attribute(
                NAME,
                "redrivePermission must be allowAll, denyAll or byQueue",
            ));
        }
    }
    Ok(Some(value.to_owned()))
}
