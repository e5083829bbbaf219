//! Secondary indexes: entries kept in the same transaction as the item, and backfills.
//!
//! An entry's key is `(table id, index name, index partition key[, index sort key], table
//! partition key[, table sort key])`, so entries sort as DynamoDB returns them and items with
//! equal index keys stay distinct. Its value is the projected item. An item without the index
//! key attributes has no entry (a sparse index).

use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::{ReadView, WriteTxn};

use crate::schema::{
    KeySchema, Projection, SecondaryIndex, TableRecord, encode_key_value, validate_name,
};
use crate::service::{KS_LIVE, KvService, encode};
use crate::value::{AttributeValue, Item};
use crate::{Error, Result};

/// Index entries.
pub(crate) const KS_INDEX: &str = "kv.index";
/// The most non-key attributes an `INCLUDE` projection names.
pub const MAX_PROJECTED_ATTRIBUTES: usize = 100;

/// Checks an index definition against the table's key schema.
pub(crate) fn validate_index(_table: &KeySchema, index: &SecondaryIndex) -> Result<()> {
    validate_name("indexName", &index.index_name)?;
    if let Projection::Include(attributes) = &index.projection {
        if attributes.is_empty() {
            return Err(Error::validation(
                "Projection",
                "One or more parameter values were invalid: NonKeyAttributes must not be empty for an INCLUDE projection",
            ));
        }
        if attributes.len() > MAX_PROJECTED_ATTRIBUTES {
            return Err(Error::validation(
                "Projection",
                "One or more parameter values were invalid: The number of projected attributes exceeds the limit of 100",
            ));
        }
    }
    Ok(())
}

/// All of a table's indexes, local first.
pub(crate) fn indexes(table: &TableRecord) -> impl Iterator<Item = &SecondaryIndex> {
    table
        .local_secondary_indexes
        .iter()
        .chain(&table.global_secondary_indexes)
}

/// The index named `name`, and whether it is global.
pub(crate) fn find<'t>(table: &'t TableRecord, name: &str) -> Result<(&'t SecondaryIndex, bool)> {
    if let Some(index) = table
        .global_secondary_indexes
        .iter()
        .find(|i| i.index_name == name)
    {
        return Ok((index, true));
    }
    if let Some(index) = table
        .local_secondary_indexes
        .iter()
        .find(|i| i.index_name == name)
    {
        return Ok((index, false));
    }
    Err(Error::validation(
        "IndexName",
        format!("The table does not have the specified index: {name}"),
    ))
}

/// Rejects an item whose index key attributes have the wrong type or are empty.
pub(crate) fn validate_index_keys(table: &TableRecord, item: &Item) -> Result<()> {
    for index in indexes(table) {
        let schema = &index.key_schema;
        for (attribute, sort) in std::iter::once((&schema.partition_key, false))
            .chain(schema.sort_key.as_ref().map(|k| (k, true)))
        {
            let Some(value) = item.get(&attribute.name) else {
                continue;
            };
            encode_key_value(Tuple::new(), attribute, value, sort, || {
                Error::validation(
                    "Item",
                    format!(
                        "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {}",
                        attribute.name,
                        attribute.attribute_type.name(),
                        value.value_type(),
                        index.index_name
                    ),
                )
            })
            .map_err(|e| match e {
                Error::Validation { message, .. } if message.contains("empty") => Error::validation(
                    "Item",
                    format!(
                        "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {}, IndexKey: {}",
                        index.index_name, attribute.name
                    ),
                ),
                other => other,
            })?;
        }
    }
    Ok(())
}

/// The prefix of every entry of one index: the table's id and the index's.
pub(crate) fn index_prefix(table: &TableRecord, index: &str) -> Tuple {
    // Every index of a stored definition has an id; u64::MAX matches no entry otherwise.
    let id = table.index_ids.get(index).copied().unwrap_or(u64::MAX);
    Tuple::new().u64(table.id).u64(id)
}

/// Appends the values of `schema`'s key attributes in `item`; `None` if one is missing.
pub(crate) fn append_keys(mut tuple: Tuple, schema: &KeySchema, item: &Item) -> Option<Tuple> {
    for (attribute, sort) in std::iter::once((&schema.partition_key, false))
        .chain(schema.sort_key.as_ref().map(|k| (k, true)))
    {
        let value = item.get(&attribute.name)?;
        tuple = encode_key_value(tuple, attribute, value, sort, || {
            Error::validation("Key", "The provided key element does not match the schema")
        })
        .ok()?;
    }
    Some(tuple)
}

