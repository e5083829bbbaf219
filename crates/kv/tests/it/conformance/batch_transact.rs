//! BatchGetItem, BatchWriteItem, TransactWriteItems and TransactGetItems.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudlet_kv::{
    ConditionCheck, DeleteItem, Error, Item, KeyAttribute, KeysAndAttributes, PutItem,
    ReturnValuesOnConditionCheckFailure, TransactGet, TransactWriteItem, TransactWriteItems,
    UpdateItem, WriteRequest, item, limits,
};

use super::Harness;
use super::support::{expect_validation, get, n, put, s, scan_all, table_pk, table_pk_sk};

fn key(pk: &str) -> Item {
    item([("pk", s(pk))])
}

fn key2(pk: &str, sk: i64) -> Item {
    item([("pk", s(pk)), ("sk", sk.into())])
}

async fn two_tables(h: &Harness) {
    table_pk(h, "one").await;
    table_pk_sk(h, "two", KeyAttribute::n("sk")).await;
    put(
        h,
        "one",
        item([("pk", s("a")), ("v", n("1")), ("w", n("2"))]),
    )
    .await;
    put(
        h,
        "one",
        item([("pk", s("b")), ("v", n("3")), ("w", n("4"))]),
    )
    .await;
    put(
        h,
        "two",
        item([("pk", s("x")), ("sk", n("1")), ("v", n("5"))]),
    )
    .await;
    put(
        h,
        "two",
        item([("pk", s("x")), ("sk", n("2")), ("v", n("6"))]),
    )
    .await;
}

fn sorted(mut items: Vec<Item>) -> Vec<Item> {
    items.sort_by_key(|i| format!("{i:?}"));
    items
}

/// BatchGetItem reads from several tables at once: missing keys are simply absent, each
/// table's projection applies.
pub async fn batch_get_across_tables(h: Harness) {
    two_tables(&h).await;
    let request = BTreeMap::from([
        (
            "one".to_owned(),
            KeysAndAttributes {
                keys: vec![key("a"), key("missing"), key("b")],
                projection_expression: Some("pk, #v".to_owned()),
                names: BTreeMap::from([("#v".to_owned(), "v".to_owned())]),
                ..KeysAndAttributes::default()
            },
        ),
        (
            "two".to_owned(),
            KeysAndAttributes {
                keys: vec![key2("x", 2), key2("x", 9)],
                ..KeysAndAttributes::default()
            },
        ),
    ]);
    let output = h.kv.batch_get_item(request).await.unwrap();
    assert_eq!(
        sorted(output.responses["one"].clone()),
        vec![
            item([("pk", s("a")), ("v", n("1"))]),
            item([("pk", s("b")), ("v", n("3"))])
        ]
    );
    assert_eq!(
        output.responses["two"],
        vec![item([("pk", s("x")), ("sk", n("2")), ("v", n("6"))])]
    );
    assert!(output.unprocessed_keys.is_empty());
    let missing =
        h.kv.batch_get_item(BTreeMap::from([(
            "nope".to_owned(),
            KeysAndAttributes {
                keys: vec![key("a")],
                ..KeysAndAttributes::default()
            },
        )]))
        .await;
    assert!(
        matches!(missing, Err(Error::ResourceNotFound { .. })),
        "{missing:?}"
    );
    expect_validation(
        h.kv.batch_get_item(BTreeMap::from([(
            "two".to_owned(),
            KeysAndAttributes {
                keys: vec![key("x")],
                ..KeysAndAttributes::default()
            },
        )]))
        .await,
        "The provided key element does not match the schema",
    );
}

