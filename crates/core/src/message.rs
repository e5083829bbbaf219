//! [`Message`], the unit that flows between primitives, and [`Sink`], anything that accepts
//! messages: a queue, a topic, a stream, a function, a channel in a test.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::{Error, Result};

/// The value of a message attribute, typed as SQS and SNS type them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum AttributeValue {
    /// A UTF-8 string (data type `String`).
    String(String),
    /// A number, kept as the decimal text it was sent as (data type `Number`).
    Number(String),
    /// Binary data (data type `Binary`).
    Binary(Bytes),
}

/// A message attribute: a typed value and an optional custom type label, so that
/// `Number.float` is `Number` with the custom type `float`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MessageAttribute {
    /// The value.
    pub value: AttributeValue,
    /// The custom type after the dot, if any.
    pub custom_type: Option<String>,
}

impl MessageAttribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            value: AttributeValue::String(value.into()),
            custom_type: None,
        }
    }

    /// A `Number` attribute, from its decimal text.
    pub fn number(value: impl Into<String>) -> Self {
        Self {
            value: AttributeValue::Number(value.into()),
            custom_type: None,
        }
    }

    /// A `Binary` attribute.
    pub fn binary(value: impl Into<Bytes>) -> Self {
        Self {
            value: AttributeValue::Binary(value.into()),
            custom_type: None,
        }
    }

    /// The same attribute with a custom type label (`Number` + `float` = `Number.float`).
    pub fn with_custom_type(mut self, custom_type: impl Into<String>) -> Self {
        self.custom_type = Some(custom_type.into());
        self
    }

    /// The full data type as AWS spells it: `String`, `Number.float`, `Binary.gif`.
    pub fn data_type(&self) -> String {
        let base = match self.value {
            AttributeValue::String(_) => "String",
            AttributeValue::Number(_) => "Number",
            AttributeValue::Binary(_) => "Binary",
        };
        match &self.custom_type {
            Some(custom) => format!("{base}.{custom}"),
            None => base.to_owned(),
        }
    }
}

/// A message: a body, typed attributes, and the optional FIFO group and deduplication ids.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The payload.
    pub body: Bytes,
    /// Attributes by name, in name order.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// The FIFO message group.
    pub group_id: Option<String>,
    /// The FIFO deduplication id.
    pub dedup_id: Option<String>,
}

/// The version byte of [`Message::encode`]'s format.
const MESSAGE_FORMAT: u8 = 1;

impl Message {
    /// A message with `body` and nothing else.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// The same message with one more attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, attribute: MessageAttribute) -> Self {
        self.attributes.insert(name.into(), attribute);
        self
    }

    /// The same message in a FIFO group.
    pub fn with_group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// The same message with a deduplication id.
    pub fn with_dedup_id(mut self, dedup_id: impl Into<String>) -> Self {
        self.dedup_id = Some(dedup_id.into());
        self
    }

    /// A compact, versioned binary form for storage.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 64);
        out.put_u8(MESSAGE_FORMAT);
        put_bytes(&mut out, &self.body);
        put_optional(&mut out, self.group_id.as_deref());
        put_optional(&mut out, self.dedup_id.as_deref());
        out.put_u32(self.attributes.len() as u32);
        for (name, attribute) in &self.attributes {
            put_bytes(&mut out, name.as_bytes());
            let (kind, value): (u8, &[u8]) = match &attribute.value {
                AttributeValue::String(s) => (1, s.as_bytes()),
                AttributeValue::Number(n) => (2, n.as_bytes()),
                AttributeValue::Binary(b) => (3, b),
            };
            out.put_u8(kind);
            put_bytes(&mut out, value);
            put_optional(&mut out, attribute.custom_type.as_deref());
        }
        out.freeze()
    }

    /// Reads the form written by [`encode`](Self::encode).
    ///
    /// # Errors
    /// [`Error::Corrupt`] (keyspace `message`) when the bytes are not an encoded message.
    pub fn decode(mut data: Bytes) -> Result<Self> {
        let bad = |reason: &str| Error::corrupt("message", reason);
        if get_u8(&mut data)? != MESSAGE_FORMAT {
            return Err(bad("unknown message format version"));
        }
        let body = get_bytes(&mut data)?;
        let group_id = get_optional(&mut data)?;
        let dedup_id = get_optional(&mut data)?;
        let count = get_u32(&mut data)?;
        let mut attributes = BTreeMap::new();
        for _ in 0..count {
            let name = get_string(&mut data)?;
            let kind = get_u8(&mut data)?;
            let raw = get_bytes(&mut data)?;
            let text =
                || String::from_utf8(raw.to_vec()).map_err(|_| bad("attribute is not UTF-8"));
            let value = match kind {
                1 => AttributeValue::String(text()?),
                2 => AttributeValue::Number(text()?),
                3 => AttributeValue::Binary(raw.clone()),
                _ => return Err(bad("unknown attribute type")),
            };
            let custom_type = get_optional(&mut data)?;
            attributes.insert(name, MessageAttribute { value, custom_type });
        }
        if data.has_remaining() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            body,
            attributes,
            group_id,
            dedup_id,
        })
    }
}

