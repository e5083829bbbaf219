//! BatchGetItem, BatchWriteItem, TransactWriteItems and TransactGetItems.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::{Durability, ReadView, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{
    BatchGetItemOutput, BatchWriteItemOutput, KeysAndAttributes, PutItem, ReturnValues,
    TransactGet, TransactWriteItem, TransactWriteItems, WriteRequest,
};
use crate::error::CancellationReason;
use crate::expr::{Prepared, Texts};
use crate::items::{Actor, PreparedDelete, PreparedPut, PreparedUpdate, read_item, write_item};
use crate::schema::{TableRecord, key_param};
use crate::service::{KS_ITEMS, KvService, corrupt, decode, live_table};
use crate::value::{Item, item_size};
use crate::{Error, Result};

/// The most keys of a BatchGetItem.
pub const MAX_BATCH_GET_KEYS: usize = 100;
/// The most bytes a BatchGetItem returns; later keys come back unprocessed.
pub const MAX_BATCH_GET_BYTES: usize = 16 * 1024 * 1024;
/// The most writes of a BatchWriteItem.
pub const MAX_BATCH_WRITES: usize = 25;
/// The most actions of a transaction.
pub const MAX_TRANSACT_ITEMS: usize = 100;
/// The most bytes a transaction may write.
pub const MAX_TRANSACT_BYTES: usize = 4 * 1024 * 1024;
/// How long a client request token is remembered.
pub const CLIENT_TOKEN_WINDOW: Duration = Duration::from_secs(600);
/// The longest client request token.
pub const MAX_CLIENT_TOKEN_LENGTH: usize = 36;

/// Client request tokens: token to the request's digest and when it expires.
pub(crate) const KS_TOKENS: &str = "kv.tokens";

#[derive(Debug, Serialize, Deserialize)]
struct TokenRecord {
    digest: String,
    expires: Timestamp,
}

fn too_many(field: &'static str, count: usize, limit: usize) -> Error {
    Error::validation(
        field,
        format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length less than or equal to {limit} (found {count})"
        ),
    )
}

fn duplicates() -> Error {
    Error::validation("Key", "Provided list of item keys contains duplicates")
}

/// One checked action of a transaction.
#[derive(Debug)]
enum Action {
    Put(PreparedPut),
    Update(PreparedUpdate),
    Delete(PreparedDelete),
    Check(PreparedDelete),
}

impl Action {
    fn key(&self) -> &Bytes {
        match self {
            Self::Put(p) => &p.key,
            Self::Update(u) => &u.key,
            Self::Delete(d) | Self::Check(d) => &d.key,
        }
    }
}

fn none_only(return_values: ReturnValues) -> Result<()> {
    if return_values == ReturnValues::NONE {
        Ok(())
    } else {
        Err(Error::validation(
            "ReturnValues",
            "ReturnValues is not supported in a transaction; use ReturnValuesOnConditionCheckFailure",
        ))
    }
}

impl KvService {
    /// Removes the client request tokens whose 10 minutes have passed.
    pub(crate) fn forget_client_tokens(&self, now: Timestamp) -> Result<()> {
        let expired: Vec<Bytes> = self
            .store
            .snapshot()?
            .prefix(KS_TOKENS, b"", cloudlet_core::Direction::Forward)?
            .filter_map(|entry| {
                let (key, raw) = match entry {
                    Ok(found) => found,
                    Err(error) => return Some(Err(Error::from(error))),
                };
                match serde_json::from_slice::<TokenRecord>(&raw) {
                    Ok(record) if record.expires <= now => Some(Ok(key)),
                    Ok(_) => None,
                    Err(e) => Some(Err(corrupt(KS_TOKENS, e.to_string()))),
                }
            })
            .collect::<Result<_>>()?;
        for chunk in expired.chunks(500) {
            let chunk = chunk.to_vec();
            self.store.write_blocking(Durability::Durable, move |txn| {
                for key in chunk {
                    // A token reused since it was read stays.
                    let still_expired = txn
                        .get(KS_TOKENS, &key)?
                        .and_then(|raw| serde_json::from_slice::<TokenRecord>(&raw).ok())
                        .is_some_and(|record| record.expires <= now);
                    if still_expired {
                        txn.delete(KS_TOKENS, key);
                    }
                }
                Ok::<_, Error>(())
            })?;
        }
        Ok(())
    }