/// BatchGetItem takes at most 100 keys over all tables, and no key twice.
pub async fn batch_get_limits(h: Harness) {
    two_tables(&h).await;
    assert_eq!(limits::MAX_BATCH_GET_KEYS, 100);
    let keys = |prefix: &str, count: usize| -> Vec<Item> {
        (0..count).map(|i| key(&format!("{prefix}{i}"))).collect()
    };
    let request = |one: Vec<Item>, two: Vec<Item>| {
        let mut request = BTreeMap::from([(
            "one".to_owned(),
            KeysAndAttributes {
                keys: one,
                ..KeysAndAttributes::default()
            },
        )]);
        if !two.is_empty() {
            request.insert(
                "two".to_owned(),
                KeysAndAttributes {
                    keys: two,
                    ..KeysAndAttributes::default()
                },
            );
        }
        request
    };
    let output =
        h.kv.batch_get_item(request(keys("k", 99), vec![key2("x", 1)]))
            .await
            .unwrap();
    assert_eq!(output.responses["two"].len(), 1);
    expect_validation(
        h.kv.batch_get_item(request(keys("k", 100), vec![key2("x", 1)]))
            .await,
        "Too many items requested for the BatchGetItem call",
    );
    expect_validation(
        h.kv.batch_get_item(request(keys("k", 101), vec![])).await,
        "Too many items requested for the BatchGetItem call",
    );
    expect_validation(
        h.kv.batch_get_item(request(vec![key("a"), key("b"), key("a")], vec![]))
            .await,
        "Provided list of item keys contains duplicates",
    );
}

/// BatchWriteItem puts and deletes across tables; at most 25 writes, no item twice, and a
/// refused batch writes nothing.
pub async fn batch_write_puts_and_deletes(h: Harness) {
    two_tables(&h).await;
    let request = BTreeMap::from([
        (
            "one".to_owned(),
            vec![
                WriteRequest::Put {
                    item: item([("pk", s("c")), ("v", n("7"))]),
                },
                WriteRequest::Delete { key: key("a") },
                WriteRequest::Put {
                    item: item([("pk", s("b")), ("v", n("8"))]),
                },
                WriteRequest::Delete { key: key("never") },
            ],
        ),
        (
            "two".to_owned(),
            vec![WriteRequest::Delete { key: key2("x", 1) }],
        ),
    ]);
    let output = h.kv.batch_write_item(request).await.unwrap();
    assert!(output.unprocessed_items.is_empty());
    assert_eq!(
        sorted(scan_all(&h, "one").await),
        vec![
            item([("pk", s("b")), ("v", n("8"))]),
            item([("pk", s("c")), ("v", n("7"))])
        ]
    );
    assert_eq!(
        scan_all(&h, "two").await,
        vec![item([("pk", s("x")), ("sk", n("2")), ("v", n("6"))])]
    );
    let puts = |count: usize| -> Vec<WriteRequest> {
        (0..count)
            .map(|i| WriteRequest::Put {
                item: key(&format!("n{i}")),
            })
            .collect()
    };
    h.kv.batch_write_item(BTreeMap::from([("one".to_owned(), puts(25))]))
        .await
        .unwrap();
    let mut too_many = BTreeMap::from([("one".to_owned(), puts(20))]);
    too_many.insert(
        "two".to_owned(),
        (1..=6)
            .map(|i| WriteRequest::Put { item: key2("y", i) })
            .collect(),
    );
    let refused = h.kv.batch_write_item(too_many).await;
    assert!(
        matches!(refused, Err(Error::Validation { .. })),
        "{refused:?}"
    );
    assert_eq!(get(&h, "two", key2("y", 1)).await, None);
    expect_validation(
        h.kv.batch_write_item(BTreeMap::from([(
            "one".to_owned(),
            vec![
                WriteRequest::Put {
                    item: item([("pk", s("d")), ("v", n("1"))]),
                },
                WriteRequest::Delete { key: key("d") },
            ],
        )]))
        .await,
        "Provided list of item keys contains duplicates",
    );
    expect_validation(
        h.kv.batch_write_item(BTreeMap::from([(
            "one".to_owned(),
            vec![
                WriteRequest::Put { item: key("e") },
                WriteRequest::Put {
                    item: item([("pk", n("1"))]),
                },
            ],
        )]))
        .await,
        "Type mismatch for key pk expected: S actual: N",
    );
    assert_eq!(get(&h, "one", key("d")).await, None);
    assert_eq!(
        get(&h, "one", key("e")).await,
        None,
        "a refused batch writes nothing"
    );
}

