//! The checks, each a function of a fresh harness.

use cloudlet_kv::{
    AttributeValue, ConditionCheck, CreateTable, DeleteItem, Error, GetItem, Item, KeyAttribute,
    PutItem, Query, ReturnValues, ReturnValuesOnConditionCheckFailure, TableStatus,
    TransactWriteItem, TransactWriteItems, UpdateItem, item,
};

use super::Harness;
pub use super::streams::*;

pub fn key(pk: &str) -> Item {
    item([("pk", pk.into())])
}

pub fn key2(pk: &str, sk: i64) -> Item {
    item([("pk", pk.into()), ("sk", sk.into())])
}

pub async fn simple_table(h: &Harness, name: &str) {
    h.kv.create_table(CreateTable::new(name, KeyAttribute::s("pk")))
        .await
        .unwrap();
}

pub async fn sorted_table(h: &Harness, name: &str) {
    h.kv.create_table(
        CreateTable::new(name, KeyAttribute::s("pk")).with_sort_key(KeyAttribute::n("sk")),
    )
    .await
    .unwrap();
}

pub async fn get(h: &Harness, table: &str, key: Item) -> Option<Item> {
    h.kv.get_item(GetItem::new(table, key)).await.unwrap()
}

pub async fn tables_create_describe_list_delete(h: Harness) {
    simple_table(&h, "alpha").await;
    sorted_table(&h, "beta").await;
    let again =
        h.kv.create_table(CreateTable::new("alpha", KeyAttribute::s("pk")))
            .await;
    assert!(
        matches!(again, Err(Error::ResourceInUse { .. })),
        "{again:?}"
    );
    let bad =
        h.kv.create_table(CreateTable::new("ab", KeyAttribute::s("pk")))
            .await;
    assert!(matches!(bad, Err(Error::Validation { .. })), "{bad:?}");
    let all = h.kv.list_tables(None, None).await.unwrap();
    assert_eq!(all.table_names, ["alpha", "beta"]);
    assert_eq!(all.last_evaluated_table_name, None);
    let first = h.kv.list_tables(None, Some(1)).await.unwrap();
    assert_eq!(first.table_names, ["alpha"]);
    assert_eq!(
        first.last_evaluated_table_name.as_deref(),
        Some("alpha"),
        "a full page with more to come names where the next starts"
    );
    let rest =
        h.kv.list_tables(first.last_evaluated_table_name.as_deref(), Some(1))
            .await
            .unwrap();
    assert_eq!(rest.table_names, ["beta"]);
    assert_eq!(rest.last_evaluated_table_name, None, "the last page");
    h.kv.put_item(PutItem::new(
        "alpha",
        item([("pk", "a".into()), ("n", 1.into())]),
    ))
    .await
    .unwrap();
    let described = h.kv.describe_table("alpha").await.unwrap();
    assert_eq!(described.item_count, 1);
    assert_eq!(
        described.table_arn,
        "arn:aws:dynamodb:us-east-1:000000000000:table/alpha"
    );
    let deleted = h.kv.delete_table("alpha").await.unwrap();
    assert_eq!(deleted.table_status, TableStatus::DELETING);
    assert_eq!(deleted.table_name, "alpha");
    let gone = h.kv.get_item(GetItem::new("alpha", key("a"))).await;
    assert!(
        matches!(gone, Err(Error::ResourceNotFound { .. })),
        "{gone:?}"
    );
    // A new table of the same name starts empty.
    simple_table(&h, "alpha").await;
    assert_eq!(get(&h, "alpha", key("a")).await, None);
}

