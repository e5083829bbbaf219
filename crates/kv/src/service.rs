//! [`KvService`]: the table API over a [`Store`] and a clock; table management lives here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::{Direction, Durability, KeyRange, ReadView, SharedClock, Store, WriteTxn};

use crate::api::{
    BatchGetItemOutput, BatchWriteItemOutput, DeleteItem, GetItem, KeysAndAttributes,
    ListTablesOutput, Page, PutItem, Query, Scan, Tables, TransactGet, TransactWriteItems,
    UpdateItem, WriteRequest,
};
use crate::codec::{decode_item, encode_item};
use crate::schema::{
    CreateTable, KeySchema, SecondaryIndex, TableDescription, TableRecord, TableStatus,
    validate_name,
};
use crate::value::{Item, item_size};
use crate::{Error, Result};

/// Table definitions by name (JSON).
pub(crate) const KS_TABLES: &str = "kv.tables";
/// Table ids of live tables, to their names: writes check a table still exists.
pub(crate) const KS_LIVE: &str = "kv.live";
/// Items: `(table id, partition key[, sort key])` to the encoded item.
pub(crate) const KS_ITEMS: &str = "kv.items";
/// Counters.
pub(crate) const KS_META: &str = "kv.meta";

/// The most global secondary indexes per table.
pub const MAX_GLOBAL_INDEXES: usize = 20;
/// The most local secondary indexes per table.
pub const MAX_LOCAL_INDEXES: usize = 5;
/// How many keys one transaction of a bulk job (table deletion, backfill) handles.
const CHUNK: usize = 500;

/// Table definitions, cached; `generation` moves on every change so a reader that loaded a
/// definition from an older snapshot does not cache it.
#[derive(Debug, Default)]
struct Catalog {
    generation: u64,
    tables: HashMap<String, Arc<TableRecord>>,
}

/// DynamoDB semantics over cloudlet storage: every table of one account and region.
///
/// Clones share the store and the table cache. Give each store one service (and clone it):
/// two services over one store would not see each other's table changes in their caches.
#[derive(Clone)]
pub struct KvService {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    region: String,
    account: String,
    catalog: Arc<RwLock<Catalog>>,
    /// Held while jobs run, so resumed jobs and a request's own never run side by side.
    pub(crate) jobs: Arc<std::sync::Mutex<()>>,
}

impl fmt::Debug for KvService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvService")
            .field("region", &self.region)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

pub(crate) fn corrupt(keyspace: &str, reason: impl Into<String>) -> Error {
    Error::Storage(cloudlet_core::Error::corrupt(keyspace, reason))
}

pub(crate) fn decode(keyspace: &str, bytes: &Bytes) -> Result<Item> {
    decode_item(bytes).map_err(|reason| corrupt(keyspace, reason))
}

/// Gives every index of `table` without an id a new one (ids key index entries, so a
/// re-created index never sees a dropped one's leftovers).
pub(crate) fn assign_index_ids(txn: &mut WriteTxn<'_>, table: &mut TableRecord) -> Result<()> {
    let names: Vec<String> = crate::index::indexes(table)
        .map(|i| i.index_name.clone())
        .collect();
    for name in names {
        if let std::collections::btree_map::Entry::Vacant(slot) = table.index_ids.entry(name) {
            slot.insert(txn.next_sequence(KS_META, b"index-id")?);
        }
    }
    table.index_ids.retain(|name, _| {
        table
            .local_secondary_indexes
            .iter()
            .chain(&table.global_secondary_indexes)
            .any(|i| &i.index_name == name)
    });
    Ok(())
}

/// The table's definition as of this transaction: `ResourceNotFoundException` if it was
/// deleted since `table` was looked up, the stored definition if it changed.
pub(crate) fn live_table(txn: &WriteTxn<'_>, table: &Arc<TableRecord>) -> Result<Arc<TableRecord>> {
    let Some(version) = txn.get(KS_LIVE, &Tuple::new().u64(table.id).build())? else {
        return Err(Error::table_not_found(&table.name));
    };
    if version == Tuple::new().u64(table.version).build() {
        return Ok(Arc::clone(table));
    }
    let raw = txn
        .get(KS_TABLES, table.name.as_bytes())?
        .ok_or_else(|| Error::table_not_found(&table.name))?;
    let current: TableRecord =
        serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TABLES, e.to_string()))?;
    Ok(Arc::new(current))
}

