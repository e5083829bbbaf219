//! The [`Tables`] trait and its requests, shaped after DynamoDB's API.
//!
//! Requests are plain structs with public fields (DynamoDB's parameter names in snake case)
//! and builder-lite methods: `PutItem::new("t", item).with_condition("attribute_not_exists(pk)")`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::schema::{CreateTable, SecondaryIndex, TableDescription};
use crate::value::{AttributeValue, Item};

/// What a write returns (`ReturnValues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum ReturnValues {
    /// Nothing.
    #[default]
    NONE,
    /// The whole item as it was.
    ALL_OLD,
    /// The updated attributes as they were (UpdateItem only).
    UPDATED_OLD,
    /// The whole item as it is now (UpdateItem only).
    ALL_NEW,
    /// The updated attributes as they are now (UpdateItem only).
    UPDATED_NEW,
}

/// What a failed condition returns (`ReturnValuesOnConditionCheckFailure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum ReturnValuesOnConditionCheckFailure {
    /// Nothing.
    #[default]
    NONE,
    /// The item as it was, inside the error.
    ALL_OLD,
}

/// What a query or scan returns (`Select`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum Select {
    /// Whole items (the default without a projection).
    #[default]
    ALL_ATTRIBUTES,
    /// The attributes an index projects.
    ALL_PROJECTED_ATTRIBUTES,
    /// The attributes of the projection expression.
    SPECIFIC_ATTRIBUTES,
    /// Only the count.
    COUNT,
}

/// The expression attribute names and values every expression of a request shares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholders {
    /// `ExpressionAttributeNames`: `#name` to attribute name.
    pub names: BTreeMap<String, String>,
    /// `ExpressionAttributeValues`: `:value` to value.
    pub values: Item,
}

macro_rules! placeholder_builders {
    ($t:ty) => {
        impl $t {
            /// With an expression attribute name (`#name`).
            #[must_use]
            pub fn with_name(
                mut self,
                placeholder: impl Into<String>,
                name: impl Into<String>,
            ) -> Self {
                self.placeholders
                    .names
                    .insert(placeholder.into(), name.into());
                self
            }

            /// With an expression attribute value (`:value`).
            #[must_use]
            pub fn with_value(
                mut self,
                placeholder: impl Into<String>,
                value: impl Into<AttributeValue>,
            ) -> Self {
                self.placeholders
                    .values
                    .insert(placeholder.into(), value.into());
                self
            }
        }
    };
}

macro_rules! return_values_builder {
    ($t:ty) => {
        impl $t {
            /// With `ReturnValues`.
            #[must_use]
            pub fn with_return_values(mut self, value: ReturnValues) -> Self {
                self.return_values = value;
                self
            }
        }
    };
}

macro_rules! condition_builders {
    ($t:ty) => {
        impl $t {
            /// With a condition expression.
            #[must_use]
            pub fn with_condition(mut self, expression: impl Into<String>) -> Self {
                self.condition_expression = Some(expression.into());
                self
            }

            /// With `ReturnValuesOnConditionCheckFailure`.
            #[must_use]
            pub fn with_return_values_on_condition_check_failure(
                mut self,
                value: ReturnValuesOnConditionCheckFailure,
            ) -> Self {
                self.return_values_on_condition_check_failure = value;
                self
            }
        }
    };
}

macro_rules! built_setter {
    ($t:ty; $($from:ident => $to:ident),*) => {
        impl $t {
            /// With expressions made by the [builder](crate::expr::builder): sets the ones
            /// this request takes and adds their placeholders.
            #[must_use]
            pub fn with_expressions(mut self, built: crate::expr::builder::Built) -> Self {
                $(
                    if let Some(text) = built.$from {
                        self.$to = Some(text);
                    }
                )*
                self.placeholders.names.extend(built.placeholders.names);
                self.placeholders.values.extend(built.placeholders.values);
                self
            }
        }
    };
}

/// The builders Query and Scan share.
macro_rules! read_builders {
    ($t:ty) => {
        impl $t {
            /// Reads an index of the table instead of the table.
            #[must_use]
            pub fn with_index(mut self, index: impl Into<String>) -> Self {
                self.index_name = Some(index.into());
                self
            }

            /// With a filter expression.
            #[must_use]
            pub fn with_filter(mut self, expression: impl Into<String>) -> Self {
                self.filter_expression = Some(expression.into());
                self
            }

            /// With a projection expression.
            #[must_use]
            pub fn with_projection(mut self, expression: impl Into<String>) -> Self {
                self.projection_expression = Some(expression.into());
                self
            }

            /// With a limit on evaluated items.
            #[must_use]
            pub fn with_limit(mut self, limit: u32) -> Self {
                self.limit = Some(limit);
                self
            }

            /// Continuing after `key` (a previous page's `last_evaluated_key`).
            #[must_use]
            pub fn with_exclusive_start_key(mut self, key: Option<Item>) -> Self {
                self.exclusive_start_key = key;
                self
            }

            /// With `Select`.
            #[must_use]
            pub fn with_select(mut self, select: Select) -> Self {
                self.select = Some(select);
                self
            }
        }
    };
}

