//! Query and Scan: key conditions turned into key ranges, pages of at most 1 MB read before
//! the filter, parallel scan segments.

use std::ops::Bound;

use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::{Direction, KeyRange, ReadView, Snapshot};

use crate::api::{Page, Query, Scan, Select};
use crate::expr::{Comparator, Condition, Operand, Prepared, Texts};
use crate::index::{KS_INDEX, index_prefix, partition_hash};
use crate::schema::{
    KeySchema, Projection, ScalarType, SecondaryIndex, TableRecord, encode_key_value, key_param,
};
use crate::service::{KS_ITEMS, KvService, decode};
use crate::value::{AttributeValue, Item, item_size};
use crate::{Error, Result};

/// A page stops once it has read this much, counted before the filter.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// The most segments of a parallel scan.
pub const MAX_TOTAL_SEGMENTS: u32 = 1_000_000;

/// The condition on the sort key of a query.
enum SortCondition {
    Compare(Comparator, AttributeValue),
    Between(AttributeValue, AttributeValue),
    BeginsWith(AttributeValue),
}

fn not_supported() -> Error {
    Error::validation(
        "KeyConditionExpression",
        "Query key condition not supported",
    )
}

fn invalid_operator(operator: &str) -> Error {
    Error::validation(
        "KeyConditionExpression",
        format!("Invalid operator used in KeyConditionExpression: {operator}"),
    )
}

fn missed(element: &str) -> Error {
    Error::validation(
        "KeyConditionExpression",
        format!("Query condition missed key schema element: {element}"),
    )
}

fn one_per_key() -> Error {
    Error::validation(
        "KeyConditionExpression",
        "KeyConditionExpressions must only contain one condition per key",
    )
}

/// Splits a key condition into the partition key's value and the sort key's condition.
/// A Query's filter may not name a key attribute of the table or index queried: DynamoDB
/// answers `Filter Expression can only contain non-primary key attributes: Primary key
/// attribute: <name>`, the partition key named first.
fn filter_without_keys(prepared: &Prepared, schema: &KeySchema) -> Result<()> {
    let Some(filter) = &prepared.condition else {
        return Ok(());
    };
    let context = prepared.context();
    let mut heads = std::collections::BTreeSet::new();
    let mut add = |path: &crate::expr::Path| {
        if let Some(crate::expr::Step::Key(name)) = context.steps(path).into_iter().next() {
            heads.insert(name);
        }
    };
    let mut pending = vec![filter];
    while let Some(condition) = pending.pop() {
        let mut operands = Vec::new();
        match condition {
            Condition::Compare(a, _, b)
            | Condition::BeginsWith(a, b)
            | Condition::Contains(a, b) => {
                operands.extend([a, b]);
            }
            Condition::Between(a, low, high) => operands.extend([a, low, high]),
            Condition::In(a, list) => {
                operands.push(a);
                operands.extend(list);
            }
            Condition::AttributeExists(path) | Condition::AttributeNotExists(path) => add(path),
            Condition::AttributeType(path, _) => add(path),
            Condition::Not(inner) => pending.push(inner),
            Condition::And(a, b) | Condition::Or(a, b) => pending.extend([a.as_ref(), b.as_ref()]),
        }
        for operand in operands {
            if let Operand::Path(path) | Operand::Size(path) = operand {
                add(path);
            }
        }
    }
    let keys = std::iter::once(&schema.partition_key).chain(schema.sort_key.as_ref());
    for key in keys {
        if heads.contains(&key.name) {
            return Err(Error::validation(
                "FilterExpression",
                format!(
                    "Filter Expression can only contain non-primary key attributes: Primary key attribute: {}",
                    key.name
                ),
            ));
        }
    }
    Ok(())
}