pub async fn put_get_delete_round_trip(h: Harness) {
    simple_table(&h, "tbl").await;
    let stored = item([
        ("pk", "a".into()),
        ("n", AttributeValue::n("1.50").unwrap()),
        ("things", AttributeValue::L(vec![1.into(), "x".into()])),
        ("labels", AttributeValue::ss(["b", "a"])),
    ]);
    h.kv.put_item(PutItem::new("tbl", stored.clone()))
        .await
        .unwrap();
    let got = get(&h, "tbl", key("a")).await.unwrap();
    assert_eq!(got, stored);
    assert_eq!(got["n"].as_n().unwrap().to_string(), "1.5");
    let projected =
        h.kv.get_item(
            GetItem::new("tbl", key("a"))
                .with_projection("things[1], #n")
                .with_name("#n", "n"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        projected,
        item([
            ("things", AttributeValue::L(vec!["x".into()])),
            ("n", AttributeValue::n("1.5").unwrap())
        ])
    );
    // Wrong key shapes.
    let wrong = h.kv.get_item(GetItem::new("tbl", key2("a", 1))).await;
    assert!(matches!(wrong, Err(Error::Validation { .. })), "{wrong:?}");
    let missing_key =
        h.kv.put_item(PutItem::new("tbl", item([("x", 1.into())])))
            .await;
    assert!(
        matches!(&missing_key, Err(Error::Validation { message, .. }) if message.contains("Missing the key pk")),
        "{missing_key:?}"
    );
    let old = h
        .kv
        .delete_item(DeleteItem::new("tbl", key("a")).with_return_values(ReturnValues::ALL_OLD))
        .await
        .unwrap();
    assert_eq!(old, Some(stored));
    assert_eq!(get(&h, "tbl", key("a")).await, None);
    // Deleting a missing item succeeds.
    h.kv.delete_item(DeleteItem::new("tbl", key("a")))
        .await
        .unwrap();
}

pub async fn conditions_and_return_values(h: Harness) {
    simple_table(&h, "tbl").await;
    let first = item([("pk", "a".into()), ("v", 1.into())]);
    h.kv.put_item(PutItem::new("tbl", first.clone()).with_condition("attribute_not_exists(pk)"))
        .await
        .unwrap();
    let again =
        h.kv.put_item(
            PutItem::new("tbl", item([("pk", "a".into()), ("v", 2.into())]))
                .with_condition("attribute_not_exists(pk)")
                .with_return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::ALL_OLD,
                ),
        )
        .await;
    match again {
        Err(Error::ConditionalCheckFailed { item: Some(old) }) => assert_eq!(old, first),
        other => panic!("expected a failed condition with the old item, got {other:?}"),
    }
    assert_eq!(get(&h, "tbl", key("a")).await, Some(first.clone()));
    let old =
        h.kv.put_item(
            PutItem::new("tbl", item([("pk", "a".into()), ("v", 2.into())]))
                .with_condition("v = :one")
                .with_value(":one", 1)
                .with_return_values(ReturnValues::ALL_OLD),
        )
        .await
        .unwrap();
    assert_eq!(old, Some(first));
    let bad =
        h.kv.put_item(PutItem::new("tbl", key("b")).with_return_values(ReturnValues::ALL_NEW))
            .await;
    assert!(
        matches!(&bad, Err(Error::Validation { message, .. }) if message == "ReturnValues can only be ALL_OLD or NONE"),
        "{bad:?}"
    );
    let unused =
        h.kv.put_item(PutItem::new("tbl", key("b")).with_value(":x", 1))
            .await;
    assert!(
        matches!(&unused, Err(Error::Validation { message, .. }) if message == "ExpressionAttributeValues can only be specified when using expressions: ConditionExpression is null"),
        "{unused:?}"
    );
    let unused =
        h.kv.put_item(
            PutItem::new("tbl", key("b"))
                .with_value(":x", 1)
                .with_name("#n", "n"),
        )
        .await;
    assert!(
        matches!(&unused, Err(Error::Validation { message, .. }) if message == "ExpressionAttributeNames can only be specified when using expressions"),
        "{unused:?}"
    );
    let unused =
        h.kv.update_item(UpdateItem {
            update_expression: None,
            ..UpdateItem::new("tbl", key("b"), "").with_value(":x", 1)
        })
        .await;
    assert!(
        matches!(&unused, Err(Error::Validation { message, .. }) if message == "ExpressionAttributeValues can only be specified when using expressions: UpdateExpression and ConditionExpression are null"),
        "{unused:?}"
    );
    let unused =
        h.kv.put_item(
            PutItem::new("tbl", key("b"))
                .with_condition("attribute_not_exists(pk)")
                .with_value(":x", 1),
        )
        .await;
    assert!(
        matches!(&unused, Err(Error::Validation { message, .. }) if message.contains("unused in expressions: keys: {:x}")),
        "{unused:?}"
    );
    assert_eq!(
        get(&h, "tbl", key("b")).await,
        None,
        "a rejected request changes nothing"
    );
}

