//! Query and Scan: sort key conditions, order, pagination, the 1 MB page, Select, projections,
//! parallel scan segments, and the errors of key conditions and start keys.

use std::collections::{BTreeMap, BTreeSet};

use cloudlet_kv::{
    AttributeValue, Error, Item, KeyAttribute, Page, PutItem, Query, Scan, Select, item,
};

use super::Harness;
use super::support::{
    Mismatches, b, expect_validation, numbers, put, query_all, s, strings, table_pk, table_pk_sk,
};

/// The pk and sk (as text) of an item with a string partition key and a number sort key.
fn pk_sk(i: &Item) -> (String, String) {
    (
        i["pk"].as_s().unwrap().to_owned(),
        i["sk"].as_n().unwrap().to_string(),
    )
}

/// `= < <= > >= BETWEEN begins_with` on a string sort key, in both directions.
pub async fn query_string_sort_key_conditions(h: Harness) {
    table_pk_sk(&h, "qstr", KeyAttribute::s("sk")).await;
    for sk in ["c", "ab", "a", "ba", "abc", "b", "B", "é"] {
        put(&h, "qstr", item([("pk", s("p")), ("sk", s(sk))])).await;
    }
    put(&h, "qstr", item([("pk", s("q")), ("sk", s("a"))])).await;
    let q = |condition: &str| Query::new("qstr", condition).with_value(":p", "p");
    let cases: Vec<(Query, Vec<&str>)> = vec![
        (
            q("pk = :p"),
            vec!["B", "a", "ab", "abc", "b", "ba", "c", "é"],
        ),
        (q("pk = :p AND sk = :v").with_value(":v", "ab"), vec!["ab"]),
        (
            q("pk = :p AND sk < :v").with_value(":v", "b"),
            vec!["B", "a", "ab", "abc"],
        ),
        (
            q("pk = :p AND sk <= :v").with_value(":v", "b"),
            vec!["B", "a", "ab", "abc", "b"],
        ),
        (
            q("pk = :p AND sk > :v").with_value(":v", "b"),
            vec!["ba", "c", "é"],
        ),
        (
            q("pk = :p AND sk >= :v").with_value(":v", "b"),
            vec!["b", "ba", "c", "é"],
        ),
        (
            q("pk = :p AND sk BETWEEN :lo AND :hi")
                .with_value(":lo", "ab")
                .with_value(":hi", "b"),
            vec!["ab", "abc", "b"],
        ),
        (
            q("pk = :p AND begins_with(sk, :v)").with_value(":v", "ab"),
            vec!["ab", "abc"],
        ),
        (
            q("pk = :p AND begins_with(sk, :v)").with_value(":v", "z"),
            vec![],
        ),
        (q("pk = :p AND sk = :v").with_value(":v", "zz"), vec![]),
        (
            q("(pk = :p) AND (sk > :v)").with_value(":v", "c"),
            vec!["é"],
        ),
        (
            q("pk = :p").backwards(),
            vec!["é", "c", "ba", "b", "abc", "ab", "a", "B"],
        ),
        (
            q("pk = :p AND begins_with(sk, :v)")
                .with_value(":v", "b")
                .backwards(),
            vec!["ba", "b"],
        ),
        (
            q("pk = :p AND sk <= :v").with_value(":v", "ab").backwards(),
            vec!["ab", "a", "B"],
        ),
        (
            Query::new("qstr", "#k = :p AND #s BETWEEN :lo AND :hi")
                .with_name("#k", "pk")
                .with_name("#s", "sk")
                .with_value(":p", "q")
                .with_value(":lo", "a")
                .with_value(":hi", "z"),
            vec!["a"],
        ),
    ];
    for (query, expected) in cases {
        let text = query.key_condition_expression.clone();
        let forward = query.scan_index_forward;
        let page = h.kv.query(query).await.unwrap();
        assert_eq!(
            strings(&page.items, "sk"),
            expected,
            "{text} (forward: {forward})"
        );
        assert_eq!(page.count, expected.len());
        assert_eq!(page.last_evaluated_key, None);
    }
}