fn key_condition(
    prepared: &Prepared,
    schema: &KeySchema,
) -> Result<(AttributeValue, Option<SortCondition>)> {
    let context = prepared.context();
    let mut conjuncts = Vec::new();
    let mut pending = vec![prepared.key_condition.as_ref().ok_or_else(not_supported)?];
    while let Some(c) = pending.pop() {
        match c {
            Condition::And(a, b) => {
                pending.push(b);
                pending.push(a);
            }
            Condition::Or(..) => return Err(invalid_operator("OR")),
            Condition::Not(..) => return Err(invalid_operator("NOT")),
            Condition::In(..) => return Err(invalid_operator("IN")),
            Condition::Contains(..) => return Err(invalid_operator("contains")),
            Condition::AttributeExists(..) => return Err(invalid_operator("attribute_exists")),
            Condition::AttributeNotExists(..) => {
                return Err(invalid_operator("attribute_not_exists"));
            }
            Condition::AttributeType(..) => return Err(invalid_operator("attribute_type")),
            Condition::Compare(_, Comparator::Ne, _) => return Err(invalid_operator("<>")),
            other => conjuncts.push(other),
        }
    }
    if conjuncts.len() > 2 {
        return Err(one_per_key());
    }
    let attribute = |operand: &Operand| -> Result<String> {
        match operand {
            Operand::Path(path) if path.0.len() == 1 => {
                match context.steps(path).into_iter().next() {
                    Some(crate::expr::Step::Key(name)) => Ok(name),
                    _ => Err(not_supported()),
                }
            }
            Operand::Path(_) => Err(Error::validation(
                "KeyConditionExpression",
                "KeyConditionExpressions cannot have conditions on nested attributes",
            )),
            _ => Err(not_supported()),
        }
    };
    let value = |operand: &Operand| -> Result<AttributeValue> {
        match operand {
            Operand::Value(v) => context.value(v).cloned().ok_or_else(not_supported),
            _ => Err(not_supported()),
        }
    };
    let mut partition = None;
    let mut sort = None;
    let mut strangers = Vec::new();
    for conjunct in conjuncts {
        let (name, condition) = match conjunct {
            Condition::Compare(a, op, b) => (attribute(a)?, Err((*op, value(b)?))),
            Condition::Between(a, low, high) => (
                attribute(a)?,
                Ok(SortCondition::Between(value(low)?, value(high)?)),
            ),
            Condition::BeginsWith(a, prefix) => {
                (attribute(a)?, Ok(SortCondition::BeginsWith(value(prefix)?)))
            }
            _ => return Err(not_supported()),
        };
        if name == schema.partition_key.name {
            match condition {
                Err((Comparator::Eq, v)) if partition.is_none() => partition = Some(v),
                Err((Comparator::Eq, _)) => return Err(one_per_key()),
                _ => return Err(not_supported()),
            }
        } else if schema.sort_key.as_ref().is_some_and(|s| s.name == name) {
            if sort.is_some() {
                return Err(one_per_key());
            }
            sort = Some(match condition {
                Ok(c) => c,
                Err((Comparator::Ne, _)) => return Err(invalid_operator("<>")),
                Err((op, v)) => SortCondition::Compare(op, v),
            });
        } else {
            strangers.push(name);
        }
    }
    let partition = partition.ok_or_else(|| missed(&schema.partition_key.name))?;
    if !strangers.is_empty() {
        return Err(match &schema.sort_key {
            Some(sort_key) if sort.is_none() => missed(&sort_key.name),
            _ => not_supported(),
        });
    }
    Ok((partition, sort))
}

fn type_mismatch() -> Error {
    Error::validation(
        "KeyConditionExpression",
        "One or more parameter values were invalid: Condition parameter type does not match schema type",
    )
}

