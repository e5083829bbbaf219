//! Single-item operations: GetItem, PutItem, UpdateItem, DeleteItem, and the one function
//! every write goes through ([`write_item`]), which keeps indexes and the stream in step.

use bytes::Bytes;
use cloudlet_core::{Durability, ReadView, Timestamp, WriteTxn};

use crate::api::{
    DeleteItem, GetItem, PutItem, ReturnValues, ReturnValuesOnConditionCheckFailure, UpdateItem,
};
use crate::expr::{Prepared, Texts, project};
use crate::schema::{TableRecord, item_key, key_param};
use crate::service::{KS_ITEMS, KvService, decode, encode, live_table};
use crate::value::{Item, MAX_ITEM_SIZE, item_size};
use crate::{Error, Result};

/// Who made a change, for the stream's `userIdentity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Actor {
    /// A request.
    User,
    /// The service itself: TTL expiry.
    Service,
}

/// Writes `new` at `key` (deletes it when `None`), with its index entries and stream record,
/// in the caller's transaction.
pub(crate) fn write_item(
    txn: &mut WriteTxn<'_>,
    table: &TableRecord,
    key: Bytes,
    old: Option<&Item>,
    new: Option<&Item>,
    now: Timestamp,
    actor: Actor,
) -> Result<()> {
    if old.is_none() && new.is_none() {
        return Ok(());
    }
    crate::ttl::maintain(txn, table, &key, old, new);
    match new {
        Some(item) => txn.put(KS_ITEMS, key, encode(item)),
        None => txn.delete(KS_ITEMS, key),
    }
    crate::index::maintain(txn, table, old, new)?;
    crate::stream::record(txn, table, old, new, now, actor)
}

/// Whether a write must read the item it replaces.
pub(crate) fn needs_old(
    table: &TableRecord,
    prepared: &Prepared,
    return_values: ReturnValues,
) -> bool {
    prepared.condition.is_some()
        || return_values != ReturnValues::NONE
        || table.stream_view_type.is_some()
        || !table.global_secondary_indexes.is_empty()
        || !table.local_secondary_indexes.is_empty()
        || table.time_to_live_attribute.is_some()
}

/// Reads the item at `key` in a transaction.
pub(crate) fn read_item(txn: &WriteTxn<'_>, key: &[u8]) -> Result<Option<Item>> {
    txn.get(KS_ITEMS, key)?
        .map(|raw| decode(KS_ITEMS, &raw))
        .transpose()
}

/// The error for a failed condition, with the old item if asked for.
pub(crate) fn condition_failed(
    old: Option<Item>,
    on_failure: ReturnValuesOnConditionCheckFailure,
) -> Error {
    Error::ConditionalCheckFailed {
        item: match on_failure {
            ReturnValuesOnConditionCheckFailure::ALL_OLD => old,
            ReturnValuesOnConditionCheckFailure::NONE => None,
        },
    }
}

/// Passes if `prepared` has no condition or `old` satisfies it; otherwise the error to fail
/// (or cancel) with.
fn check_condition(
    prepared: &Prepared,
    on_failure: ReturnValuesOnConditionCheckFailure,
    old: Option<&Item>,
) -> Result<()> {
    if prepared.condition_holds(old) {
        Ok(())
    } else {
        Err(condition_failed(old.cloned(), on_failure))
    }
}

/// Validates a whole item: its values and its size.
pub(crate) fn validate_item(item: &Item, too_big: &str) -> Result<()> {
    for value in item.values() {
        value.validate("Item")?;
    }
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(Error::validation("Item", too_big));
    }
    Ok(())
}

pub(crate) const PUT_TOO_BIG: &str = "Item size has exceeded the maximum allowed size";
pub(crate) const UPDATE_TOO_BIG: &str = "Item size to update has exceeded the maximum allowed size";

fn only_old_or_none(return_values: ReturnValues) -> Result<()> {
    match return_values {
        ReturnValues::NONE | ReturnValues::ALL_OLD => Ok(()),
        _ => Err(Error::validation(
            "ReturnValues",
            "ReturnValues can only be ALL_OLD or NONE",
        )),
    }
}

