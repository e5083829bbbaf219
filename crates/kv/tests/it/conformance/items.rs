//! Single items: key validation, value validation, projections, number canonical form, binary
//! key order, and refused requests leaving everything as it was.

use cloudlet_kv::{
    AttributeValue, DeleteItem, Error, GetItem, Item, KeyAttribute, PutItem, Query, UpdateItem,
    item,
};

use super::Harness;
use super::support::{
    Mismatches, b, expect_validation, get, l, m, n, put, s, table_pk, table_pk_sk,
};

/// Wrong key types: named in a put's item, "does not match the schema" in a key parameter.
pub async fn item_key_type_mismatch(h: Harness) {
    table_pk_sk(&h, "keys", KeyAttribute::n("sk")).await;
    expect_validation(
        h.kv.put_item(PutItem::new("keys", item([("pk", n("1")), ("sk", n("1"))])))
            .await,
        "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N",
    );
    expect_validation(
        h.kv.put_item(PutItem::new("keys", item([("pk", s("a")), ("sk", s("1"))])))
            .await,
        "One or more parameter values were invalid: Type mismatch for key sk expected: N actual: S",
    );
    expect_validation(
        h.kv.put_item(PutItem::new("keys", item([("pk", s("a"))])))
            .await,
        "One or more parameter values were invalid: Missing the key sk in the item",
    );
    let wrong_key = item([("pk", s("a")), ("sk", s("1"))]);
    let mismatch = "The provided key element does not match the schema";
    expect_validation(
        h.kv.get_item(GetItem::new("keys", wrong_key.clone())).await,
        mismatch,
    );
    expect_validation(
        h.kv.delete_item(DeleteItem::new("keys", wrong_key.clone()))
            .await,
        mismatch,
    );
    expect_validation(
        h.kv.update_item(UpdateItem::new("keys", wrong_key, "SET v = :v").with_value(":v", 1))
            .await,
        mismatch,
    );
    let extra = item([("pk", s("a")), ("sk", n("1")), ("v", n("1"))]);
    expect_validation(h.kv.get_item(GetItem::new("keys", extra)).await, mismatch);
    expect_validation(
        h.kv.get_item(GetItem::new("keys", item([("pk", s("a"))])))
            .await,
        mismatch,
    );
    assert!(
        h.kv.scan(cloudlet_kv::Scan::new("keys"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Empty string and binary key values are refused, in items and in key parameters.
pub async fn item_empty_key_rejected(h: Harness) {
    table_pk_sk(&h, "keys", KeyAttribute::b("sk")).await;
    expect_validation(
        h.kv.put_item(PutItem::new("keys", item([("pk", s("")), ("sk", b(&[1]))])))
            .await,
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk",
    );
    expect_validation(
        h.kv.put_item(PutItem::new("keys", item([("pk", s("a")), ("sk", b(&[]))])))
            .await,
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty binary value. Key: sk",
    );
    expect_validation(
        h.kv.get_item(GetItem::new("keys", item([("pk", s("")), ("sk", b(&[1]))])))
            .await,
        "The AttributeValue for a key attribute cannot contain an empty string value. Key: pk",
    );
    // Empty strings are fine outside keys.
    put(
        &h,
        "keys",
        item([("pk", s("a")), ("sk", b(&[1])), ("v", s("")), ("w", b(&[]))]),
    )
    .await;
}

/// Partition keys are at most 2048 bytes, sort keys at most 1024.
pub async fn item_key_size_limits(h: Harness) {
    table_pk_sk(&h, "keys", KeyAttribute::s("sk")).await;
    let at = |pk: usize, sk: usize| item([("pk", s(&"p".repeat(pk))), ("sk", s(&"s".repeat(sk)))]);
    put(&h, "keys", at(2048, 1024)).await;
    assert!(get(&h, "keys", at(2048, 1024)).await.is_some());
    assert_eq!(cloudlet_kv::limits::MAX_PARTITION_KEY_BYTES, 2048);
    assert_eq!(cloudlet_kv::limits::MAX_SORT_KEY_BYTES, 1024);
    let mut m = Mismatches::default();
    // DynamoDB's message has no space in "of2048".
    let hash = "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes";
    // Bytes, not characters: 683 three-byte characters are 2049 bytes.
    let wide = item([("pk", s(&"€".repeat(683))), ("sk", s("s"))]);
    m.validation(
        "put, 683 × €",
        h.kv.put_item(PutItem::new("keys", wide)).await,
        hash,
    );
    m.validation(
        "put, 2049 bytes",
        h.kv.put_item(PutItem::new("keys", at(2049, 1))).await,
        hash,
    );
    m.validation(
        "get, 2049 bytes",
        h.kv.get_item(GetItem::new("keys", at(2049, 1))).await,
        hash,
    );
    let range = "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes";
    m.validation(
        "put, sort key 1025 bytes",
        h.kv.put_item(PutItem::new("keys", at(1, 1025))).await,
        range,
    );
    m.validation(
        "get, sort key 1025 bytes",
        h.kv.get_item(GetItem::new("keys", at(1, 1025))).await,
        range,
    );
    m.finish();
    assert_eq!(
        h.kv.scan(cloudlet_kv::Scan::new("keys"))
            .await
            .unwrap()
            .count,
        1
    );
}

/// Sets may not be empty, anywhere in an item or in expression values.
pub async fn item_empty_sets_rejected(h: Harness) {
    table_pk(&h, "sets").await;
    let with = |value: AttributeValue| item([("pk", s("a")), ("v", value)]);
    expect_validation(
        h.kv.put_item(PutItem::new("sets", with(AttributeValue::Ss([].into()))))
            .await,
        "One or more parameter values were invalid: An string set  may not be empty",
    );
    expect_validation(
        h.kv.put_item(PutItem::new("sets", with(AttributeValue::Ns([].into()))))
            .await,
        "One or more parameter values were invalid: An number set  may not be empty",
    );
    expect_validation(
        h.kv.put_item(PutItem::new("sets", with(AttributeValue::Bs([].into()))))
            .await,
        "One or more parameter values were invalid: Binary sets should not be empty",
    );
    expect_validation(
        h.kv.put_item(PutItem::new(
            "sets",
            with(m([("deep", l([AttributeValue::Ss([].into())]))])),
        ))
        .await,
        "One or more parameter values were invalid: An string set  may not be empty",
    );
    expect_validation(
        h.kv.update_item(
            UpdateItem::new("sets", item([("pk", s("a"))]), "SET v = :v")
                .with_value(":v", AttributeValue::Ss([].into())),
        )
        .await,
        "An string set  may not be empty",
    );
    assert_eq!(get(&h, "sets", item([("pk", s("a"))])).await, None);
}

/// A projection returns the named paths, nested as in the item, with list elements closed up
/// in index order; paths that do not resolve are left out.
pub async fn item_get_projection(h: Harness) {
    table_pk(&h, "proj").await;
    let stored = item([
        ("pk", s("a")),
        (
            "doc",
            m([
                ("b", l([n("10"), n("20"), n("30"), n("40")])),
                ("c", s("x")),
                ("d", m([("e", n("1")), ("f", n("2"))])),
            ]),
        ),
        (
            "rows",
            l([
                m([("x", n("1")), ("y", n("2"))]),
                m([("x", n("3")), ("y", n("4"))]),
                m([("x", n("5"))]),
            ]),
        ),
        ("top", s("t")),
    ]);
    put(&h, "proj", stored).await;
    let got =
        h.kv.get_item(
            GetItem::new("proj", item([("pk", s("a"))]))
                .with_projection(
                    "doc.b[3], doc.b[1], doc.#d.f, #r[2].x, #r[0].y, nope, doc.zz, doc.b[9], top.x",
                )
                .with_name("#d", "d")
                .with_name("#r", "rows"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        item([
            (
                "doc",
                m([("b", l([n("20"), n("40")])), ("d", m([("f", n("2"))]))])
            ),
            ("rows", l([m([("y", n("2"))]), m([("x", n("5"))])])),
        ])
    );
    // Keys are returned only when named.
    let got =
        h.kv.get_item(GetItem::new("proj", item([("pk", s("a"))])).with_projection("top"))
            .await
            .unwrap();
    assert_eq!(got, Some(item([("top", s("t"))])));
    // Nothing matches: an empty item, not a missing one.
    let got =
        h.kv.get_item(GetItem::new("proj", item([("pk", s("a"))])).with_projection("nope"))
            .await
            .unwrap();
    assert_eq!(got, Some(Item::new()));
}

/// Numbers are stored and returned in canonical form.
pub async fn item_numbers_canonical(h: Harness) {
    table_pk(&h, "nums").await;
    let cases = [
        ("01", "1"),
        ("1e2", "100"),
        ("1E2", "100"),
        ("1.50", "1.5"),
        ("-0", "0"),
        ("0.0", "0"),
        ("0042.1200", "42.12"),
        ("-0015.789e6", "-15789000"),
        ("1.5e-3", "0.0015"),
        ("100", "100"),
    ];
    for (i, (text, canonical)) in cases.iter().enumerate() {
        let value = n(text);
        assert_eq!(value.as_n().unwrap().to_string(), *canonical, "{text}");
        put(
            &h,
            "nums",
            item([
                ("pk", s(&i.to_string())),
                ("v", value),
                ("set", AttributeValue::Ns([text.parse().unwrap()].into())),
            ]),
        )
        .await;
        let got = get(&h, "nums", item([("pk", s(&i.to_string()))]))
            .await
            .unwrap();
        assert_eq!(got["v"].as_n().unwrap().to_string(), *canonical, "{text}");
        assert_eq!(got["v"], n(canonical));
    }
    // Equal numbers are equal keys and equal set members.
    table_pk_sk(&h, "numkeys", KeyAttribute::n("sk")).await;
    put(
        &h,
        "numkeys",
        item([("pk", s("a")), ("sk", n("1.50")), ("v", n("1"))]),
    )
    .await;
    put(
        &h,
        "numkeys",
        item([("pk", s("a")), ("sk", n("15e-1")), ("v", n("2"))]),
    )
    .await;
    let got = get(&h, "numkeys", item([("pk", s("a")), ("sk", n("1.5"))]))
        .await
        .unwrap();
    assert_eq!(got["v"], n("2"), "1.50 and 15e-1 are one key");
    assert_eq!(got["sk"].as_n().unwrap().to_string(), "1.5");
    assert_eq!(
        AttributeValue::ns([
            "1.0".parse::<cloudlet_kv::Number>().unwrap(),
            "1".parse().unwrap()
        ]),
        AttributeValue::ns([1])
    );
}

/// Binary keys sort bytewise, unsigned; binary partition keys work.
pub async fn item_binary_keys_order_bytewise(h: Harness) {
    table_pk_sk(&h, "bins", KeyAttribute::b("sk")).await;
    let sorts: [&[u8]; 7] = [
        &[0x80],
        &[0x01],
        &[0x00, 0xff],
        &[0xff],
        &[0x01, 0x00],
        &[0x00],
        &[0x7f, 0xff, 0xff],
    ];
    for sk in sorts {
        put(&h, "bins", item([("pk", s("p")), ("sk", b(sk))])).await;
    }
    let page =
        h.kv.query(Query::new("bins", "pk = :p").with_value(":p", "p"))
            .await
            .unwrap();
    let got: Vec<AttributeValue> = page.items.iter().map(|i| i["sk"].clone()).collect();
    let expected: Vec<AttributeValue> = [
        &[0x00][..],
        &[0x00, 0xff],
        &[0x01],
        &[0x01, 0x00],
        &[0x7f, 0xff, 0xff],
        &[0x80],
        &[0xff],
    ]
    .iter()
    .map(|v| b(v))
    .collect();
    assert_eq!(got, expected);
    h.kv.create_table(cloudlet_kv::CreateTable::new(
        "binpk",
        KeyAttribute::b("id"),
    ))
    .await
    .unwrap();
    put(&h, "binpk", item([("id", b(&[0, 0, 1])), ("v", n("1"))])).await;
    put(&h, "binpk", item([("id", b(&[0, 0])), ("v", n("2"))])).await;
    assert_eq!(
        get(&h, "binpk", item([("id", b(&[0, 0, 1]))]))
            .await
            .unwrap()["v"],
        n("1")
    );
    assert_eq!(
        get(&h, "binpk", item([("id", b(&[0, 0]))])).await.unwrap()["v"],
        n("2")
    );
}

/// A refused request of any kind writes nothing.
pub async fn item_refused_requests_change_nothing(h: Harness) {
    table_pk(&h, "keep").await;
    let original = item([("pk", s("a")), ("v", n("1")), ("t", s("text"))]);
    put(&h, "keep", original.clone()).await;
    let key = || item([("pk", s("a"))]);
    let refusals: Vec<Result<Option<Item>, Error>> = vec![
        h.kv.put_item(
            PutItem::new("keep", item([("pk", s("a")), ("v", n("2"))]))
                .with_condition("v = :two")
                .with_value(":two", 2),
        )
        .await,
        h.kv.put_item(PutItem::new(
            "keep",
            item([("pk", s("a")), ("big", s(&"x".repeat(409_600)))]),
        ))
        .await,
        h.kv.update_item(
            UpdateItem::new("keep", key(), "SET v = :two, t = t + :two").with_value(":two", 2),
        )
        .await,
        h.kv.update_item(
            UpdateItem::new("keep", key(), "SET v = :two")
                .with_value(":two", 2)
                .with_condition("attribute_not_exists(v)"),
        )
        .await,
        h.kv.update_item(
            UpdateItem::new("keep", key(), "SET v = :two, w.x = :two").with_value(":two", 2),
        )
        .await,
        h.kv.delete_item(
            DeleteItem::new("keep", key())
                .with_condition("t = :other")
                .with_value(":other", "other"),
        )
        .await,
        h.kv.delete_item(DeleteItem::new("keep", key()).with_condition("t = :unset"))
            .await,
    ];
    for (i, refusal) in refusals.iter().enumerate() {
        assert!(
            refusal.is_err(),
            "request {i} should be refused: {refusal:?}"
        );
    }
    assert_eq!(get(&h, "keep", key()).await, Some(original));
    let described = h.kv.describe_table("keep").await.unwrap();
    assert_eq!(described.item_count, 1);
}