/// More than 25 writes over all tables: DynamoDB's own message.
pub async fn batch_write_too_many_message(h: Harness) {
    two_tables(&h).await;
    assert_eq!(limits::MAX_BATCH_WRITES, 25);
    let request = BTreeMap::from([
        (
            "one".to_owned(),
            (0..20)
                .map(|i| WriteRequest::Put {
                    item: key(&format!("n{i}")),
                })
                .collect(),
        ),
        (
            "two".to_owned(),
            (1..=6)
                .map(|i| WriteRequest::Put { item: key2("y", i) })
                .collect::<Vec<_>>(),
        ),
    ]);
    expect_validation(
        h.kv.batch_write_item(request).await,
        "Too many items requested for the BatchWriteItem call",
    );
}

/// A cancelled transaction gives one reason per action, in order, with the old item where
/// ALL_OLD was asked for; it writes nothing.
pub async fn transact_cancellation_reasons(h: Harness) {
    table_pk(&h, "txn").await;
    let a = item([("pk", s("a")), ("v", n("1"))]);
    let b = item([("pk", s("b")), ("v", n("2"))]);
    put(&h, "txn", a.clone()).await;
    put(&h, "txn", b.clone()).await;
    let result =
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![
                TransactWriteItem::Put(PutItem::new("txn", key("c"))),
                TransactWriteItem::ConditionCheck(
                    ConditionCheck::new("txn", key("a"), "v = :two")
                        .with_value(":two", 2)
                        .with_return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::ALL_OLD,
                        ),
                ),
                TransactWriteItem::Update(
                    UpdateItem::new("txn", key("b"), "SET v = v + :one")
                        .with_condition("v = :one")
                        .with_value(":one", 1),
                ),
                TransactWriteItem::Delete(DeleteItem::new("txn", key("never"))),
                TransactWriteItem::Put(
                    PutItem::new("txn", key("d"))
                        .with_condition("attribute_exists(pk)")
                        .with_return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::ALL_OLD,
                        ),
                ),
            ],
            client_request_token: None,
        })
        .await;
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "TransactionCanceledException: Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed, ConditionalCheckFailed, None, ConditionalCheckFailed]"
    );
    let Error::TransactionCanceled { reasons } = error else {
        panic!("not a cancelled transaction");
    };
    let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "None",
            "ConditionalCheckFailed",
            "ConditionalCheckFailed",
            "None",
            "ConditionalCheckFailed"
        ]
    );
    assert_eq!(reasons[0].message, None);
    assert_eq!(reasons[0].item, None);
    assert_eq!(
        reasons[1].message.as_deref(),
        Some("The conditional request failed")
    );
    assert_eq!(reasons[1].item, Some(a.clone()), "ALL_OLD asked for");
    assert_eq!(reasons[2].item, None, "ALL_OLD not asked for");
    assert_eq!(reasons[4].item, None, "there was no old item");
    assert_eq!(get(&h, "txn", key("a")).await, Some(a));
    assert_eq!(get(&h, "txn", key("b")).await, Some(b));
    assert_eq!(get(&h, "txn", key("c")).await, None);
    assert_eq!(get(&h, "txn", key("d")).await, None);
}