/// The key range of a query's partition and sort condition under `base`.
fn query_range(
    base: Tuple,
    schema: &KeySchema,
    partition: &AttributeValue,
    sort: Option<SortCondition>,
) -> Result<KeyRange> {
    let partition_prefix =
        encode_key_value(base, &schema.partition_key, partition, false, type_mismatch)?;
    // Not a plain prefix range: a string or binary partition key `v ++ [0, ...]` encodes as
    // `v`'s encoding followed by the escape 0xFF, and belongs to another partition.
    let prefix_range = KeyRange {
        start: Bound::Included(Bytes::copy_from_slice(partition_prefix.as_bytes())),
        end: {
            let mut end = partition_prefix.as_bytes().to_vec();
            end.push(0xFF);
            Bound::Excluded(Bytes::from(end))
        },
    };
    let (Some(sort), Some(sort_key)) = (sort, &schema.sort_key) else {
        return Ok(prefix_range);
    };
    // An entry's key continues after the sort key (index entries carry the table's key too),
    // so every bound covers all the keys that start with the sort key's encoding.
    let at = |v: &AttributeValue| -> Result<Bytes> {
        Ok(encode_key_value(partition_prefix.clone(), sort_key, v, true, type_mismatch)?.build())
    };
    // The keys whose sort key equals `v` start with its encoding and continue with a tag byte
    // (below 0xFF) or end; a longer string or binary value continues with the escape 0xFF.
    // So `encoding ++ 0xFF` is the first key past them.
    let past = |key: &Bytes| {
        let mut next = key.to_vec();
        next.push(0xFF);
        Bound::Excluded(Bytes::from(next))
    };
    let (start, end) = (prefix_range.start.clone(), prefix_range.end.clone());
    Ok(match sort {
        SortCondition::Compare(op, v) => {
            let key = at(&v)?;
            match op {
                Comparator::Eq => KeyRange {
                    start: Bound::Included(key.clone()),
                    end: past(&key),
                },
                Comparator::Lt => KeyRange {
                    start,
                    end: Bound::Excluded(key),
                },
                Comparator::Le => KeyRange {
                    start,
                    end: past(&key),
                },
                Comparator::Gt => KeyRange {
                    start: match past(&key) {
                        Bound::Excluded(next) => Bound::Included(next),
                        other => other,
                    },
                    end,
                },
                Comparator::Ge => KeyRange {
                    start: Bound::Included(key),
                    end,
                },
                Comparator::Ne => return Err(not_supported()),
            }
        }
        SortCondition::Between(low, high) => {
            let (low_key, high_key) = (at(&low)?, at(&high)?);
            if low_key > high_key {
                return Err(Error::validation(
                    "KeyConditionExpression",
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                ));
            }
            KeyRange {
                start: Bound::Included(low_key),
                end: past(&high_key),
            }
        }
        SortCondition::BeginsWith(prefix) => {
            let tuple = match (sort_key.attribute_type, &prefix) {
                (ScalarType::S, AttributeValue::S(s)) => partition_prefix.str_prefix(s),
                (ScalarType::B, AttributeValue::B(b)) => partition_prefix.bytes_prefix(b),
                (ScalarType::N, _) => {
                    return Err(Error::validation(
                        "KeyConditionExpression",
                        "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
                    ));
                }
                _ => return Err(type_mismatch()),
            };
            KeyRange::prefix(tuple.as_bytes())
        }
    })
}

/// Narrows `range` to the keys after `start` in `direction`; `start` must lie in the range.
fn after_checked(range: KeyRange, start: Bytes, direction: Direction) -> Result<KeyRange> {
    if !range.contains(&start) {
        return Err(Error::validation(
            "ExclusiveStartKey",
            "The provided starting key is outside query boundaries based on provided conditions",
        ));
    }
    Ok(after(range, start, direction))
}

/// Narrows `range` to the keys after `start` in `direction`.
fn after(range: KeyRange, start: Bytes, direction: Direction) -> KeyRange {
    match direction {
        Direction::Forward => {
            let later = match &range.start {
                Bound::Included(s) | Bound::Excluded(s) => start >= *s,
                Bound::Unbounded => true,
            };
            if later {
                KeyRange {
                    start: Bound::Excluded(start),
                    end: range.end,
                }
            } else {
                range
            }
        }
        Direction::Reverse => {
            let earlier = match &range.end {
                Bound::Included(e) | Bound::Excluded(e) => start <= *e,
                Bound::Unbounded => true,
            };
            if earlier {
                KeyRange {
                    start: range.start,
                    end: Bound::Excluded(start),
                }
            } else {
                range
            }
        }
    }
}

/// What to return, from `Select` and whether there is a projection, checked as DynamoDB does.
fn resolve_select(
    select: Option<Select>,
    has_projection: bool,
    index: Option<(&SecondaryIndex, bool)>,
) -> Result<Select> {
    let invalid = |message: String| Err(Error::validation("Select", message));
    match (select, has_projection) {
        (None, true) | (Some(Select::SPECIFIC_ATTRIBUTES), true) => Ok(Select::SPECIFIC_ATTRIBUTES),
        (Some(Select::SPECIFIC_ATTRIBUTES), false) => invalid(
            "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES requires a ProjectionExpression".to_owned(),
        ),
        (Some(other), true) => invalid(format!(
            "One or more parameter values were invalid: Cannot specify a ProjectionExpression when choosing to get {other:?}"
        )),
        (None, false) if index.is_some() => Ok(Select::ALL_PROJECTED_ATTRIBUTES),
        (None, false) => Ok(Select::ALL_ATTRIBUTES),
        (Some(Select::ALL_PROJECTED_ATTRIBUTES), false) if index.is_none() => invalid(
            "One or more parameter values were invalid: ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName".to_owned(),
        ),
        (Some(Select::ALL_ATTRIBUTES), false) => match index {
            Some((i, true)) if i.projection != Projection::All => invalid(format!(
                "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                i.index_name
            )),
            _ => Ok(Select::ALL_ATTRIBUTES),
        },
        (Some(select), false) => Ok(select),
    }
}

