//! cloudlet-kv: DynamoDB semantics as a library, over cloudlet's storage and clock.
//!
//! [`KvService`] implements [`Tables`]: tables with a partition key and an optional sort key,
//! items of DynamoDB's attribute types, expressions in DynamoDB's own syntax (or built with
//! [`expr::builder`]), queries, scans, batches, transactions, secondary indexes, time to live
//! and a change stream. The same code runs on the in-memory engine (the test double) and on the
//! durable one; errors carry DynamoDB's names and messages.
//!
//! # Single-table design with a global secondary index
//!
//! ```
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_kv::{CreateTable, KeyAttribute, KvService, PutItem, Query, SecondaryIndex, Tables, item};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_kv::Error> {
//! let kv = KvService::new(Store::memory(), ManualClock::default().shared());
//! kv.create_table(
//!     CreateTable::new("app", KeyAttribute::s("pk"))
//!         .with_sort_key(KeyAttribute::s("sk"))
//!         .with_global_index(
//!             SecondaryIndex::new("byEmail", KeyAttribute::s("email")),
//!         ),
//! )
//! .await?;
//! // A customer and their orders share a partition; the customer is also found by email.
//! kv.put_item(PutItem::new("app", item([
//!     ("pk", "CUSTOMER#ada".into()), ("sk", "PROFILE".into()), ("email", "ada@example.com".into()),
//! ]))).await?;
//! for (id, total) in [("2024-001", 30), ("2024-002", 12)] {
//!     kv.put_item(PutItem::new("app", item([
//!         ("pk", "CUSTOMER#ada".into()), ("sk", format!("ORDER#{id}").into()), ("total", total.into()),
//!     ]))).await?;
//! }
//! let orders = kv
//!     .query(
//!         Query::new("app", "pk = :c AND begins_with(sk, :orders)")
//!             .with_value(":c", "CUSTOMER#ada")
//!             .with_value(":orders", "ORDER#"),
//!     )
//!     .await?;
//! assert_eq!(orders.count, 2);
//! let by_email = kv
//!     .query(Query::new("app", "email = :e").with_index("byEmail").with_value(":e", "ada@example.com"))
//!     .await?;
//! assert_eq!(by_email.items[0]["sk"], "PROFILE".into());
//! # Ok(()) }
//! ```
//!
//! # Optimistic locking
//!
//! A version attribute and a condition are all it takes, as DynamoDBMapper's
//! `@DynamoDBVersionAttribute` does: the write succeeds only if nobody changed the item since
//! it was read.
//!
//! ```
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_kv::{CreateTable, Error, GetItem, KeyAttribute, KvService, PutItem, Tables, UpdateItem, item};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_kv::Error> {
//! let kv = KvService::new(Store::memory(), ManualClock::default().shared());
//! kv.create_table(CreateTable::new("docs", KeyAttribute::s("id"))).await?;
//! kv.put_item(PutItem::new("docs", item([("id", "readme".into()), ("version", 1.into())]))).await?;
//!
//! let key = item([("id", "readme".into())]);
//! let read = kv.get_item(GetItem::new("docs", key.clone())).await?.unwrap();
//! let save = |expected: cloudlet_kv::AttributeValue| {
//!     UpdateItem::new("docs", key.clone(), "SET body = :body, version = version + :one")
//!         .with_condition("version = :expected")
//!         .with_value(":body", "new text")
//!         .with_value(":one", 1)
//!         .with_value(":expected", expected)
//! };
//! kv.update_item(save(read["version"].clone())).await?;
//! // A second writer holding the same stale version loses.
//! let stale = kv.update_item(save(read["version"].clone())).await;
//! assert!(matches!(stale, Err(Error::ConditionalCheckFailed { .. })));
//! # Ok(()) }
//! ```
//!
//! # A transaction with a condition check
//!
//! ```
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_kv::{
//!     ConditionCheck, CreateTable, Error, KeyAttribute, KvService, PutItem, Tables,
//!     TransactWriteItem, TransactWriteItems, UpdateItem, item,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_kv::Error> {
//! let kv = KvService::new(Store::memory(), ManualClock::default().shared());
//! kv.create_table(CreateTable::new("bank", KeyAttribute::s("account"))).await?;
//! kv.put_item(PutItem::new("bank", item([("account", "a".into()), ("balance", 100.into())]))).await?;
//! kv.put_item(PutItem::new("bank", item([("account", "b".into()), ("balance", 0.into()), ("frozen", true.into())]))).await?;
//!
//! let transfer = |amount: i64| TransactWriteItems {
//!     transact_items: vec![
//!         TransactWriteItem::Update(
//!             UpdateItem::new("bank", item([("account", "a".into())]), "SET balance = balance - :x")
//!                 .with_condition("balance >= :x")
//!                 .with_value(":x", amount),
//!         ),
//!         TransactWriteItem::ConditionCheck(
//!             ConditionCheck::new("bank", item([("account", "b".into())]), "frozen = :no")
//!                 .with_value(":no", false),
//!         ),
//!     ],
//!     client_request_token: None,
//! };
//! // Account b is frozen: the whole transaction is cancelled, one reason per action.
//! match kv.transact_write_items(transfer(30)).await {
//!     Err(Error::TransactionCanceled { reasons }) => {
//!         assert_eq!(reasons[0].code, "None");
//!         assert_eq!(reasons[1].code, "ConditionalCheckFailed");
//!     }
//!     other => panic!("expected a cancellation, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Status against DynamoDB
//!
//! | feature | status |
//! |---|---|
//! | CreateTable, DeleteTable, DescribeTable, ListTables; UpdateTable adding and removing global secondary indexes (backfilled) | yes |
//! | attribute types S, N (38 digits, exact), B, BOOL, NULL, L, M, SS, NS, BS; item size as DynamoDB counts it (400 KB); key sizes; nesting depth 32 | yes |
//! | GetItem (ProjectionExpression), PutItem, UpdateItem, DeleteItem with ReturnValues and ReturnValuesOnConditionCheckFailure | yes |
//! | condition, filter, key condition, update and projection expressions; placeholders checked (undefined, unused); reserved words; errors pointing at the token | yes |
//! | Query (sort key conditions, ScanIndexForward, Limit, pages of 1 MB counted before the filter, ExclusiveStartKey, Select COUNT), Scan with Segment / TotalSegments | yes |
//! | BatchGetItem (100 keys, 16 MB), BatchWriteItem (25 writes) | yes |
//! | TransactWriteItems (100 actions, one per item, cancellation reasons, ClientRequestToken for 10 minutes), TransactGetItems | yes |
//! | global and local secondary indexes (ALL, KEYS_ONLY, INCLUDE), updated in the item's transaction | yes |
//! | time to live: expiry index, sweeper on the clock, REMOVE records by the service | yes |
//! | streams: KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, enabled at creation or later (`update_stream`); shard iterators; 24-hour retention; delivery to a `Sink` | yes |
//! | typed expression builder | yes |
//! | PartiQL, backups, global tables, capacity and throttling, legacy parameters (`AttributesToGet`, `Expected`, `KeyConditions`) | no |
//!
//! # Deliberate divergences
//!
//! - Every read is strongly consistent, `ConsistentRead` or not (an eventually consistent read
//!   may return the latest data; only global indexes refuse `ConsistentRead`).
//! - Tables and indexes are `ACTIVE` at once; a new global index is backfilled inside
//!   `create_global_index` rather than in the background.
//! - `ItemCount` and `TableSizeBytes` are exact and computed on DescribeTable (DynamoDB
//!   refreshes them every six hours).
//! - A stream has one shard; sequence numbers are fixed-width decimal strings.
//! - TTL deletion runs when [`KvService::sweep`] runs (by hand, or every interval of the clock
//!   with [`KvService::start_sweeper`]) instead of within a few days.
//! - BatchWriteItem is applied atomically and never returns unprocessed items (there is no
//!   throttling); BatchGetItem leaves keys unprocessed only past 16 MB.
//! - Transactions never conflict with each other (writes are serialized), so
//!   `TransactionConflict` does not occur.
//! - ARNs use the region and account given to [`KvService::with_account`].

mod api;
mod batch;
mod codec;
mod delivery;
mod error;
pub mod expr;
mod index;
mod items;
mod jobs;
mod query;
pub mod schema;
mod service;
pub mod stream;
mod ttl;
pub mod value;

pub use api::{
    BatchGetItemOutput, BatchWriteItemOutput, ConditionCheck, DeleteItem, GetItem,
    KeysAndAttributes, ListTablesOutput, Page, Placeholders, PutItem, Query, ReturnValues,
    ReturnValuesOnConditionCheckFailure, Scan, Select, Tables, TransactGet, TransactWriteItem,
    TransactWriteItems, UpdateItem, WriteRequest,
};
pub use delivery::{StartingPosition, event_json};
pub use error::{CancellationReason, Error, Result};
pub use schema::{
    CreateTable, KeyAttribute, KeySchema, Projection, ScalarType, SecondaryIndex, StreamViewType,
    TableDescription, TableStatus,
};
pub use service::KvService;
pub use stream::{GetRecordsOutput, ShardIteratorType, StreamDescription, StreamRecord};
pub use ttl::{SweepReport, TimeToLiveDescription};
pub use value::{AttributeValue, Item, Number, ValueType, item};

/// DynamoDB's limits, as this crate enforces them.
pub mod limits {
    pub use crate::batch::{
        CLIENT_TOKEN_WINDOW, MAX_BATCH_GET_BYTES, MAX_BATCH_GET_KEYS, MAX_BATCH_WRITES,
        MAX_CLIENT_TOKEN_LENGTH, MAX_TRANSACT_BYTES, MAX_TRANSACT_ITEMS,
    };
    pub use crate::expr::{MAX_EXPRESSION_LENGTH, MAX_IN_OPERANDS};
    pub use crate::index::MAX_PROJECTED_ATTRIBUTES;
    pub use crate::query::{MAX_PAGE_BYTES, MAX_TOTAL_SEGMENTS};
    pub use crate::schema::{MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES};
    pub use crate::service::{MAX_GLOBAL_INDEXES, MAX_LOCAL_INDEXES};
    pub use crate::stream::{ITERATOR_LIFETIME, MAX_GET_RECORDS, STREAM_RETENTION};
    pub use crate::ttl::TTL_CHANGE_INTERVAL;
    pub use crate::value::{MAX_ITEM_SIZE, MAX_NESTING_DEPTH, MAX_NUMBER_DIGITS};
}
