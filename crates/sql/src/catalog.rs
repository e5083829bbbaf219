//! The catalog (the Glue idea): databases, their tables and views, and the workgroups, kept in
//! core's store so that they survive a restart.
//!
//! A table is stored as the statement that created it, and built again from it. Tables loaded
//! at open are built on first use, not at open: opening never touches a bucket, and a table
//! whose bucket has gone fails only the queries that read it, with an error naming it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{Direction, Durability, ReadView, Store, Timestamp};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// The catalog's keyspace.
pub(crate) const KS_CATALOG: &str = "sql.catalog";

/// How a stored table is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableKind {
    /// `CREATE EXTERNAL TABLE`, or the table a CTAS wrote.
    ExternalTable,
    /// `CREATE VIEW`.
    VirtualView,
}

/// A table or view as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableRecord {
    pub(crate) database: String,
    pub(crate) name: String,
    pub(crate) kind: TableKind,
    /// The statement that creates it, run with `database` as the default schema.
    pub(crate) sql: String,
    /// A view's query, planned each time the view is read.
    #[serde(default)]
    pub(crate) query: Option<String>,
    /// The database the creating statement ran in, where a view's unqualified names
    /// resolve (`database` when absent, as records written before it was kept).
    #[serde(default)]
    pub(crate) default_database: Option<String>,
    pub(crate) created: Timestamp,
    /// A view's columns when it was created: what `information_schema` lists for it while
    /// the tables it reads are broken, as Athena keeps a view's columns with the view.
    #[serde(default)]
    pub(crate) columns: Option<Vec<StoredColumn>>,
}

/// A column as stored: its name, Arrow type (as Arrow prints it) and nullability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct StoredColumn {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) nullable: bool,
}

impl StoredColumn {
    /// The columns of `schema`.
    pub(crate) fn of(schema: &datafusion::arrow::datatypes::Schema) -> Vec<Self> {
        schema
            .fields()
            .iter()
            .map(|f| Self {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect()
    }

    /// The schema of `columns` (a type that no longer parses becomes Utf8).
    fn schema(columns: &[Self]) -> datafusion::arrow::datatypes::SchemaRef {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| {
                    let data_type = c.data_type.parse().unwrap_or(DataType::Utf8);
                    Field::new(&c.name, data_type, c.nullable)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// A view that cannot be planned now (a table it reads was dropped, or changed): it keeps
/// the columns it was created with, so listings still show it, and reading it fails with
/// why.
#[derive(Debug)]
struct BrokenView {
    schema: datafusion::arrow::datatypes::SchemaRef,
    reason: String,
    definition: String,
}

#[async_trait]
impl TableProvider for BrokenView {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Err(DataFusionError::Plan(self.reason.clone()))
    }
}

/// A database as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DatabaseRecord {
    pub(crate) name: String,
    pub(crate) created: Timestamp,
}

fn database_key(name: &str) -> Vec<u8> {
    Tuple::new().str("db").str(name).build().to_vec()
}

fn table_key(database: &str, name: &str) -> Vec<u8> {
    Tuple::new()
        .str("table")
        .str(database)
        .str(name)
        .build()
        .to_vec()
}

fn workgroup_key(name: &str) -> Vec<u8> {
    Tuple::new().str("wg").str(name).build().to_vec()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Storage(cloudlet_core::Error::corrupt(KS_CATALOG, e.to_string())))
}

/// Everything stored, read at open.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub(crate) databases: Vec<DatabaseRecord>,
    pub(crate) tables: Vec<TableRecord>,
    pub(crate) workgroups: Vec<crate::WorkGroup>,
}

/// Reads the whole catalog.
pub(crate) fn load(store: &Store) -> Result<Stored> {
    let snapshot = store.snapshot()?;
    let mut stored = Stored::default();
    for entry in snapshot.prefix(KS_CATALOG, b"", Direction::Forward)? {
        let (key, value) = entry?;
        let mut reader = TupleReader::new(&key);
        match reader.str()?.as_str() {
            "db" => stored.databases.push(decode(&value)?),
            "table" => stored.tables.push(decode(&value)?),
            "wg" => stored.workgroups.push(decode(&value)?),
            _ => {}
        }
    }
    Ok(stored)
}

/// One change to the catalog, written durably before it is applied in memory.
pub(crate) enum Change {
    PutDatabase(DatabaseRecord),
    DeleteDatabase(String),
    PutTable(TableRecord),
    DeleteTable(String, String),
    PutWorkGroup(crate::WorkGroup),
    DeleteWorkGroup(String),
}

pub(crate) async fn write(store: &Store, changes: Vec<Change>) -> Result<()> {
    let mut puts = Vec::new();
    let mut deletes = Vec::new();
    for change in &changes {
        match change {
            Change::PutDatabase(d) => puts.push((database_key(&d.name), encode(d))),
            Change::DeleteDatabase(name) => deletes.push(database_key(name)),
            Change::PutTable(t) => puts.push((table_key(&t.database, &t.name), encode(t))),
            Change::DeleteTable(db, name) => deletes.push(table_key(db, name)),
            Change::PutWorkGroup(w) => puts.push((workgroup_key(&w.name), encode(w))),
            Change::DeleteWorkGroup(name) => deletes.push(workgroup_key(name)),
        }
    }
    store
        .write(Durability::Durable, move |txn| {
            for (key, value) in puts {
                txn.put(KS_CATALOG, key, value);
            }
            for key in deletes {
                txn.delete(KS_CATALOG, key);
            }
            Ok::<_, Error>(())
        })
        .await
}

/// Builds a stored table when it is first used.
#[async_trait]
pub(crate) trait TableBuilder: Send + Sync + 'static {
    async fn build(&self, record: &TableRecord) -> Result<Arc<dyn TableProvider>>;
}

