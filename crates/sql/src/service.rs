//! [`SqlService`]: the catalog, the direct SQL API and the Athena-shaped query executions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, Weak};

use async_trait::async_trait;
use cloudlet_core::{SharedClock, Store, Timestamp};
use cloudlet_objectstore::ObjectService;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, SchemaProvider,
    TableProvider,
};
use datafusion::common::TableReference;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::datasource::view::ViewTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_plan::EmptyRecordBatchStream;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::SessionConfig;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::watch;

use crate::catalog::{
    self, Change, Database, DatabaseRecord, TableBuilder, TableKind, TableRecord,
};
use crate::error::{self, Error, Result};
use crate::results::{self, Cell, ColumnInfo};
use crate::scan::{ScanCounter, Stores};
use crate::tables;
use crate::utility::{self, Show};

/// The catalog every database lives in, as Athena names it.
pub const CATALOG: &str = "awsdatacatalog";
/// The database queries use when none is named.
pub const DEFAULT_DATABASE: &str = "default";
/// The workgroup queries run in when none is named; it always exists.
pub const PRIMARY_WORK_GROUP: &str = "primary";
/// Athena's limit on the query string, in UTF-8 bytes.
pub const MAX_QUERY_BYTES: usize = 262_144;
/// Athena's smallest per-query bytes-scanned cutoff.
pub const MIN_BYTES_SCANNED_CUTOFF: u64 = 10_000_000;
/// The most rows one `get_query_results` page holds.
pub const MAX_RESULTS: usize = 1000;
/// The most ids one `list_query_executions` page holds.
pub const MAX_LIST_RESULTS: usize = 50;
/// Rows in each Arrow batch a query's operators pass on. DataFusion's default is 8,192; at
/// 32,768 the TPC-H queries of the benchmark ran about 6% faster in all (fewer batches through
/// every join and aggregation).
pub const BATCH_SIZE: usize = 32 * 1024;
/// How long finished query executions are kept, as Athena keeps its query history.
pub const QUERY_HISTORY_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(45 * 24 * 60 * 60);

/// Whether a workgroup takes queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkGroupState {
    /// Queries run.
    Enabled,
    /// Queries are refused.
    Disabled,
}

/// A workgroup's settings (Athena's `WorkGroupConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkGroupConfiguration {
    /// Where results are written (`s3://bucket/prefix/`): `<location><query id>.csv`.
    pub output_location: Option<String>,
    /// Cancel a query once it has read more than this many bytes (at least 10,000,000).
    pub bytes_scanned_cutoff_per_query: Option<u64>,
    /// The workgroup's output location overrides the one a query asks for (Athena's
    /// default: true).
    pub enforce_work_group_configuration: bool,
}

impl WorkGroupConfiguration {
    /// Results written under `location`, workgroup settings enforced.
    pub fn with_output_location(location: impl Into<String>) -> Self {
        Self {
            output_location: Some(location.into()),
            bytes_scanned_cutoff_per_query: None,
            enforce_work_group_configuration: true,
        }
    }

    /// The same, with a per-query bytes-scanned cutoff.
    #[must_use]
    pub fn bytes_scanned_cutoff(mut self, bytes: u64) -> Self {
        self.bytes_scanned_cutoff_per_query = Some(bytes);
        self
    }
}

/// A workgroup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkGroup {
    /// Its name.
    pub name: String,
    /// Enabled or disabled.
    pub state: WorkGroupState,
    /// Its settings.
    pub configuration: WorkGroupConfiguration,
    /// A description.
    pub description: Option<String>,
    /// When it was created.
    pub creation_time: Timestamp,
}

/// What kind of statement a query was, as Athena classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementType {
    /// CREATE, DROP.
    Ddl,
    /// SELECT, CTAS, INSERT INTO, COPY.
    Dml,
    /// SHOW, DESCRIBE, EXPLAIN.
    Utility,
}

impl StatementType {
    /// Athena's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ddl => "DDL",
            Self::Dml => "DML",
            Self::Utility => "UTILITY",
        }
    }
}

/// Where a query execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Accepted, not yet running.
    Queued,
    /// Running.
    Running,
    /// Finished; results can be read.
    Succeeded,
    /// Failed; `state_change_reason` says why.
    Failed,
    /// Stopped by the caller, or by its workgroup's bytes-scanned cutoff.
    Cancelled,
}

impl QueryState {
    /// Athena's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether the execution has finished.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for QueryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a query read and how long it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStatistics {
    /// Bytes read from object stores (file footers and metadata included).
    pub data_scanned_in_bytes: u64,
    /// Distinct objects read from (an extension: Athena does not report it).
    pub objects_read: u64,
    /// Time spent running, in milliseconds on the service's clock.
    pub engine_execution_time_in_millis: u64,
    /// Time from submission to completion, in milliseconds on the service's clock.
    pub total_execution_time_in_millis: u64,
    /// Time spent queued, in milliseconds on the service's clock.
    pub query_queue_time_in_millis: u64,
}

/// One query execution, as `GetQueryExecution` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryExecution {
    /// Its id.
    pub query_execution_id: String,
    /// The SQL.
    pub query: String,
    /// DDL, DML or UTILITY.
    pub statement_type: StatementType,
    /// The database it ran in.
    pub database: String,
    /// The workgroup it ran in.
    pub work_group: String,
    /// Where its results are written: `<output location><id>.csv`.
    pub output_location: String,
    /// Where it is.
    pub state: QueryState,
    /// Why it failed or was cancelled.
    pub state_change_reason: Option<String>,
    /// When it was submitted, on the service's clock.
    pub submission_date_time: Timestamp,
    /// When it finished, on the service's clock.
    pub completion_date_time: Option<Timestamp>,
    /// What it read and how long it took.
    pub statistics: QueryStatistics,
}

/// A query to start (Athena's `StartQueryExecution`).
#[derive(Debug, Clone, Default)]
pub struct StartQueryExecution {
    /// The SQL: one statement, at most 262,144 bytes.
    pub query_string: String,
    /// The database unqualified names resolve in (`default` when not given).
    pub database: Option<String>,
    /// The workgroup (`primary` when not given).
    pub work_group: Option<String>,
    /// Where to write the results, unless the workgroup enforces its own.
    pub output_location: Option<String>,
    /// Makes the call idempotent: the same token returns the same execution.
    pub client_request_token: Option<String>,
}

impl StartQueryExecution {
    /// `sql` in the default database and the primary workgroup.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            query_string: sql.into(),
            ..Self::default()
        }
    }

    /// In `database`.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// In `work_group`.
    #[must_use]
    pub fn work_group(mut self, work_group: impl Into<String>) -> Self {
        self.work_group = Some(work_group.into());
        self
    }

    /// Results to `location`.
    #[must_use]
    pub fn output_location(mut self, location: impl Into<String>) -> Self {
        self.output_location = Some(location.into());
        self
    }
}

/// One page of results (Athena's `GetQueryResults`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultPage {
    /// The result's columns.
    pub columns: Vec<ColumnInfo>,
    /// The rows; for a DML statement the first row of the first page is the header.
    pub rows: Vec<Vec<Cell>>,
    /// Pass to get the next page; `None` on the last.
    pub next_token: Option<String>,
}

/// One page of query execution ids (Athena's `ListQueryExecutions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryExecutionPage {
    /// Ids, newest first.
    pub query_execution_ids: Vec<String>,
    /// Pass to get the next page; `None` on the last.
    pub next_token: Option<String>,
}

/// A query for the direct API.
#[derive(Debug, Clone)]
pub struct Query {
    /// The SQL: one statement.
    pub sql: String,
    /// The database unqualified names resolve in.
    pub database: String,
    /// The workgroup whose cutoff and output location apply.
    pub work_group: String,
}