impl KvService {
    /// The service over `store`, in region `us-east-1`, account `000000000000`. Work a crash
    /// interrupted (removing a deleted table's items, backfilling an index) resumes on a
    /// thread of its own.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        let service = Self {
            store,
            clock,
            region: "us-east-1".to_owned(),
            account: "000000000000".to_owned(),
            catalog: Arc::default(),
            jobs: Arc::default(),
        };
        service.resume_jobs();
        service
    }

    /// The same service with another region and account in its ARNs.
    #[must_use]
    pub fn with_account(mut self, region: impl Into<String>, account: impl Into<String>) -> Self {
        self.region = region.into();
        self.account = account.into();
        self
    }

    pub(crate) fn table_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{name}",
            self.region, self.account
        )
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn now(&self) -> cloudlet_core::Timestamp {
        self.clock.now()
    }

    /// The definition of `name`.
    pub(crate) fn table(&self, name: &str) -> Result<Arc<TableRecord>> {
        let generation = {
            let catalog = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            if let Some(table) = catalog.tables.get(name) {
                return Ok(Arc::clone(table));
            }
            catalog.generation
        };
        let raw = self
            .store
            .snapshot()?
            .get(KS_TABLES, name.as_bytes())?
            .ok_or_else(|| Error::table_not_found(name))?;
        let table: Arc<TableRecord> =
            Arc::new(serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TABLES, e.to_string()))?);
        let mut catalog = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        if catalog.generation == generation {
            catalog.tables.insert(name.to_owned(), Arc::clone(&table));
        }
        Ok(table)
    }

    pub(crate) fn forget(&self, name: &str) {
        let mut catalog = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        catalog.generation += 1;
        catalog.tables.remove(name);
    }

    fn describe(&self, table: &TableRecord, count: bool) -> Result<TableDescription> {
        let (mut item_count, mut table_size_bytes) = (0, 0);
        if count {
            let snapshot = self.store.snapshot()?;
            let prefix = Tuple::new().u64(table.id).build();
            for entry in snapshot.prefix(KS_ITEMS, &prefix, Direction::Forward)? {
                let (_, value) = entry?;
                item_count += 1;
                table_size_bytes += item_size(&decode(KS_ITEMS, &value)?) as u64;
            }
        }
        Ok(TableDescription {
            table_name: table.name.clone(),
            table_arn: self.table_arn(&table.name),
            key_schema: table.key_schema.clone(),
            table_status: TableStatus::ACTIVE,
            creation_date_time: table.created,
            item_count,
            table_size_bytes,
            local_secondary_indexes: table.local_secondary_indexes.clone(),
            global_secondary_indexes: table.global_secondary_indexes.clone(),
            stream_view_type: table.stream_view_type,
            time_to_live_attribute: table.time_to_live_attribute.clone(),
        })
    }

    fn validate_create(request: &CreateTable) -> Result<()> {
        validate_name("tableName", &request.table_name)?;
        let schema = &request.key_schema;
        if schema
            .sort_key
            .as_ref()
            .is_some_and(|s| s.name == schema.partition_key.name)
        {
            return Err(Error::validation(
                "KeySchema",
                "Both the Hash Key and the Range Key element in the KeySchema have the same name",
            ));
        }
        for key in std::iter::once(&schema.partition_key).chain(&schema.sort_key) {
            if key.name.is_empty() || key.name.len() > 255 {
                return Err(Error::validation(
                    "KeySchema",
                    "1 validation error detected: Value at 'keySchema.member.attributeName' failed to satisfy constraint: Member must have length between 1 and 255",
                ));
            }
        }
        if request.local_secondary_indexes.len() > MAX_LOCAL_INDEXES {
            return Err(Error::validation(
                "LocalSecondaryIndexes",
                "One or more parameter values were invalid: Number of LocalSecondaryIndexes exceeds per-table limit of 5",
            ));
        }
        if request.global_secondary_indexes.len() > MAX_GLOBAL_INDEXES {
            return Err(Error::LimitExceeded {
                message: "Subscriber limit exceeded: The number of global secondary indexes exceeds the limit of 20".to_owned(),
            });
        }
        if !request.local_secondary_indexes.is_empty() && schema.sort_key.is_none() {
            return Err(Error::validation(
                "LocalSecondaryIndexes",
                "One or more parameter values were invalid: Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for index in request
            .local_secondary_indexes
            .iter()
            .chain(&request.global_secondary_indexes)
        {
            crate::index::validate_index(schema, index)?;
            if !names.insert(index.index_name.as_str()) {
                return Err(Error::validation(
                    "IndexName",
                    format!(
                        "One or more parameter values were invalid: Duplicate index name: {}",
                        index.index_name
                    ),
                ));
            }
        }
        for index in &request.local_secondary_indexes {
            if index.key_schema.partition_key != schema.partition_key
                || index.key_schema.sort_key.is_none()
            {
                return Err(Error::validation(
                    "LocalSecondaryIndexes",
                    format!(
                        "One or more parameter values were invalid: Index KeySchema does not have the same leading hash key as table KeySchema for index: {}",
                        index.index_name
                    ),
                ));
            }
        }
        Self::check_attribute_types(
            schema,
            request
                .local_secondary_indexes
                .iter()
                .chain(&request.global_secondary_indexes),
        )
    }

    /// One attribute, one type: an index key named like another key must share its type.
    fn check_attribute_types<'a>(
        schema: &KeySchema,
        indexes: impl Iterator<Item = &'a SecondaryIndex>,
    ) -> Result<()> {
        let mut types = BTreeMap::new();
        let schemas = std::iter::once(schema).chain(indexes.map(|i| &i.key_schema));
        for key in schemas.flat_map(|s| std::iter::once(&s.partition_key).chain(&s.sort_key)) {
            if let Some(previous) = types.insert(key.name.as_str(), key.attribute_type)
                && previous != key.attribute_type
            {
                return Err(Error::validation(
                    "AttributeDefinitions",
                    format!(
                        "One or more parameter values were invalid: Some AttributeDefinitions are not valid: attribute {} has two types",
                        key.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Deletes every key under `prefix` in `keyspace`, a chunk per transaction.
    pub(crate) fn delete_prefix(&self, keyspace: &'static str, prefix: &Bytes) -> Result<()> {
        loop {
            let prefix = prefix.clone();
            let done = self.store.write_blocking(Durability::Durable, move |txn| {
                let keys: Vec<Bytes> = txn
                    .prefix(keyspace, &prefix, Direction::Forward)?
                    .take(CHUNK)
                    .map(|e| e.map(|(k, _)| k))
                    .collect::<cloudlet_core::Result<_>>()?;
                for key in &keys {
                    txn.delete(keyspace, key.clone());
                }
                Ok::<_, Error>(keys.len() < CHUNK)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// Calls `visit` with the items of table `table_id`, a chunk per write transaction, each
    /// chunk seeing the latest data.
    pub(crate) fn for_each_chunk<F>(&self, table_id: u64, visit: F) -> Result<()>
    where
        F: Fn(&mut WriteTxn<'_>, &[(Bytes, Item)]) -> Result<()> + Send + Sync + 'static,
    {
        let visit = Arc::new(visit);
        let prefix = Tuple::new().u64(table_id).build();
        let mut after: Option<Bytes> = None;
        loop {
            let (visit, prefix, from) = (Arc::clone(&visit), prefix.clone(), after.take());
            let last = self.store.write_blocking(Durability::Durable, move |txn| {
                let range = KeyRange {
                    start: from.map_or(
                        std::ops::Bound::Included(prefix.clone()),
                        std::ops::Bound::Excluded,
                    ),
                    end: KeyRange::prefix(&prefix).end,
                };
                let chunk = txn
                    .range(KS_ITEMS, &range, Direction::Forward)?
                    .take(CHUNK)
                    .map(|entry| {
                        let (key, raw) = entry?;
                        Ok((key, decode(KS_ITEMS, &raw)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                visit(txn, &chunk)?;
                Ok::<_, Error>((chunk.len() == CHUNK).then(|| chunk[CHUNK - 1].0.clone()))
            })?;
            match last {
                Some(key) => after = Some(key),
                None => return Ok(()),
            }
        }
    }

    /// Publishes a definition change with the job that follows it, then runs the job. Once the
    /// change commits the call succeeds: a job that fails stays pending and resumes.
    pub(crate) async fn change_definition(
        &self,
        current: Arc<TableRecord>,
        updated: TableRecord,
        job: crate::jobs::Job,
    ) -> Result<Arc<TableRecord>> {
        self.run_blocking(move |service| {
            let updated = service.publish_definition(&current, updated, Some(job))?;
            if let Err(error) = service.run_jobs(Some(updated.id)) {
                tracing::warn!(%error, "kv: work after a definition change failed; it resumes at the next start");
            }
            Ok(updated)
        })
        .await
    }

    /// Stores `updated` as the table's definition, with `job` to follow it, if the stored one
    /// is still `current`'s version and the table has no job pending; gives new indexes their
    /// ids; forgets the cached definition.
    pub(crate) fn publish_definition(
        &self,
        current: &TableRecord,
        mut updated: TableRecord,
        job: Option<crate::jobs::Job>,
    ) -> Result<Arc<TableRecord>> {
        updated.version = current.version;
        let updated = self.store.write_blocking(Durability::Durable, move |txn| {
            assign_index_ids(txn, &mut updated)?;
            crate::index::publish(txn, &mut updated)?;
            if let Some(job) = &job {
                crate::jobs::push(txn, updated.id, job)?;
            }
            Ok::<_, Error>(updated)
        })?;
        self.forget(&updated.name);
        Ok(Arc::new(updated))
    }

    pub(crate) async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Self) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let service = self.clone();
        tokio::task::spawn_blocking(move || f(service))
            .await
            .map_err(|e| corrupt(KS_TABLES, format!("a background task failed: {e}")))?
    }

    /// Stores a changed definition of `table` and forgets the cached one.
    pub(crate) fn store_definition(txn: &mut WriteTxn<'_>, table: &TableRecord) -> Result<()> {
        let json = serde_json::to_vec(table).map_err(|e| corrupt(KS_TABLES, e.to_string()))?;
        txn.put(KS_TABLES, table.name.clone(), json);
        Ok(())
    }
}

#[async_trait]
impl Tables for KvService {
    async fn create_table(&self, request: CreateTable) -> Result<TableDescription> {
        Self::validate_create(&request)?;
        let now = self.now();
        let table = self
            .store
            .write(Durability::Durable, move |txn| {
                let name = request.table_name;
                if txn.get(KS_TABLES, name.as_bytes())?.is_some() {
                    return Err(Error::ResourceInUse {
                        message: format!("Table already exists: {name}"),
                    });
                }
                let id = txn.next_sequence(KS_META, b"table-id")?;
                let mut table = TableRecord {
                    id,
                    version: 0,
                    name,
                    key_schema: request.key_schema,
                    created: now,
                    local_secondary_indexes: request.local_secondary_indexes,
                    global_secondary_indexes: request.global_secondary_indexes,
                    stream_view_type: request.stream_view_type,
                    time_to_live_attribute: None,
                    time_to_live_changed: None,
                    index_ids: BTreeMap::new(),
                    backfilling: std::collections::BTreeSet::new(),
                };
                assign_index_ids(txn, &mut table)?;
                Self::store_definition(txn, &table)?;
                txn.put(
                    KS_LIVE,
                    Tuple::new().u64(id).build(),
                    Tuple::new().u64(0).build(),
                );
                Ok(table)
            })
            .await?;
        self.forget(&table.name);
        self.describe(&table, false)
    }

    async fn delete_table(&self, table: &str) -> Result<TableDescription> {
        let record = self.table(table)?;
        let description = {
            let record = Arc::clone(&record);
            self.run_blocking(move |service| service.describe(&record, true))
                .await?
        };
        let name = table.to_owned();
        let id = record.id;
        self.store
            .write(Durability::Durable, move |txn| {
                // By id, not only by name: the table may have been deleted and re-created.
                let stored = txn
                    .get(KS_TABLES, name.as_bytes())?
                    .map(|raw| serde_json::from_slice::<TableRecord>(&raw))
                    .transpose()
                    .map_err(|e| corrupt(KS_TABLES, e.to_string()))?;
                if stored.is_none_or(|t| t.id != id) {
                    return Err(Error::table_not_found(&name));
                }
                txn.delete(KS_TABLES, name);
                txn.delete(KS_LIVE, Tuple::new().u64(id).build());
                crate::jobs::push(txn, id, &crate::jobs::Job::RemoveTable)?;
                Ok(())
            })
            .await?;
        self.forget(table);
        // The deletion is committed; if removing the data fails now, it resumes at the next
        // start, so the caller still hears of success.
        if let Err(error) = self
            .run_blocking(move |service| service.run_jobs(Some(id)))
            .await
        {
            tracing::warn!(%error, table = %description.table_name, "kv: removing a deleted table's data failed; it resumes at the next start");
        }
        Ok(TableDescription {
            table_status: TableStatus::DELETING,
            ..description
        })
    }

    async fn describe_table(&self, table: &str) -> Result<TableDescription> {
        let record = self.table(table)?;
        self.run_blocking(move |service| service.describe(&record, true))
            .await
    }

    async fn list_tables(
        &self,
        exclusive_start: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListTablesOutput> {
        let limit = limit.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(Error::validation(
                "Limit",
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100",
            ));
        }
        let range = match exclusive_start {
            Some(start) => KeyRange {
                start: std::ops::Bound::Excluded(Bytes::copy_from_slice(start.as_bytes())),
                end: std::ops::Bound::Unbounded,
            },
            None => KeyRange::all(),
        };
        let snapshot = self.store.snapshot()?;
        let mut names = Vec::new();
        // One more than the page, to know whether another page follows.
        for entry in snapshot
            .range(KS_TABLES, &range, Direction::Forward)?
            .take(limit + 1)
        {
            let (key, _) = entry?;
            names.push(String::from_utf8_lossy(&key).into_owned());
        }
        let more = names.len() > limit;
        names.truncate(limit);
        Ok(ListTablesOutput {
            last_evaluated_table_name: more.then(|| names.last().cloned()).flatten(),
            table_names: names,
        })
    }

    async fn create_global_index(
        &self,
        table: &str,
        index: SecondaryIndex,
    ) -> Result<TableDescription> {
        let record = self.table(table)?;
        crate::index::validate_index(&record.key_schema, &index)?;
        let mut updated = (*record).clone();
        if updated
            .global_secondary_indexes
            .iter()
            .chain(&updated.local_secondary_indexes)
            .any(|i| i.index_name == index.index_name)
        {
            return Err(Error::validation(
                "IndexName",
                format!(
                    "One or more parameter values were invalid: Attempting to create an index which already exists: {}",
                    index.index_name
                ),
            ));
        }
        if updated.global_secondary_indexes.len() >= MAX_GLOBAL_INDEXES {
            return Err(Error::LimitExceeded {
                message: "Subscriber limit exceeded: The number of global secondary indexes exceeds the limit of 20".to_owned(),
            });
        }
        updated.global_secondary_indexes.push(index.clone());
        Self::check_attribute_types(
            &updated.key_schema,
            updated
                .local_secondary_indexes
                .iter()
                .chain(&updated.global_secondary_indexes),
        )?;
        updated.backfilling.insert(index.index_name.clone());
        let job = crate::jobs::Job::Backfill {
            index: index.index_name,
        };
        let updated = self.change_definition(record, updated, job).await?;
        self.describe(&updated, false)
    }

    async fn delete_global_index(&self, table: &str, index: &str) -> Result<TableDescription> {
        let record = self.table(table)?;
        let mut updated = (*record).clone();
        let before = updated.global_secondary_indexes.len();
        updated
            .global_secondary_indexes
            .retain(|i| i.index_name != index);
        if updated.global_secondary_indexes.len() == before {
            return Err(Error::ResourceNotFound {
                message: format!("Requested resource not found: Index: {index} not found"),
            });
        }
        let job = crate::jobs::Job::RemoveIndex {
            index_id: record.index_ids.get(index).copied().unwrap_or(u64::MAX),
        };
        let updated = self.change_definition(record, updated, job).await?;
        self.describe(&updated, false)
    }

    async fn get_item(&self, request: GetItem) -> Result<Option<Item>> {
        self.get_item_now(request)
    }

    async fn put_item(&self, request: PutItem) -> Result<Option<Item>> {
        self.put_item_now(request).await
    }

    async fn update_item(&self, request: UpdateItem) -> Result<Option<Item>> {
        self.update_item_now(request).await
    }

    async fn delete_item(&self, request: DeleteItem) -> Result<Option<Item>> {
        self.delete_item_now(request).await
    }

    async fn query(&self, request: Query) -> Result<Page> {
        self.query_now(request)
    }

    async fn scan(&self, request: Scan) -> Result<Page> {
        self.scan_now(request)
    }

    async fn batch_get_item(
        &self,
        request: BTreeMap<String, KeysAndAttributes>,
    ) -> Result<BatchGetItemOutput> {
        self.batch_get_now(request)
    }

    async fn batch_write_item(
        &self,
        request: BTreeMap<String, Vec<WriteRequest>>,
    ) -> Result<BatchWriteItemOutput> {
        self.batch_write_now(request).await
    }

    async fn transact_write_items(&self, request: TransactWriteItems) -> Result<()> {
        self.transact_write_now(request).await
    }

    async fn transact_get_items(&self, request: Vec<TransactGet>) -> Result<Vec<Option<Item>>> {
        self.transact_get_now(request)
    }
}

/// Encodes an item for the items keyspace.
pub(crate) fn encode(item: &Item) -> Bytes {
    encode_item(item)
}