/// A checked PutItem, ready to run inside a transaction.
#[derive(Debug)]
pub(crate) struct PreparedPut {
    pub key: Bytes,
    pub item: Item,
    pub prepared: Prepared,
    pub on_failure: ReturnValuesOnConditionCheckFailure,
}

impl PreparedPut {
    pub(crate) fn new(table: &TableRecord, request: PutItem) -> Result<Self> {
        validate_item(&request.item, PUT_TOO_BIG)?;
        let key = item_key(table.id, &table.key_schema, &request.item)?;
        crate::index::validate_index_keys(table, &request.item)?;
        let texts = Texts {
            condition: request
                .condition_expression
                .as_deref()
                .map(|c| ("ConditionExpression", c)),
            absent: Some("ConditionExpression is null"),
            ..Texts::default()
        };
        let prepared = Prepared::new(
            texts,
            request.placeholders.names,
            request.placeholders.values,
        )?;
        Ok(Self {
            key,
            item: request.item,
            prepared,
            on_failure: request.return_values_on_condition_check_failure,
        })
    }

    /// Checks the condition on `old`; returns the error to cancel with if it fails.
    pub(crate) fn check(&self, old: Option<&Item>) -> Result<()> {
        check_condition(&self.prepared, self.on_failure, old)
    }
}

/// A checked UpdateItem.
#[derive(Debug)]
pub(crate) struct PreparedUpdate {
    pub key: Bytes,
    pub key_item: Item,
    pub prepared: Prepared,
    pub on_failure: ReturnValuesOnConditionCheckFailure,
}

impl PreparedUpdate {
    pub(crate) fn new(table: &TableRecord, request: UpdateItem) -> Result<Self> {
        let key = key_param(table.id, &table.key_schema, &request.key)?;
        let keys = table.key_schema.names();
        let texts = Texts {
            condition: request
                .condition_expression
                .as_deref()
                .map(|c| ("ConditionExpression", c)),
            update: request
                .update_expression
                .as_deref()
                .map(|u| (u, keys.as_slice())),
            absent: Some("UpdateExpression and ConditionExpression are null"),
            ..Texts::default()
        };
        let prepared = Prepared::new(
            texts,
            request.placeholders.names,
            request.placeholders.values,
        )?;
        Ok(Self {
            key,
            key_item: request.key,
            prepared,
            on_failure: request.return_values_on_condition_check_failure,
        })
    }

    /// Checks the condition on `old`; returns the error to cancel with if it fails.
    pub(crate) fn check(&self, old: Option<&Item>) -> Result<()> {
        check_condition(&self.prepared, self.on_failure, old)
    }

    /// The item after the update: `old`, or the key alone if there is none, updated; `None`
    /// when there is no item and the update only takes away (REMOVE, DELETE), for which
    /// DynamoDB creates no item (and ignores paths it could not resolve).
    pub(crate) fn apply(&self, table: &TableRecord, old: Option<&Item>) -> Result<Option<Item>> {
        let only_takes_away = self
            .prepared
            .update
            .as_ref()
            .is_some_and(|u| u.set.is_empty() && u.add.is_empty());
        if old.is_none() && only_takes_away {
            return Ok(None);
        }
        let base = old.unwrap_or(&self.key_item);
        let new = match &self.prepared.update {
            Some(update) => self.prepared.context().apply(base, update)?,
            None => base.clone(),
        };
        validate_item(&new, UPDATE_TOO_BIG)?;
        crate::index::validate_index_keys(table, &new)?;
        Ok(Some(new))
    }
}

/// A checked DeleteItem or ConditionCheck.
#[derive(Debug)]
pub(crate) struct PreparedDelete {
    pub key: Bytes,
    pub prepared: Prepared,
    pub on_failure: ReturnValuesOnConditionCheckFailure,
}

impl PreparedDelete {
    pub(crate) fn new(
        table: &TableRecord,
        key: &Item,
        condition: Option<&str>,
        placeholders: crate::api::Placeholders,
        on_failure: ReturnValuesOnConditionCheckFailure,
    ) -> Result<Self> {
        let key = key_param(table.id, &table.key_schema, key)?;
        let texts = Texts {
            condition: condition.map(|c| ("ConditionExpression", c)),
            absent: Some("ConditionExpression is null"),
            ..Texts::default()
        };
        let prepared = Prepared::new(texts, placeholders.names, placeholders.values)?;
        Ok(Self {
            key,
            prepared,
            on_failure,
        })
    }