impl Query {
    /// `sql` in the default database and the primary workgroup.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            database: DEFAULT_DATABASE.into(),
            work_group: PRIMARY_WORK_GROUP.into(),
        }
    }

    /// In `database`.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// In `work_group`.
    #[must_use]
    pub fn work_group(mut self, work_group: impl Into<String>) -> Self {
        self.work_group = work_group.into();
        self
    }
}

/// The answer of the direct API.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The result's schema.
    pub schema: SchemaRef,
    /// The result.
    pub batches: Vec<RecordBatch>,
    /// What the query read.
    pub statistics: QueryStatistics,
    /// DDL, DML or UTILITY.
    pub statement_type: StatementType,
}

/// SQL over buckets: a durable catalog, the direct API ([`query`](Self::query),
/// [`sql`](Self::sql)) and Athena's query executions. Cheap to clone.
///
/// Tables name their location as `s3://<bucket>/<prefix>/`; every bucket of the object service
/// is reachable, and other `object_store` stores can be added with
/// [`register_object_store`](Self::register_object_store).
#[derive(Clone)]
pub struct SqlService {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqlService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlService").finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    clock: SharedClock,
    stores: Stores,
    base: SessionState,
    catalog: Arc<MemoryCatalogProvider>,
    databases: RwLock<BTreeMap<String, Arc<Database>>>,
    work_groups: RwLock<BTreeMap<String, WorkGroup>>,
    executions: Mutex<Executions>,
    /// Catalog changes one at a time: check, write, apply.
    ddl: tokio::sync::Mutex<()>,
    /// Held by a catalog change's task from its write until it is applied in memory; the
    /// next change waits for it (see [`SqlService::ddl_lock`]).
    applying: Arc<tokio::sync::Mutex<()>>,
    builder: Arc<dyn TableBuilder>,
}

#[derive(Default)]
struct Executions {
    by_id: HashMap<String, Arc<Slot>>,
    /// (sequence number, id), oldest submission first.
    order: VecDeque<(u64, String)>,
    next_sequence: u64,
    tokens: HashMap<String, String>,
}

impl Executions {
    /// Forgets finished executions submitted more than [`QUERY_HISTORY_RETENTION`] before
    /// `now`, oldest first; a running one keeps itself and those after it.
    fn expire(&mut self, now: Timestamp) {
        let mut expired = false;
        while let Some((_, id)) = self.order.front() {
            let old = self.by_id.get(id).is_none_or(|slot| {
                let e = slot.state.borrow();
                e.state.is_final()
                    && now.saturating_duration_since(e.submission_date_time)
                        > QUERY_HISTORY_RETENTION
            });
            if !old {
                break;
            }
            self.by_id.remove(id);
            self.order.pop_front();
            expired = true;
        }
        if expired {
            let by_id = &self.by_id;
            self.tokens.retain(|_, id| by_id.contains_key(id));
        }
    }
}

struct Slot {
    state: watch::Sender<QueryExecution>,
    results: Mutex<Option<Arc<Results>>>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Results {
    columns: Vec<ColumnInfo>,
    rows: Vec<Vec<Cell>>,
    header: bool,
}

/// Marks an execution FAILED if its task ends without finishing it.
struct FailOnDrop(Arc<Slot>, SharedClock);

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        let now = self.1.now();
        self.0.state.send_if_modified(|e| {
            if e.state.is_final() {
                return false;
            }
            e.state = QueryState::Failed;
            e.state_change_reason = Some("internal error: the query's task ended".into());
            e.completion_date_time = Some(now);
            true
        });
    }
}

tokio::task_local! {
    /// The views being planned in this task, outermost first (`database.view`).
    static PLANNING_VIEWS: Vec<String>;
}

/// Builds stored tables on first use, and views at each use.
struct Builder {
    inner: Weak<Inner>,
}

#[async_trait]
impl TableBuilder for Builder {
    async fn build(&self, record: &TableRecord) -> Result<Arc<dyn TableProvider>> {
        let inner = self
            .inner
            .upgrade()
            .ok_or_else(|| Error::Query("the service is shut down".into()))?;
        let service = SqlService { inner };
        match record.kind {
            TableKind::ExternalTable => {
                // Planned without the catalog: planning looks up the statement's own table,
                // which is the one being built.
                let state = service.bare_state()?;
                let plan = state
                    .create_logical_plan(&record.sql)
                    .await
                    .map_err(error::planning)?;
                let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(cmd)) = plan else {
                    return Err(Error::Query(format!(
                        "the stored definition is not CREATE EXTERNAL TABLE: {}",
                        record.sql
                    )));
                };
                tables::create(&state, &cmd, &service.inner.clock)
                    .await
                    .map_err(error::running)
            }
            TableKind::VirtualView => {
                let query = record.query.as_deref().ok_or_else(|| {
                    Error::Query(format!("the stored view has no query: {}", record.sql))
                })?;
                // Planning the view plans the views it reads, in this same task: the chain
                // of views being planned finds a cycle (possible only through views
                // replaced after the views that read them) instead of recursing forever.
                let me = format!("{}.{}", record.database, record.name);
                let mut chain = PLANNING_VIEWS.try_with(Clone::clone).unwrap_or_default();
                if chain.contains(&me) {
                    chain.push(me);
                    return Err(Error::Query(format!(
                        "views read each other in a cycle: {}",
                        chain.join(" -> ")
                    )));
                }
                chain.push(me);
                let session_database = record
                    .default_database
                    .as_deref()
                    .unwrap_or(&record.database);
                let ctx = service.session(session_database, Arc::new(ScanCounter::new(None)))?;
                let state = ctx.state();
                let plan = PLANNING_VIEWS
                    .scope(chain, state.create_logical_plan(query))
                    .await
                    .map_err(error::planning)?;
                Ok(Arc::new(ViewTable::new(plan, Some(record.sql.clone()))))
            }
        }
    }
}

/// The query of a `CREATE VIEW ... AS <query>` statement.
fn view_query(definition: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    match Parser::parse_sql(&GenericDialect {}, definition)
        .ok()?
        .pop()?
    {
        Statement::CreateView(view) => Some(view.query.to_string()),
        _ => None,
    }
}

fn validate_database_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid(
            "DatabaseName",
            format!("must be 1-255 characters, got {}", name.len()),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::invalid(
            "DatabaseName",
            format!("{name:?}: only lowercase letters, digits and _ are allowed"),
        ));
    }
    Ok(())
}

fn validate_work_group_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 {
        return Err(Error::invalid(
            "WorkGroup",
            format!("must be 1-128 characters, got {}", name.len()),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::invalid(
            "WorkGroup",
            format!("{name:?}: only letters, digits, '.', '_' and '-' are allowed"),
        ));
    }
    Ok(())
}

fn validate_configuration(configuration: &WorkGroupConfiguration) -> Result<()> {
    if let Some(cutoff) = configuration.bytes_scanned_cutoff_per_query
        && cutoff < MIN_BYTES_SCANNED_CUTOFF
    {
        return Err(Error::invalid(
            "BytesScannedCutoffPerQuery",
            format!("{cutoff} is below the minimum of {MIN_BYTES_SCANNED_CUTOFF}"),
        ));
    }
    if let Some(location) = &configuration.output_location {
        validate_output_location(location)?;
    }
    Ok(())
}

fn validate_output_location(location: &str) -> Result<()> {
    let url = url::Url::parse(location)
        .map_err(|e| Error::invalid("OutputLocation", format!("{location:?} is not a URL: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "OutputLocation",
            format!("{location:?} names no bucket (s3://<bucket>/<prefix>/)"),
        ));
    }
    Ok(())
}

