//! Tables: key schemas, definitions as stored, descriptions, and the storage keys of items.

use bytes::Bytes;
use cloudlet_core::Timestamp;
use cloudlet_core::keys::Tuple;
use serde::{Deserialize, Serialize};

use crate::value::{AttributeValue, Item};
use crate::{Error, Result};

/// The largest partition key value, in bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// The largest sort key value, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalarType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl ScalarType {
    /// `S`, `N` or `B`.
    pub fn name(self) -> &'static str {
        match self {
            Self::S => "S",
            Self::N => "N",
            Self::B => "B",
        }
    }
}

/// A key attribute: its name and type (DynamoDB's `AttributeDefinition` with its `KeySchema`
/// role given by where it is used).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyAttribute {
    /// The attribute's name.
    pub name: String,
    /// Its type.
    pub attribute_type: ScalarType,
}

impl KeyAttribute {
    /// A string key attribute.
    pub fn s(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attribute_type: ScalarType::S,
        }
    }

    /// A number key attribute.
    pub fn n(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attribute_type: ScalarType::N,
        }
    }

    /// A binary key attribute.
    pub fn b(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attribute_type: ScalarType::B,
        }
    }
}

/// A partition key and an optional sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeySchema {
    /// The partition (`HASH`) key.
    pub partition_key: KeyAttribute,
    /// The sort (`RANGE`) key, if any.
    pub sort_key: Option<KeyAttribute>,
}

impl KeySchema {
    /// The key attributes' names.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(self.partition_key.name.as_str())
            .chain(self.sort_key.as_ref().map(|k| k.name.as_str()))
            .collect()
    }

    /// The key attributes of `item`.
    pub fn key_of(&self, item: &Item) -> Item {
        self.names()
            .into_iter()
            .filter_map(|n| item.get(n).map(|v| (n.to_owned(), v.clone())))
            .collect()
    }
}

/// Which attributes an index copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Projection {
    /// Every attribute.
    #[default]
    All,
    /// The table's and the index's key attributes only.
    KeysOnly,
    /// The keys and the named attributes.
    Include(Vec<String>),
}

/// What a change stream record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum StreamViewType {
    /// The key attributes only.
    KEYS_ONLY,
    /// The item after the change.
    NEW_IMAGE,
    /// The item before the change.
    OLD_IMAGE,
    /// Both.
    NEW_AND_OLD_IMAGES,
}

/// A secondary index definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecondaryIndex {
    /// The index's name (3-255 characters of `a-z A-Z 0-9 _ - .`).
    pub index_name: String,
    /// Its key schema. A local index shares the table's partition key.
    pub key_schema: KeySchema,
    /// Which attributes it copies.
    pub projection: Projection,
}

impl SecondaryIndex {
    /// An index projecting every attribute.
    pub fn new(name: impl Into<String>, partition_key: KeyAttribute) -> Self {
        Self {
            index_name: name.into(),
            key_schema: KeySchema {
                partition_key,
                sort_key: None,
            },
            projection: Projection::All,
        }
    }

    /// With a sort key.
    #[must_use]
    pub fn with_sort_key(mut self, sort_key: KeyAttribute) -> Self {
        self.key_schema.sort_key = Some(sort_key);
        self
    }

    /// With a projection other than `ALL`.
    #[must_use]
    pub fn with_projection(mut self, projection: Projection) -> Self {
        self.projection = projection;
        self
    }
}

/// A CreateTable request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTable {
    /// The table's name (3-255 characters of `a-z A-Z 0-9 _ - .`).
    pub table_name: String,
    /// The key schema.
    pub key_schema: KeySchema,
    /// Local secondary indexes (at most 5; only at creation).
    pub local_secondary_indexes: Vec<SecondaryIndex>,
    /// Global secondary indexes (at most 20).
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    /// The change stream, if any.
    pub stream_view_type: Option<StreamViewType>,
}

impl CreateTable {
    /// A table with a partition key only.
    pub fn new(table_name: impl Into<String>, partition_key: KeyAttribute) -> Self {
        Self {
            table_name: table_name.into(),
            key_schema: KeySchema {
                partition_key,
                sort_key: None,
            },
            local_secondary_indexes: Vec::new(),
            global_secondary_indexes: Vec::new(),
            stream_view_type: None,
        }
    }

    /// With a sort key.
    #[must_use]
    pub fn with_sort_key(mut self, sort_key: KeyAttribute) -> Self {
        self.key_schema.sort_key = Some(sort_key);
        self
    }

    /// With a global secondary index.
    #[must_use]
    pub fn with_global_index(mut self, index: SecondaryIndex) -> Self {
        self.global_secondary_indexes.push(index);
        self
    }

    /// With a local secondary index (its partition key must be the table's).
    #[must_use]
    pub fn with_local_index(mut self, index: SecondaryIndex) -> Self {
        self.local_secondary_indexes.push(index);
        self
    }

    /// With a change stream.
    #[must_use]
    pub fn with_stream(mut self, view: StreamViewType) -> Self {
        self.stream_view_type = Some(view);
        self
    }
}

/// Whether a table is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum TableStatus {
    /// Ready. Tables here are ready as soon as they are created.
    ACTIVE,
    /// Being deleted: the status DeleteTable answers with, as DynamoDB's does.
    DELETING,
}

