//! The change stream: a record per item change, written in the change's own transaction.
//!
//! Records live under `(table id, sequence)` in `kv.stream`, so each change is recorded exactly
//! once and in commit order (hence in order per item). A write that changes nothing (a put of
//! the identical item) records nothing, as on DynamoDB.

use cloudlet_core::keys::Tuple;
use cloudlet_core::{Timestamp, WriteTxn};
use serde::{Deserialize, Serialize};

use crate::items::Actor;
use crate::schema::{StreamViewType, TableRecord};
use crate::service::KS_META;
use crate::value::{Item, item_size};
use crate::{Error, Result};

/// Change records.
pub(crate) const KS_STREAM: &str = "kv.stream";

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum EventName {
    /// The item was created (also by an UpdateItem).
    INSERT,
    /// The item was replaced or updated.
    MODIFY,
    /// The item was deleted (by a request or by TTL).
    REMOVE,
}

/// Who made a change that was not a request: TTL expiry is made by the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserIdentity {
    /// `Service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `dynamodb.amazonaws.com`.
    pub principal_id: String,
}

/// One change, as DynamoDB Streams describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Unique per record.
    pub event_id: String,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: EventName,
    /// Increasing within the table's stream; compare as numbers (fixed width here).
    pub sequence_number: String,
    /// When the change was committed, on the service's clock.
    pub approximate_creation_date_time: Timestamp,
    /// The item's key attributes.
    pub keys: Item,
    /// The item after the change, for `NEW_IMAGE` and `NEW_AND_OLD_IMAGES`.
    pub new_image: Option<Item>,
    /// The item before the change, for `OLD_IMAGE` and `NEW_AND_OLD_IMAGES`.
    pub old_image: Option<Item>,
    /// The record's size: keys and images.
    pub size_bytes: usize,
    /// The stream's view type when the record was written.
    pub stream_view_type: StreamViewType,
    /// Set for changes the service made itself (TTL deletions).
    pub user_identity: Option<UserIdentity>,
}

/// The key of record `sequence` of table `table_id`.
pub(crate) fn record_key(table_id: u64, sequence: u64) -> bytes::Bytes {
    Tuple::new().u64(table_id).u64(sequence).build()
}

/// Writes the record of a change from `old` to `new`, if the table has a stream and the item
/// changed.
pub(crate) fn record(
    txn: &mut WriteTxn<'_>,
    table: &TableRecord,
    old: Option<&Item>,
    new: Option<&Item>,
    now: Timestamp,
    actor: Actor,
) -> Result<()> {
    let Some(view) = table.stream_view_type else {
        return Ok(());
    };
    let event_name = match (old, new) {
        (None, Some(_)) => EventName::INSERT,
        (Some(o), Some(n)) if o != n => EventName::MODIFY,
        (Some(_), None) => EventName::REMOVE,
        _ => return Ok(()),
    };
    let Some(any) = new.or(old) else {
        return Ok(());
    };
    let counter = Tuple::new().str("stream").u64(table.id).build();
    let sequence = txn.next_sequence(KS_META, &counter)?;
    let keys = table.key_schema.key_of(any);
    let with_new = matches!(
        view,
        StreamViewType::NEW_IMAGE | StreamViewType::NEW_AND_OLD_IMAGES
    );
    let with_old = matches!(
        view,
        StreamViewType::OLD_IMAGE | StreamViewType::NEW_AND_OLD_IMAGES
    );
    let new_image = new.filter(|_| with_new).cloned();
    let old_image = old.filter(|_| with_old).cloned();
    let size_bytes = item_size(&keys)
        + new_image.as_ref().map_or(0, item_size)
        + old_image.as_ref().map_or(0, item_size);
    let record = StreamRecord {
        event_id: format!(
            "{:032x}",
            (u128::from(table.id) << 64) | u128::from(sequence)
        ),
        event_name,
        sequence_number: format!("{sequence:021}"),
        approximate_creation_date_time: now,
        keys,
        new_image,
        old_image,
        size_bytes,
        stream_view_type: view,
        user_identity: (actor == Actor::Service).then(|| UserIdentity {
            kind: "Service".to_owned(),
            principal_id: "dynamodb.amazonaws.com".to_owned(),
        }),
    };
    let json = serde_json::to_vec(&record)
        .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_STREAM, e.to_string())))?;
    txn.put(KS_STREAM, record_key(table.id, sequence), json);
    Ok(())
}