/// A table of a database: built, or waiting to be built from its record.
struct Entry {
    record: Option<TableRecord>,
    provider: OnceCell<Arc<dyn TableProvider>>,
}

/// One database as DataFusion sees it.
pub(crate) struct Database {
    name: String,
    tables: RwLock<BTreeMap<String, Arc<Entry>>>,
    builder: Weak<dyn TableBuilder>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("tables", &self.table_names())
            .finish()
    }
}

impl Database {
    pub(crate) fn new(name: &str, builder: Weak<dyn TableBuilder>) -> Self {
        Self {
            name: name.to_owned(),
            tables: RwLock::default(),
            builder,
        }
    }

    /// Adds a stored table, to be built on first use.
    pub(crate) fn add_stored(&self, record: TableRecord) {
        if let Ok(mut tables) = self.tables.write() {
            tables.insert(
                record.name.clone(),
                Arc::new(Entry {
                    record: Some(record),
                    provider: OnceCell::new(),
                }),
            );
        }
    }

    /// Adds a table just created from `record`. A table keeps `provider`; a view is planned
    /// again each time it is read, so that it sees the tables it reads as they are now.
    pub(crate) fn add_created(&self, record: TableRecord, provider: Arc<dyn TableProvider>) {
        let provider = match record.kind {
            TableKind::ExternalTable => OnceCell::from(provider),
            TableKind::VirtualView => OnceCell::new(),
        };
        if let Ok(mut tables) = self.tables.write() {
            tables.insert(
                record.name.clone(),
                Arc::new(Entry {
                    record: Some(record),
                    provider,
                }),
            );
        }
    }

    /// The stored record of a table or view.
    pub(crate) fn record(&self, name: &str) -> Option<TableRecord> {
        let tables = self.tables.read().ok()?;
        tables.get(name)?.record.clone()
    }

    /// Adds a table built already.
    pub(crate) fn add_built(&self, name: &str, provider: Arc<dyn TableProvider>) {
        if let Ok(mut tables) = self.tables.write() {
            tables.insert(
                name.to_owned(),
                Arc::new(Entry {
                    record: None,
                    provider: OnceCell::from(provider),
                }),
            );
        }
    }

    pub(crate) fn remove(&self, name: &str) -> bool {
        self.tables
            .write()
            .map(|mut t| t.remove(name).is_some())
            .unwrap_or(false)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tables.read().map(|t| t.is_empty()).unwrap_or(true)
    }
}

#[async_trait]
impl SchemaProvider for Database {
    fn table_names(&self) -> Vec<String> {
        self.tables
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(entry) = self.tables.read().ok().and_then(|t| t.get(name).cloned()) else {
            return Ok(None);
        };
        let build = || async {
            let (Some(record), Some(builder)) = (&entry.record, self.builder.upgrade()) else {
                return Err(DataFusionError::Execution(format!(
                    "table {}.{name} cannot be built: the service is shut down",
                    self.name
                )));
            };
            builder.build(record).await.map_err(|e| {
                DataFusionError::Execution(format!(
                    "table {}.{name} cannot be loaded from its definition: {e}",
                    self.name
                ))
            })
        };
        if let Some(record) = entry
            .record
            .as_ref()
            .filter(|r| r.kind == TableKind::VirtualView)
        {
            // Views are planned at each use, against the catalog as it is now. One that
            // cannot be planned keeps its columns and fails when read.
            return match build().await {
                Ok(provider) => Ok(Some(provider)),
                Err(e) => Ok(Some(Arc::new(BrokenView {
                    schema: StoredColumn::schema(record.columns.as_deref().unwrap_or_default()),
                    reason: e.to_string(),
                    definition: record.sql.clone(),
                }))),
            };
        }
        let provider = entry.provider.get_or_try_init(build).await?;
        Ok(Some(provider.clone()))
    }

    async fn table_type(
        &self,
        name: &str,
    ) -> DfResult<Option<datafusion::logical_expr::TableType>> {
        // From the record, without building the table: listing a database must not read
        // every table's bucket, nor fail because one table is broken.
        use datafusion::logical_expr::TableType;
        let Some(entry) = self.tables.read().ok().and_then(|t| t.get(name).cloned()) else {
            return Ok(None);
        };
        Ok(Some(match (&entry.record, entry.provider.get()) {
            (_, Some(provider)) => provider.table_type(),
            (Some(record), None) if record.kind == TableKind::VirtualView => TableType::View,
            _ => TableType::Base,
        }))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.add_built(&name, table);
        Ok(None)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let entry = self.tables.write().ok().and_then(|mut t| t.remove(name));
        Ok(entry.and_then(|e| e.provider.get().cloned()))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables
            .read()
            .map(|t| t.contains_key(name))
            .unwrap_or(false)
    }
}