/// A table as DescribeTable reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDescription {
    /// The name.
    pub table_name: String,
    /// `arn:aws:dynamodb:<region>:<account>:table/<name>`.
    pub table_arn: String,
    /// The key schema.
    pub key_schema: KeySchema,
    /// Always `ACTIVE`.
    pub table_status: TableStatus,
    /// When it was created, on the service's clock.
    pub creation_date_time: Timestamp,
    /// How many items it holds (exact, where DynamoDB's is refreshed every six hours).
    pub item_count: u64,
    /// Their total size by DynamoDB's rules.
    pub table_size_bytes: u64,
    /// Local secondary indexes.
    pub local_secondary_indexes: Vec<SecondaryIndex>,
    /// Global secondary indexes.
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    /// The change stream's view type, if enabled.
    pub stream_view_type: Option<StreamViewType>,
    /// The TTL attribute, if time to live is enabled.
    pub time_to_live_attribute: Option<String>,
}

/// A table definition as stored in the `kv.tables` keyspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableRecord {
    /// Unique for the life of the store, never reused: item keys start with it.
    pub id: u64,
    /// Moves on with every change of the definition (indexes, TTL).
    pub version: u64,
    pub name: String,
    pub key_schema: KeySchema,
    pub created: Timestamp,
    pub local_secondary_indexes: Vec<SecondaryIndex>,
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    pub stream_view_type: Option<StreamViewType>,
    pub time_to_live_attribute: Option<String>,
    /// When time to live was last enabled or disabled.
    #[serde(default)]
    pub time_to_live_changed: Option<Timestamp>,
    /// Each index's id: index entries are keyed by it, never reused.
    #[serde(default)]
    pub index_ids: std::collections::BTreeMap<String, u64>,
    /// Global indexes still being backfilled: not readable yet.
    #[serde(default)]
    pub backfilling: std::collections::BTreeSet<String>,
}

/// Validates a table or index name as DynamoDB does.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<()> {
    let fail = |constraint: &str| {
        Err(Error::validation(
            field,
            format!(
                "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: {constraint}"
            ),
        ))
    };
    if name.len() < 3 {
        return fail("Member must have length greater than or equal to 3");
    }
    if name.len() > 255 {
        return fail("Member must have length less than or equal to 255");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return fail("Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
    }
    Ok(())
}

/// Appends a key attribute's value to a storage key, checking its type, emptiness and size.
/// `role` is `partition` or `sort`.
pub(crate) fn encode_key_value(
    tuple: Tuple,
    attribute: &KeyAttribute,
    value: &AttributeValue,
    sort: bool,
    on_mismatch: impl Fn() -> Error,
) -> Result<Tuple> {
    let len = match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::N(_) => 1,
        _ => 0,
    };
    let tuple = match (attribute.attribute_type, value) {
        (ScalarType::S, AttributeValue::S(s)) => tuple.str(s),
        (ScalarType::N, AttributeValue::N(n)) => tuple.decimal(n.as_decimal()),
        (ScalarType::B, AttributeValue::B(b)) => tuple.bytes(b),
        _ => return Err(on_mismatch()),
    };
    if len == 0 {
        let kind = if attribute.attribute_type == ScalarType::B {
            "binary"
        } else {
            "string"
        };
        return Err(Error::validation(
            "Key",
            format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {kind} value. Key: {}",
                attribute.name
            ),
        ));
    }
    if !sort && len > MAX_PARTITION_KEY_BYTES {
        return Err(Error::validation(
            "Key",
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes",
        ));
    }
    if sort && len > MAX_SORT_KEY_BYTES {
        return Err(Error::validation(
            "Key",
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
        ));
    }
    Ok(tuple)
}

/// The storage key of the item with key attributes taken from `item`, for a full item (a put:
/// missing keys and wrong types are named).
pub(crate) fn item_key(table_id: u64, schema: &KeySchema, item: &Item) -> Result<Bytes> {
    let mut tuple = Tuple::new().u64(table_id);
    for (attribute, sort) in std::iter::once((&schema.partition_key, false))
        .chain(schema.sort_key.as_ref().map(|k| (k, true)))
    {
        let value = item.get(&attribute.name).ok_or_else(|| {
            Error::validation(
                "Item",
                format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    attribute.name
                ),
            )
        })?;
        tuple = encode_key_value(tuple, attribute, value, sort, || {
            Error::validation(
                "Item",
                format!(
                    "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {}",
                    attribute.name,
                    attribute.attribute_type.name(),
                    value.value_type()
                ),
            )
        })?;
    }
    Ok(tuple.build())
}

/// The storage key named by a `Key` parameter, which must hold exactly the key attributes.
pub(crate) fn key_param(table_id: u64, schema: &KeySchema, key: &Item) -> Result<Bytes> {
    let mismatch =
        || Error::validation("Key", "The provided key element does not match the schema");
    let expected = 1 + usize::from(schema.sort_key.is_some());
    if key.len() != expected {
        return Err(mismatch());
    }
    let mut tuple = Tuple::new().u64(table_id);
    for (attribute, sort) in std::iter::once((&schema.partition_key, false))
        .chain(schema.sort_key.as_ref().map(|k| (k, true)))
    {
        let value = key.get(&attribute.name).ok_or_else(mismatch)?;
        tuple = encode_key_value(tuple, attribute, value, sort, mismatch)?;
    }
    Ok(tuple.build())
}