    /// Checks the condition on `old`; returns the error to cancel with if it fails.
    pub(crate) fn check(&self, old: Option<&Item>) -> Result<()> {
        check_condition(&self.prepared, self.on_failure, old)
    }
}

fn non_empty(item: Item) -> Option<Item> {
    (!item.is_empty()).then_some(item)
}

impl KvService {
    pub(crate) fn get_item_now(&self, request: GetItem) -> Result<Option<Item>> {
        let table = self.table(&request.table_name)?;
        let key = key_param(table.id, &table.key_schema, &request.key)?;
        let texts = Texts {
            projection: request.projection_expression.as_deref(),
            ..Texts::default()
        };
        let prepared = Prepared::new(
            texts,
            request.placeholders.names,
            request.placeholders.values,
        )?;
        let Some(raw) = self.store.snapshot()?.get(KS_ITEMS, &key)? else {
            return Ok(None);
        };
        Ok(Some(prepared.project(decode(KS_ITEMS, &raw)?)))
    }

    pub(crate) async fn put_item_now(&self, request: PutItem) -> Result<Option<Item>> {
        let table = self.table(&request.table_name)?;
        only_old_or_none(request.return_values)?;
        let return_values = request.return_values;
        let put = PreparedPut::new(&table, request)?;
        let now = self.now();
        self.store
            .write(Durability::Durable, move |txn| {
                let table = live_table(txn, &table)?;
                let old = if needs_old(&table, &put.prepared, return_values) {
                    read_item(txn, &put.key)?
                } else {
                    None
                };
                put.check(old.as_ref())?;
                write_item(
                    txn,
                    &table,
                    put.key,
                    old.as_ref(),
                    Some(&put.item),
                    now,
                    Actor::User,
                )?;
                Ok(match return_values {
                    ReturnValues::ALL_OLD => old,
                    _ => None,
                })
            })
            .await
    }

    pub(crate) async fn update_item_now(&self, request: UpdateItem) -> Result<Option<Item>> {
        let table = self.table(&request.table_name)?;
        let return_values = request.return_values;
        let update = PreparedUpdate::new(&table, request)?;
        let now = self.now();
        self.store
            .write(Durability::Durable, move |txn| {
                let table = live_table(txn, &table)?;
                let old = read_item(txn, &update.key)?;
                update.check(old.as_ref())?;
                let Some(new) = update.apply(&table, old.as_ref())? else {
                    // Nothing to take away from: no item, no write, nothing to return.
                    return Ok(None);
                };
                write_item(
                    txn,
                    &table,
                    update.key.clone(),
                    old.as_ref(),
                    Some(&new),
                    now,
                    Actor::User,
                )?;
                let paths = &update.prepared.update_paths;
                Ok(match return_values {
                    ReturnValues::NONE => None,
                    ReturnValues::ALL_OLD => old,
                    ReturnValues::ALL_NEW => Some(new),
                    ReturnValues::UPDATED_OLD => old.and_then(|o| non_empty(project(&o, paths))),
                    ReturnValues::UPDATED_NEW => non_empty(project(&new, paths)),
                })
            })
            .await
    }

    pub(crate) async fn delete_item_now(&self, request: DeleteItem) -> Result<Option<Item>> {
        let table = self.table(&request.table_name)?;
        only_old_or_none(request.return_values)?;
        let return_values = request.return_values;
        let delete = PreparedDelete::new(
            &table,
            &request.key,
            request.condition_expression.as_deref(),
            request.placeholders,
            request.return_values_on_condition_check_failure,
        )?;
        let now = self.now();
        self.store
            .write(Durability::Durable, move |txn| {
                let table = live_table(txn, &table)?;
                let old = read_item(txn, &delete.key)?;
                delete.check(old.as_ref())?;
                write_item(
                    txn,
                    &table,
                    delete.key,
                    old.as_ref(),
                    None,
                    now,
                    Actor::User,
                )?;
                Ok(match return_values {
                    ReturnValues::ALL_OLD => old,
                    _ => None,
                })
            })
            .await
    }
}
