//! Helpers shared by the conformance checks: value builders, request shortcuts and assertions
//! on DynamoDB's errors.

use std::fmt::Debug;

use cloudlet_kv::{
    AttributeValue, CreateTable, Error, GetItem, Item, KeyAttribute, PutItem, Query, Result, Scan,
};

use super::Harness;

/// A number value; panics on text DynamoDB would refuse.
pub fn n(text: &str) -> AttributeValue {
    AttributeValue::n(text).unwrap()
}

/// A string value.
pub fn s(text: &str) -> AttributeValue {
    AttributeValue::s(text)
}

/// A binary value.
pub fn b(bytes: &[u8]) -> AttributeValue {
    AttributeValue::b(bytes.to_vec())
}

/// A list value.
pub fn l(values: impl IntoIterator<Item = AttributeValue>) -> AttributeValue {
    AttributeValue::L(values.into_iter().collect())
}

/// A map value.
pub fn m<'a>(entries: impl IntoIterator<Item = (&'a str, AttributeValue)>) -> AttributeValue {
    AttributeValue::m(entries)
}

/// A binary set.
pub fn bs(values: &[&[u8]]) -> AttributeValue {
    AttributeValue::Bs(
        values
            .iter()
            .map(|v| bytes::Bytes::copy_from_slice(v))
            .collect(),
    )
}

/// A table with a string partition key `pk`.
pub async fn table_pk(h: &Harness, name: &str) {
    h.kv.create_table(CreateTable::new(name, KeyAttribute::s("pk")))
        .await
        .unwrap();
}

/// A table with a string partition key `pk` and a sort key `sk` of the given type.
pub async fn table_pk_sk(h: &Harness, name: &str, sort: KeyAttribute) {
    h.kv.create_table(CreateTable::new(name, KeyAttribute::s("pk")).with_sort_key(sort))
        .await
        .unwrap();
}

/// Puts `item`, which must succeed.
pub async fn put(h: &Harness, table: &str, item: Item) {
    h.kv.put_item(PutItem::new(table, item)).await.unwrap();
}

/// Gets the item with `key`, which must succeed.
pub async fn get(h: &Harness, table: &str, key: Item) -> Option<Item> {
    h.kv.get_item(GetItem::new(table, key)).await.unwrap()
}

/// Every item of `table`, walking all scan pages.
pub async fn scan_all(h: &Harness, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page =
            h.kv.scan(Scan::new(table).with_exclusive_start_key(start))
                .await
                .unwrap();
        items.extend(page.items);
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return items,
        }
    }
}

/// Walks every page of `query` (which must not carry a start key), returning the items in
/// page order and the pages' sizes.
pub async fn query_all(h: &Harness, query: Query) -> (Vec<Item>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut start = None;
    for _ in 0..10_000 {
        let page =
            h.kv.query(query.clone().with_exclusive_start_key(start))
                .await
                .unwrap();
        sizes.push(page.items.len());
        items.extend(page.items);
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return (items, sizes),
        }
    }
    panic!("query pagination does not end");
}

/// Asserts a `ValidationException` whose message contains `message` (DynamoDB's text; some
/// regions prefix it with `1 validation error detected: `).
#[track_caller]
pub fn expect_validation<T: Debug>(result: Result<T>, message: &str) {
    match &result {
        Err(Error::Validation { message: got, .. }) if got.contains(message) => {}
        _ => panic!("expected a ValidationException containing {message:?}, got {result:?}"),
    }
}

/// Asserts a syntax error of `expression` at `token`; returns the error's `near` text.
#[track_caller]
pub fn expect_syntax<T: Debug>(result: Result<T>, expression: &str, token: &str) -> String {
    match result {
        Err(Error::Syntax {
            expression: e,
            token: t,
            near,
            ..
        }) if e == expression && t == token => near,
        other => panic!("expected a syntax error in {expression} at {token:?}, got {other:?}"),
    }
}

/// The string value of `attribute` in each item.
pub fn strings(items: &[Item], attribute: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i[attribute] {
            AttributeValue::S(s) => s.clone(),
            other => panic!("{attribute} is not a string: {other:?}"),
        })
        .collect()
}

/// The number value of `attribute` in each item, as text.
pub fn numbers(items: &[Item], attribute: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[attribute].as_n().unwrap().to_string())
        .collect()
}

/// Whether `text` uses the placeholder `key` (as a whole token).
pub fn uses(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(at, _)| {
        text[at + key.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// Collects every mismatch of a check before failing, so one run reports them all.
#[derive(Debug, Default)]
pub struct Mismatches(Vec<String>);

impl Mismatches {
    /// Records a mismatch unless `result` is a `ValidationException` containing `message`.
    pub fn validation<T: Debug>(&mut self, what: &str, result: Result<T>, message: &str) {
        match &result {
            Err(Error::Validation { message: got, .. }) if got.contains(message) => {}
            _ => self.0.push(format!(
                "{what}: expected a ValidationException containing {message:?}, got {result:?}"
            )),
        }
    }

    /// Records a mismatch unless `got == expected`.
    pub fn eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, expected: T) {
        if got != expected {
            self.0
                .push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }

    /// Fails with every mismatch recorded.
    #[track_caller]
    pub fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatch(es):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}
