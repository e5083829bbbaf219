//! Secondary indexes: entries follow writes, sparse indexes, projections, the rules of global
//! indexes, backfills and drops, and paging through an index.

use std::collections::BTreeSet;

use cloudlet_kv::{
    AttributeValue, CreateTable, DeleteItem, Error, Item, KeyAttribute, Projection, PutItem, Query,
    Scan, SecondaryIndex, Select, TransactWriteItem, TransactWriteItems, UpdateItem, WriteRequest,
    item,
};

use super::Harness;
use super::support::{expect_validation, get, n, numbers, put, s, strings};

const TABLE: &str = "users";

async fn indexed_table(h: &Harness) {
    h.kv.create_table(
        CreateTable::new(TABLE, KeyAttribute::s("pk"))
            .with_sort_key(KeyAttribute::n("sk"))
            .with_global_index(SecondaryIndex::new("byEmail", KeyAttribute::s("email")))
            .with_global_index(
                SecondaryIndex::new("byTeam", KeyAttribute::s("team"))
                    .with_sort_key(KeyAttribute::n("score"))
                    .with_projection(Projection::KeysOnly),
            )
            .with_local_index(
                SecondaryIndex::new("byLevel", KeyAttribute::s("pk"))
                    .with_sort_key(KeyAttribute::n("lvl"))
                    .with_projection(Projection::Include(vec!["note".to_owned()])),
            ),
    )
    .await
    .unwrap();
}

fn user(pk: &str, sk: i64, email: Option<&str>) -> Item {
    let mut user = item([
        ("pk", s(pk)),
        ("sk", sk.into()),
        ("team", s("red")),
        ("score", (sk * 10).into()),
        ("lvl", (sk + 1).into()),
        ("note", s(&format!("note of {pk}"))),
        ("extra", s("not projected")),
    ]);
    if let Some(email) = email {
        user.insert("email".to_owned(), s(email));
    }
    user
}

fn key(pk: &str, sk: i64) -> Item {
    item([("pk", s(pk)), ("sk", sk.into())])
}

async fn by_email(h: &Harness, email: &str) -> Vec<Item> {
    h.kv.query(
        Query::new(TABLE, "email = :e")
            .with_index("byEmail")
            .with_value(":e", email),
    )
    .await
    .unwrap()
    .items
}

async fn index_scan(h: &Harness, index: &str) -> Vec<Item> {
    h.kv.scan(Scan::new(TABLE).with_index(index))
        .await
        .unwrap()
        .items
}