/// A GetItem request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetItem {
    /// The table.
    pub table_name: String,
    /// The item's key attributes, exactly.
    pub key: Item,
    /// Which attributes to return.
    pub projection_expression: Option<String>,
    /// Strongly consistent (reads here always are).
    pub consistent_read: bool,
    /// Expression attribute names for the projection.
    pub placeholders: Placeholders,
}

impl GetItem {
    /// Gets the item with `key` from `table`.
    pub fn new(table: impl Into<String>, key: Item) -> Self {
        Self {
            table_name: table.into(),
            key,
            ..Self::default()
        }
    }

    /// With a projection expression.
    #[must_use]
    pub fn with_projection(mut self, expression: impl Into<String>) -> Self {
        self.projection_expression = Some(expression.into());
        self
    }
}
placeholder_builders!(GetItem);
built_setter!(GetItem; projection => projection_expression);

/// A PutItem request (also a TransactWriteItems `Put`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutItem {
    /// The table.
    pub table_name: String,
    /// The whole item, key attributes included.
    pub item: Item,
    /// A condition on the item being replaced (evaluated on an empty item if there is none).
    pub condition_expression: Option<String>,
    /// `NONE` or `ALL_OLD`.
    pub return_values: ReturnValues,
    /// What a failed condition returns.
    pub return_values_on_condition_check_failure: ReturnValuesOnConditionCheckFailure,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl PutItem {
    /// Puts `item` into `table`, replacing any item with its key.
    pub fn new(table: impl Into<String>, item: Item) -> Self {
        Self {
            table_name: table.into(),
            item,
            ..Self::default()
        }
    }
}
placeholder_builders!(PutItem);
return_values_builder!(PutItem);
condition_builders!(PutItem);
built_setter!(PutItem; condition => condition_expression);

/// An UpdateItem request (also a TransactWriteItems `Update`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateItem {
    /// The table.
    pub table_name: String,
    /// The item's key attributes, exactly.
    pub key: Item,
    /// The update; without one, the item is created with its key alone if missing.
    pub update_expression: Option<String>,
    /// A condition on the item before the update.
    pub condition_expression: Option<String>,
    /// Any of the five.
    pub return_values: ReturnValues,
    /// What a failed condition returns.
    pub return_values_on_condition_check_failure: ReturnValuesOnConditionCheckFailure,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl UpdateItem {
    /// Updates the item with `key` in `table` (creating it if missing) with `expression`.
    pub fn new(table: impl Into<String>, key: Item, expression: impl Into<String>) -> Self {
        Self {
            table_name: table.into(),
            key,
            update_expression: Some(expression.into()),
            ..Self::default()
        }
    }
}
placeholder_builders!(UpdateItem);
return_values_builder!(UpdateItem);
condition_builders!(UpdateItem);
built_setter!(UpdateItem; condition => condition_expression, update => update_expression);

/// A DeleteItem request (also a TransactWriteItems `Delete`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteItem {
    /// The table.
    pub table_name: String,
    /// The item's key attributes, exactly.
    pub key: Item,
    /// A condition on the item.
    pub condition_expression: Option<String>,
    /// `NONE` or `ALL_OLD`.
    pub return_values: ReturnValues,
    /// What a failed condition returns.
    pub return_values_on_condition_check_failure: ReturnValuesOnConditionCheckFailure,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl DeleteItem {
    /// Deletes the item with `key` from `table` (a missing item is no error).
    pub fn new(table: impl Into<String>, key: Item) -> Self {
        Self {
            table_name: table.into(),
            key,
            ..Self::default()
        }
    }
}
placeholder_builders!(DeleteItem);
return_values_builder!(DeleteItem);
condition_builders!(DeleteItem);
built_setter!(DeleteItem; condition => condition_expression);

/// A TransactWriteItems `ConditionCheck`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionCheck {
    /// The table.
    pub table_name: String,
    /// The item's key attributes, exactly.
    pub key: Item,
    /// The condition (required).
    pub condition_expression: Option<String>,
    /// What a failed condition returns.
    pub return_values_on_condition_check_failure: ReturnValuesOnConditionCheckFailure,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl ConditionCheck {
    /// Checks `expression` on the item with `key` in `table`.
    pub fn new(table: impl Into<String>, key: Item, expression: impl Into<String>) -> Self {
        Self {
            table_name: table.into(),
            key,
            condition_expression: Some(expression.into()),
            ..Self::default()
        }
    }
}
placeholder_builders!(ConditionCheck);
condition_builders!(ConditionCheck);
built_setter!(ConditionCheck; condition => condition_expression);