/// Athena's statement type, from the plan when there is one.
fn statement_type(sql: &str, plan: &LogicalPlan) -> StatementType {
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)) => StatementType::Dml,
        LogicalPlan::Ddl(_) => StatementType::Ddl,
        _ => statement_type_of_text(sql),
    }
}

/// Athena's statement type, from the statement's first word: what a statement that failed
/// before it was planned reports.
fn statement_type_of_text(sql: &str) -> StatementType {
    let words: Vec<String> = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    match words.first().map(String::as_str).unwrap_or_default() {
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" => StatementType::Utility,
        // CREATE TABLE ... AS SELECT writes data: Athena calls it DML.
        "CREATE"
            if words.get(1).is_some_and(|w| w == "TABLE") && words.iter().any(|w| w == "AS") =>
        {
            StatementType::Dml
        }
        "CREATE" | "DROP" | "ALTER" | "MSCK" => StatementType::Ddl,
        _ => StatementType::Dml,
    }
}

/// `location` with exactly one trailing `/`.
fn as_prefix(location: &str) -> String {
    format!("{}/", location.trim_end_matches('/'))
}

/// Athena's `UUID`-shaped query execution ids.
fn new_query_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl SqlService {
    /// Opens the service over `store` (its catalog is read from there) and the buckets of
    /// `objects`. Stored tables are built on first use, so opening reads no bucket.
    ///
    /// # Errors
    /// [`Error::Storage`] when the catalog cannot be read.
    pub fn open(store: Store, clock: SharedClock, objects: ObjectService) -> Result<Self> {
        let stored = catalog::load(&store)?;
        Ok(Self::with_catalog(store, clock, objects, stored))
    }

    /// A service with an empty catalog over a fresh `store` (in memory, say): what the store
    /// holds already is not read; use [`open`](Self::open) for that.
    pub fn new(store: Store, clock: SharedClock, objects: ObjectService) -> Self {
        Self::with_catalog(store, clock, objects, catalog::Stored::default())
    }

    fn with_catalog(
        store: Store,
        clock: SharedClock,
        objects: ObjectService,
        stored: catalog::Stored,
    ) -> Self {
        let catalog_provider = Arc::new(MemoryCatalogProvider::new());
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        datafusion::catalog::CatalogProviderList::register_catalog(
            catalogs.as_ref(),
            CATALOG.into(),
            catalog_provider.clone(),
        );
        let config = SessionConfig::new()
            .with_batch_size(BATCH_SIZE)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, DEFAULT_DATABASE);
        let base = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(catalogs)
            .with_default_features()
            .build();
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let builder: Arc<dyn TableBuilder> = Arc::new(Builder {
                inner: weak.clone(),
            });
            Inner {
                store,
                clock: clock.clone(),
                stores: Stores::new(objects),
                base,
                catalog: catalog_provider,
                databases: RwLock::default(),
                work_groups: RwLock::default(),
                executions: Mutex::default(),
                ddl: tokio::sync::Mutex::new(()),
                applying: Arc::default(),
                builder,
            }
        });
        let service = Self { inner };
        service.add_database(DEFAULT_DATABASE);
        for database in &stored.databases {
            service.add_database(&database.name);
        }
        for table in stored.tables {
            if let Some(database) = service.database(&table.database) {
                database.add_stored(table);
            }
        }
        if let Ok(mut work_groups) = service.inner.work_groups.write() {
            work_groups.insert(
                PRIMARY_WORK_GROUP.into(),
                WorkGroup {
                    name: PRIMARY_WORK_GROUP.into(),
                    state: WorkGroupState::Enabled,
                    configuration: WorkGroupConfiguration {
                        enforce_work_group_configuration: false,
                        ..WorkGroupConfiguration::default()
                    },
                    description: None,
                    creation_time: Timestamp::from_nanos(0),
                },
            );
            for work_group in stored.workgroups {
                work_groups.insert(work_group.name.clone(), work_group);
            }
        }
        service
    }

    /// Makes `store` reachable from SQL at `url` (`scheme://host`), for tables and `COPY`
    /// outside the object service. Reads through it are counted like any other.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `url` does not parse.
    pub fn register_object_store(&self, url: &str, store: Arc<dyn ObjectStore>) -> Result<()> {
        let url = url::Url::parse(url)
            .map_err(|e| Error::invalid("url", format!("{url:?} is not a URL: {e}")))?;
        self.inner.stores.register(&url, store);
        Ok(())
    }

    fn add_database(&self, name: &str) -> Arc<Database> {
        let weak = Arc::downgrade(&self.inner.builder);
        let database = Arc::new(Database::new(name, weak));
        if let Ok(mut databases) = self.inner.databases.write() {
            databases.insert(name.to_owned(), database.clone());
        }
        // Registering a schema in a memory catalog cannot fail.
        let _ = self.inner.catalog.register_schema(name, database.clone());
        database
    }

    fn database(&self, name: &str) -> Option<Arc<Database>> {
        self.inner.databases.read().ok()?.get(name).cloned()
    }

    fn work_group(&self, name: &str) -> Result<WorkGroup> {
        self.inner
            .work_groups
            .read()
            .ok()
            .and_then(|w| w.get(name).cloned())
            .ok_or_else(|| Error::not_found("WorkGroup", name))
    }

    /// A workgroup that takes queries.
    fn enabled_work_group(&self, name: &str) -> Result<WorkGroup> {
        let work_group = self.work_group(name)?;
        if work_group.state == WorkGroupState::Disabled {
            return Err(Error::InvalidRequest(format!(
                "WorkGroup {name} is disabled."
            )));
        }
        Ok(work_group)
    }

    /// A session for one query: the shared catalog, `database` as the default schema, and
    /// object stores that count into `counter`.
    fn session(&self, database: &str, counter: Arc<ScanCounter>) -> Result<SessionContext> {
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(self.inner.stores.for_query(counter)))
            .build_arc()
            .map_err(error::running)?;
        let mut state = SessionStateBuilder::new_from_existing(self.inner.base.clone())
            .with_runtime_env(runtime)
            .build();
        state.config_mut().options_mut().catalog.default_schema = database.to_owned();
        Ok(SessionContext::new_with_state(state))
    }

    /// A session state without the catalog, for planning stored CREATE statements.
    fn bare_state(&self) -> Result<SessionState> {
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(
                self.inner
                    .stores
                    .for_query(Arc::new(ScanCounter::new(None))),
            ))
            .build_arc()
            .map_err(error::running)?;
        Ok(SessionStateBuilder::new()
            .with_runtime_env(runtime)
            .with_default_features()
            .build())
    }

    // ---- the direct API ----

    /// Runs `sql` in the default database and returns its result.
    ///
    /// # Errors
    /// As [`query`](Self::query).
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query(Query::new(sql)).await?.batches)
    }

    /// Runs a query to the end and returns its result and what it read.
    ///
    /// # Errors
    /// [`Error::Sql`] when the SQL does not parse or plan (with DataFusion's message and
    /// position); [`Error::Query`] when it fails while running (naming the object);
    /// [`Error::BytesScannedLimitExceeded`] past the workgroup's cutoff; [`Error::NotFound`]
    /// for an unknown database or workgroup.
    pub async fn query(&self, query: Query) -> Result<QueryOutput> {
        let work_group = self.enabled_work_group(&query.work_group)?;
        let counter = Arc::new(ScanCounter::new(
            work_group.configuration.bytes_scanned_cutoff_per_query,
        ));
        let output = work_group.configuration.output_location.clone();
        let id = new_query_id();
        let run = self
            .run(&query.sql, &query.database, output, &id, counter.clone())
            .await;
        let (schema, statement_type, stream) = match run {
            Ok(run) => run,
            Err(e) => return Err(cutoff_error(&counter).unwrap_or(e)),
        };
        let batches: Vec<RecordBatch> = match stream.try_collect().await {
            Ok(batches) => batches,
            Err(e) => return Err(failed(e, &counter)),
        };
        Ok(QueryOutput {
            schema,
            batches,
            statistics: QueryStatistics {
                data_scanned_in_bytes: counter.bytes(),
                objects_read: counter.objects(),
                ..QueryStatistics::default()
            },
            statement_type,
        })
    }

    /// Runs a query and returns its result as a stream of batches; the workgroup's cutoff
    /// applies while the stream is read.
    ///
    /// # Errors
    /// As [`query`](Self::query), for what fails before the first batch.
    pub async fn query_stream(&self, query: Query) -> Result<SendableRecordBatchStream> {
        let work_group = self.enabled_work_group(&query.work_group)?;
        let counter = Arc::new(ScanCounter::new(
            work_group.configuration.bytes_scanned_cutoff_per_query,
        ));
        let output = work_group.configuration.output_location.clone();
        let (_, _, stream) = self
            .run(
                &query.sql,
                &query.database,
                output,
                &new_query_id(),
                counter,
            )
            .await?;
        Ok(stream)
    }

    /// Plans and starts one statement. Catalog statements are carried out here and answer
    /// with an empty stream.
    async fn run(
        &self,
        sql: &str,
        database: &str,
        output_location: Option<String>,
        query_id: &str,
        counter: Arc<ScanCounter>,
    ) -> Result<(SchemaRef, StatementType, SendableRecordBatchStream)> {
        if sql.trim().is_empty() {
            return Err(Error::invalid("QueryString", "must not be empty"));
        }
        if sql.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid(
                "QueryString",
                format!("{} bytes is over the limit of {MAX_QUERY_BYTES}", sql.len()),
            ));
        }
        if self.database(database).is_none() {
            return Err(Error::not_found("Database", database));
        }
        if let Some(done) = self.drop_database_statement(sql).await? {
            return Ok(done);
        }
        if let Some(show) = utility::parse(sql) {
            return self.show(show, database).await;
        }
        let ctx = self.session(database, counter.clone())?;
        let plan = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(error::planning)?;
        let statement_type = statement_type(sql, &plan);
        if let LogicalPlan::Ddl(ddl) = plan {
            let schema = self
                .ddl(&ctx, ddl, sql, database, output_location, query_id)
                .await?;
            return Ok((
                schema.clone(),
                statement_type,
                Box::pin(EmptyRecordBatchStream::new(schema)),
            ));
        }
        let frame = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| planning_failed(e, &counter))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| planning_failed(e, &counter))?;
        Ok((schema, statement_type, stream))
    }

    /// `DROP DATABASE [IF EXISTS] name [CASCADE]`, which DataFusion's planner does not know.
    async fn drop_database_statement(
        &self,
        sql: &str,
    ) -> Result<Option<(SchemaRef, StatementType, SendableRecordBatchStream)>> {
        let words: Vec<String> = sql
            .split_whitespace()
            .map(|w| w.trim_end_matches(';').to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let (if_exists, rest) = match words.as_slice() {
            ["drop", "database", "if", "exists", rest @ ..] => (true, rest),
            ["drop", "database", rest @ ..] => (false, rest),
            _ => return Ok(None),
        };
        let (name, cascade) = match rest {
            [name] => (*name, false),
            [name, "cascade"] => (*name, true),
            [name, "restrict"] => (*name, false),
            _ => {
                return Err(Error::Sql {
                    message: "expected DROP DATABASE [IF EXISTS] name [CASCADE | RESTRICT]".into(),
                    position: None,
                });
            }
        };
        let _guard = self.ddl_lock().await;
        self.drop_database(name.trim_matches('`').trim_matches('"'), if_exists, cascade)
            .await?;
        let schema = Arc::new(Schema::empty());
        Ok(Some((
            schema.clone(),
            StatementType::Ddl,
            Box::pin(EmptyRecordBatchStream::new(schema)),
        )))
    }

    /// Athena's `SHOW` statements, answered from the catalog in Athena's shape.
    async fn show(
        &self,
        show: Show,
        database: &str,
    ) -> Result<(SchemaRef, StatementType, SendableRecordBatchStream)> {
        let (column, mut values) = match show {
            Show::Tables {
                database: named,
                pattern,
            } => {
                let database = named.as_deref().unwrap_or(database);
                let tables = self.list_tables(database)?;
                let tables = tables
                    .into_iter()
                    .filter(|t| pattern.as_deref().is_none_or(|p| utility::matches(p, t)));
                ("tab_name", tables.collect::<Vec<_>>())
            }
            Show::Databases { pattern } => {
                let databases = self.list_databases().into_iter();
                let databases =
                    databases.filter(|d| pattern.as_deref().is_none_or(|p| utility::matches(p, d)));
                ("database_name", databases.collect())
            }
            Show::Columns {
                database: named,
                table,
            } => {
                let database = named.as_deref().unwrap_or(database);
                let provider = self
                    .database(database)
                    .ok_or_else(|| Error::not_found("Database", database))?;
                let table = datafusion::catalog::SchemaProvider::table(provider.as_ref(), &table)
                    .await
                    .map_err(error::planning)?
                    .ok_or_else(|| Error::not_found("Table", format!("{database}.{table}")))?;
                let fields = table
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                ("field", fields)
            }
        };
        if column != "field" {
            values.sort();
        }
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(values)) as ArrayRef],
        )
        .map_err(|e| Error::Query(e.to_string()))?;
        let stream = MemoryStream::try_new(vec![batch], schema.clone(), None)
            .map_err(|e| Error::Query(e.to_string()))?;
        Ok((schema, StatementType::Utility, Box::pin(stream)))
    }

    fn resolve(name: &TableReference, database: &str) -> Result<(String, String)> {
        let resolved = name.clone().resolve(CATALOG, database);
        if resolved.catalog.as_ref() != CATALOG {
            return Err(Error::Sql {
                message: format!(
                    "catalog {} does not exist: the only catalog is {CATALOG}",
                    resolved.catalog
                ),
                position: None,
            });
        }
        Ok((resolved.schema.to_string(), resolved.table.to_string()))
    }

    async fn ddl(
        &self,
        ctx: &SessionContext,
        ddl: DdlStatement,
        sql: &str,
        database: &str,
        output_location: Option<String>,
        query_id: &str,
    ) -> Result<SchemaRef> {
        let empty = Arc::new(Schema::empty());
        let guard = self.ddl_lock().await;
        match ddl {
            DdlStatement::CreateExternalTable(cmd) => {
                let (db, name) = Self::resolve(&cmd.name, database)?;
                let target = self
                    .database(&db)
                    .ok_or_else(|| Error::not_found("Database", &db))?;
                if target.table_exist(&name) {
                    if cmd.if_not_exists {
                        return Ok(empty);
                    }
                    if !cmd.or_replace {
                        return Err(Error::AlreadyExists {
                            kind: "Table",
                            name: format!("{db}.{name}"),
                        });
                    }
                }
                let provider = tables::create(&ctx.state(), &cmd, &self.inner.clock)
                    .await
                    .map_err(error::planning)?;
                // The text as given: DataFusion's own rendering of the statement leaves out
                // the columns, PARTITIONED BY and OPTIONS.
                self.store_table(
                    &target,
                    &db,
                    &name,
                    TableKind::ExternalTable,
                    sql.to_owned(),
                    None,
                    database,
                    provider,
                )
                .await?;
                Ok(empty)
            }
            DdlStatement::CreateView(cmd) => {
                let (db, name) = Self::resolve(&cmd.name, database)?;
                let target = self
                    .database(&db)
                    .ok_or_else(|| Error::not_found("Database", &db))?;
                if target.table_exist(&name) && !cmd.or_replace {
                    return Err(Error::AlreadyExists {
                        kind: "Table",
                        name: format!("{db}.{name}"),
                    });
                }
                let view = Arc::new(ViewTable::new((*cmd.input).clone(), cmd.definition.clone()));
                let definition = cmd.definition.clone().unwrap_or_else(|| sql.to_owned());
                let query = view_query(&definition).ok_or_else(|| Error::Sql {
                    message: "the view's query cannot be read back from its definition".into(),
                    position: None,
                })?;
                if let Some(path) = self.reads_view(
                    &ctx.state(),
                    &query,
                    database,
                    (&db, &name),
                    &mut Vec::new(),
                )? {
                    return Err(Error::Sql {
                        message: format!(
                            "view {db}.{name} cannot read itself: {db}.{name} -> {}",
                            path.join(" -> ")
                        ),
                        position: None,
                    });
                }
                self.store_table(
                    &target,
                    &db,
                    &name,
                    TableKind::VirtualView,
                    definition,
                    Some(query),
                    database,
                    view,
                )
                .await?;
                Ok(empty)
            }
            DdlStatement::CreateMemoryTable(cmd) => {
                // CTAS, as Athena does it without external_location: Parquet files under
                // the query's output location, `tables/<query id>/`.
                let (db, name) = Self::resolve(&cmd.name, database)?;
                let target = self
                    .database(&db)
                    .ok_or_else(|| Error::not_found("Database", &db))?;
                if target.table_exist(&name) {
                    if cmd.if_not_exists {
                        return Ok(empty);
                    }
                    return Err(Error::AlreadyExists {
                        kind: "Table",
                        name: format!("{db}.{name}"),
                    });
                }
                let Some(output) = output_location else {
                    return Err(Error::InvalidRequest(
                        "CREATE TABLE AS SELECT writes under the workgroup's output location, and it has none".into(),
                    ));
                };
                let location = format!("{}tables/{query_id}/", as_prefix(&output));
                // The query runs without holding up other catalog changes; the name is
                // checked again once it has.
                drop(guard);
                let frame = DataFrame::new(ctx.state(), (*cmd.input).clone());
                let written = frame
                    .write_parquet(
                        &format!("{location}part-0.parquet"),
                        DataFrameWriteOptions::new().with_single_file_output(true),
                        None,
                    )
                    .await
                    .map_err(error::running)?;
                drop(written);
                let _guard = self.ddl_lock().await;
                let gone = !self
                    .database(&db)
                    .is_some_and(|now| Arc::ptr_eq(&now, &target));
                if gone || target.table_exist(&name) {
                    // Made or dropped meanwhile: what this query wrote is not wanted.
                    self.remove_written(&location).await;
                    return if gone {
                        Err(Error::not_found("Database", &db))
                    } else if cmd.if_not_exists {
                        Ok(empty)
                    } else {
                        Err(Error::AlreadyExists {
                            kind: "Table",
                            name: format!("{db}.{name}"),
                        })
                    };
                }
                let create = format!(
                    "CREATE EXTERNAL TABLE \"{}\".\"{}\" STORED AS PARQUET LOCATION '{}'",
                    db.replace('"', "\"\""),
                    name.replace('"', "\"\""),
                    location.replace('\'', "''"),
                );
                let plan = ctx
                    .state()
                    .create_logical_plan(&create)
                    .await
                    .map_err(error::planning)?;
                let LogicalPlan::Ddl(DdlStatement::CreateExternalTable(external)) = plan else {
                    return Err(Error::Query("CTAS: the table cannot be created".into()));
                };
                let provider = tables::create(&ctx.state(), &external, &self.inner.clock)
                    .await
                    .map_err(error::planning)?;
                self.store_table(
                    &target,
                    &db,
                    &name,
                    TableKind::ExternalTable,
                    create,
                    None,
                    database,
                    provider,
                )
                .await?;
                Ok(empty)
            }
            DdlStatement::DropTable(cmd) => {
                self.drop_table(&cmd.name, cmd.if_exists, database).await?;
                Ok(empty)
            }
            DdlStatement::DropView(cmd) => {
                self.drop_table(&cmd.name, cmd.if_exists, database).await?;
                Ok(empty)
            }
            DdlStatement::CreateCatalogSchema(cmd) => {
                let name = cmd
                    .schema_name
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                self.create_database(&name, cmd.if_not_exists).await?;
                Ok(empty)
            }
            DdlStatement::CreateCatalog(cmd) => {
                self.create_database(&cmd.catalog_name, cmd.if_not_exists)
                    .await?;
                Ok(empty)
            }
            DdlStatement::DropCatalogSchema(cmd) => {
                self.drop_database(cmd.name.schema_name(), cmd.if_exists, cmd.cascade)
                    .await?;
                Ok(empty)
            }
            other => Err(Error::Sql {
                message: format!("{} is not supported", other.name()),
                position: None,
            }),
        }
    }

    /// Removes the objects a CTAS wrote under `location`, when its table is not made.
    async fn remove_written(&self, location: &str) {
        let Ok(url) = url::Url::parse(location) else {
            return;
        };
        let Ok(store) = self.inner.stores.get(&url) else {
            return;
        };
        let prefix = ObjectPath::from(url.path().trim_start_matches('/'));
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .filter_map(|meta| async move { meta.ok().map(|m| m.location) })
            .collect()
            .await;
        for object in objects {
            if let Err(e) = store.delete(&object).await {
                tracing::warn!(%location, object = %object, error = %e, "a CTAS's unused output was not removed");
            }
        }
    }

    /// The catalog lock, once the change before has been applied in memory.
    async fn ddl_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        let guard = self.inner.ddl.lock().await;
        drop(self.inner.applying.lock().await);
        guard
    }

    /// Whether `query` (run in `session_database`) reads `target`, directly or through the
    /// stored views it reads: the path to it when it does. `seen` holds the views walked.
    fn reads_view(
        &self,
        state: &SessionState,
        query: &str,
        session_database: &str,
        target: (&str, &str),
        seen: &mut Vec<(String, String)>,
    ) -> Result<Option<Vec<String>>> {
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(query, &dialect)
            .map_err(error::planning)?;
        let references = state
            .resolve_table_references(&statement)
            .map_err(error::planning)?;
        for reference in references {
            let resolved = reference.resolve(CATALOG, session_database);
            let (db, name) = (resolved.schema.to_string(), resolved.table.to_string());
            if (db.as_str(), name.as_str()) == target {
                return Ok(Some(vec![format!("{db}.{name}")]));
            }
            if seen.contains(&(db.clone(), name.clone())) {
                continue;
            }
            seen.push((db.clone(), name.clone()));
            let Some(record) = self.database(&db).and_then(|d| d.record(&name)) else {
                continue;
            };
            let (TableKind::VirtualView, Some(view_query)) = (record.kind, &record.query) else {
                continue;
            };
            let view_database = record
                .default_database
                .as_deref()
                .unwrap_or(&record.database);
            if let Some(mut path) =
                self.reads_view(state, view_query, view_database, target, seen)?
            {
                path.insert(0, format!("{db}.{name}"));
                return Ok(Some(path));
            }
        }
        Ok(None)
    }

    /// Writes `changes` durably, then runs `apply` (the same changes in memory), in a task
    /// of its own: a stopped query, or a dropped future, cannot leave the store changed and
    /// memory not.
    async fn commit(
        &self,
        changes: Vec<Change>,
        apply: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        let store = self.inner.store.clone();
        // Taken here, under the caller's catalog lock, and kept by the task: if the caller
        // goes away, the next change still waits for this one to be applied.
        let applying = self.inner.applying.clone().lock_owned().await;
        tokio::spawn(async move {
            let _applying = applying;
            catalog::write(&store, changes).await?;
            apply();
            Ok(())
        })
        .await
        .map_err(|e| Error::Query(format!("a catalog change did not finish: {e}")))?
    }

    /// Stores a table's record durably, then makes the built table visible.
    #[allow(clippy::too_many_arguments)]
    async fn store_table(
        &self,
        target: &Arc<Database>,
        database: &str,
        name: &str,
        kind: TableKind,
        sql: String,
        query: Option<String>,
        session_database: &str,
        provider: Arc<dyn TableProvider>,
    ) -> Result<()> {
        let record = TableRecord {
            database: database.to_owned(),
            name: name.to_owned(),
            kind,
            sql,
            query,
            default_database: Some(session_database.to_owned()),
            created: self.inner.clock.now(),
            columns: (kind == TableKind::VirtualView)
                .then(|| crate::catalog::StoredColumn::of(&provider.schema())),
        };
        let target = target.clone();
        self.commit(vec![Change::PutTable(record.clone())], move || {
            target.add_created(record, provider);
        })
        .await
    }

    async fn drop_table(
        &self,
        name: &TableReference,
        if_exists: bool,
        database: &str,
    ) -> Result<()> {
        let (db, name) = Self::resolve(name, database)?;
        let Some(target) = self.database(&db).filter(|d| d.table_exist(&name)) else {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::not_found("Table", format!("{db}.{name}")))
            };
        };
        let table = name.clone();
        self.commit(vec![Change::DeleteTable(db, name)], move || {
            target.remove(&table);
        })
        .await
    }

    async fn create_database(&self, name: &str, if_not_exists: bool) -> Result<()> {
        validate_database_name(name)?;
        if self.database(name).is_some() {
            return if if_not_exists {
                Ok(())
            } else {
                Err(Error::AlreadyExists {
                    kind: "Database",
                    name: name.to_owned(),
                })
            };
        }
        let record = DatabaseRecord {
            name: name.to_owned(),
            created: self.inner.clock.now(),
        };
        let service = self.clone();
        let name = name.to_owned();
        self.commit(vec![Change::PutDatabase(record)], move || {
            service.add_database(&name);
        })
        .await
    }

    async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<()> {
        if name == DEFAULT_DATABASE {
            return Err(Error::InvalidRequest(
                "the default database cannot be dropped".into(),
            ));
        }
        let Some(database) = self.database(name) else {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::not_found("Database", name))
            };
        };
        if !cascade && !database.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "database {name} is not empty: drop its tables first, or use CASCADE"
            )));
        }
        let tables = datafusion::catalog::SchemaProvider::table_names(database.as_ref());
        let mut changes: Vec<Change> = tables
            .into_iter()
            .map(|t| Change::DeleteTable(name.to_owned(), t))
            .collect();
        changes.push(Change::DeleteDatabase(name.to_owned()));
        let inner = self.inner.clone();
        let name = name.to_owned();
        self.commit(changes, move || {
            if let Ok(mut databases) = inner.databases.write() {
                databases.remove(&name);
            }
            let _ = inner.catalog.deregister_schema(&name, true);
        })
        .await
    }

    /// The databases, by name.
    pub fn list_databases(&self) -> Vec<String> {
        self.inner
            .databases
            .read()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The tables and views of `database`, by name.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown database.
    pub fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        let database = self
            .database(database)
            .ok_or_else(|| Error::not_found("Database", database))?;
        Ok(datafusion::catalog::SchemaProvider::table_names(
            database.as_ref(),
        ))
    }

    // ---- workgroups ----

    /// Creates a workgroup.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name or configuration; [`Error::AlreadyExists`].
    pub async fn create_work_group(
        &self,
        name: &str,
        configuration: WorkGroupConfiguration,
        description: Option<String>,
    ) -> Result<()> {
        validate_work_group_name(name)?;
        validate_configuration(&configuration)?;
        let _guard = self.ddl_lock().await;
        if self.work_group(name).is_ok() {
            return Err(Error::AlreadyExists {
                kind: "WorkGroup",
                name: name.to_owned(),
            });
        }
        let work_group = WorkGroup {
            name: name.to_owned(),
            state: WorkGroupState::Enabled,
            configuration,
            description,
            creation_time: self.inner.clock.now(),
        };
        self.put_work_group(work_group).await
    }

    /// Changes a workgroup's state or configuration.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidArgument`] for a bad configuration.
    pub async fn update_work_group(
        &self,
        name: &str,
        state: Option<WorkGroupState>,
        configuration: Option<WorkGroupConfiguration>,
    ) -> Result<()> {
        if let Some(configuration) = &configuration {
            validate_configuration(configuration)?;
        }
        let _guard = self.ddl_lock().await;
        let mut work_group = self.work_group(name)?;
        if let Some(state) = state {
            work_group.state = state;
        }
        if let Some(configuration) = configuration {
            work_group.configuration = configuration;
        }
        self.put_work_group(work_group).await
    }

    /// A workgroup.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn get_work_group(&self, name: &str) -> Result<WorkGroup> {
        self.work_group(name)
    }

    /// The workgroups, by name.
    pub fn list_work_groups(&self) -> Vec<WorkGroup> {
        self.inner
            .work_groups
            .read()
            .map(|w| w.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Deletes a workgroup. `primary` cannot be deleted.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidRequest`] for `primary`.
    pub async fn delete_work_group(&self, name: &str) -> Result<()> {
        if name == PRIMARY_WORK_GROUP {
            return Err(Error::InvalidRequest(
                "WorkGroup primary cannot be deleted".into(),
            ));
        }
        let _guard = self.ddl_lock().await;
        self.work_group(name)?;
        let inner = self.inner.clone();
        let name = name.to_owned();
        self.commit(vec![Change::DeleteWorkGroup(name.clone())], move || {
            if let Ok(mut work_groups) = inner.work_groups.write() {
                work_groups.remove(&name);
            }
        })
        .await
    }

    async fn put_work_group(&self, work_group: WorkGroup) -> Result<()> {
        let inner = self.inner.clone();
        let stored = work_group.clone();
        self.commit(vec![Change::PutWorkGroup(stored)], move || {
            if let Ok(mut work_groups) = inner.work_groups.write() {
                work_groups.insert(work_group.name.clone(), work_group);
            }
        })
        .await
    }

    // ---- query executions ----

    /// Starts a query and returns its id at once; it runs in the background (on the current
    /// tokio runtime). Poll [`get_query_execution`](Self::get_query_execution) or await
    /// [`wait_for_query_execution`](Self::wait_for_query_execution).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty or too long query or a bad token;
    /// [`Error::NotFound`] for an unknown workgroup; [`Error::InvalidRequest`] for a disabled
    /// workgroup or when no output location is given or configured. A query that fails
    /// after it started is reported by its state, not here.
    pub async fn start_query_execution(&self, request: StartQueryExecution) -> Result<String> {
        if request.query_string.trim().is_empty() {
            return Err(Error::invalid("QueryString", "must not be empty"));
        }
        if request.query_string.len() > MAX_QUERY_BYTES {
            return Err(Error::invalid(
                "QueryString",
                format!(
                    "{} bytes is over the limit of {MAX_QUERY_BYTES}",
                    request.query_string.len()
                ),
            ));
        }
        if let Some(token) = &request.client_request_token
            && !(32..=128).contains(&token.len())
        {
            return Err(Error::invalid(
                "ClientRequestToken",
                format!("must be 32-128 characters, got {}", token.len()),
            ));
        }
        let work_group_name = request
            .work_group
            .clone()
            .unwrap_or_else(|| PRIMARY_WORK_GROUP.into());
        let work_group = self.enabled_work_group(&work_group_name)?;
        let configured = work_group.configuration.output_location.clone();
        let output = if work_group.configuration.enforce_work_group_configuration {
            configured.or(request.output_location.clone())
        } else {
            request.output_location.clone().or(configured)
        };
        let Some(output) = output else {
            return Err(Error::InvalidRequest(
                "No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.".into(),
            ));
        };
        validate_output_location(&output)?;
        let database = request
            .database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.into());

        let id = new_query_id();
        let execution = QueryExecution {
            query_execution_id: id.clone(),
            query: request.query_string.clone(),
            statement_type: statement_type_of_text(&request.query_string),
            database: database.clone(),
            work_group: work_group_name.clone(),
            output_location: format!("{}{id}.csv", as_prefix(&output)),
            state: QueryState::Queued,
            state_change_reason: None,
            submission_date_time: self.inner.clock.now(),
            completion_date_time: None,
            statistics: QueryStatistics::default(),
        };
        let slot = Arc::new(Slot {
            state: watch::channel(execution).0,
            results: Mutex::new(None),
            abort: Mutex::new(None),
        });
        {
            let mut executions = self.executions()?;
            if let Some(token) = &request.client_request_token {
                if let Some(existing) = executions.tokens.get(token)
                    && let Some(earlier) = executions.by_id.get(existing)
                {
                    let earlier = earlier.state.borrow();
                    if earlier.query != request.query_string
                        || earlier.database != database
                        || earlier.work_group != work_group_name
                    {
                        return Err(Error::InvalidRequest(format!(
                            "ClientRequestToken {token} was used by query execution {} with different parameters",
                            earlier.query_execution_id
                        )));
                    }
                    return Ok(earlier.query_execution_id.clone());
                }
                executions.tokens.insert(token.clone(), id.clone());
            }
            let sequence = executions.next_sequence;
            executions.next_sequence += 1;
            executions.by_id.insert(id.clone(), slot.clone());
            executions.order.push_back((sequence, id.clone()));
        }
        let service = self.clone();
        let task_slot = slot.clone();
        let cutoff = work_group.configuration.bytes_scanned_cutoff_per_query;
        let handle = tokio::spawn(async move {
            service.execute(task_slot, database, output, cutoff).await;
        });
        if let Ok(mut abort) = slot.abort.lock() {
            *abort = Some(handle.abort_handle());
        }
        Ok(id)
    }

    async fn execute(
        &self,
        slot: Arc<Slot>,
        database: String,
        output: String,
        cutoff: Option<u64>,
    ) {
        let clock = self.inner.clock.clone();
        let (id, sql, submitted) = {
            let execution = slot.state.borrow();
            (
                execution.query_execution_id.clone(),
                execution.query.clone(),
                execution.submission_date_time,
            )
        };
        let queued = clock.now().saturating_duration_since(submitted);
        let running = slot.state.send_if_modified(|e| {
            if e.state != QueryState::Queued {
                return false;
            }
            e.state = QueryState::Running;
            e.statistics.query_queue_time_in_millis = queued.as_millis() as u64;
            true
        });
        if !running {
            // Stopped before it started.
            return;
        }
        // Whatever ends this task (a panic in the engine included) ends the execution.
        let _guard = FailOnDrop(slot.clone(), clock.clone());
        let started = clock.now();
        let counter = Arc::new(ScanCounter::new(cutoff));
        let outcome = self
            .run_to_end(&sql, &database, &output, &id, counter.clone())
            .await;
        let now = clock.now();
        let engine = now.saturating_duration_since(started);
        let (state, reason, statement_type) = match outcome {
            Ok((statement_type, results)) => {
                if let Ok(mut slot_results) = slot.results.lock() {
                    *slot_results = Some(Arc::new(results));
                }
                (QueryState::Succeeded, None, Some(statement_type))
            }
            Err(e) => match cutoff_error(&counter) {
                Some(cut) => (QueryState::Cancelled, Some(cut.to_string()), None),
                None => (QueryState::Failed, Some(e.to_string()), None),
            },
        };
        slot.state.send_if_modified(|e| {
            if e.state.is_final() {
                return false;
            }
            e.state = state;
            e.state_change_reason = reason;
            if let Some(statement_type) = statement_type {
                e.statement_type = statement_type;
            }
            e.completion_date_time = Some(now);
            e.statistics.data_scanned_in_bytes = counter.bytes();
            e.statistics.objects_read = counter.objects();
            e.statistics.engine_execution_time_in_millis = engine.as_millis() as u64;
            e.statistics.total_execution_time_in_millis =
                now.saturating_duration_since(submitted).as_millis() as u64;
            true
        });
    }

    /// Runs a query execution's statement and writes its CSV.
    async fn run_to_end(
        &self,
        sql: &str,
        database: &str,
        output: &str,
        id: &str,
        counter: Arc<ScanCounter>,
    ) -> Result<(StatementType, Results)> {
        let (schema, statement_type, stream) = self
            .run(sql, database, Some(output.to_owned()), id, counter.clone())
            .await?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| failed(e, &counter))?;
        let columns = results::columns(&schema);
        let rows = results::rows(&batches)?;
        let header = statement_type == StatementType::Dml && !columns.is_empty();
        let csv = results::csv(&columns, &rows, !columns.is_empty());
        let url = url::Url::parse(output)
            .map_err(|e| Error::invalid("OutputLocation", format!("{output:?}: {e}")))?;
        let store = self.inner.stores.get(&url).map_err(error::running)?;
        let key = format!("{}{id}.csv", as_prefix(url.path().trim_start_matches('/')));
        let key = key.trim_start_matches('/');
        store
            .put(&ObjectPath::from(key), csv.into_bytes().into())
            .await
            .map_err(|e| Error::Query(format!("results cannot be written to {output}: {e}")))?;
        Ok((
            statement_type,
            Results {
                columns,
                rows,
                header,
            },
        ))
    }

    /// The executions, with those past [`QUERY_HISTORY_RETENTION`] forgotten.
    fn executions(&self) -> Result<std::sync::MutexGuard<'_, Executions>> {
        let mut executions = self
            .inner
            .executions
            .lock()
            .map_err(|_| Error::Query("executions poisoned".into()))?;
        executions.expire(self.inner.clock.now());
        Ok(executions)
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        self.executions()
            .ok()
            .and_then(|e| e.by_id.get(id).cloned())
            .ok_or_else(|| Error::not_found("QueryExecution", id))
    }

    /// A query execution.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn get_query_execution(&self, id: &str) -> Result<QueryExecution> {
        Ok(self.slot(id)?.state.borrow().clone())
    }

    /// Waits until the query execution has finished, and returns it.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn wait_for_query_execution(&self, id: &str) -> Result<QueryExecution> {
        let mut state = self.slot(id)?.state.subscribe();
        let execution = state
            .wait_for(|e| e.state.is_final())
            .await
            .map_err(|_| Error::Query("the execution was dropped".into()))?;
        Ok(execution.clone())
    }

    /// A page of a finished query's results: at most `max_results` rows (1-1000, 1000 when
    /// not given), from `next_token` on.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::NotFinished`] while the query runs or when it did not
    /// succeed; [`Error::InvalidArgument`] for a bad `max_results` or `next_token`.
    pub fn get_query_results(
        &self,
        id: &str,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<ResultPage> {
        let max = max_results.unwrap_or(MAX_RESULTS);
        if !(1..=MAX_RESULTS).contains(&max) {
            return Err(Error::invalid(
                "MaxResults",
                format!("{max} is outside 1-{MAX_RESULTS}"),
            ));
        }
        let slot = self.slot(id)?;
        let state = slot.state.borrow().state;
        if state != QueryState::Succeeded {
            return Err(Error::NotFinished {
                state: state.as_str().into(),
            });
        }
        let results = slot
            .results
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| Error::NotFinished {
                state: state.as_str().into(),
            })?;
        let start = match next_token {
            None => 0,
            Some(token) => token
                .strip_prefix("rows:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    Error::invalid(
                        "NextToken",
                        format!("{token:?} is not a token this query gave"),
                    )
                })?,
        };
        let header = usize::from(results.header);
        let total = results.rows.len() + header;
        if start > total {
            return Err(Error::invalid(
                "NextToken",
                "is past the end of the results",
            ));
        }
        let end = (start + max).min(total);
        let rows = (start..end)
            .map(|i| {
                if results.header && i == 0 {
                    results
                        .columns
                        .iter()
                        .map(|c| Some(c.name.clone()))
                        .collect()
                } else {
                    results.rows[i - header].clone()
                }
            })
            .collect();
        Ok(ResultPage {
            columns: results.columns.clone(),
            rows,
            next_token: (end < total).then(|| format!("rows:{end}")),
        })
    }

    /// Stops a query that is queued or running; a finished one is left as it is.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn stop_query_execution(&self, id: &str) -> Result<()> {
        let slot = self.slot(id)?;
        let now = self.inner.clock.now();
        let stopped = slot.state.send_if_modified(|e| {
            if e.state.is_final() {
                return false;
            }
            e.state = QueryState::Cancelled;
            e.state_change_reason = Some(Error::Cancelled.to_string());
            e.completion_date_time = Some(now);
            true
        });
        if stopped
            && let Ok(mut abort) = slot.abort.lock()
            && let Some(handle) = abort.take()
        {
            handle.abort();
        }
        Ok(())
    }

    /// A page of a workgroup's query execution ids (the primary workgroup's when none is
    /// named), newest first: at most `max_results` (0-50, 50 when not given), from
    /// `next_token` on. Executions are kept for [`QUERY_HISTORY_RETENTION`].
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workgroup; [`Error::InvalidArgument`] for a bad
    /// `max_results` or `next_token`.
    pub fn list_query_executions(
        &self,
        work_group: Option<&str>,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<QueryExecutionPage> {
        let work_group = work_group.unwrap_or(PRIMARY_WORK_GROUP);
        self.work_group(work_group)?;
        let max = max_results.unwrap_or(MAX_LIST_RESULTS);
        if max > MAX_LIST_RESULTS {
            return Err(Error::invalid(
                "MaxResults",
                format!("{max} is outside 0-{MAX_LIST_RESULTS}"),
            ));
        }
        let before = match next_token {
            None => u64::MAX,
            Some(token) => token
                .strip_prefix("before:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::invalid(
                        "NextToken",
                        format!("{token:?} is not a token this call gave"),
                    )
                })?,
        };
        let executions = self.executions()?;
        let mut matching = executions
            .order
            .iter()
            .rev()
            .filter(|(sequence, _)| *sequence < before)
            .filter(|(_, id)| {
                executions
                    .by_id
                    .get(id)
                    .is_some_and(|s| s.state.borrow().work_group == work_group)
            });
        let page: Vec<(u64, String)> = matching.by_ref().take(max).cloned().collect();
        let more = matching.next().is_some();
        Ok(QueryExecutionPage {
            next_token: match page.last() {
                Some((sequence, _)) if more => Some(format!("before:{sequence}")),
                _ => None,
            },
            query_execution_ids: page.into_iter().map(|(_, id)| id).collect(),
        })
    }
}

