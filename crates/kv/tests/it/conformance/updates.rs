//! UpdateItem semantics: SET, REMOVE, ADD and DELETE; return values; number and size limits.

use cloudlet_kv::{AttributeValue, Error, Item, PutItem, ReturnValues, UpdateItem, item, limits};

use super::Harness;
use super::support::{b, expect_validation, get, l, m, n, put, s, table_pk};

const TABLE: &str = "upd";

fn key(pk: &str) -> Item {
    item([("pk", s(pk))])
}

/// Runs an update that must succeed and returns the item after it.
async fn apply(h: &Harness, pk: &str, request: UpdateItem) -> Item {
    h.kv.update_item(request).await.unwrap();
    get(h, TABLE, key(pk)).await.unwrap()
}

fn strs(values: &[&str]) -> AttributeValue {
    l(values.iter().map(|v| s(v)))
}

/// `a + :n` and `a - :n` are exact decimals; `if_not_exists` picks the stored value when there
/// is one.
pub async fn update_arithmetic_and_if_not_exists(h: Harness) {
    table_pk(&h, TABLE).await;
    put(
        &h,
        TABLE,
        item([("pk", s("a")), ("x", n("0.1")), ("y", n("1"))]),
    )
    .await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "SET x = x + :d, y = y - :e, z = :p + :q, w = :big - y",
        )
        .with_value(":d", n("0.2"))
        .with_value(":e", n("0.9"))
        .with_value(":p", n("1.5"))
        .with_value(":q", n("2.25"))
        .with_value(":big", n("1e20")),
    )
    .await;
    assert_eq!(after["x"], n("0.3"), "0.1 + 0.2 is exactly 0.3");
    assert_eq!(after["x"].as_n().unwrap().to_string(), "0.3");
    assert_eq!(after["y"].as_n().unwrap().to_string(), "0.1");
    assert_eq!(after["z"].as_n().unwrap().to_string(), "3.75");
    assert_eq!(
        after["w"].as_n().unwrap().to_string(),
        "99999999999999999999",
        "the right-hand side reads y before the update"
    );
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "SET x = if_not_exists(x, :zero), fresh = if_not_exists(fresh, :zero) + :one, #c = if_not_exists(nested.deep, :s)",
        )
        .with_name("#c", "count")
        .with_value(":zero", 0)
        .with_value(":one", 1)
        .with_value(":s", "fallback"),
    )
    .await;
    assert_eq!(after["x"], n("0.3"), "an existing value is kept");
    assert_eq!(after["fresh"], n("1"));
    assert_eq!(after["count"], s("fallback"));
    let missing = h
        .kv
        .update_item(UpdateItem::new(TABLE, key("a"), "SET v = nope + :one").with_value(":one", 1))
        .await;
    expect_validation(
        missing,
        "The provided expression refers to an attribute that does not exist in the item",
    );
    let wrong =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("a"), "SET v = #c + :one")
                .with_name("#c", "count")
                .with_value(":one", 1),
        )
        .await;
    expect_validation(
        wrong,
        "An operand in the update expression has an incorrect data type",
    );
}

/// list_append in both orders; SET past the end of a list appends; REMOVE of several indexes
/// names positions in the list before the update.
pub async fn update_lists(h: Harness) {
    table_pk(&h, TABLE).await;
    put(
        &h,
        TABLE,
        item([
            ("pk", s("a")),
            ("l", strs(&["b", "c"])),
            ("blank", l([])),
            (
                "tools",
                strs(&["Chisel", "Hammer", "Nails", "Screwdriver", "Hacksaw"]),
            ),
            ("five", strs(&["1", "2", "3", "4", "5"])),
        ]),
    )
    .await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "SET l = list_append(:front, l), m2 = list_append(l, :back)",
        )
        .with_value(":front", strs(&["a"]))
        .with_value(":back", strs(&["d"])),
    )
    .await;
    assert_eq!(after["l"], strs(&["a", "b", "c"]));
    assert_eq!(
        after["m2"],
        strs(&["b", "c", "d"]),
        "operands are read from the old item"
    );
    let after = apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "SET m2[10] = :e, blank[0] = :e, l[1] = :x")
            .with_value(":e", "e")
            .with_value(":x", "x"),
    )
    .await;
    assert_eq!(after["m2"], strs(&["b", "c", "d", "e"]), "no padding");
    assert_eq!(after["blank"], strs(&["e"]));
    assert_eq!(after["l"], strs(&["a", "x", "c"]));
    // The AWS developer guide's example.
    let after = apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "REMOVE tools[1], tools[2]"),
    )
    .await;
    assert_eq!(after["tools"], strs(&["Chisel", "Screwdriver", "Hacksaw"]));
    let after = apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "REMOVE five[2], five[0], five[1], five[9]"),
    )
    .await;
    assert_eq!(
        after["five"],
        strs(&["4", "5"]),
        "an index past the end is ignored"
    );
    // A list index on something that is not a list, or on a missing attribute.
    for expression in ["SET nolist[0] = :e", "SET pk2.x[0] = :e"] {
        expect_validation(
            h.kv.update_item(UpdateItem::new(TABLE, key("a"), expression).with_value(":e", "e"))
                .await,
            "The document path provided in the update expression is invalid for update",
        );
    }
}