pub async fn update_expressions(h: Harness) {
    simple_table(&h, "tbl").await;
    let new =
        h.kv.update_item(
            UpdateItem::new(
                "tbl",
                key("a"),
                "SET #c = if_not_exists(#c, :zero) + :one, tags = :tags ADD seen :s",
            )
            .with_name("#c", "count")
            .with_value(":zero", 0)
            .with_value(":one", 1)
            .with_value(":tags", AttributeValue::L(vec!["x".into()]))
            .with_value(":s", AttributeValue::ss(["p"]))
            .with_return_values(ReturnValues::ALL_NEW),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        new,
        item([
            ("pk", "a".into()),
            ("count", 1.into()),
            ("tags", AttributeValue::L(vec!["x".into()])),
            ("seen", AttributeValue::ss(["p"])),
        ])
    );
    let updated =
        h.kv.update_item(
            UpdateItem::new(
                "tbl",
                key("a"),
                "SET tags = list_append(tags, :more) REMOVE seen ADD #c :one",
            )
            .with_name("#c", "count")
            .with_value(":more", AttributeValue::L(vec!["y".into()]))
            .with_value(":one", 1)
            .with_return_values(ReturnValues::UPDATED_NEW),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated,
        item([
            ("count", 2.into()),
            ("tags", AttributeValue::L(vec!["x".into(), "y".into()]))
        ])
    );
    let key_update =
        h.kv.update_item(UpdateItem::new("tbl", key("a"), "SET pk = :v").with_value(":v", "b"))
            .await;
    assert!(
        matches!(&key_update, Err(Error::Validation { message, .. }) if message.contains("Cannot update attribute pk")),
        "{key_update:?}"
    );
    let syntax =
        h.kv.update_item(UpdateItem::new("tbl", key("a"), "SET a = "))
            .await;
    assert!(
        matches!(&syntax, Err(Error::Syntax { token, .. }) if token == "<EOF>"),
        "{syntax:?}"
    );
    let wrong_type =
        h.kv.update_item(
            UpdateItem::new("tbl", key("a"), "SET tags = tags + :one").with_value(":one", 1),
        )
        .await;
    assert!(
        matches!(&wrong_type, Err(Error::Validation { message, .. }) if message.contains("incorrect data type")),
        "{wrong_type:?}"
    );
}