/// A Query request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// The table.
    pub table_name: String,
    /// An index of the table, to query it instead.
    pub index_name: Option<String>,
    /// `pk = :v`, optionally `AND` a condition on the sort key.
    pub key_condition_expression: String,
    /// Applied after each page is read; filtered items still count toward `limit` and 1 MB.
    pub filter_expression: Option<String>,
    /// Which attributes to return.
    pub projection_expression: Option<String>,
    /// Ascending sort key order (`true`, the default) or descending.
    pub scan_index_forward: bool,
    /// The most items to evaluate for this page.
    pub limit: Option<u32>,
    /// Continue after this key (a previous page's `last_evaluated_key`).
    pub exclusive_start_key: Option<Item>,
    /// What to return.
    pub select: Option<Select>,
    /// Strongly consistent (not allowed on global indexes).
    pub consistent_read: bool,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl Query {
    /// Queries `table` with a key condition expression.
    pub fn new(table: impl Into<String>, key_condition: impl Into<String>) -> Self {
        Self {
            table_name: table.into(),
            index_name: None,
            key_condition_expression: key_condition.into(),
            filter_expression: None,
            projection_expression: None,
            scan_index_forward: true,
            limit: None,
            exclusive_start_key: None,
            select: None,
            consistent_read: false,
            placeholders: Placeholders::default(),
        }
    }

    /// Descending order.
    #[must_use]
    pub fn backwards(mut self) -> Self {
        self.scan_index_forward = false;
        self
    }
}
placeholder_builders!(Query);
read_builders!(Query);

impl Query {
    /// With expressions made by the [builder](crate::expr::builder): the key condition,
    /// filter and projection it has, and their placeholders.
    #[must_use]
    pub fn with_expressions(mut self, built: crate::expr::builder::Built) -> Self {
        if let Some(text) = built.key_condition {
            self.key_condition_expression = text;
        }
        if let Some(text) = built.filter {
            self.filter_expression = Some(text);
        }
        if let Some(text) = built.projection {
            self.projection_expression = Some(text);
        }
        self.placeholders.names.extend(built.placeholders.names);
        self.placeholders.values.extend(built.placeholders.values);
        self
    }
}

/// A Scan request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The table.
    pub table_name: String,
    /// An index of the table, to scan it instead.
    pub index_name: Option<String>,
    /// Applied after each page is read.
    pub filter_expression: Option<String>,
    /// Which attributes to return.
    pub projection_expression: Option<String>,
    /// The most items to evaluate for this page.
    pub limit: Option<u32>,
    /// Continue after this key.
    pub exclusive_start_key: Option<Item>,
    /// What to return.
    pub select: Option<Select>,
    /// This segment of a parallel scan (with `total_segments`).
    pub segment: Option<u32>,
    /// The number of segments of a parallel scan (1-1,000,000).
    pub total_segments: Option<u32>,
    /// Strongly consistent.
    pub consistent_read: bool,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl Scan {
    /// Scans `table`.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table_name: table.into(),
            ..Self::default()
        }
    }

    /// One segment of a parallel scan.
    #[must_use]
    pub fn with_segment(mut self, segment: u32, total_segments: u32) -> Self {
        self.segment = Some(segment);
        self.total_segments = Some(total_segments);
        self
    }
}
placeholder_builders!(Scan);
read_builders!(Scan);
built_setter!(Scan; filter => filter_expression, projection => projection_expression);

/// One page of a query or scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The items that passed the filter (none for `Select::COUNT`).
    pub items: Vec<Item>,
    /// How many passed the filter.
    pub count: usize,
    /// How many were read, before the filter.
    pub scanned_count: usize,
    /// Where the next page starts, if this one stopped at the limit or at 1 MB.
    pub last_evaluated_key: Option<Item>,
}

/// Keys to read from one table in a BatchGetItem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysAndAttributes {
    /// The keys.
    pub keys: Vec<Item>,
    /// Which attributes to return.
    pub projection_expression: Option<String>,
    /// Strongly consistent.
    pub consistent_read: bool,
    /// Expression attribute names for the projection.
    pub names: BTreeMap<String, String>,
}

/// What ListTables returns: one page of table names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTablesOutput {
    /// The names, in order.
    pub table_names: Vec<String>,
    /// Set when more tables follow: the `exclusive_start` of the next page.
    pub last_evaluated_table_name: Option<String>,
}

/// What BatchGetItem returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchGetItemOutput {
    /// The items found, per table (missing keys are simply absent).
    pub responses: BTreeMap<String, Vec<Item>>,
    /// Keys not read because the response reached 16 MB; ask again.
    pub unprocessed_keys: BTreeMap<String, KeysAndAttributes>,
}

