//! Athena-shaped SQL over cloudlet buckets, on Apache DataFusion.
//!
//! [`SqlService`] keeps a catalog of databases, tables and views (the Glue idea) in core's
//! store, so that definitions survive a restart, and reads and writes the object service's
//! buckets as `s3://<bucket>/<prefix>/`:
//!
//! - `CREATE EXTERNAL TABLE ... STORED AS PARQUET | CSV | JSON [PARTITIONED BY (...)]
//!   LOCATION 's3://bucket/prefix/' [OPTIONS (...)]`, `CREATE VIEW`, `DROP TABLE`,
//!   `CREATE DATABASE` / `SCHEMA`, `DROP DATABASE`, `DESCRIBE`, `information_schema`, and
//!   Athena's `SHOW TABLES [IN db] ['pattern']` (column `tab_name`), `SHOW DATABASES |
//!   SCHEMAS [LIKE 'pattern']` (`database_name`) and `SHOW COLUMNS IN table` (`field`).
//! - Hive-style `key=value/` partitions, pruned while listing; partition projection as
//!   Athena configures it (`projection.*` and `storage.location.template` in `OPTIONS`),
//!   computed from the query without listing the table.
//! - `COPY (query) TO 's3://...' STORED AS PARQUET PARTITIONED BY (...)`, `INSERT INTO`, and
//!   `CREATE TABLE ... AS SELECT` (Parquet under the workgroup's output location, as Athena
//!   writes a CTAS without `external_location`). Written objects emit the object store's
//!   events like any other put.
//! - Athena's query executions ([`SqlService::start_query_execution`] and the rest): states,
//!   statistics with `DataScannedInBytes` (bytes actually read from object stores), paged
//!   results, CSV written to the output location, cancellation, and workgroups with a
//!   per-query bytes-scanned cutoff.
//! - A direct API: [`SqlService::query`] answers Arrow record batches,
//!   [`SqlService::query_stream`] a stream of them.
//!
//! The SQL dialect is DataFusion's; Athena's table properties are given as `OPTIONS`.

mod catalog;
mod error;
mod results;
mod scan;
mod service;
mod tables;
mod utility;

pub use catalog::TableKind;
pub use datafusion;
pub use error::{Error, Position, Result};
pub use results::{Cell, ColumnInfo};
pub use service::{
    BATCH_SIZE, CATALOG, DEFAULT_DATABASE, MAX_LIST_RESULTS, MAX_QUERY_BYTES, MAX_RESULTS,
    MIN_BYTES_SCANNED_CUTOFF, PRIMARY_WORK_GROUP, QUERY_HISTORY_RETENTION, Queries, Query,
    QueryExecution, QueryExecutionPage, QueryOutput, QueryState, QueryStatistics, ResultPage,
    SqlService, StartQueryExecution, StatementType, WorkGroup, WorkGroupConfiguration,
    WorkGroupState,
};