/// Index entries follow puts, updates (a changed index key moves the entry), deletes, batch
/// writes and transactions; items without the index key are not in the index.
pub async fn index_entries_follow_writes(h: Harness) {
    indexed_table(&h).await;
    let u1 = user("u1", 1, Some("a@x"));
    put(&h, TABLE, u1.clone()).await;
    put(&h, TABLE, user("u2", 2, None)).await;
    assert_eq!(by_email(&h, "a@x").await, vec![u1.clone()]);
    assert_eq!(
        index_scan(&h, "byEmail").await.len(),
        1,
        "an item without the index key is not in the index"
    );
    assert_eq!(index_scan(&h, "byTeam").await.len(), 2);
    h.kv.update_item(
        UpdateItem::new(TABLE, key("u1", 1), "SET email = :e").with_value(":e", "b@x"),
    )
    .await
    .unwrap();
    assert_eq!(
        by_email(&h, "a@x").await,
        Vec::<Item>::new(),
        "the old entry is gone"
    );
    let moved = by_email(&h, "b@x").await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["email"], s("b@x"));
    assert_eq!(moved[0]["extra"], s("not projected"));
    // An update of a non-key attribute rewrites the projected copy.
    h.kv.update_item(
        UpdateItem::new(TABLE, key("u1", 1), "SET extra = :e").with_value(":e", "changed"),
    )
    .await
    .unwrap();
    assert_eq!(by_email(&h, "b@x").await[0]["extra"], s("changed"));
    h.kv.update_item(UpdateItem::new(TABLE, key("u1", 1), "REMOVE email"))
        .await
        .unwrap();
    assert!(index_scan(&h, "byEmail").await.is_empty());
    // Puts replacing an item replace its entries.
    put(&h, TABLE, user("u1", 1, Some("c@x"))).await;
    put(&h, TABLE, user("u2", 2, Some("c@x"))).await;
    let both = by_email(&h, "c@x").await;
    assert_eq!(
        strings(&both, "pk"),
        ["u1", "u2"],
        "equal index keys stay distinct items"
    );
    h.kv.delete_item(DeleteItem::new(TABLE, key("u1", 1)))
        .await
        .unwrap();
    assert_eq!(strings(&by_email(&h, "c@x").await, "pk"), ["u2"]);
    assert_eq!(strings(&index_scan(&h, "byTeam").await, "pk"), ["u2"]);
    assert_eq!(strings(&index_scan(&h, "byLevel").await, "pk"), ["u2"]);
    // Batch writes and transactions keep indexes too.
    h.kv.batch_write_item(
        [(
            TABLE.to_owned(),
            vec![
                WriteRequest::Put {
                    item: user("u3", 3, Some("d@x")),
                },
                WriteRequest::Delete { key: key("u2", 2) },
            ],
        )]
        .into(),
    )
    .await
    .unwrap();
    assert_eq!(strings(&by_email(&h, "d@x").await, "pk"), ["u3"]);
    assert!(by_email(&h, "c@x").await.is_empty());
    h.kv.transact_write_items(TransactWriteItems {
        transact_items: vec![
            TransactWriteItem::Update(
                UpdateItem::new(TABLE, key("u3", 3), "SET email = :e").with_value(":e", "e@x"),
            ),
            TransactWriteItem::Put(PutItem::new(TABLE, user("u4", 4, Some("d@x")))),
        ],
        client_request_token: None,
    })
    .await
    .unwrap();
    assert_eq!(strings(&by_email(&h, "d@x").await, "pk"), ["u4"]);
    assert_eq!(strings(&by_email(&h, "e@x").await, "pk"), ["u3"]);
    assert_eq!(strings(&index_scan(&h, "byTeam").await, "pk"), ["u3", "u4"]);
}

/// An index query returns the attributes the index projects: keys only, the named ones, or
/// all; a local index can fetch the rest.
pub async fn index_queries_return_projected_attributes(h: Harness) {
    indexed_table(&h).await;
    for (pk, sk) in [("u1", 1), ("u1", 2), ("u2", 3)] {
        put(&h, TABLE, user(pk, sk, Some(&format!("{pk}.{sk}@x")))).await;
    }
    let page =
        h.kv.query(
            Query::new(TABLE, "team = :t AND score >= :lo")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_value(":lo", 15),
        )
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![
            item([
                ("pk", s("u1")),
                ("sk", n("2")),
                ("team", s("red")),
                ("score", n("20"))
            ]),
            item([
                ("pk", s("u2")),
                ("sk", n("3")),
                ("team", s("red")),
                ("score", n("30"))
            ]),
        ],
        "KEYS_ONLY: the table's and the index's keys"
    );
    let page =
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .backwards(),
        )
        .await
        .unwrap();
    assert_eq!(numbers(&page.items, "score"), ["30", "20", "10"]);
    // INCLUDE: the keys and the named attributes. A filter on an attribute the local index
    // lacks reads it from the table, and the page still holds the projected attributes only.
    let level_3 = |filter: Option<&str>| {
        let mut query = Query::new(TABLE, "pk = :p AND lvl >= :l")
            .with_index("byLevel")
            .with_value(":p", "u1")
            .with_value(":l", 3);
        if let Some(filter) = filter {
            query = query.with_filter(filter).with_value(":x", "not projected");
        }
        h.kv.query(query)
    };
    for filter in [None, Some("extra = :x")] {
        assert_eq!(
            level_3(filter).await.unwrap().items,
            vec![item([
                ("pk", s("u1")),
                ("sk", n("2")),
                ("lvl", n("3")),
                ("note", s("note of u1"))
            ])],
            "{filter:?}"
        );
    }
    let page =
        h.kv.query(
            Query::new(TABLE, "pk = :p AND lvl >= :l")
                .with_index("byLevel")
                .with_value(":p", "u1")
                .with_value(":l", 3)
                .with_select(Select::ALL_ATTRIBUTES),
        )
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![user("u1", 2, Some("u1.2@x"))],
        "a local index fetches whole items"
    );
    let page =
        h.kv.query(
            Query::new(TABLE, "email = :e")
                .with_index("byEmail")
                .with_value(":e", "u2.3@x")
                .with_select(Select::ALL_ATTRIBUTES),
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![user("u2", 3, Some("u2.3@x"))]);
    let page =
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_projection("sk")
                .with_limit(1),
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![item([("sk", n("1"))])]);
    let count =
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_select(Select::COUNT),
        )
        .await
        .unwrap();
    assert_eq!((count.count, count.items.len()), (3, 0));
}