/// One write of a BatchWriteItem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteRequest {
    /// Put an item.
    Put {
        /// The item.
        item: Item,
    },
    /// Delete an item.
    Delete {
        /// Its key.
        key: Item,
    },
}

/// What BatchWriteItem returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchWriteItemOutput {
    /// Writes not done; always empty here, since there is no throttling.
    pub unprocessed_items: BTreeMap<String, Vec<WriteRequest>>,
}

/// One action of a TransactWriteItems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactWriteItem {
    /// A put; `return_values` must be `NONE`.
    Put(PutItem),
    /// An update; `return_values` must be `NONE`.
    Update(UpdateItem),
    /// A delete; `return_values` must be `NONE`.
    Delete(DeleteItem),
    /// A condition on an item that is not written.
    ConditionCheck(ConditionCheck),
}

/// A TransactWriteItems request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactWriteItems {
    /// 1-100 actions, no two on one item.
    pub transact_items: Vec<TransactWriteItem>,
    /// Makes the request idempotent for 10 minutes.
    pub client_request_token: Option<String>,
}

/// One read of a TransactGetItems.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactGet {
    /// The table.
    pub table_name: String,
    /// The item's key.
    pub key: Item,
    /// Which attributes to return.
    pub projection_expression: Option<String>,
    /// Expression attribute names for the projection.
    pub names: BTreeMap<String, String>,
}

impl TransactGet {
    /// Reads the item with `key` from `table`.
    pub fn new(table: impl Into<String>, key: Item) -> Self {
        Self {
            table_name: table.into(),
            key,
            ..Self::default()
        }
    }
}

/// DynamoDB's table and item API.
///
/// Every method validates its request first: a rejected request changes nothing. Writes are
/// durable (fsync'd on a durable store) before they return.
///
/// # Cancel safety
/// Reads are cancel safe. A write whose future is dropped may still commit: treat it as a
/// request whose answer was lost (use conditions or a client request token to retry safely).
#[async_trait]
pub trait Tables: Send + Sync + std::fmt::Debug + 'static {
    /// CreateTable. Errors: `ResourceInUseException` if it exists, `ValidationException` for a
    /// bad name or definition.
    async fn create_table(&self, request: CreateTable) -> Result<TableDescription>;
    /// DeleteTable: the table and every item. Returns the description it had.
    async fn delete_table(&self, table: &str) -> Result<TableDescription>;
    /// DescribeTable.
    async fn describe_table(&self, table: &str) -> Result<TableDescription>;
    /// ListTables: names in order, after `exclusive_start` if given, at most `limit` (1-100),
    /// with the name to start the next page after when more follow.
    async fn list_tables(
        &self,
        exclusive_start: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListTablesOutput>;
    /// UpdateTable: add a global secondary index (built from the existing items at once).
    async fn create_global_index(
        &self,
        table: &str,
        index: SecondaryIndex,
    ) -> Result<TableDescription>;
    /// UpdateTable: remove a global secondary index.
    async fn delete_global_index(&self, table: &str, index: &str) -> Result<TableDescription>;

    /// GetItem: the item, or `None`.
    async fn get_item(&self, request: GetItem) -> Result<Option<Item>>;
    /// PutItem: the `ReturnValues` attributes, if any.
    async fn put_item(&self, request: PutItem) -> Result<Option<Item>>;
    /// UpdateItem: the `ReturnValues` attributes, if any.
    async fn update_item(&self, request: UpdateItem) -> Result<Option<Item>>;
    /// DeleteItem: the `ReturnValues` attributes, if any.
    async fn delete_item(&self, request: DeleteItem) -> Result<Option<Item>>;
    /// Query: one page.
    async fn query(&self, request: Query) -> Result<Page>;
    /// Scan: one page.
    async fn scan(&self, request: Scan) -> Result<Page>;
    /// BatchGetItem: up to 100 keys across tables.
    async fn batch_get_item(
        &self,
        request: BTreeMap<String, KeysAndAttributes>,
    ) -> Result<BatchGetItemOutput>;
    /// BatchWriteItem: up to 25 puts and deletes across tables, no conditions.
    async fn batch_write_item(
        &self,
        request: BTreeMap<String, Vec<WriteRequest>>,
    ) -> Result<BatchWriteItemOutput>;
    /// TransactWriteItems: all or nothing.
    async fn transact_write_items(&self, request: TransactWriteItems) -> Result<()>;
    /// TransactGetItems: one consistent snapshot; `None` for missing items.
    async fn transact_get_items(&self, request: Vec<TransactGet>) -> Result<Vec<Option<Item>>>;
}