/// An action that fails on the item's data cancels with `ValidationError`; malformed requests
/// (more than 100 actions, two on one item) are refused outright.
pub async fn transact_validation_errors(h: Harness) {
    table_pk(&h, "txn").await;
    put(&h, "txn", item([("pk", s("a")), ("v", s("text"))])).await;
    let result =
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![
                TransactWriteItem::Put(PutItem::new("txn", key("c"))),
                TransactWriteItem::Update(
                    UpdateItem::new("txn", key("a"), "SET v = v + :one").with_value(":one", 1),
                ),
            ],
            client_request_token: None,
        })
        .await;
    match result {
        Err(Error::TransactionCanceled { reasons }) => {
            let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
            assert_eq!(codes, ["None", "ValidationError"]);
            assert_eq!(
                reasons[1].message.as_deref(),
                Some("An operand in the update expression has an incorrect data type")
            );
        }
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    assert_eq!(get(&h, "txn", key("c")).await, None);
    let result =
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![TransactWriteItem::Update(
                UpdateItem::new("txn", key("big"), "SET v = :v")
                    .with_value(":v", "x".repeat(409_600).as_str()),
            )],
            client_request_token: None,
        })
        .await;
    match result {
        Err(Error::TransactionCanceled { reasons }) => {
            assert_eq!(reasons[0].code, "ValidationError");
            assert_eq!(
                reasons[0].message.as_deref(),
                Some("Item size to update has exceeded the maximum allowed size")
            );
        }
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    // Eleven updates that each make an item of about 390 KB: over 4 MB in all, so the whole
    // transaction is refused and nothing is written.
    let big = "x".repeat(390_000);
    expect_validation(
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: (0..11)
                .map(|i| {
                    TransactWriteItem::Update(
                        UpdateItem::new("txn", key(&format!("big{i}")), "SET v = :v")
                            .with_value(":v", big.as_str()),
                    )
                })
                .collect(),
            client_request_token: None,
        })
        .await,
        "Transaction request size has exceeded the maximum allowed size of 4 MB",
    );
    assert_eq!(get(&h, "txn", key("big0")).await, None);
    let checks = |count: usize| TransactWriteItems {
        transact_items: (0..count)
            .map(|i| {
                TransactWriteItem::ConditionCheck(ConditionCheck::new(
                    "txn",
                    key(&format!("k{i}")),
                    "attribute_not_exists(pk)",
                ))
            })
            .collect(),
        client_request_token: None,
    };
    h.kv.transact_write_items(checks(100)).await.unwrap();
    expect_validation(
        h.kv.transact_write_items(checks(101)).await,
        "Member must have length less than or equal to 100",
    );
    expect_validation(
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![
                TransactWriteItem::Put(PutItem::new("txn", key("z"))),
                TransactWriteItem::ConditionCheck(ConditionCheck::new(
                    "txn",
                    key("z"),
                    "attribute_not_exists(pk)",
                )),
            ],
            client_request_token: None,
        })
        .await,
        "Transaction request cannot include multiple operations on one item",
    );
    expect_validation(
        h.kv.transact_write_items(TransactWriteItems::default())
            .await,
        "transactItems",
    );
}

fn bump(token: &str, by: i64) -> TransactWriteItems {
    TransactWriteItems {
        transact_items: vec![TransactWriteItem::Update(
            UpdateItem::new("tok", key("ctr"), "ADD #c :one")
                .with_name("#c", "counter")
                .with_value(":one", by),
        )],
        client_request_token: Some(token.to_owned()),
    }
}

async fn counter(h: &Harness) -> Option<String> {
    get(h, "tok", key("ctr"))
        .await
        .map(|i| i["counter"].as_n().unwrap().to_string())
}

