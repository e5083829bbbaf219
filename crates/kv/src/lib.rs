//! cloudlet-kv: DynamoDB semantics as a library, over cloudlet's storage and clock.

mod api;
mod batch;
mod codec;
mod delivery;
mod error;
pub mod expr;
mod index;
mod items;
mod query;
pub mod schema;
mod service;
pub mod stream;
mod ttl;
pub mod value;

pub use api::{
    BatchGetItemOutput, BatchWriteItemOutput, ConditionCheck, DeleteItem, GetItem,
    KeysAndAttributes, Page, Placeholders, PutItem, Query, ReturnValues,
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