/// The entry key of `item` in `index`, if the item has the index's keys.
pub(crate) fn entry_key(table: &TableRecord, index: &SecondaryIndex, item: &Item) -> Option<Bytes> {
    let tuple = append_keys(
        index_prefix(table, &index.index_name),
        &index.key_schema,
        item,
    )?;
    append_keys(tuple, &table.key_schema, item).map(Tuple::build)
}

/// The attributes of `item` that `index` copies.
pub(crate) fn projected(table: &TableRecord, index: &SecondaryIndex, item: &Item) -> Item {
    match &index.projection {
        Projection::All => item.clone(),
        Projection::KeysOnly | Projection::Include(_) => {
            let extra: &[String] = match &index.projection {
                Projection::Include(names) => names,
                _ => &[],
            };
            let mut out = table.key_schema.key_of(item);
            out.extend(index.key_schema.key_of(item));
            for name in extra {
                if let Some(value) = item.get(name) {
                    out.insert(name.clone(), value.clone());
                }
            }
            out
        }
    }
}

/// Moves `item`'s entries from `old` to `new` in every index of the table.
pub(crate) fn maintain(
    txn: &mut WriteTxn<'_>,
    table: &TableRecord,
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<()> {
    for index in indexes(table) {
        let old_key = old.and_then(|item| entry_key(table, index, item));
        let new_entry = new.and_then(|item| Some((entry_key(table, index, item)?, item)));
        if let Some(old_key) = old_key
            && new_entry.as_ref().is_none_or(|(k, _)| *k != old_key)
        {
            txn.delete(KS_INDEX, old_key);
        }
        if let Some((key, item)) = new_entry {
            txn.put(KS_INDEX, key, encode(&projected(table, index, item)));
        }
    }
    Ok(())
}

/// Checks that `table`'s version is the stored one and that the table has no job pending,
/// then stores the changed definition.
pub(crate) fn publish(txn: &mut WriteTxn<'_>, table: &mut TableRecord) -> Result<()> {
    let live = txn
        .get(KS_LIVE, &Tuple::new().u64(table.id).build())?
        .ok_or_else(|| Error::table_not_found(&table.name))?;
    if live != Tuple::new().u64(table.version).build() || crate::jobs::pending(txn, table.id)? {
        return Err(Error::ResourceInUse {
            message: format!(
                "Attempt to change a resource which is still in use: Table is being updated: {}",
                table.name
            ),
        });
    }
    store_version(txn, table)
}

/// Stores a changed definition with its version moved on.
pub(crate) fn store_version(txn: &mut WriteTxn<'_>, table: &mut TableRecord) -> Result<()> {
    table.version += 1;
    KvService::store_definition(txn, table)?;
    txn.put(
        KS_LIVE,
        Tuple::new().u64(table.id).build(),
        Tuple::new().u64(table.version).build(),
    );
    Ok(())
}

/// The key attributes of an index entry's item: the index's and the table's.
pub(crate) fn entry_key_attributes(
    table: &TableRecord,
    index: &SecondaryIndex,
    item: &Item,
) -> Item {
    let mut key = table.key_schema.key_of(item);
    key.extend(index.key_schema.key_of(item));
    key
}

/// The entry key an `ExclusiveStartKey` names in an index.
pub(crate) fn start_key(table: &TableRecord, index: &SecondaryIndex, key: &Item) -> Result<Bytes> {
    let invalid = || {
        Error::validation(
            "ExclusiveStartKey",
            "The provided starting key is invalid: The provided key element does not match the schema",
        )
    };
    let expected: std::collections::BTreeSet<&str> = table
        .key_schema
        .names()
        .into_iter()
        .chain(index.key_schema.names())
        .collect();
    if key.len() != expected.len() || !key.keys().all(|k| expected.contains(k.as_str())) {
        return Err(invalid());
    }
    entry_key(table, index, key).ok_or_else(invalid)
}

/// Used by `AttributeValue` consumers that need the value's partition-key hash for segments.
pub(crate) fn partition_hash(value: Option<&AttributeValue>) -> u64 {
    // FNV-1a over the canonical encoding: stable across runs and platforms.
    let bytes = match value {
        Some(AttributeValue::S(s)) => Tuple::new().str(s).build(),
        Some(AttributeValue::N(n)) => Tuple::new().decimal(n.as_decimal()).build(),
        Some(AttributeValue::B(b)) => Tuple::new().bytes(b).build(),
        _ => Bytes::new(),
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