    pub(crate) fn batch_get_now(
        &self,
        request: BTreeMap<String, KeysAndAttributes>,
    ) -> Result<BatchGetItemOutput> {
        let total: usize = request.values().map(|r| r.keys.len()).sum();
        if total == 0 {
            return Err(Error::validation(
                "RequestItems",
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if total > MAX_BATCH_GET_KEYS {
            return Err(Error::validation(
                "RequestItems",
                "Too many items requested for the BatchGetItem call",
            ));
        }
        let mut plans = Vec::new();
        for (name, request) in request {
            let table = self.table(&name)?;
            let texts = Texts {
                projection: request.projection_expression.as_deref(),
                ..Texts::default()
            };
            let prepared = Prepared::new(texts, request.names.clone(), Item::new())?;
            let mut seen = BTreeSet::new();
            let mut keys = Vec::new();
            for key in &request.keys {
                let encoded = key_param(table.id, &table.key_schema, key)?;
                if !seen.insert(encoded.clone()) {
                    return Err(duplicates());
                }
                keys.push((encoded, key.clone()));
            }
            plans.push((name, request, prepared, keys));
        }
        let snapshot = self.store.snapshot()?;
        let mut output = BatchGetItemOutput::default();
        let mut bytes = 0usize;
        for (name, request, prepared, keys) in plans {
            let found = output.responses.entry(name.clone()).or_default();
            for (encoded, key) in keys {
                if bytes >= MAX_BATCH_GET_BYTES {
                    output
                        .unprocessed_keys
                        .entry(name.clone())
                        .or_insert_with(|| KeysAndAttributes {
                            keys: Vec::new(),
                            ..request.clone()
                        })
                        .keys
                        .push(key);
                    continue;
                }
                if let Some(raw) = snapshot.get(KS_ITEMS, &encoded)? {
                    let item = decode(KS_ITEMS, &raw)?;
                    bytes += item_size(&item);
                    found.push(prepared.project(item));
                }
            }
        }
        Ok(output)
    }

    pub(crate) async fn batch_write_now(
        &self,
        request: BTreeMap<String, Vec<WriteRequest>>,
    ) -> Result<BatchWriteItemOutput> {
        let total: usize = request.values().map(Vec::len).sum();
        if total == 0 {
            return Err(Error::validation(
                "RequestItems",
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if total > MAX_BATCH_WRITES {
            return Err(Error::validation(
                "RequestItems",
                "Too many items requested for the BatchWriteItem call",
            ));
        }
        let mut writes: Vec<(Arc<TableRecord>, Bytes, Option<Item>)> = Vec::new();
        for (name, requests) in request {
            let table = self.table(&name)?;
            let mut seen = BTreeSet::new();
            for request in requests {
                let (key, item) = match request {
                    WriteRequest::Put { item } => {
                        let put = PreparedPut::new(&table, PutItem::new(name.clone(), item))?;
                        (put.key, Some(put.item))
                    }
                    WriteRequest::Delete { key } => {
                        (key_param(table.id, &table.key_schema, &key)?, None)
                    }
                };
                if !seen.insert(key.clone()) {
                    return Err(duplicates());
                }
                writes.push((Arc::clone(&table), key, item));
            }
        }
        let now = self.now();
        self.store
            .write(Durability::Durable, move |txn| {
                for (table, key, item) in writes {
                    let table = live_table(txn, &table)?;
                    let old = read_item(txn, &key)?;
                    write_item(
                        txn,
                        &table,
                        key,
                        old.as_ref(),
                        item.as_ref(),
                        now,
                        Actor::User,
                    )?;
                }
                Ok(BatchWriteItemOutput::default())
            })
            .await
    }

    pub(crate) async fn transact_write_now(&self, request: TransactWriteItems) -> Result<()> {
        let count = request.transact_items.len();
        if count == 0 {
            return Err(Error::validation(
                "TransactItems",
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if count > MAX_TRANSACT_ITEMS {
            return Err(too_many("transactItems", count, MAX_TRANSACT_ITEMS));
        }
        let token = match &request.client_request_token {
            Some(token) if token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LENGTH => {
                return Err(Error::validation(
                    "ClientRequestToken",
                    "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length between 1 and 36",
                ));
            }
            Some(token) => {
                let json = serde_json::to_vec(&request.transact_items)
                    .map_err(|e| corrupt(KS_TOKENS, e.to_string()))?;
                let digest: String = Sha256::digest(&json)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                Some((token.clone(), digest))
            }
            None => None,
        };
        let mut actions = Vec::with_capacity(count);
        let mut seen = BTreeSet::new();
        let mut bytes = 0usize;
        for item in request.transact_items {
            let (table, action) = match item {
                TransactWriteItem::Put(put) => {
                    let table = self.table(&put.table_name)?;
                    none_only(put.return_values)?;
                    bytes += item_size(&put.item);
                    let action = Action::Put(PreparedPut::new(&table, put)?);
                    (table, action)
                }
                TransactWriteItem::Update(update) => {
                    let table = self.table(&update.table_name)?;
                    none_only(update.return_values)?;
                    let action = Action::Update(PreparedUpdate::new(&table, update)?);
                    (table, action)
                }
                TransactWriteItem::Delete(delete) => {
                    let table = self.table(&delete.table_name)?;
                    none_only(delete.return_values)?;
                    let action = Action::Delete(PreparedDelete::new(
                        &table,
                        &delete.key,
                        delete.condition_expression.as_deref(),
                        delete.placeholders,
                        delete.return_values_on_condition_check_failure,
                    )?);
                    (table, action)
                }
                TransactWriteItem::ConditionCheck(check) => {
                    let table = self.table(&check.table_name)?;
                    if check.condition_expression.is_none() {
                        return Err(Error::validation(
                            "ConditionExpression",
                            "1 validation error detected: Value null at 'transactItems.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null",
                        ));
                    }
                    let action = Action::Check(PreparedDelete::new(
                        &table,
                        &check.key,
                        check.condition_expression.as_deref(),
                        check.placeholders,
                        check.return_values_on_condition_check_failure,
                    )?);
                    (table, action)
                }
            };
            // Item keys start with the table id, so equal keys mean the same item.
            if !seen.insert(action.key().clone()) {
                return Err(Error::validation(
                    "TransactItems",
                    "Transaction request cannot include multiple operations on one item",
                ));
            }
            actions.push((table, action));
        }
        if bytes > MAX_TRANSACT_BYTES {
            return Err(transaction_too_big());
        }
        let now = self.now();
        self.store
            .write(Durability::Durable, move |txn| {
                if let Some((token, digest)) = &token {
                    let key = Tuple::new().str(token).build();
                    if let Some(raw) = txn.get(KS_TOKENS, &key)? {
                        let record: TokenRecord = serde_json::from_slice(&raw)
                            .map_err(|e| corrupt(KS_TOKENS, e.to_string()))?;
                        if record.expires > now {
                            return if record.digest == *digest {
                                Ok(())
                            } else {
                                Err(Error::IdempotentParameterMismatch)
                            };
                        }
                    }
                }
                let mut reasons = Vec::with_capacity(actions.len());
                let mut failed = false;
                let mut plan = Vec::with_capacity(actions.len());
                for (table, action) in &actions {
                    let table = live_table(txn, table)?;
                    let old = read_item(txn, action.key())?;
                    let checked = match action {
                        Action::Put(p) => {
                            p.check(old.as_ref()).map(|()| Some(Some(p.item.clone())))
                        }
                        Action::Update(u) => u
                            .check(old.as_ref())
                            .and_then(|()| u.apply(&table, old.as_ref()))
                            .map(|new| new.map(Some)),
                        Action::Delete(d) => d.check(old.as_ref()).map(|()| Some(None)),
                        Action::Check(c) => c.check(old.as_ref()).map(|()| None),
                    };
                    match checked {
                        Ok(write) => {
                            reasons.push(CancellationReason::none());
                            plan.push((table, action.key().clone(), old, write));
                        }
                        Err(Error::ConditionalCheckFailed { item }) => {
                            failed = true;
                            reasons.push(CancellationReason {
                                code: "ConditionalCheckFailed".to_owned(),
                                message: Some("The conditional request failed".to_owned()),
                                item,
                            });
                        }
                        Err(Error::Validation { message, .. }) => {
                            failed = true;
                            reasons.push(CancellationReason {
                                code: "ValidationError".to_owned(),
                                message: Some(message),
                                item: None,
                            });
                        }
                        Err(other) => return Err(other),
                    }
                }
                if failed {
                    return Err(Error::TransactionCanceled { reasons });
                }
                // The items the transaction writes, updated ones as they come out, may not
                // exceed 4 MB in all (puts were counted before, from the request).
                let written: usize = plan
                    .iter()
                    .filter_map(|(_, _, _, write)| write.as_ref()?.as_ref())
                    .map(item_size)
                    .sum();
                if written > MAX_TRANSACT_BYTES {
                    return Err(transaction_too_big());
                }
                for (table, key, old, write) in plan {
                    if let Some(new) = write {
                        write_item(
                            txn,
                            &table,
                            key,
                            old.as_ref(),
                            new.as_ref(),
                            now,
                            Actor::User,
                        )?;
                    }
                }
                if let Some((token, digest)) = token {
                    let record = TokenRecord {
                        digest,
                        expires: now.saturating_add(CLIENT_TOKEN_WINDOW),
                    };
                    let json = serde_json::to_vec(&record)
                        .map_err(|e| corrupt(KS_TOKENS, e.to_string()))?;
                    txn.put(KS_TOKENS, Tuple::new().str(&token).build(), json);
                }
                Ok(())
            })
            .await
    }

    pub(crate) fn transact_get_now(&self, request: Vec<TransactGet>) -> Result<Vec<Option<Item>>> {
        if request.is_empty() {
            return Err(Error::validation(
                "TransactItems",
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if request.len() > MAX_TRANSACT_ITEMS {
            return Err(too_many("transactItems", request.len(), MAX_TRANSACT_ITEMS));
        }
        let mut plans = Vec::with_capacity(request.len());
        let mut seen = BTreeSet::new();
        for get in request {
            let table = self.table(&get.table_name)?;
            let key = key_param(table.id, &table.key_schema, &get.key)?;
            if !seen.insert(key.clone()) {
                return Err(Error::validation(
                    "TransactItems",
                    "Transaction request cannot include multiple operations on one item",
                ));
            }
            let texts = Texts {
                projection: get.projection_expression.as_deref(),
                ..Texts::default()
            };
            plans.push((key, Prepared::new(texts, get.names, Item::new())?));
        }
        let snapshot = self.store.snapshot()?;
        plans
            .into_iter()
            .map(|(key, prepared)| {
                snapshot
                    .get(KS_ITEMS, &key)?
                    .map(|raw| decode(KS_ITEMS, &raw).map(|item| prepared.project(item)))
                    .transpose()
            })
            .collect()
    }
}

fn transaction_too_big() -> Error {
    Error::validation(
        "TransactItems",
        "Transaction request size has exceeded the maximum allowed size of 4 MB",
    )
}