/// Several SETs past the end of one list append in index order, not in expression order.
pub async fn update_list_appends_in_index_order(h: Harness) {
    table_pk(&h, TABLE).await;
    put(&h, TABLE, item([("pk", s("a")), ("l", strs(&["x", "y"]))])).await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "SET l[10] = :ten, l[5] = :five")
            .with_value(":ten", "ten")
            .with_value(":five", "five"),
    )
    .await;
    assert_eq!(after["l"], strs(&["x", "y", "five", "ten"]));
}

/// SET on a path whose parent is missing fails; maps are not created on the way.
pub async fn update_nested_paths(h: Harness) {
    table_pk(&h, TABLE).await;
    put(
        &h,
        TABLE,
        item([
            ("pk", s("a")),
            (
                "doc",
                m([
                    ("inr", m([("v", n("1"))])),
                    ("list", l([m([("k", n("1"))])])),
                ]),
            ),
        ]),
    )
    .await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "SET doc.inr.w = :two, doc.#l[0].k = :two, doc.fresh = :two REMOVE doc.inr.v",
        )
        .with_name("#l", "list")
        .with_value(":two", 2),
    )
    .await;
    assert_eq!(
        after["doc"],
        m([
            ("inr", m([("w", n("2"))])),
            ("list", l([m([("k", n("2"))])])),
            ("fresh", n("2")),
        ])
    );
    for expression in [
        "SET nomap.x = :v",
        "SET doc.nomap.x = :v",
        "SET doc.inr.v.x = :v",
        "SET doc.#l[3].k = :v",
    ] {
        let mut request = UpdateItem::new(TABLE, key("a"), expression).with_value(":v", 1);
        if expression.contains("#l") {
            request = request.with_name("#l", "list");
        }
        expect_validation(
            h.kv.update_item(request).await,
            "The document path provided in the update expression is invalid for update",
        );
    }
    // REMOVE of a path that does not exist is no error.
    apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "REMOVE nomap, doc.nomap"),
    )
    .await;
    assert_eq!(get(&h, TABLE, key("a")).await.unwrap(), after);
}

/// ADD to numbers (a missing one starts at zero) and sets; DELETE from sets, and an emptied
/// set is removed.
pub async fn update_add_and_delete(h: Harness) {
    table_pk(&h, TABLE).await;
    put(
        &h,
        TABLE,
        item([
            ("pk", s("a")),
            ("num", n("5")),
            ("tags", AttributeValue::ss(["a", "b"])),
            ("nums", AttributeValue::ns([1, 2])),
            (
                "bins",
                AttributeValue::Bs([bytes::Bytes::from_static(&[1])].into()),
            ),
            ("doc", m([("x", n("1"))])),
        ]),
    )
    .await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "ADD num :n, fresh :n, tags :ss, nums :ns, bins :bs, newset :ss, doc.y :n, doc.x :n",
        )
        .with_value(":n", n("-1.5"))
        .with_value(":ss", AttributeValue::ss(["b", "c"]))
        .with_value(":ns", AttributeValue::ns([2, 3]))
        .with_value(
            ":bs",
            AttributeValue::Bs([bytes::Bytes::from_static(&[2])].into()),
        ),
    )
    .await;
    assert_eq!(after["num"], n("3.5"));
    assert_eq!(
        after["fresh"],
        n("-1.5"),
        "ADD to a missing number starts from 0"
    );
    assert_eq!(after["tags"], AttributeValue::ss(["a", "b", "c"]));
    assert_eq!(after["nums"], AttributeValue::ns([1, 2, 3]));
    assert_eq!(
        after["bins"],
        AttributeValue::Bs(
            [
                bytes::Bytes::from_static(&[1]),
                bytes::Bytes::from_static(&[2])
            ]
            .into()
        )
    );
    assert_eq!(after["newset"], AttributeValue::ss(["b", "c"]));
    assert_eq!(after["doc"], m([("x", n("-0.5")), ("y", n("-1.5"))]));
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "DELETE tags :some, nums :all, nothere :some, bins :none",
        )
        .with_value(":some", AttributeValue::ss(["a", "z"]))
        .with_value(":all", AttributeValue::ns([1, 2, 3]))
        .with_value(
            ":none",
            AttributeValue::Bs([bytes::Bytes::from_static(&[9])].into()),
        ),
    )
    .await;
    assert_eq!(after["tags"], AttributeValue::ss(["b", "c"]));
    assert!(
        !after.contains_key("nums"),
        "an emptied set is removed: {after:?}"
    );
    assert!(!after.contains_key("nothere"));
    assert_eq!(after["bins"].value_type().name(), "BS");
    // Runtime type mismatches.
    for (expression, value) in [
        ("ADD tags :v", AttributeValue::ns([1])),
        ("ADD tags :v", n("1")),
        ("ADD doc :v", n("1")),
        ("DELETE num :v", AttributeValue::ss(["a"])),
        ("DELETE tags :v", AttributeValue::ns([1])),
    ] {
        expect_validation(
            h.kv.update_item(UpdateItem::new(TABLE, key("a"), expression).with_value(":v", value))
                .await,
            "An operand in the update expression has an incorrect data type",
        );
    }
    assert_eq!(get(&h, TABLE, key("a")).await.unwrap(), after);
}