/// An error while a query was planned: reading a file's metadata may fail there too.
fn planning_failed(error: datafusion::error::DataFusionError, counter: &ScanCounter) -> Error {
    use datafusion::error::DataFusionError as E;
    match error.find_root() {
        E::ParquetError(_) | E::ArrowError(..) | E::ObjectStore(_) | E::Execution(_) => {
            failed(error, counter)
        }
        _ => error::planning(error),
    }
}

/// An error while a query ran; a file that cannot be decoded is named.
fn failed(error: datafusion::error::DataFusionError, counter: &ScanCounter) -> Error {
    use datafusion::error::DataFusionError as E;
    if let Some(cut) = cutoff_error(counter) {
        return cut;
    }
    let decoding = matches!(error.find_root(), E::ParquetError(_) | E::ArrowError(..));
    match (decoding, counter.last_object()) {
        (true, Some(object)) => {
            Error::Query(format!("{} (reading {object})", error.strip_backtrace()))
        }
        _ => error::running(error),
    }
}

fn cutoff_error(counter: &ScanCounter) -> Option<Error> {
    counter
        .exceeded()
        .map(|limit| Error::BytesScannedLimitExceeded { limit })
}

/// Athena's API as a trait, for code that should not care which implementation it talks to
/// (this crate's [`SqlService`], or later the real service).
#[async_trait]
pub trait Queries: Send + Sync + fmt::Debug + 'static {
    /// Runs a query to the end: [`SqlService::query`].
    async fn query(&self, query: Query) -> Result<QueryOutput>;
    /// `StartQueryExecution`: [`SqlService::start_query_execution`].
    async fn start_query_execution(&self, request: StartQueryExecution) -> Result<String>;
    /// `GetQueryExecution`: [`SqlService::get_query_execution`].
    fn get_query_execution(&self, id: &str) -> Result<QueryExecution>;
    /// Waits for an execution to finish: [`SqlService::wait_for_query_execution`].
    async fn wait_for_query_execution(&self, id: &str) -> Result<QueryExecution>;
    /// `GetQueryResults`: [`SqlService::get_query_results`].
    fn get_query_results(
        &self,
        id: &str,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<ResultPage>;
    /// `StopQueryExecution`: [`SqlService::stop_query_execution`].
    async fn stop_query_execution(&self, id: &str) -> Result<()>;
    /// `ListQueryExecutions`: [`SqlService::list_query_executions`].
    fn list_query_executions(
        &self,
        work_group: Option<&str>,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<QueryExecutionPage>;
    /// `CreateWorkGroup`: [`SqlService::create_work_group`].
    async fn create_work_group(
        &self,
        name: &str,
        configuration: WorkGroupConfiguration,
        description: Option<String>,
    ) -> Result<()>;
    /// `GetWorkGroup`: [`SqlService::get_work_group`].
    fn get_work_group(&self, name: &str) -> Result<WorkGroup>;
    /// `DeleteWorkGroup`: [`SqlService::delete_work_group`].
    async fn delete_work_group(&self, name: &str) -> Result<()>;
}

#[async_trait]
impl Queries for SqlService {
    async fn query(&self, query: Query) -> Result<QueryOutput> {
        SqlService::query(self, query).await
    }

    async fn start_query_execution(&self, request: StartQueryExecution) -> Result<String> {
        SqlService::start_query_execution(self, request).await
    }

    fn get_query_execution(&self, id: &str) -> Result<QueryExecution> {
        SqlService::get_query_execution(self, id)
    }

    async fn wait_for_query_execution(&self, id: &str) -> Result<QueryExecution> {
        SqlService::wait_for_query_execution(self, id).await
    }

    fn get_query_results(
        &self,
        id: &str,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<ResultPage> {
        SqlService::get_query_results(self, id, next_token, max_results)
    }

    async fn stop_query_execution(&self, id: &str) -> Result<()> {
        SqlService::stop_query_execution(self, id).await
    }

    fn list_query_executions(
        &self,
        work_group: Option<&str>,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<QueryExecutionPage> {
        SqlService::list_query_executions(self, work_group, next_token, max_results)
    }

    async fn create_work_group(
        &self,
        name: &str,
        configuration: WorkGroupConfiguration,
        description: Option<String>,
    ) -> Result<()> {
        SqlService::create_work_group(self, name, configuration, description).await
    }

    fn get_work_group(&self, name: &str) -> Result<WorkGroup> {
        SqlService::get_work_group(self, name)
    }

    async fn delete_work_group(&self, name: &str) -> Result<()> {
        SqlService::delete_work_group(self, name).await
    }
}