/// The same conditions on a binary sort key, compared bytewise.
pub async fn query_binary_sort_key_conditions(h: Harness) {
    table_pk_sk(&h, "qbin", KeyAttribute::b("sk")).await;
    let all: [&[u8]; 6] = [
        &[0x02],
        &[0xff],
        &[0x01, 0x00],
        &[0x00],
        &[0x01, 0xff],
        &[0x01],
    ];
    for sk in all {
        put(&h, "qbin", item([("pk", s("p")), ("sk", b(sk))])).await;
    }
    let sks = |page: &Page| -> Vec<Vec<u8>> {
        page.items
            .iter()
            .map(|i| match &i["sk"] {
                AttributeValue::B(bytes) => bytes.to_vec(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let q = |condition: &str, value: &[u8]| {
        Query::new("qbin", condition)
            .with_value(":p", "p")
            .with_value(":v", b(value))
    };
    let page =
        h.kv.query(Query::new("qbin", "pk = :p").with_value(":p", "p"))
            .await
            .unwrap();
    assert_eq!(
        sks(&page),
        [
            vec![0x00],
            vec![0x01],
            vec![0x01, 0x00],
            vec![0x01, 0xff],
            vec![0x02],
            vec![0xff]
        ]
    );
    let page =
        h.kv.query(q("pk = :p AND begins_with(sk, :v)", &[0x01]))
            .await
            .unwrap();
    assert_eq!(sks(&page), [vec![0x01], vec![0x01, 0x00], vec![0x01, 0xff]]);
    let page = h.kv.query(q("pk = :p AND sk > :v", &[0x01])).await.unwrap();
    assert_eq!(
        sks(&page),
        [vec![0x01, 0x00], vec![0x01, 0xff], vec![0x02], vec![0xff]]
    );
    let page =
        h.kv.query(q("pk = :p AND sk < :v", &[0x01, 0x00]))
            .await
            .unwrap();
    assert_eq!(sks(&page), [vec![0x00], vec![0x01]]);
    let page =
        h.kv.query(q("pk = :p AND sk >= :v", &[0x80]).backwards())
            .await
            .unwrap();
    assert_eq!(sks(&page), [vec![0xff]]);
    let page =
        h.kv.query(
            Query::new("qbin", "pk = :p AND sk BETWEEN :lo AND :hi")
                .with_value(":p", "p")
                .with_value(":lo", b(&[0x01, 0x00]))
                .with_value(":hi", b(&[0x02])),
        )
        .await
        .unwrap();
    assert_eq!(sks(&page), [vec![0x01, 0x00], vec![0x01, 0xff], vec![0x02]]);
}

async fn numbered(h: &Harness, table: &str, partitions: &[&str], per_partition: i64) {
    table_pk_sk(h, table, KeyAttribute::n("sk")).await;
    for pk in partitions {
        for sk in 1..=per_partition {
            put(
                h,
                table,
                item([
                    ("pk", s(pk)),
                    ("sk", sk.into()),
                    ("odd", (sk % 2 == 1).into()),
                ]),
            )
            .await;
        }
    }
}

/// Limit and LastEvaluatedKey: walking every page in either direction returns every item once,
/// in order; each key names the last item evaluated.
pub async fn query_pagination_walks_every_item(h: Harness) {
    numbered(&h, "pages", &["o", "p", "q"], 7).await;
    let forward: Vec<String> = (1..=7).map(|i| i.to_string()).collect();
    let backward: Vec<String> = forward.iter().rev().cloned().collect();
    for limit in 1..=9u32 {
        for (reverse, expected) in [(false, &forward), (true, &backward)] {
            let mut query = Query::new("pages", "pk = :p")
                .with_value(":p", "p")
                .with_limit(limit);
            if reverse {
                query = query.backwards();
            }
            let mut seen = Vec::new();
            let mut start = None;
            let mut pages = 0;
            loop {
                pages += 1;
                assert!(pages <= 10, "limit {limit}: pagination does not end");
                let page =
                    h.kv.query(query.clone().with_exclusive_start_key(start))
                        .await
                        .unwrap();
                assert!(page.items.len() <= limit as usize);
                assert_eq!(page.scanned_count, page.items.len());
                seen.extend(numbers(&page.items, "sk"));
                match page.last_evaluated_key {
                    Some(key) => {
                        assert_eq!(page.items.len(), limit as usize, "a short page is the last");
                        let last = page.items.last().unwrap();
                        assert_eq!(
                            key,
                            item([("pk", last["pk"].clone()), ("sk", last["sk"].clone())]),
                            "the key of the last item evaluated, key attributes only"
                        );
                        start = Some(key);
                    }
                    None => break,
                }
            }
            assert_eq!(&seen, expected, "limit {limit}, reverse {reverse}");
        }
    }
    // A filter applies after the limit: pages hold fewer items but still walk everything.
    let (items, sizes) = query_all(
        &h,
        Query::new("pages", "pk = :p")
            .with_filter("odd = :t")
            .with_value(":p", "p")
            .with_value(":t", true)
            .with_limit(2),
    )
    .await;
    assert_eq!(numbers(&items, "sk"), ["1", "3", "5", "7"]);
    assert!(sizes.iter().all(|&n| n <= 2));
    let page =
        h.kv.query(
            Query::new("pages", "pk = :p")
                .with_filter("attribute_exists(absent_attribute)")
                .with_value(":p", "p")
                .with_limit(3),
        )
        .await
        .unwrap();
    assert_eq!((page.count, page.scanned_count), (0, 3));
    assert_eq!(
        page.last_evaluated_key,
        Some(item([("pk", s("p")), ("sk", 3.into())])),
        "the limit counts items read, not items returned"
    );
    // Scans walk every partition.
    let mut seen = BTreeSet::new();
    let mut start = None;
    loop {
        let page =
            h.kv.scan(
                Scan::new("pages")
                    .with_limit(4)
                    .with_exclusive_start_key(start),
            )
            .await
            .unwrap();
        for i in &page.items {
            assert!(seen.insert(pk_sk(i)), "no item twice");
        }
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => break,
        }
    }
    assert_eq!(seen.len(), 21);
}

/// A page stops after about 1 MB read, counted before the filter: a filter that matches nothing
/// still returns a LastEvaluatedKey.
pub async fn query_scan_one_megabyte_pages(h: Harness) {
    table_pk_sk(&h, "big", KeyAttribute::n("sk")).await;
    let pad = "x".repeat(40_000);
    for sk in 0..30 {
        put(
            &h,
            "big",
            item([("pk", s("p")), ("sk", sk.into()), ("padding", s(&pad))]),
        )
        .await;
    }
    let filtered = Query::new("big", "pk = :p")
        .with_filter("padding = :none")
        .with_value(":p", "p")
        .with_value(":none", "none");
    let first = h.kv.query(filtered.clone()).await.unwrap();
    assert_eq!(first.count, 0);
    assert!(first.items.is_empty());
    assert!(
        (24..=27).contains(&first.scanned_count),
        "about 1 MB of 40 KB items: {}",
        first.scanned_count
    );
    let start = first.last_evaluated_key.clone().expect("a key after 1 MB");
    assert_eq!(start["sk"], (first.scanned_count - 1).into());
    let second =
        h.kv.query(filtered.with_exclusive_start_key(Some(start)))
            .await
            .unwrap();
    assert_eq!(first.scanned_count + second.scanned_count, 30);
    assert_eq!(second.last_evaluated_key, None);
    let (items, sizes) = query_all(&h, Query::new("big", "pk = :p").with_value(":p", "p")).await;
    assert_eq!(items.len(), 30);
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    let scan =
        h.kv.scan(
            Scan::new("big")
                .with_filter("padding = :none")
                .with_value(":none", "none"),
        )
        .await
        .unwrap();
    assert_eq!(scan.count, 0);
    assert!(
        (24..=27).contains(&scan.scanned_count),
        "{}",
        scan.scanned_count
    );
    assert!(scan.last_evaluated_key.is_some());
    // Select COUNT reads the same pages.
    let count =
        h.kv.query(
            Query::new("big", "pk = :p")
                .with_value(":p", "p")
                .with_select(Select::COUNT),
        )
        .await
        .unwrap();
    assert!(count.items.is_empty());
    assert_eq!(count.count, count.scanned_count);
    assert!(count.last_evaluated_key.is_some());
}

/// Select COUNT returns counts only; a projection returns the named paths only.
pub async fn query_select_count_and_projection(h: Harness) {
    numbered(&h, "sel", &["p"], 6).await;
    put(
        &h,
        "sel",
        item([
            ("pk", s("p")),
            ("sk", 7.into()),
            ("odd", true.into()),
            ("doc", AttributeValue::m([("x", 1.into()), ("y", 2.into())])),
        ]),
    )
    .await;
    let count =
        h.kv.query(
            Query::new("sel", "pk = :p")
                .with_value(":p", "p")
                .with_select(Select::COUNT),
        )
        .await
        .unwrap();
    assert!(count.items.is_empty());
    assert_eq!((count.count, count.scanned_count), (7, 7));
    let count =
        h.kv.query(
            Query::new("sel", "pk = :p")
                .with_filter("odd = :t")
                .with_value(":p", "p")
                .with_value(":t", true)
                .with_select(Select::COUNT),
        )
        .await
        .unwrap();
    assert_eq!((count.count, count.scanned_count), (4, 7));
    let count =
        h.kv.scan(Scan::new("sel").with_select(Select::COUNT).with_limit(5))
            .await
            .unwrap();
    assert_eq!((count.count, count.items.len()), (5, 0));
    assert!(count.last_evaluated_key.is_some());
    let projected =
        h.kv.query(
            Query::new("sel", "pk = :p AND sk >= :six")
                .with_projection("sk, doc.y, nope")
                .with_value(":p", "p")
                .with_value(":six", 6),
        )
        .await
        .unwrap();
    assert_eq!(
        projected.items,
        vec![
            item([("sk", 6.into())]),
            item([
                ("sk", 7.into()),
                ("doc", AttributeValue::m([("y", 2.into())]))
            ]),
        ]
    );
    let scanned =
        h.kv.scan(
            Scan::new("sel")
                .with_projection("#o")
                .with_name("#o", "odd")
                .with_filter("sk = :one")
                .with_value(":one", 1),
        )
        .await
        .unwrap();
    assert_eq!(scanned.items, vec![item([("odd", true.into())])]);
    expect_validation(
        h.kv.query(
            Query::new("sel", "pk = :p")
                .with_value(":p", "p")
                .with_select(Select::SPECIFIC_ATTRIBUTES),
        )
        .await,
        "SPECIFIC_ATTRIBUTES",
    );
    expect_validation(
        h.kv.query(
            Query::new("sel", "pk = :p")
                .with_value(":p", "p")
                .with_select(Select::ALL_PROJECTED_ATTRIBUTES),
        )
        .await,
        "ALL_PROJECTED_ATTRIBUTES",
    );
}

/// Parallel scan: the segments of any total are disjoint, together hold the whole table, and
/// keep each partition's items together.
pub async fn scan_segments_partition_the_table(h: Harness) {
    let partitions: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    let names: Vec<&str> = partitions.iter().map(String::as_str).collect();
    numbered(&h, "segs", &names, 2).await;
    for total in [1u32, 2, 3, 7, 64] {
        let mut owner: BTreeMap<(String, String), u32> = BTreeMap::new();
        for segment in 0..total {
            let mut start = None;
            loop {
                let page =
                    h.kv.scan(
                        Scan::new("segs")
                            .with_segment(segment, total)
                            .with_limit(5)
                            .with_exclusive_start_key(start),
                    )
                    .await
                    .unwrap();
                for i in &page.items {
                    let key = pk_sk(i);
                    let previous = owner.insert(key.clone(), segment);
                    assert_eq!(previous, None, "{key:?} in two segments of {total}");
                }
                match page.last_evaluated_key {
                    Some(key) => start = Some(key),
                    None => break,
                }
            }
        }
        assert_eq!(owner.len(), 80, "every item in some segment of {total}");
        for pk in &partitions {
            let segments: BTreeSet<u32> = owner
                .iter()
                .filter(|((p, _), _)| p == pk)
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(segments.len(), 1, "{pk} is split over segments of {total}");
        }
        if total == 2 {
            let sizes: Vec<usize> = (0..2)
                .map(|seg| owner.values().filter(|s| **s == seg).count())
                .collect();
            assert!(
                sizes.iter().all(|&n| n > 0),
                "both halves hold items: {sizes:?}"
            );
        }
    }
}

/// Segment and TotalSegments must come together, 0 <= Segment < TotalSegments <= 1,000,000.
pub async fn scan_segment_parameters_validated(h: Harness) {
    table_pk(&h, "segs").await;
    expect_validation(
        h.kv.scan(Scan::new("segs").with_segment(4, 4)).await,
        "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: 4 is not less than TotalSegments: 4",
    );
    expect_validation(
        h.kv.scan(Scan::new("segs").with_segment(0, 0)).await,
        "totalSegments",
    );
    expect_validation(
        h.kv.scan(Scan::new("segs").with_segment(0, 1_000_001))
            .await,
        "totalSegments",
    );
    h.kv.scan(Scan::new("segs").with_segment(999_999, 1_000_000))
        .await
        .unwrap();
    expect_validation(
        h.kv.scan(Scan {
            segment: Some(1),
            ..Scan::new("segs")
        })
        .await,
        "The TotalSegments parameter is required but was not present in the request when parameter Segment is present",
    );
    expect_validation(
        h.kv.scan(Scan {
            total_segments: Some(2),
            ..Scan::new("segs")
        })
        .await,
        "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
    );
    expect_validation(h.kv.scan(Scan::new("segs").with_limit(0)).await, "limit");
}

fn kc(condition: &str) -> Query {
    Query::new("keycond", condition)
        .with_value(":p", "p")
        .with_value(":v", 1)
}

/// Key conditions DynamoDB refuses: OR, several conditions on one key, a missing partition key,
/// a partition key not compared with `=`.
pub async fn query_key_condition_errors(h: Harness) {
    table_pk_sk(&h, "keycond", KeyAttribute::n("sk")).await;
    put(&h, "keycond", item([("pk", s("p")), ("sk", 1.into())])).await;
    // The exact message is checked by `query_key_condition_error_messages`.
    let or = h.kv.query(kc("pk = :p OR sk = :v")).await;
    assert!(matches!(or, Err(Error::Validation { .. })), "{or:?}");
    expect_validation(
        h.kv.query(kc("pk = :p AND sk > :v AND sk < :v")).await,
        "KeyConditionExpressions must only contain one condition per key",
    );
    expect_validation(
        h.kv.query(
            Query::new("keycond", "pk = :p AND pk = :q AND sk = :v")
                .with_value(":p", "p")
                .with_value(":q", "q")
                .with_value(":v", 1),
        )
        .await,
        "KeyConditionExpressions must only contain one condition per key",
    );
    expect_validation(
        h.kv.query(Query::new("keycond", "sk = :v").with_value(":v", 1))
            .await,
        "Query condition missed key schema element: pk",
    );
    expect_validation(
        h.kv.query(Query::new("keycond", "pk > :p").with_value(":p", "p"))
            .await,
        "Query key condition not supported",
    );
    expect_validation(
        h.kv.query(Query::new("keycond", "begins_with(pk, :p)").with_value(":p", "p"))
            .await,
        "Query key condition not supported",
    );
    expect_validation(
        h.kv.query(Query::new("keycond", "pk = :p").with_value(":p", 1))
            .await,
        "One or more parameter values were invalid: Condition parameter type does not match schema type",
    );
    expect_validation(
        h.kv.query(
            Query::new("keycond", "pk = :p AND sk = :v")
                .with_value(":p", "p")
                .with_value(":v", "1"),
        )
        .await,
        "One or more parameter values were invalid: Condition parameter type does not match schema type",
    );
    expect_validation(
        h.kv.query(
            Query::new("keycond", "pk = :p AND sk BETWEEN :hi AND :lo")
                .with_value(":p", "p")
                .with_value(":hi", 2)
                .with_value(":lo", 1),
        )
        .await,
        "The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
    );
    expect_validation(
        h.kv.query(
            Query::new("keycond", "pk = :p")
                .with_value(":p", "p")
                .with_limit(0),
        )
        .await,
        "limit",
    );
}

/// The other key condition errors, each with DynamoDB's message.
pub async fn query_key_condition_error_messages(h: Harness) {
    table_pk_sk(&h, "keycond", KeyAttribute::n("sk")).await;
    let mut m = Mismatches::default();
    for (condition, message) in [
        (
            "pk = :p OR sk = :v",
            "Invalid operator used in KeyConditionExpression: OR",
        ),
        (
            "pk = :p AND NOT sk = :v",
            "Invalid operator used in KeyConditionExpression: NOT",
        ),
        (
            "pk = :p AND sk <> :v",
            "Invalid operator used in KeyConditionExpression: <>",
        ),
        (
            "pk = :p AND sk IN (:v)",
            "Invalid operator used in KeyConditionExpression: IN",
        ),
        (
            "pk = :p AND contains(sk, :v)",
            "Invalid operator used in KeyConditionExpression: contains",
        ),
        // A condition on an attribute outside the key schema names the sort key it misses.
        (
            "pk = :p AND lvl = :v",
            "Query condition missed key schema element: sk",
        ),
        (
            "pk = :p AND sk.x = :v",
            "KeyConditionExpressions cannot have conditions on nested attributes",
        ),
    ] {
        m.validation(condition, h.kv.query(kc(condition)).await, message);
    }
    m.validation(
        "pk = :p AND attribute_exists(sk)",
        h.kv.query(Query::new("keycond", "pk = :p AND attribute_exists(sk)").with_value(":p", "p"))
            .await,
        "Invalid operator used in KeyConditionExpression: attribute_exists",
    );
    m.finish();
}

/// ExclusiveStartKey must have the table's key shape (the index's and the table's key for an
/// index), with the right types.
pub async fn query_exclusive_start_key_shape(h: Harness) {
    numbered(&h, "esk", &["p"], 3).await;
    let invalid =
        "The provided starting key is invalid: The provided key element does not match the schema";
    let query = |start: Item| {
        Query::new("esk", "pk = :p")
            .with_value(":p", "p")
            .with_exclusive_start_key(Some(start))
    };
    expect_validation(h.kv.query(query(item([("pk", s("p"))]))).await, invalid);
    expect_validation(
        h.kv.query(query(item([("pk", s("p")), ("sk", s("1"))])))
            .await,
        invalid,
    );
    expect_validation(
        h.kv.query(query(item([("pk", s("p")), ("other", 1.into())])))
            .await,
        invalid,
    );
    expect_validation(
        h.kv.scan(Scan::new("esk").with_exclusive_start_key(Some(item([("sk", 1.into())]))))
            .await,
        invalid,
    );
    // A well-formed key that is not stored is fine: the page starts after it.
    let page =
        h.kv.query(query(item([
            ("pk", s("p")),
            ("sk", AttributeValue::n("1.5").unwrap()),
        ])))
        .await
        .unwrap();
    assert_eq!(numbers(&page.items, "sk"), ["2", "3"]);
}

/// A start key outside the queried partition is refused.
pub async fn query_exclusive_start_key_outside_partition(h: Harness) {
    numbered(&h, "esk", &["p", "q"], 3).await;
    let result =
        h.kv.query(
            Query::new("esk", "pk = :p")
                .with_value(":p", "p")
                .with_exclusive_start_key(Some(item([("pk", s("q")), ("sk", 1.into())]))),
        )
        .await;
    expect_validation(
        result,
        "The provided starting key is outside query boundaries based on provided conditions",
    );
}

/// Queries and scans of tables that do not exist.
pub async fn query_scan_missing_table(h: Harness) {
    let query =
        h.kv.query(Query::new("nope", "pk = :p").with_value(":p", "p"))
            .await;
    assert!(
        matches!(query, Err(Error::ResourceNotFound { .. })),
        "{query:?}"
    );
    let scan = h.kv.scan(Scan::new("nope")).await;
    assert!(
        matches!(scan, Err(Error::ResourceNotFound { .. })),
        "{scan:?}"
    );
    let put =
        h.kv.put_item(PutItem::new("nope", item([("pk", s("p"))])))
            .await;
    assert!(
        matches!(put, Err(Error::ResourceNotFound { .. })),
        "{put:?}"
    );
}