/// Every right-hand side reads the item as it was: `SET a = b, b = a` swaps.
pub async fn update_reads_the_old_item(h: Harness) {
    table_pk(&h, TABLE).await;
    put(
        &h,
        TABLE,
        item([
            ("pk", s("a")),
            ("x", s("one")),
            ("y", s("two")),
            ("n", n("1")),
        ]),
    )
    .await;
    let after = apply(
        &h,
        "a",
        UpdateItem::new(
            TABLE,
            key("a"),
            "SET x = y, y = x, n2 = n + :one, n = :ten ADD n3 :one",
        )
        .with_value(":one", 1)
        .with_value(":ten", 10),
    )
    .await;
    assert_eq!(after["x"], s("two"));
    assert_eq!(after["y"], s("one"));
    assert_eq!(after["n"], n("10"));
    assert_eq!(after["n2"], n("2"), "n + 1 reads the old n");
    assert_eq!(after["n3"], n("1"));
}

/// UpdateItem on a missing key creates the item (with the key alone when there is no
/// expression); a failed condition creates nothing.
pub async fn update_creates_items(h: Harness) {
    table_pk(&h, TABLE).await;
    let old =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("new"), "SET v = :v")
                .with_value(":v", 1)
                .with_return_values(ReturnValues::ALL_OLD),
        )
        .await
        .unwrap();
    assert_eq!(old, None);
    assert_eq!(
        get(&h, TABLE, key("new")).await,
        Some(item([("pk", s("new")), ("v", n("1"))]))
    );
    let created =
        h.kv.update_item(UpdateItem {
            update_expression: None,
            return_values: ReturnValues::ALL_NEW,
            ..UpdateItem::new(TABLE, key("bare"), "")
        })
        .await
        .unwrap();
    assert_eq!(created, Some(key("bare")));
    assert_eq!(get(&h, TABLE, key("bare")).await, Some(key("bare")));
    let refused =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("never"), "SET v = :v")
                .with_value(":v", 1)
                .with_condition("attribute_exists(pk)"),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::ConditionalCheckFailed { item: None })),
        "{refused:?}"
    );
    assert_eq!(get(&h, TABLE, key("never")).await, None);
}

/// An update that only takes away (REMOVE, DELETE) creates no item where there is none, and
/// ignores paths it cannot resolve there, as DynamoDB does; in a transaction too.
pub async fn update_that_only_removes_creates_no_item(h: Harness) {
    table_pk(&h, TABLE).await;
    for (expression, value) in [
        ("REMOVE a", None),
        ("REMOVE x.y", None),
        ("REMOVE x[0], a", None),
        ("DELETE tags :t", Some(AttributeValue::ss(["red"]))),
        ("REMOVE a DELETE tags :t", Some(AttributeValue::ss(["red"]))),
    ] {
        let mut request = UpdateItem::new(TABLE, key("ghost"), expression)
            .with_return_values(ReturnValues::ALL_NEW);
        if let Some(value) = value {
            request = request.with_value(":t", value);
        }
        assert_eq!(
            h.kv.update_item(request).await.unwrap(),
            None,
            "{expression}"
        );
        assert_eq!(get(&h, TABLE, key("ghost")).await, None, "{expression}");
    }
    h.kv.transact_write_items(cloudlet_kv::TransactWriteItems {
        transact_items: vec![
            cloudlet_kv::TransactWriteItem::Update(UpdateItem::new(
                TABLE,
                key("ghost"),
                "REMOVE a",
            )),
            cloudlet_kv::TransactWriteItem::Put(PutItem::new(TABLE, key("real"))),
        ],
        client_request_token: None,
    })
    .await
    .unwrap();
    assert_eq!(get(&h, TABLE, key("ghost")).await, None);
    assert_eq!(get(&h, TABLE, key("real")).await, Some(key("real")));
    // On an item that exists, REMOVE works as ever; and SET with REMOVE still creates one.
    put(&h, TABLE, item([("pk", s("real")), ("a", n("1"))])).await;
    let after = apply(&h, "real", UpdateItem::new(TABLE, key("real"), "REMOVE a")).await;
    assert_eq!(after, key("real"));
    let created = apply(
        &h,
        "made",
        UpdateItem::new(TABLE, key("made"), "SET b = :b REMOVE a").with_value(":b", 2),
    )
    .await;
    assert_eq!(created, item([("pk", s("made")), ("b", n("2"))]));
}