/// The index a query or scan reads, if any, and what it returns.
fn resolve_index<'t>(
    table: &'t TableRecord,
    index_name: Option<&str>,
    consistent_read: bool,
    select: Option<Select>,
    has_projection: bool,
) -> Result<(Option<&'t SecondaryIndex>, Select)> {
    let index = index_name
        .map(|name| crate::index::find(table, name))
        .transpose()?;
    if consistent_read && matches!(index, Some((_, true))) {
        return Err(Error::validation(
            "ConsistentRead",
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    if let Some((index, _)) = index
        && table.backfilling.contains(&index.index_name)
    {
        return Err(Error::validation(
            "IndexName",
            format!(
                "Cannot read from backfilling global secondary index: {}",
                index.index_name
            ),
        ));
    }
    let select = resolve_select(select, has_projection, index)?;
    Ok((index.map(|(i, _)| i), select))
}

/// The key condition, filter and projection of a query or scan, parsed and checked.
fn read_expressions(
    key_condition: Option<&str>,
    filter: Option<&str>,
    projection: Option<&str>,
    placeholders: crate::api::Placeholders,
) -> Result<Prepared> {
    let texts = Texts {
        condition: filter.map(|f| ("FilterExpression", f)),
        key_condition,
        projection,
        ..Texts::default()
    };
    Prepared::new(texts, placeholders.names, placeholders.values)
}

fn check_limit(limit: Option<u32>) -> Result<()> {
    if limit == Some(0) {
        return Err(Error::validation(
            "Limit",
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ));
    }
    Ok(())
}

/// How one page is read.
struct PageReader<'a> {
    snapshot: &'a Snapshot,
    table: &'a TableRecord,
    index: Option<&'a SecondaryIndex>,
    prepared: &'a Prepared,
    select: Select,
    limit: Option<u32>,
    /// For a parallel scan: (segment, total).
    segment: Option<(u32, u32)>,
}

impl PageReader<'_> {
    fn keyspace(&self) -> &'static str {
        if self.index.is_some() {
            KS_INDEX
        } else {
            KS_ITEMS
        }
    }

    fn key_attributes(&self, item: &Item) -> Item {
        match self.index {
            Some(index) => crate::index::entry_key_attributes(self.table, index, item),
            None => self.table.key_schema.key_of(item),
        }
    }

    /// The whole item behind a local index entry whose projection is not `ALL`, when the
    /// request needs attributes the index may lack (as DynamoDB fetches them from the table
    /// for a local index); the entry itself otherwise.
    fn full_item(&self, entry: Item) -> Result<Item> {
        let Some(index) = self.index else {
            return Ok(entry);
        };
        let local = self
            .table
            .local_secondary_indexes
            .iter()
            .any(|i| i.index_name == index.index_name);
        let needs_more = self.select == Select::ALL_ATTRIBUTES
            || self.prepared.condition.is_some()
            || self.prepared.projection.is_some();
        if !local || index.projection == Projection::All || !needs_more {
            return Ok(entry);
        }
        let key = crate::schema::item_key(self.table.id, &self.table.key_schema, &entry)?;
        match self.snapshot.get(KS_ITEMS, &key)? {
            Some(raw) => decode(KS_ITEMS, &raw),
            None => Ok(entry),
        }
    }

    /// What of `item` a page returns: for `ALL_PROJECTED_ATTRIBUTES` on an index whose
    /// projection is not `ALL`, the projected attributes only, even when the whole item was
    /// fetched from the table (for a local index's filter).
    fn returned(&self, item: Item) -> Item {
        match self.index {
            Some(index)
                if self.select == Select::ALL_PROJECTED_ATTRIBUTES
                    && index.projection != Projection::All =>
            {
                crate::index::projected(self.table, index, &item)
            }
            _ => item,
        }
    }

    fn read(&self, range: &KeyRange, direction: Direction) -> Result<Page> {
        let mut page = Page::default();
        let mut bytes = 0usize;
        let partition_name = &self
            .index
            .map_or(&self.table.key_schema, |i| &i.key_schema)
            .partition_key
            .name;
        for entry in self.snapshot.range(self.keyspace(), range, direction)? {
            let (_, raw) = entry?;
            let item = decode(self.keyspace(), &raw)?;
            bytes += item_size(&item);
            let in_segment = self.segment.is_none_or(|(segment, total)| {
                partition_hash(item.get(partition_name)) % u64::from(total) == u64::from(segment)
            });
            if in_segment {
                page.scanned_count += 1;
            }
            // Items of other segments count toward the 1 MB read too, so a sparse segment
            // cannot make one call read the whole table.
            let stop = self.limit.is_some_and(|l| page.scanned_count >= l as usize)
                || bytes >= MAX_PAGE_BYTES;
            if stop {
                page.last_evaluated_key = Some(self.key_attributes(&item));
            }
            if in_segment {
                let item = self.full_item(item)?;
                if self.prepared.condition_holds(Some(&item)) {
                    page.count += 1;
                    if self.select != Select::COUNT {
                        page.items.push(self.prepared.project(self.returned(item)));
                    }
                }
            }
            if stop {
                break;
            }
        }
        Ok(page)
    }
}

