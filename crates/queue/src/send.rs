//! Sending: validating a message as SQS does, deduplication on FIFO queues, and writing it.

use std::time::Duration;

use cloudlet_core::keys::Tuple;
use cloudlet_core::{Message, MessageAttribute, ReadView, Timestamp, WriteTxn};

use crate::api::{SendMessage, SendMessageResult};
use crate::attributes::{DeduplicationScope, QueueAttributes};
use crate::md5::{md5_of_attributes, md5_of_body};
use crate::names::validate_attribute_name;
use crate::record::{
    KS_DEDUP, KS_META, MessageRecord, QueueRecord, decode_dedup, dedup_key, encode_dedup,
};
use crate::service::{DEDUP_WINDOW, MAX_MESSAGE_ATTRIBUTES, QueueService};
use crate::{Error, Result};

const ALLOWED: &str = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF";

/// A body is text: UTF-8, of the characters SQS allows (XML's).
/// The first character of `text` outside SQS's set for bodies and string attribute values.
fn disallowed_character(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        !matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

fn check_body(body: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(body).map_err(|e| Error::InvalidMessageContents {
        reason: format!(
            "the message body is not valid UTF-8 (at byte {}); the set of allowed characters is {ALLOWED}",
            e.valid_up_to()
        ),
    })?;
    // In valid UTF-8 the only characters outside SQS's set are the controls below U+20 (but
    // tab, line feed and carriage return) and U+FFFE and U+FFFF (encoded EF BF BE/BF); bodies
    // with neither a control byte nor an 0xEF byte are checked 64 bytes at a time, without
    // decoding a character.
    let suspicious = text.as_bytes().chunks(64).any(|chunk| {
        chunk
            .iter()
            .fold(false, |seen, &b| seen | (b < 0x20) | (b == 0xEF))
    });
    if !suspicious {
        return Ok(());
    }
    if let Some(bad) = disallowed_character(text) {
        return Err(Error::InvalidMessageContents {
            reason: format!(
                "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is {ALLOWED}",
                u32::from(bad)
            ),
        });
    }
    Ok(())
}

impl QueueService {
    /// Validates a message for `queue`: size, attributes, delay, group.
    pub(crate) fn check_message(attributes: &QueueAttributes, message: &SendMessage) -> Result<()> {
        if message.body.is_empty() {
            return Err(Error::MissingParameter {
                field: "MessageBody".to_owned(),
                reason: ": the body must not be empty".to_owned(),
            });
        }
        check_body(&message.body)?;
        if message.attributes.len() > MAX_MESSAGE_ATTRIBUTES {
            return Err(Error::invalid(
                "MessageAttributes",
                format!(
                    "{} attributes, the maximum is {MAX_MESSAGE_ATTRIBUTES}",
                    message.attributes.len()
                ),
            ));
        }
        for (name, attribute) in &message.attributes {
            validate_attribute_name(name)?;
            check_attribute_value(name, attribute)?;
        }
        let size = message_size(message);
        if size > attributes.maximum_message_size as usize {
            return Err(Error::invalid(
                "MessageBody",
                format!(
                    "the message is {size} bytes with its attributes, the queue's MaximumMessageSize is {}",
                    attributes.maximum_message_size
                ),
            ));
        }
        if let Some(delay) = message.delay_seconds
            && delay > 900
        {
            return Err(Error::invalid(
                "DelaySeconds",
                format!("{delay} is not from 0 to 900"),
            ));
        }
        if let Some(group) = &message.group_id {
            validate_fifo_id("MessageGroupId", group)?;
        }
        if let Some(dedup) = &message.dedup_id {
            validate_fifo_id("MessageDeduplicationId", dedup)?;
        }
        if !attributes.fifo_queue {
            if message.dedup_id.is_some() {
                return Err(Error::invalid(
                    "MessageDeduplicationId",
                    "is only for FIFO queues",
                ));
            }
            return Ok(());
        }
        if message.group_id.is_none() {
            return Err(Error::MissingParameter {
                field: "MessageGroupId".to_owned(),
                reason: ": a FIFO queue requires it".to_owned(),
            });
        }
        if message.delay_seconds.is_some() {
            return Err(Error::invalid(
                "DelaySeconds",
                "a FIFO queue takes only its own DelaySeconds, not a per-message delay",
            ));
        }
        if message.dedup_id.is_none() && !attributes.content_based_deduplication {
            return Err(Error::invalid(
                "MessageDeduplicationId",
                "the queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
        Ok(())
    }

    /// Writes `message` into `queue` within `txn`.
    pub(crate) fn enqueue(
        &self,
        txn: &mut WriteTxn<'_>,
        queue: &QueueRecord,
        message: SendMessage,
        now: Timestamp,
    ) -> Result<SendMessageResult> {
        let fifo = queue.attributes.fifo_queue;
        let mut message = message;
        let dedup = if fifo {
            let id = message
                .dedup_id
                .clone()
                .unwrap_or_else(|| sha256_hex(&message.body));
            // Received FIFO messages report the id that deduplicated them.
            message.dedup_id = Some(id.clone());
            let scope = match queue.attributes.deduplication_scope {
                DeduplicationScope::MessageGroup => message.group_id.clone().unwrap_or_default(),
                DeduplicationScope::Queue => String::new(),
            };
            let key = dedup_key(queue.id, &scope, &id);
            if let Some(raw) = txn.get(KS_DEDUP, &key)? {
                let (until, seq, message_id) = decode_dedup(raw)?;
                if until > now {
                    // A duplicate within five minutes: accepted, not enqueued again.
                    return Ok(SendMessageResult {
                        message_id,
                        md5_of_message_body: md5_of_body(&message.body),
                        md5_of_message_attributes: md5_of_attributes(&message.attributes),
                        sequence_number: Some(sequence_number(seq)),
                    });
                }
            }
            Some(key)
        } else {
            None
        };
        let seq = txn.next_sequence(KS_META, &Tuple::new().str("seq").u64(queue.id).build())?;
        let delay = message
            .delay_seconds
            .unwrap_or(queue.attributes.delay_seconds);
        let visible_at = now + Duration::from_secs(delay.into());
        let message_id = self.next_id();
        let body_md5 = md5_of_body(&message.body);
        let result = SendMessageResult {
            message_id: message_id.clone(),
            md5_of_message_body: body_md5.clone(),
            md5_of_message_attributes: md5_of_attributes(&message.attributes),
            sequence_number: fifo.then(|| sequence_number(seq)),
        };
        if let Some(key) = dedup {
            txn.put(
                KS_DEDUP,
                key,
                encode_dedup(now + DEDUP_WINDOW, seq, &message_id),
            );
        }
        let record = MessageRecord {
            message_id,
            md5_of_body: body_md5,
            last_receive: None,
            enqueued: now,
            seq,
            dead_letter_source: None,
            sent: now,
            visible_at,
            receive_count: 0,
            first_receive: None,
            receipt: 0,
            message: Message {
                body: message.body,
                attributes: message.attributes,
                group_id: message.group_id,
                dedup_id: message.dedup_id,
            },
        };
        Self::place(txn, queue, &record)?;
        Ok(result)
    }
}

/// The size SQS counts against `MaximumMessageSize`: the body, and each attribute's name, data
/// type and value.
pub(crate) fn message_size(message: &SendMessage) -> usize {
    let attributes: usize = message
        .attributes
        .iter()
        .map(|(name, attribute)| {
            let value = match &attribute.value {
                cloudlet_core::AttributeValue::String(s)
                | cloudlet_core::AttributeValue::Number(s) => s.len(),
                cloudlet_core::AttributeValue::Binary(b) => b.len(),
                _ => 0,
            };
            name.len() + attribute.data_type().len() + value
        })
        .sum();
    message.body.len() + attributes
}

pub(crate) fn check_attribute_value(name: &str, attribute: &MessageAttribute) -> Result<()> {
    let field = format!("MessageAttribute.{name}");
    if attribute.data_type().len() > 256 {
        return Err(Error::invalid(
            field,
            "the data type is longer than 256 characters",
        ));
    }
    match &attribute.value {
        cloudlet_core::AttributeValue::String(s) if s.is_empty() => Err(Error::invalid(
            field,
            "a String attribute must not be empty",
        )),
        // A string value has the body's restrictions on its characters.
        cloudlet_core::AttributeValue::String(s) => match disallowed_character(s) {
            Some(bad) => Err(Error::invalid(
                field,
                format!(
                    "Invalid binary character '#x{:X}' was found in the value, the set of allowed characters is {ALLOWED}",
                    u32::from(bad)
                ),
            )),
            None => Ok(()),
        },
        cloudlet_core::AttributeValue::Number(n) => {
            let decimal = cloudlet_core::keys::Decimal::parse(n)
                .map_err(|_| Error::invalid(field.clone(), format!("`{n}` is not a number")))?;
            if decimal.significant_digits() > 38 || decimal.exponent().abs() > 127 {
                return Err(Error::invalid(
                    field,
                    "a Number has at most 38 digits, from 1E-128 to 1E+126",
                ));
            }
            Ok(())
        }
        cloudlet_core::AttributeValue::Binary(b) if b.is_empty() => Err(Error::invalid(
            field,
            "a Binary attribute must not be empty",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::md5::hex(&Sha256::digest(body))
}

/// Group and deduplication ids: 1-128 characters, letters, digits and ASCII punctuation.
pub(crate) fn validate_fifo_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
    {
        return Err(Error::invalid(
            field,
            format!("`{id}` is not 1-128 letters, digits and punctuation"),
        ));
    }
    Ok(())
}

/// A FIFO sequence number as SQS writes it: a decimal string that grows with each message.
pub(crate) fn sequence_number(seq: u64) -> String {
    format!("{:020}", seq)
}

#[cfg(test)]
mod tests {
    use super::check_body;
    use proptest::prelude::*;

    fn allowed(c: char) -> bool {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    proptest! {
        /// The byte-wise fast path accepts exactly the bodies the character-wise rule accepts,
        /// wherever in a 64-byte chunk the offending character falls.
        #[test]
        fn body_check_agrees_with_the_character_rule(
            prefix in "[a-z\u{E000}-\u{E0FF}]{0,130}",
            c in any::<char>(),
            suffix in "[a-z]{0,70}",
        ) {
            let body = format!("{prefix}{c}{suffix}");
            prop_assert_eq!(check_body(body.as_bytes()).is_ok(), body.chars().all(allowed));
        }
    }

    #[test]
    fn the_last_characters_of_the_bmp_are_refused() {
        for c in ['\u{FFFE}', '\u{FFFF}', '\u{1F}', '\u{0}'] {
            let body = format!("{}{c}", "a".repeat(63));
            assert!(check_body(body.as_bytes()).is_err(), "{c:?}");
        }
        assert!(check_body("\u{FFFD}\u{EFFF}\u{10FFFF}\t\r\n".as_bytes()).is_ok());
    }
}