/// ReturnValues: ALL_OLD, ALL_NEW, and UPDATED_OLD / UPDATED_NEW at full path granularity;
/// nothing when nothing matches.
pub async fn update_return_values(h: Harness) {
    table_pk(&h, TABLE).await;
    let original = item([
        ("pk", s("r")),
        ("a", m([("b", n("1")), ("c", n("2")), ("d", n("3"))])),
        ("l", l([n("1"), n("2"), n("3")])),
        ("x", n("5")),
        ("y", s("keep")),
    ]);
    put(&h, TABLE, original.clone()).await;
    let run = |expression: &'static str, rv: ReturnValues| {
        UpdateItem::new(TABLE, key("r"), expression)
            .with_return_values(rv)
            .with_value(":v", 9)
    };
    let got =
        h.kv.update_item(run("SET a.b = :v", ReturnValues::UPDATED_NEW))
            .await
            .unwrap();
    assert_eq!(got, Some(item([("a", m([("b", n("9"))]))])));
    let got =
        h.kv.update_item(run("SET a.c = :v", ReturnValues::UPDATED_OLD))
            .await
            .unwrap();
    assert_eq!(got, Some(item([("a", m([("c", n("2"))]))])));
    let got =
        h.kv.update_item(run(
            "SET a.c = :v, a.d = :v, l[2] = :v, l[0] = :v",
            ReturnValues::UPDATED_OLD,
        ))
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(item([
            ("a", m([("c", n("9")), ("d", n("3"))])),
            ("l", l([n("1"), n("3")])),
        ])),
        "sibling paths merge; list elements close up in index order"
    );
    let got =
        h.kv.update_item(run("SET x = x + :v, z = :v", ReturnValues::UPDATED_OLD))
            .await
            .unwrap();
    assert_eq!(got, Some(item([("x", n("5"))])), "z did not exist before");
    let got =
        h.kv.update_item(run("SET x = x + :v, w = :v", ReturnValues::UPDATED_NEW))
            .await
            .unwrap();
    assert_eq!(got, Some(item([("x", n("23")), ("w", n("9"))])));
    let got =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("r"), "REMOVE y")
                .with_return_values(ReturnValues::UPDATED_NEW),
        )
        .await
        .unwrap();
    assert_eq!(got, None, "nothing updated remains");
    let got =
        h.kv.update_item(run("SET y = :v", ReturnValues::UPDATED_OLD))
            .await
            .unwrap();
    assert_eq!(got, None, "y did not exist before");
    let before = get(&h, TABLE, key("r")).await.unwrap();
    let got =
        h.kv.update_item(run("SET q = :v", ReturnValues::ALL_OLD))
            .await
            .unwrap();
    assert_eq!(got, Some(before.clone()));
    let got =
        h.kv.update_item(run("REMOVE q SET p = :v", ReturnValues::ALL_NEW))
            .await
            .unwrap();
    let mut expected = before;
    expected.insert("p".to_owned(), n("9"));
    assert_eq!(got, Some(expected.clone()));
    let got =
        h.kv.update_item(run("SET p = :v", ReturnValues::NONE))
            .await
            .unwrap();
    assert_eq!(got, None);
    let got =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("fresh"), "ADD c :v")
                .with_value(":v", 1)
                .with_return_values(ReturnValues::UPDATED_OLD),
        )
        .await
        .unwrap();
    assert_eq!(got, None, "a new item has no old attributes");
    let got =
        h.kv.update_item(
            UpdateItem::new(TABLE, key("fresh2"), "ADD c :v")
                .with_value(":v", 1)
                .with_return_values(ReturnValues::ALL_NEW),
        )
        .await
        .unwrap();
    assert_eq!(got, Some(item([("pk", s("fresh2")), ("c", n("1"))])));
}

