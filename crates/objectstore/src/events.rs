//! Event notifications: rules per bucket, the S3 event JSON, and the outbox of each target.
//!
//! An event is pushed to its target's outbox in the same transaction as the change it
//! describes, so an acknowledged change never loses its event.

use cloudlet_core::outbox::Outbox;
use cloudlet_core::{Message, Timestamp, WriteTxn};
use serde_json::json;

use crate::error::{Error, Result};
use crate::record::{BucketRecord, ObjectRecord};
use crate::types::{EVENT_TYPES, NotificationRule};

/// The outbox of events bound for `target`.
pub(crate) fn outbox(target: &str) -> Outbox {
    Outbox::new(format!("s3.notifications/{target}"))
}

/// Checks a notification configuration as S3 does: known event types, ids unique, targets
/// registered, and no two rules sharing an event type over overlapping keys.
pub(crate) fn validate(
    rules: &[NotificationRule],
    registered: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut ids = std::collections::HashSet::new();
    for rule in rules {
        if rule.id.is_empty() || rule.id.len() > 255 {
            return Err(Error::invalid(
                "Id",
                "a notification rule id is 1 to 255 characters",
            ));
        }
        if !ids.insert(rule.id.as_str()) {
            return Err(Error::invalid(
                "Id",
                format!("duplicate notification rule id {:?}", rule.id),
            ));
        }
        if rule.events.is_empty() {
            return Err(Error::invalid(
                "Event",
                "a notification rule names at least one event type",
            ));
        }
        for event in &rule.events {
            if !EVENT_TYPES.contains(&event.as_str()) {
                return Err(Error::invalid(
                    "Event",
                    format!("The event {event:?} is not supported for notifications"),
                ));
            }
        }
        if !registered(&rule.target) {
            return Err(Error::invalid(
                "Destination",
                format!(
                    "Unable to validate the following destination configurations: {:?} is not a registered target",
                    rule.target
                ),
            ));
        }
    }
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            let shared = a
                .events
                .iter()
                .any(|x| b.events.iter().any(|y| types_overlap(x, y)));
            let prefixes = a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix);
            let suffixes = a.suffix.ends_with(&b.suffix) || b.suffix.ends_with(&a.suffix);
            if shared && prefixes && suffixes {
                return Err(Error::invalid(
                    "NotificationConfiguration",
                    format!(
                        "Configurations overlap. Configurations on the same bucket cannot share a common event type. ({} and {})",
                        a.id, b.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn types_overlap(a: &str, b: &str) -> bool {
    let family = |t: &str| {
        t.rsplit_once(':')
            .map_or(t.to_owned(), |(f, _)| f.to_owned())
    };
    a == b || (family(a) == family(b) && (a.ends_with(":*") || b.ends_with(":*")))
}

/// Whether `rule` selects `event_name` (as in the JSON: `ObjectCreated:Put`) on `key`.
fn selects(rule: &NotificationRule, event_name: &str, key: &str) -> bool {
    let (family, _) = event_name.split_once(':').unwrap_or((event_name, ""));
    let wanted = rule.events.iter().any(|e| {
        let e = e.strip_prefix("s3:").unwrap_or(e);
        e == event_name || e.strip_suffix(":*") == Some(family)
    });
    wanted && key.starts_with(&rule.prefix) && key.ends_with(&rule.suffix)
}

/// An event about to be recorded.
pub(crate) struct Event<'a> {
    pub(crate) name: &'a str,
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    /// The version created or removed.
    pub(crate) record: &'a ObjectRecord,
    pub(crate) time: Timestamp,
    pub(crate) region: &'a str,
}

/// Pushes `event` to the outbox of every rule of `bucket` that selects it.
pub(crate) fn emit(txn: &mut WriteTxn<'_>, bucket: &BucketRecord, event: &Event<'_>) -> Result<()> {
    for rule in &bucket.notifications {
        if selects(rule, event.name, event.key) {
            let body = body(rule, event);
            outbox(&rule.target).push(txn, &Message::new(body))?;
        }
    }
    Ok(())
}

/// The S3 event message, `{"Records": [...]}`, eventVersion 2.1.
fn body(rule: &NotificationRule, event: &Event<'_>) -> String {
    let record = event.record;
    let mut object = json!({
        "key": url_encode(event.key),
        "sequencer": record.sequencer(),
    });
    let created = event.name.starts_with("ObjectCreated");
    if created {
        object["size"] = json!(record.size);
        object["eTag"] = json!(record.etag.trim_matches('"'));
    }
    if let Some(version) = &record.version_id {
        object["versionId"] = json!(version);
    } else if record.delete_marker || event.name.ends_with("DeleteMarkerCreated") {
        object["versionId"] = json!("null");
    }
    let message = json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": event.region,
            "eventTime": event.time.iso8601(),
            "eventName": event.name,
            "userIdentity": {"principalId": "cloudlet"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": record.sequencer(),
                "x-amz-id-2": "cloudlet",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": rule.id,
                "bucket": {
                    "name": event.bucket,
                    "ownerIdentity": {"principalId": "cloudlet"},
                    "arn": format!("arn:aws:s3:::{}", event.bucket),
                },
                "object": object,
            },
        }]
    });
    message.to_string()
}

/// Keys in events are URL-encoded as S3 encodes them: a space becomes `+`, letters, digits,
/// `-_.*/~` stay, every other byte becomes `%XX`.
pub fn url_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_like_s3() {
        assert_eq!(url_encode("a b/c=d+é"), "a+b/c%3Dd%2B%C3%A9");
    }

    #[test]
    fn wildcards_select_their_family() {
        let rule = NotificationRule::new("r", "t", ["s3:ObjectCreated:*"]).with_suffix(".jpg");
        assert!(selects(&rule, "ObjectCreated:Put", "a.jpg"));
        assert!(selects(
            &rule,
            "ObjectCreated:CompleteMultipartUpload",
            "b/a.jpg"
        ));
        assert!(!selects(&rule, "ObjectRemoved:Delete", "a.jpg"));
        assert!(!selects(&rule, "ObjectCreated:Put", "a.png"));
    }

    #[test]
    fn overlapping_rules_are_refused() {
        let a = NotificationRule::new("a", "t", ["s3:ObjectCreated:*"]).with_prefix("images/");
        let b =
            NotificationRule::new("b", "t", ["s3:ObjectCreated:Put"]).with_prefix("images/raw/");
        assert!(validate(&[a.clone(), b], |_| true).is_err());
        let c = NotificationRule::new("c", "t", ["s3:ObjectRemoved:*"]).with_prefix("images/");
        assert!(validate(&[a.clone(), c], |_| true).is_ok());
        let d = NotificationRule::new("d", "t", ["s3:ObjectCreated:*"]).with_prefix("logs/");
        assert!(validate(&[a, d], |_| true).is_ok());
    }
}
