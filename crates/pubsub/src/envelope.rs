//! What a subscriber receives: SNS's JSON envelope, or the raw message.

use std::collections::BTreeMap;

use cloudlet_core::{AttributeValue, MessageAttribute, Timestamp};
use serde_json::{Map, Value, json};

/// `2025-01-02T03:04:05.678Z`, as SNS stamps notifications.
pub fn iso8601(at: Timestamp) -> String {
    at.iso8601()
}

/// The envelope's `MessageAttributes`: `{"name": {"Type": "String", "Value": "..."}}`.
fn attributes_json(attributes: &BTreeMap<String, MessageAttribute>) -> Value {
    let mut out = Map::new();
    for (name, attribute) in attributes {
        let value = match &attribute.value {
            AttributeValue::String(s) | AttributeValue::Number(s) => Value::String(s.clone()),
            AttributeValue::Binary(b) => {
                use base64::Engine as _;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            _ => Value::Null,
        };
        out.insert(
            name.clone(),
            json!({ "Type": attribute.data_type(), "Value": value }),
        );
    }
    Value::Object(out)
}

/// The fields of one notification.
#[derive(Debug, Clone)]
pub(crate) struct Notification<'a> {
    pub message_id: &'a str,
    pub topic_arn: &'a str,
    pub subscription_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    pub timestamp: Timestamp,
    pub attributes: &'a BTreeMap<String, MessageAttribute>,
    pub sequence_number: Option<&'a str>,
}

/// SNS's JSON envelope for a notification.
pub(crate) fn envelope(n: &Notification<'_>) -> Value {
    let mut out = Map::new();
    out.insert("Type".into(), json!("Notification"));
    out.insert("MessageId".into(), json!(n.message_id));
    if let Some(sequence) = n.sequence_number {
        out.insert("SequenceNumber".into(), json!(sequence));
    }
    out.insert("TopicArn".into(), json!(n.topic_arn));
    if let Some(subject) = n.subject {
        out.insert("Subject".into(), json!(subject));
    }
    out.insert("Message".into(), json!(n.message));
    out.insert("Timestamp".into(), json!(iso8601(n.timestamp)));
    out.insert("SignatureVersion".into(), json!("1"));
    // Not a real signature: nothing here holds AWS's signing key.
    out.insert("Signature".into(), json!("EXAMPLE"));
    out.insert(
        "SigningCertURL".into(),
        json!("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"),
    );
    out.insert(
        "UnsubscribeURL".into(),
        json!(format!(
            "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={}",
            n.subscription_arn
        )),
    );
    if !n.attributes.is_empty() {
        out.insert("MessageAttributes".into(), attributes_json(n.attributes));
    }
    Value::Object(out)
}

/// The `SubscriptionConfirmation` an HTTP endpoint receives when it is subscribed.
pub(crate) fn confirmation(
    message_id: &str,
    topic_arn: &str,
    token: &str,
    region: &str,
    at: Timestamp,
) -> Value {
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": format!(
            "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": format!(
            "https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"
        ),
        "Timestamp": iso8601(at),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": format!("https://sns.{region}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(iso8601(Timestamp::EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(Timestamp::from_millis(1_735_787_045_678)),
            "2025-01-02T03:04:05.678Z"
        );
        assert_eq!(
            iso8601(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