/// Numbers keep at most 38 significant digits and stay within 1E-130..1E126.
pub async fn update_number_limits(h: Harness) {
    table_pk(&h, TABLE).await;
    let too_precise = AttributeValue::n("1.00000000000000000000000000000000000001");
    expect_validation(
        too_precise,
        "Attempting to store more than 38 significant digits in a Number",
    );
    let nines = "9".repeat(38);
    put(&h, TABLE, item([("pk", s("a")), ("n", n(&nines))])).await;
    for (expression, value) in [("SET n = n + :v", "0.1"), ("ADD n :v", "0.1")] {
        expect_validation(
            h.kv.update_item(
                UpdateItem::new(TABLE, key("a"), expression).with_value(":v", n(value)),
            )
            .await,
            "Attempting to store more than 38 significant digits in a Number",
        );
    }
    assert_eq!(get(&h, TABLE, key("a")).await.unwrap()["n"], n(&nines));
    // One more is 1E38: a single significant digit.
    let after = apply(
        &h,
        "a",
        UpdateItem::new(TABLE, key("a"), "ADD n :one").with_value(":one", 1),
    )
    .await;
    assert_eq!(
        after["n"].as_n().unwrap().to_string(),
        format!("1{}", "0".repeat(38))
    );
    put(&h, TABLE, item([("pk", s("b")), ("n", n("9.9e125"))])).await;
    expect_validation(
        h.kv.update_item(UpdateItem::new(TABLE, key("b"), "SET n = n + n"))
            .await,
        "Number overflow. Attempting to store a number with magnitude larger than supported range",
    );
    expect_validation(
        AttributeValue::n("1e126"),
        "Number overflow. Attempting to store a number with magnitude larger than supported range",
    );
    expect_validation(
        AttributeValue::n("1e-131"),
        "Number underflow. Attempting to store a number with magnitude smaller than supported range",
    );
    assert!(AttributeValue::n("1e-130").is_ok());
    assert!(AttributeValue::n("9.9999999999999999999999999999999999999e125").is_ok());
}

/// Items are at most 400 KB (409,600 bytes: attribute names and values); updates that would
/// pass it fail with their own message and change nothing.
pub async fn update_item_size_limit(h: Harness) {
    table_pk(&h, TABLE).await;
    assert_eq!(limits::MAX_ITEM_SIZE, 409_600);
    // "pk" + "p" + "d" + the string.
    let sized = |pk: &str, len: usize| item([("pk", s(pk)), ("d", s(&"x".repeat(len)))]);
    let overhead = "pk".len() + 1 + "d".len();
    put(&h, TABLE, sized("p", 409_600 - overhead)).await;
    let too_big =
        h.kv.put_item(PutItem::new(TABLE, sized("q", 409_601 - overhead)))
            .await;
    expect_validation(too_big, "Item size has exceeded the maximum allowed size");
    assert_eq!(get(&h, TABLE, key("q")).await, None);
    // Binary and number values count too: 4 + 2 bytes of name, 400 KB - 6 of binary.
    let bin = item([("pk", s("r")), ("b", b(&vec![0u8; 409_600 - 4]))]);
    put(&h, TABLE, bin).await;
    let bin = item([("pk", s("r")), ("b", b(&vec![0u8; 409_600 - 3]))]);
    expect_validation(
        h.kv.put_item(PutItem::new(TABLE, bin)).await,
        "Item size has exceeded the maximum allowed size",
    );
    // Updates: exactly 400 KB is fine, one byte more is not.
    let big = "x".repeat(409_600 - overhead);
    h.kv.update_item(UpdateItem::new(TABLE, key("u"), "SET d = :d").with_value(":d", big.as_str()))
        .await
        .unwrap();
    let over = "x".repeat(409_601 - overhead);
    expect_validation(
        h.kv.update_item(
            UpdateItem::new(TABLE, key("v"), "SET d = :d").with_value(":d", over.as_str()),
        )
        .await,
        "Item size to update has exceeded the maximum allowed size",
    );
    assert_eq!(get(&h, TABLE, key("v")).await, None);
    expect_validation(
        h.kv.update_item(UpdateItem::new(TABLE, key("p"), "SET e = :one").with_value(":one", 1))
            .await,
        "Item size to update has exceeded the maximum allowed size",
    );
    assert_eq!(
        get(&h, TABLE, key("p")).await,
        Some(sized("p", 409_600 - overhead)),
        "the refused update changed nothing"
    );
}