fn put_bytes(out: &mut BytesMut, value: &[u8]) {
    out.put_u32(value.len() as u32);
    out.put_slice(value);
}

fn put_optional(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => {
            out.put_u8(1);
            put_bytes(out, value.as_bytes());
        }
        None => out.put_u8(0),
    }
}

fn short() -> Error {
    Error::corrupt("message", "record is cut short")
}

fn get_u8(data: &mut Bytes) -> Result<u8> {
    data.try_get_u8().map_err(|_| short())
}

fn get_u32(data: &mut Bytes) -> Result<u32> {
    data.try_get_u32().map_err(|_| short())
}

fn get_bytes(data: &mut Bytes) -> Result<Bytes> {
    let len = get_u32(data)? as usize;
    if data.remaining() < len {
        return Err(short());
    }
    Ok(data.split_to(len))
}

fn get_string(data: &mut Bytes) -> Result<String> {
    String::from_utf8(get_bytes(data)?.to_vec())
        .map_err(|_| Error::corrupt("message", "text is not UTF-8"))
}

fn get_optional(data: &mut Bytes) -> Result<Option<String>> {
    match get_u8(data)? {
        0 => Ok(None),
        1 => get_string(data).map(Some),
        _ => Err(Error::corrupt("message", "bad optional marker")),
    }
}

/// Why a sink did not accept a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The sink cannot take the message now; the same message may succeed later (throttled,
    /// unreachable, full). Outboxes retry these with backoff.
    #[error("sink unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The sink will never accept this message (too large, wrong shape, gone). Outboxes send it
    /// to the dead-letter sink at once.
    #[error("message rejected: {reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
}

impl DeliveryError {
    /// A retryable failure.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
        }
    }

    /// A permanent failure.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::Rejected {
            reason: reason.into(),
        }
    }

    /// True when trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Anything that accepts messages, at least once: queues, topics, streams and functions
/// implement it, and so can a user's own type.
///
/// `Ok` means the sink has taken responsibility for the message (for a durable sink: it is
/// durably stored). A sink may see the same message again after a crash or a lost answer.
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// Delivers one message.
    ///
    /// # Errors
    /// [`DeliveryError::Unavailable`] to ask for a retry, [`DeliveryError::Rejected`] when the
    /// message can never be accepted.
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError>;

    /// Delivers several messages, answering for each in order. The default delivers them one
    /// by one; sinks with a batch API override it.
    async fn deliver_batch(&self, messages: Vec<Message>) -> Vec<Result<(), DeliveryError>> {
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(self.deliver(message).await);
        }
        results
    }
}

/// A sink made of an async closure: the way to subscribe a user's own code.
///
/// ```
/// use cloudlet_core::{DeliveryError, Message, Sink};
/// use cloudlet_core::message::sink_fn;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sink = sink_fn(|message: Message| async move {
///     if message.body.is_empty() {
///         return Err(DeliveryError::rejected("empty body"));
///     }
///     Ok(())
/// });
/// assert!(sink.deliver(Message::new("hello")).await.is_ok());
/// # }
/// ```
pub fn sink_fn<F, Fut>(handler: F) -> FnSink<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    FnSink { handler }
}

/// The sink [`sink_fn`] makes.
pub struct FnSink<F> {
    handler: F,
}

impl<F> fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSink").finish_non_exhaustive()
    }
}

#[async_trait]
impl<F, Fut> Sink for FnSink<F>
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        (self.handler)(message).await
    }
}

/// A sink that forwards messages into a tokio channel; the simplest way to observe deliveries
/// in a test. Reports [`DeliveryError::Unavailable`] once the receiver is gone.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    sender: mpsc::UnboundedSender<Message>,
}

impl ChannelSink {
    /// A sink and the receiver of what it is given.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, receiver)
    }
}

#[async_trait]
impl Sink for ChannelSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        self.sender
            .send(message)
            .map_err(|_| DeliveryError::unavailable("the receiver was dropped"))
    }
}