/// Sort key conditions on an index compare the index's sort key alone: entries with equal
/// index keys (told apart by the table's key) all match `=`, `<=`, `>=` and BETWEEN bounds.
pub async fn index_sort_key_conditions(h: Harness) {
    h.kv.create_table(
        CreateTable::new("ranked", KeyAttribute::s("pk"))
            .with_sort_key(KeyAttribute::n("sk"))
            .with_global_index(
                SecondaryIndex::new("byScore", KeyAttribute::s("team"))
                    .with_sort_key(KeyAttribute::n("score")),
            )
            .with_global_index(
                SecondaryIndex::new("byTag", KeyAttribute::s("team"))
                    .with_sort_key(KeyAttribute::s("tag"))
                    .with_projection(Projection::KeysOnly),
            )
            .with_local_index(
                SecondaryIndex::new("byLvl", KeyAttribute::s("pk"))
                    .with_sort_key(KeyAttribute::n("lvl")),
            ),
    )
    .await
    .unwrap();
    for (sk, score, tag) in [(1, 10, "a"), (2, 20, "ab"), (3, 20, "ab"), (4, 30, "b")] {
        put(
            &h,
            "ranked",
            item([
                ("pk", s("p")),
                ("sk", sk.into()),
                ("team", s("red")),
                ("score", score.into()),
                ("lvl", score.into()),
                ("tag", s(tag)),
            ]),
        )
        .await;
    }
    let sks = |items: &[Item]| numbers(items, "sk");
    let mut wrong = Vec::new();
    for (index, partition, attribute) in [
        ("byScore", "team = :t", "score"),
        ("byLvl", "pk = :t", "lvl"),
    ] {
        let value = if index == "byLvl" { "p" } else { "red" };
        for (condition, backwards, expected) in [
            ("= :v", false, vec!["2", "3"]),
            ("< :v", false, vec!["1"]),
            ("<= :v", false, vec!["1", "2", "3"]),
            ("> :v", false, vec!["4"]),
            (">= :v", false, vec!["2", "3", "4"]),
            ("<= :v", true, vec!["3", "2", "1"]),
            ("> :v", true, vec!["4"]),
        ] {
            let text = format!("{partition} AND {attribute} {condition}");
            let mut query = Query::new("ranked", text.clone())
                .with_index(index)
                .with_value(":t", value)
                .with_value(":v", 20);
            if backwards {
                query = query.backwards();
            }
            let got = sks(&h.kv.query(query).await.unwrap().items);
            if got != expected {
                wrong.push(format!(
                    "{index} {text} (backwards: {backwards}): {got:?}, expected {expected:?}"
                ));
            }
        }
        let text = format!("{partition} AND {attribute} BETWEEN :lo AND :hi");
        let got = sks(&h
            .kv
            .query(
                Query::new("ranked", text.clone())
                    .with_index(index)
                    .with_value(":t", value)
                    .with_value(":lo", 10)
                    .with_value(":hi", 20),
            )
            .await
            .unwrap()
            .items);
        if got != ["1", "2", "3"] {
            wrong.push(format!("{index} {text}: {got:?}, expected [1, 2, 3]"));
        }
    }
    for (condition, expected) in [
        ("begins_with(tag, :v)", vec!["2", "3"]),
        ("tag = :v", vec!["2", "3"]),
        ("tag > :v", vec!["4"]),
    ] {
        let text = format!("team = :t AND {condition}");
        let got = sks(&h
            .kv
            .query(
                Query::new("ranked", text.clone())
                    .with_index("byTag")
                    .with_value(":t", "red")
                    .with_value(":v", "ab"),
            )
            .await
            .unwrap()
            .items);
        if got != expected {
            wrong.push(format!("byTag {text}: {got:?}, expected {expected:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "index sort key conditions:\n{}",
        wrong.join("\n")
    );
}

/// Global indexes: no strongly consistent reads, no ALL_ATTRIBUTES unless they project all;
/// index key conditions name the index's keys; unknown indexes are refused.
pub async fn index_query_rules(h: Harness) {
    indexed_table(&h).await;
    put(&h, TABLE, user("u1", 1, Some("a@x"))).await;
    expect_validation(
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_select(Select::ALL_ATTRIBUTES),
        )
        .await,
        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index byTeam because its projection type is not ALL",
    );
    let mut consistent = Query::new(TABLE, "email = :e")
        .with_index("byEmail")
        .with_value(":e", "a@x");
    consistent.consistent_read = true;
    expect_validation(
        h.kv.query(consistent).await,
        "Consistent reads are not supported on global secondary indexes",
    );
    let scan = Scan {
        consistent_read: true,
        ..Scan::new(TABLE).with_index("byTeam")
    };
    expect_validation(
        h.kv.scan(scan).await,
        "Consistent reads are not supported on global secondary indexes",
    );
    let mut local = Query::new(TABLE, "pk = :p")
        .with_index("byLevel")
        .with_value(":p", "u1");
    local.consistent_read = true;
    assert_eq!(
        h.kv.query(local).await.unwrap().count,
        1,
        "local indexes allow it"
    );
    expect_validation(
        h.kv.query(
            Query::new(TABLE, "pk = :p")
                .with_index("byTeam")
                .with_value(":p", "u1"),
        )
        .await,
        "Query condition missed key schema element: team",
    );
    expect_validation(
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("nope")
                .with_value(":t", "red"),
        )
        .await,
        "The table does not have the specified index: nope",
    );
    expect_validation(
        h.kv.scan(Scan::new(TABLE).with_index("nope")).await,
        "The table does not have the specified index: nope",
    );
    expect_validation(
        h.kv.query(
            Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_exclusive_start_key(Some(key("u1", 1))),
        )
        .await,
        "The provided starting key is invalid",
    );
}

/// Index key attributes must have the index's types and may not be empty.
pub async fn index_key_type_mismatch_rejected(h: Harness) {
    indexed_table(&h).await;
    let mut wrong = user("u1", 1, None);
    wrong.insert("email".to_owned(), n("1"));
    expect_validation(
        h.kv.put_item(PutItem::new(TABLE, wrong)).await,
        "One or more parameter values were invalid: Type mismatch for Index Key email Expected: S Actual: N IndexName: byEmail",
    );
    assert_eq!(get(&h, TABLE, key("u1", 1)).await, None);
    put(&h, TABLE, user("u1", 1, Some("a@x"))).await;
    expect_validation(
        h.kv.update_item(
            UpdateItem::new(TABLE, key("u1", 1), "SET score = :s").with_value(":s", "high"),
        )
        .await,
        "One or more parameter values were invalid: Type mismatch for Index Key score Expected: N Actual: S IndexName: byTeam",
    );
    expect_validation(
        h.kv.update_item(
            UpdateItem::new(TABLE, key("u1", 1), "SET lvl = :s").with_value(":s", "high"),
        )
        .await,
        "Type mismatch for Index Key lvl Expected: N Actual: S IndexName: byLevel",
    );
    expect_validation(
        h.kv.put_item(PutItem::new(TABLE, user("u2", 2, Some(""))))
            .await,
        "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: byEmail, IndexKey: email",
    );
    assert_eq!(
        get(&h, TABLE, key("u1", 1)).await,
        Some(user("u1", 1, Some("a@x")))
    );
    assert_eq!(get(&h, TABLE, key("u2", 2)).await, None);
    assert_eq!(index_scan(&h, "byEmail").await.len(), 1);
}

/// A global index added to a populated table holds its existing items at once; a deleted one
/// is gone, and a new index of the same name starts from the items as they are.
pub async fn index_create_and_delete_global(h: Harness) {
    h.kv.create_table(CreateTable::new("late", KeyAttribute::s("pk")))
        .await
        .unwrap();
    for i in 0..12 {
        let mut it = item([("pk", s(&format!("p{i:02}"))), ("v", i.into())]);
        if i % 3 != 0 {
            it.insert("cat".to_owned(), s(if i % 2 == 0 { "even" } else { "odd" }));
        }
        put(&h, "late", it).await;
    }
    let description =
        h.kv.create_global_index("late", SecondaryIndex::new("byCat", KeyAttribute::s("cat")))
            .await
            .unwrap();
    assert_eq!(description.global_secondary_indexes.len(), 1);
    assert_eq!(description.global_secondary_indexes[0].index_name, "byCat");
    let query = |cat: &'static str| {
        Query::new("late", "cat = :c")
            .with_index("byCat")
            .with_value(":c", cat)
    };
    let odd = h.kv.query(query("odd")).await.unwrap();
    assert_eq!(strings(&odd.items, "pk"), ["p01", "p05", "p07", "p11"]);
    let even = h.kv.query(query("even")).await.unwrap();
    assert_eq!(strings(&even.items, "pk"), ["p02", "p04", "p08", "p10"]);
    // Writes after the backfill are indexed.
    put(&h, "late", item([("pk", s("p00")), ("cat", s("odd"))])).await;
    assert_eq!(h.kv.query(query("odd")).await.unwrap().count, 5);
    let again =
        h.kv.create_global_index("late", SecondaryIndex::new("byCat", KeyAttribute::s("cat")))
            .await;
    assert!(again.is_err(), "an index of that name exists: {again:?}");
    let description = h.kv.delete_global_index("late", "byCat").await.unwrap();
    assert!(description.global_secondary_indexes.is_empty());
    assert!(
        h.kv.describe_table("late")
            .await
            .unwrap()
            .global_secondary_indexes
            .is_empty()
    );
    expect_validation(
        h.kv.query(query("odd")).await,
        "The table does not have the specified index: byCat",
    );
    let missing = h.kv.delete_global_index("late", "byCat").await;
    assert!(missing.is_err(), "{missing:?}");
    // Changes while there was no index, then a fresh index of the same name.
    h.kv.delete_item(DeleteItem::new("late", item([("pk", s("p01"))])))
        .await
        .unwrap();
    put(&h, "late", item([("pk", s("p03")), ("cat", s("odd"))])).await;
    h.kv.create_global_index(
        "late",
        SecondaryIndex::new("byCat", KeyAttribute::s("cat")).with_projection(Projection::KeysOnly),
    )
    .await
    .unwrap();
    let odd = h.kv.query(query("odd")).await.unwrap();
    assert_eq!(
        strings(&odd.items, "pk"),
        ["p00", "p03", "p05", "p07", "p11"]
    );
    assert_eq!(odd.items[0], item([("pk", s("p00")), ("cat", s("odd"))]));
    assert!(!odd.items[1].contains_key("v"), "KEYS_ONLY now");
}

