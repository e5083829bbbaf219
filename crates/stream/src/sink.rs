//! A stream as a core [`Sink`]: topics, object events and outboxes deliver into it.

use async_trait::async_trait;
use cloudlet_core::{AttributeValue, DeliveryError, Message, Sink};

use crate::Streams;
use crate::error::Error;
use crate::service::StreamService;
use crate::types::PutRecordsEntry;

/// Puts each message it receives as a record of `stream`. The partition key is the message's
/// group id; else the string value of the attribute named by
/// [`with_key_attribute`](Self::with_key_attribute); else the message's deduplication id;
/// else the hex MD5 of the body, so equal messages land on the same shard.
#[derive(Debug, Clone)]
pub struct StreamSink {
    service: StreamService,
    stream: String,
    key_attribute: Option<String>,
}

impl StreamSink {
    /// The sink putting into `stream`.
    pub fn new(service: StreamService, stream: impl Into<String>) -> Self {
        Self {
            service,
            stream: stream.into(),
            key_attribute: None,
        }
    }

    /// Takes the partition key from this message attribute when the message has no group id.
    #[must_use]
    pub fn with_key_attribute(mut self, name: impl Into<String>) -> Self {
        self.key_attribute = Some(name.into());
        self
    }

    fn partition_key(&self, message: &Message) -> String {
        if let Some(group) = &message.group_id {
            return group.clone();
        }
        if let Some(name) = &self.key_attribute
            && let Some(attribute) = message.attributes.get(name)
            && let AttributeValue::String(value) | AttributeValue::Number(value) = &attribute.value
        {
            return value.clone();
        }
        if let Some(dedup) = &message.dedup_id {
            return dedup.clone();
        }
        use md5::{Digest, Md5};
        Md5::digest(&message.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[async_trait]
impl Sink for StreamSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        let key = self.partition_key(&message);
        match self
            .service
            .put_record(&self.stream, PutRecordsEntry::new(key, message.body), None)
            .await
        {
            Ok(_) => Ok(()),
            // A message that can never be put (too large, or a key out of bounds) or a stream
            // that is gone: retrying cannot help.
            Err(
                e @ (Error::InvalidArgument { .. }
                | Error::Validation { .. }
                | Error::ResourceNotFound { .. }),
            ) => Err(DeliveryError::rejected(e.to_string())),
            Err(e) => Err(DeliveryError::unavailable(e.to_string())),
        }
    }
}