/// A client request token makes a transaction idempotent for 10 minutes: the same request is
/// not applied again, a different one is refused; afterwards the token is forgotten.
pub async fn transact_client_request_token(h: Harness) {
    table_pk(&h, "tok").await;
    h.kv.transact_write_items(bump("token-1", 1)).await.unwrap();
    assert_eq!(counter(&h).await.as_deref(), Some("1"));
    h.kv.transact_write_items(bump("token-1", 1)).await.unwrap();
    assert_eq!(counter(&h).await.as_deref(), Some("1"), "applied once");
    h.clock.advance(Duration::from_secs(300));
    h.kv.transact_write_items(bump("token-1", 1)).await.unwrap();
    assert_eq!(
        counter(&h).await.as_deref(),
        Some("1"),
        "still within 10 minutes"
    );
    let mismatch = h.kv.transact_write_items(bump("token-1", 2)).await;
    assert!(
        matches!(mismatch, Err(Error::IdempotentParameterMismatch)),
        "{mismatch:?}"
    );
    assert_eq!(
        mismatch.unwrap_err().code(),
        "IdempotentParameterMismatchException"
    );
    assert_eq!(counter(&h).await.as_deref(), Some("1"));
    // Another token is another request.
    h.kv.transact_write_items(bump("token-2", 1)).await.unwrap();
    assert_eq!(counter(&h).await.as_deref(), Some("2"));
    h.clock.advance(Duration::from_secs(301));
    h.kv.transact_write_items(bump("token-1", 1)).await.unwrap();
    assert_eq!(
        counter(&h).await.as_deref(),
        Some("3"),
        "after 10 minutes the token is forgotten"
    );
    expect_validation(
        h.kv.transact_write_items(bump(&"t".repeat(37), 1)).await,
        "clientRequestToken",
    );
    h.kv.transact_write_items(bump(&"t".repeat(36), 1))
        .await
        .unwrap();
    assert_eq!(counter(&h).await.as_deref(), Some("4"));
}

/// A transaction that was cancelled is not remembered under its token: retried, it runs.
pub async fn transact_token_failed_call_not_remembered(h: Harness) {
    table_pk(&h, "tok").await;
    let guarded = TransactWriteItems {
        transact_items: vec![TransactWriteItem::Update(
            UpdateItem::new("tok", key("ctr"), "ADD #c :one")
                .with_name("#c", "counter")
                .with_value(":one", 1)
                .with_condition("attribute_exists(pk)"),
        )],
        client_request_token: Some("retry".to_owned()),
    };
    let first = h.kv.transact_write_items(guarded.clone()).await;
    assert!(
        matches!(first, Err(Error::TransactionCanceled { .. })),
        "{first:?}"
    );
    put(&h, "tok", item([("pk", s("ctr")), ("counter", n("10"))])).await;
    h.kv.transact_write_items(guarded).await.unwrap();
    assert_eq!(counter(&h).await.as_deref(), Some("11"));
}

/// TransactGetItems reads several tables at once, in request order, `None` for missing items,
/// with projections.
pub async fn transact_get_items(h: Harness) {
    two_tables(&h).await;
    let got =
        h.kv.transact_get_items(vec![
            TransactGet::new("two", key2("x", 2)),
            TransactGet::new("one", key("missing")),
            TransactGet {
                projection_expression: Some("#w".to_owned()),
                names: BTreeMap::from([("#w".to_owned(), "w".to_owned())]),
                ..TransactGet::new("one", key("a"))
            },
            TransactGet::new("one", key("b")),
        ])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(item([("pk", s("x")), ("sk", n("2")), ("v", n("6"))])),
            None,
            Some(item([("w", n("2"))])),
            Some(item([("pk", s("b")), ("v", n("3")), ("w", n("4"))])),
        ]
    );
    expect_validation(
        h.kv.transact_get_items(vec![
            TransactGet::new("one", key("a")),
            TransactGet::new("one", key("a")),
        ])
        .await,
        "Transaction request cannot include multiple operations on one item",
    );
    expect_validation(
        h.kv.transact_get_items(
            (0..101)
                .map(|i| TransactGet::new("one", key(&format!("k{i}"))))
                .collect(),
        )
        .await,
        "Member must have length less than or equal to 100",
    );
    let missing =
        h.kv.transact_get_items(vec![TransactGet::new("nope", key("a"))])
            .await;
    assert!(
        matches!(missing, Err(Error::ResourceNotFound { .. })),
        "{missing:?}"
    );
}