impl KvService {
    fn start_key(
        &self,
        table: &TableRecord,
        index: Option<&SecondaryIndex>,
        key: &Item,
    ) -> Result<Bytes> {
        match index {
            Some(index) => crate::index::start_key(table, index, key),
            None => key_param(table.id, &table.key_schema, key).map_err(|_| {
                Error::validation(
                    "ExclusiveStartKey",
                    "The provided starting key is invalid: The provided key element does not match the schema",
                )
            }),
        }
    }

    pub(crate) fn query_now(&self, request: Query) -> Result<Page> {
        let table = self.table(&request.table_name)?;
        check_limit(request.limit)?;
        let (index, select) = resolve_index(
            &table,
            request.index_name.as_deref(),
            request.consistent_read,
            request.select,
            request.projection_expression.is_some(),
        )?;
        let prepared = read_expressions(
            Some(&request.key_condition_expression),
            request.filter_expression.as_deref(),
            request.projection_expression.as_deref(),
            request.placeholders,
        )?;
        let schema = index.map_or(&table.key_schema, |i| &i.key_schema);
        let (partition, sort) = key_condition(&prepared, schema)?;
        filter_without_keys(&prepared, schema)?;
        let base = match index {
            Some(i) => index_prefix(&table, &i.index_name),
            None => Tuple::new().u64(table.id),
        };
        let mut range = query_range(base, schema, &partition, sort)?;
        let direction = if request.scan_index_forward {
            Direction::Forward
        } else {
            Direction::Reverse
        };
        if let Some(start) = &request.exclusive_start_key {
            range = after_checked(range, self.start_key(&table, index, start)?, direction)?;
        }
        let snapshot = self.store.snapshot()?;
        PageReader {
            snapshot: &snapshot,
            table: &table,
            index,
            prepared: &prepared,
            select,
            limit: request.limit,
            segment: None,
        }
        .read(&range, direction)
    }

    pub(crate) fn scan_now(&self, request: Scan) -> Result<Page> {
        let table = self.table(&request.table_name)?;
        check_limit(request.limit)?;
        let segment = match (request.segment, request.total_segments) {
            (None, None) => None,
            (Some(segment), Some(total)) => {
                if !(1..=MAX_TOTAL_SEGMENTS).contains(&total) {
                    return Err(Error::validation(
                        "TotalSegments",
                        format!(
                            "1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value between 1 and 1000000"
                        ),
                    ));
                }
                if segment >= total {
                    return Err(Error::validation(
                        "Segment",
                        format!(
                            "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
                        ),
                    ));
                }
                Some((segment, total))
            }
            (Some(_), None) => {
                return Err(Error::validation(
                    "TotalSegments",
                    "The TotalSegments parameter is required but was not present in the request when parameter Segment is present",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::validation(
                    "Segment",
                    "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
                ));
            }
        };
        let (index, select) = resolve_index(
            &table,
            request.index_name.as_deref(),
            request.consistent_read,
            request.select,
            request.projection_expression.is_some(),
        )?;
        let prepared = read_expressions(
            None,
            request.filter_expression.as_deref(),
            request.projection_expression.as_deref(),
            request.placeholders,
        )?;
        let base = match index {
            Some(i) => index_prefix(&table, &i.index_name),
            None => Tuple::new().u64(table.id),
        };
        let mut range = KeyRange::prefix(base.as_bytes());
        if let Some(start) = &request.exclusive_start_key {
            range = after(
                range,
                self.start_key(&table, index, start)?,
                Direction::Forward,
            );
        }
        let snapshot = self.store.snapshot()?;
        PageReader {
            snapshot: &snapshot,
            table: &table,
            index,
            prepared: &prepared,
            select,
            limit: request.limit,
            segment,
        }
        .read(&range, Direction::Forward)
    }
}