pub async fn query_orders_and_pages(h: Harness) {
    sorted_table(&h, "tbl").await;
    for sk in [10, -5, 2, 100, 7] {
        let mut item = key2("p", sk);
        item.insert("v".to_owned(), sk.into());
        h.kv.put_item(PutItem::new("tbl", item)).await.unwrap();
    }
    h.kv.put_item(PutItem::new("tbl", key2("q", 1)))
        .await
        .unwrap();
    let sks = |items: &[Item]| -> Vec<String> {
        items
            .iter()
            .map(|i| i["sk"].as_n().unwrap().to_string())
            .collect()
    };
    let all =
        h.kv.query(Query::new("tbl", "pk = :p").with_value(":p", "p"))
            .await
            .unwrap();
    assert_eq!(
        sks(&all.items),
        ["-5", "2", "7", "10", "100"],
        "numeric order"
    );
    let desc =
        h.kv.query(
            Query::new("tbl", "pk = :p AND sk BETWEEN :a AND :b")
                .with_value(":p", "p")
                .with_value(":a", 2)
                .with_value(":b", 10)
                .backwards(),
        )
        .await
        .unwrap();
    assert_eq!(sks(&desc.items), ["10", "7", "2"]);
    let first =
        h.kv.query(
            Query::new("tbl", "pk = :p")
                .with_value(":p", "p")
                .with_limit(2),
        )
        .await
        .unwrap();
    assert_eq!(sks(&first.items), ["-5", "2"]);
    assert_eq!(first.last_evaluated_key, Some(key2("p", 2)));
    let second =
        h.kv.query(
            Query::new("tbl", "pk = :p")
                .with_value(":p", "p")
                .with_limit(2)
                .with_exclusive_start_key(first.last_evaluated_key),
        )
        .await
        .unwrap();
    assert_eq!(sks(&second.items), ["7", "10"]);
    let filtered =
        h.kv.query(
            Query::new("tbl", "pk = :p AND sk > :z")
                .with_filter("v < :big")
                .with_value(":p", "p")
                .with_value(":z", 0)
                .with_value(":big", 50),
        )
        .await
        .unwrap();
    assert_eq!(sks(&filtered.items), ["2", "7", "10"]);
    assert_eq!((filtered.count, filtered.scanned_count), (3, 4));
    // A filter may not name a key attribute, as DynamoDB refuses it (partition key first).
    for (filter, key) in [
        ("sk < :big", "sk"),
        ("size(#k) > :z AND sk < :big", "pk"),
        ("NOT attribute_exists(sk)", "sk"),
    ] {
        let mut query = Query::new("tbl", "pk = :p AND sk > :z")
            .with_filter(filter)
            .with_value(":p", "p")
            .with_value(":z", 0);
        if filter.contains(":big") {
            query = query.with_value(":big", 50);
        }
        if filter.contains("#k") {
            query = query.with_name("#k", "pk");
        }
        let refused = h.kv.query(query).await;
        let expected = format!(
            "Filter Expression can only contain non-primary key attributes: Primary key attribute: {key}"
        );
        assert!(
            matches!(&refused, Err(Error::Validation { message, .. }) if *message == expected),
            "{filter}: {refused:?}"
        );
    }
    let bad =
        h.kv.query(Query::new("tbl", "sk = :z").with_value(":z", 0))
            .await;
    assert!(
        matches!(&bad, Err(Error::Validation { message, .. }) if message.contains("missed key schema element: pk")),
        "{bad:?}"
    );
}

pub async fn transactions_are_all_or_nothing(h: Harness) {
    simple_table(&h, "tbl").await;
    h.kv.put_item(PutItem::new(
        "tbl",
        item([("pk", "a".into()), ("v", 1.into())]),
    ))
    .await
    .unwrap();
    let cancelled =
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![
                TransactWriteItem::Put(PutItem::new("tbl", key("b"))),
                TransactWriteItem::ConditionCheck(
                    ConditionCheck::new("tbl", key("a"), "v = :two").with_value(":two", 2),
                ),
            ],
            client_request_token: None,
        })
        .await;
    match cancelled {
        Err(Error::TransactionCanceled { reasons }) => {
            let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
            assert_eq!(codes, ["None", "ConditionalCheckFailed"]);
        }
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    assert_eq!(
        get(&h, "tbl", key("b")).await,
        None,
        "nothing of a cancelled transaction is written"
    );
    let twice =
        h.kv.transact_write_items(TransactWriteItems {
            transact_items: vec![
                TransactWriteItem::Put(PutItem::new("tbl", key("b"))),
                TransactWriteItem::Delete(DeleteItem::new("tbl", key("b"))),
            ],
            client_request_token: None,
        })
        .await;
    assert!(
        matches!(&twice, Err(Error::Validation { message, .. }) if message.contains("multiple operations on one item")),
        "{twice:?}"
    );
    h.kv.transact_write_items(TransactWriteItems {
        transact_items: vec![
            TransactWriteItem::Put(PutItem::new("tbl", key("b"))),
            TransactWriteItem::Update(
                UpdateItem::new("tbl", key("a"), "SET v = v + :one").with_value(":one", 1),
            ),
        ],
        client_request_token: None,
    })
    .await
    .unwrap();
    assert_eq!(get(&h, "tbl", key("a")).await.unwrap()["v"], 2.into());
    assert!(get(&h, "tbl", key("b")).await.is_some());
}