/// LastEvaluatedKey of an index query holds the table's and the index's keys; paging through
/// an index, either way, returns every entry once.
pub async fn index_pagination(h: Harness) {
    indexed_table(&h).await;
    // Scores with ties: entries with equal index keys are distinct.
    let scores = [50, 50, 10, 90, 50, 20, 90];
    for (i, score) in scores.iter().enumerate() {
        let sk = i as i64 + 1;
        let mut u = user(if sk % 2 == 0 { "even" } else { "odd" }, sk, Some("same@x"));
        u.insert("score".to_owned(), (*score).into());
        put(&h, TABLE, u).await;
    }
    for backwards in [false, true] {
        for limit in 1..=8u32 {
            let mut query = Query::new(TABLE, "team = :t")
                .with_index("byTeam")
                .with_value(":t", "red")
                .with_limit(limit);
            if backwards {
                query = query.backwards();
            }
            let mut seen: Vec<(String, String, i64)> = Vec::new();
            let mut start = None;
            for round in 0.. {
                assert!(round < 20, "index pagination does not end");
                let page =
                    h.kv.query(query.clone().with_exclusive_start_key(start))
                        .await
                        .unwrap();
                for i in &page.items {
                    let score: i64 = i["score"].as_n().unwrap().to_string().parse().unwrap();
                    seen.push((
                        i["pk"].as_s().unwrap().to_owned(),
                        i["sk"].as_n().unwrap().to_string(),
                        score,
                    ));
                }
                match page.last_evaluated_key {
                    Some(key) => {
                        let last = page.items.last().expect("no empty page with a key");
                        let expected: Item = ["pk", "sk", "team", "score"]
                            .into_iter()
                            .map(|a| (a.to_owned(), last[a].clone()))
                            .collect();
                        assert_eq!(key, expected, "the table's and the index's keys");
                        start = Some(key);
                    }
                    None => break,
                }
            }
            assert_eq!(
                seen.len(),
                7,
                "limit {limit}, backwards {backwards}: {seen:?}"
            );
            let distinct: BTreeSet<_> = seen
                .iter()
                .map(|(p, s, _)| (p.clone(), s.clone()))
                .collect();
            assert_eq!(distinct.len(), 7, "no entry twice");
            let order: Vec<i64> = seen.iter().map(|(_, _, score)| *score).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            if backwards {
                sorted.reverse();
            }
            assert_eq!(order, sorted, "index sort key order");
        }
    }
    // A hash-only global index and a local index page the same way.
    let first =
        h.kv.query(
            Query::new(TABLE, "email = :e")
                .with_index("byEmail")
                .with_value(":e", "same@x")
                .with_limit(3),
        )
        .await
        .unwrap();
    let key = first.last_evaluated_key.unwrap();
    assert_eq!(
        key.keys().map(String::as_str).collect::<Vec<_>>(),
        ["email", "pk", "sk"]
    );
    let rest =
        h.kv.query(
            Query::new(TABLE, "email = :e")
                .with_index("byEmail")
                .with_value(":e", "same@x")
                .with_exclusive_start_key(Some(key)),
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + rest.items.len(), 7);
    let local =
        h.kv.query(
            Query::new(TABLE, "pk = :p")
                .with_index("byLevel")
                .with_value(":p", "odd")
                .with_limit(2),
        )
        .await
        .unwrap();
    let key = local.last_evaluated_key.unwrap();
    assert_eq!(
        key,
        item([
            ("pk", s("odd")),
            ("sk", n("3")),
            ("lvl", AttributeValue::from(4))
        ])
    );
    // Scans of an index page too.
    let mut count = 0;
    let mut start = None;
    loop {
        let page =
            h.kv.scan(
                Scan::new(TABLE)
                    .with_index("byTeam")
                    .with_limit(2)
                    .with_exclusive_start_key(start),
            )
            .await
            .unwrap();
        count += page.items.len();
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    assert_eq!(count, 7);
    let missing =
        h.kv.query(
            Query::new("nope", "email = :e")
                .with_index("byEmail")
                .with_value(":e", "x"),
        )
        .await;
    assert!(
        matches!(missing, Err(Error::ResourceNotFound { .. })),
        "{missing:?}"
    );
}
