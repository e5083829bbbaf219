//! Condition and filter semantics: comparators, BETWEEN, IN, logic, functions, nested paths,
//! missing attributes and mismatched types.

use cloudlet_kv::{
    AttributeValue, ConditionCheck, Error, Item, PutItem, ReturnValuesOnConditionCheckFailure,
    Scan, TransactWriteItem, TransactWriteItems, UpdateItem, item,
};

use super::Harness;
use super::support::{b, bs, get, l, m, n, put, s, table_pk, uses};

const TABLE: &str = "cond";

fn subject() -> Item {
    item([
        ("pk", s("c")),
        ("str", s("banana")),
        ("snum", s("10")),
        ("num", n("10")),
        ("neg", n("-3.5")),
        ("bin", b(&[1, 2, 3])),
        ("hi", b(&[0xff])),
        ("flag", AttributeValue::Bool(true)),
        ("nul", AttributeValue::Null),
        ("a", m([("b", l([n("0"), n("1"), m([("c", s("deep"))])]))])),
        ("tags", AttributeValue::ss(["red", "green"])),
        ("nums", AttributeValue::ns([1, 2])),
        ("bins", bs(&[&[1], &[2]])),
        ("lst", l([s("x"), n("2"), m([("k", s("v"))])])),
        // 2 characters, 6 UTF-8 bytes, 3 UTF-16 code units.
        ("emoji", s("é𝄞")),
        ("mp", m([("k1", n("1")), ("k2", n("2"))])),
    ])
}

fn pool() -> Vec<(&'static str, AttributeValue)> {
    let mut values = vec![
        (":zero", n("0")),
        (":one", n("1")),
        (":two", n("2")),
        (":three", n("3")),
        (":m4", n("-4")),
        (":n5", n("5")),
        (":six", n("6")),
        (":n9", n("9")),
        (":n10", n("10")),
        (":n11", n("11")),
        (":n20", n("20")),
        (":s9", s("9")),
        (":s10", s("10")),
        (":apple", s("apple")),
        (":banana", s("banana")),
        (":Banana", s("Banana")),
        (":cherry", s("cherry")),
        (":ban", s("ban")),
        (":nan", s("nan")),
        (":x", s("x")),
        (":red", s("red")),
        (":blue", s("blue")),
        (":deep", s("deep")),
        (":b01", b(&[0x01])),
        (":b12", b(&[1, 2])),
        (":b13", b(&[1, 3])),
        (":b123", b(&[1, 2, 3])),
        (":true", AttributeValue::Bool(true)),
        (":lst", l([s("x"), n("2"), m([("k", s("v"))])])),
        (":mp", m([("k2", n("2")), ("k1", n("1"))])),
        (":tagset", AttributeValue::ss(["green", "red"])),
    ];
    for t in ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"] {
        values.push((
            match t {
                "S" => ":tS",
                "N" => ":tN",
                "B" => ":tB",
                "BOOL" => ":tBOOL",
                "NULL" => ":tNULL",
                "L" => ":tL",
                "M" => ":tM",
                "SS" => ":tSS",
                "NS" => ":tNS",
                _ => ":tBS",
            },
            s(t),
        ));
    }
    values
}

/// Whether the one item of the table passes `filter`, with the pool values it uses.
async fn passes(h: &Harness, filter: &str) -> Result<bool, Error> {
    let mut scan = Scan::new(TABLE).with_filter(filter);
    for (key, value) in pool() {
        if uses(filter, key) {
            scan = scan.with_value(key, value);
        }
    }
    let page = h.kv.scan(scan).await?;
    assert_eq!(page.scanned_count, 1);
    Ok(page.count == 1)
}

async fn check_cases(h: &Harness, cases: &[(&str, bool)]) {
    table_pk(h, TABLE).await;
    put(h, TABLE, subject()).await;
    let mut wrong = Vec::new();
    for (filter, expected) in cases {
        match passes(h, filter).await {
            Ok(got) if got == *expected => {}
            Ok(got) => wrong.push(format!("{filter:?}: expected {expected}, got {got}")),
            Err(e) => wrong.push(format!("{filter:?}: expected {expected}, got error {e}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} conditions evaluated wrongly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// `= <> < <= > >=` on numbers (numerically), strings and binaries (bytewise, unsigned).
pub async fn condition_comparators_by_type(h: Harness) {
    check_cases(
        &h,
        &[
            // Numbers compare as numbers: 10 > 9, where "10" < "9" as text.
            ("num > :n9", true),
            ("num < :n9", false),
            ("num = :n10", true),
            ("num <> :n10", false),
            ("num <> :n9", true),
            ("num <= :n10", true),
            ("num >= :n10", true),
            ("num >= :n11", false),
            ("num < :n11", true),
            ("neg > :m4", true),
            ("neg < :zero", true),
            // Strings compare bytewise.
            ("snum < :s9", true),
            ("snum > :s9", false),
            ("snum = :s10", true),
            ("str > :apple", true),
            ("str < :cherry", true),
            ("str = :banana", true),
            ("str <> :banana", false),
            ("str <= :banana", true),
            ("str >= :cherry", false),
            ("str > :Banana", true),
            // Binaries compare bytewise, unsigned; a prefix sorts first.
            ("bin > :b12", true),
            ("bin < :b13", true),
            ("bin = :b123", true),
            ("bin <> :b123", false),
            ("bin >= :b123", true),
            ("hi > :b123", true),
            ("hi < :b01", false),
            // Two paths.
            ("num > neg", true),
            ("str = snum", false),
            ("str <> snum", true),
            // Documents and sets compare for equality only, deeply and without order in sets.
            ("flag = :true", true),
            ("lst = :lst", true),
            ("mp = :mp", true),
            ("tags = :tagset", true),
            ("lst <> :lst", false),
        ],
    )
    .await;
}

/// BETWEEN (inclusive), IN, and AND/OR/NOT with their precedence and parentheses.
pub async fn condition_between_in_and_logic(h: Harness) {
    check_cases(
        &h,
        &[
            ("num BETWEEN :n9 AND :n11", true),
            ("num BETWEEN :n10 AND :n10", true),
            ("num BETWEEN :n11 AND :n20", false),
            ("num BETWEEN :zero AND :n9", false),
            ("str BETWEEN :apple AND :cherry", true),
            ("str BETWEEN :banana AND :cherry", true),
            ("bin BETWEEN :b12 AND :b13", true),
            ("num IN (:n9, :n10)", true),
            ("num IN (:n9, :n11)", false),
            ("num IN (:n10)", true),
            ("str IN (:apple, :banana, :cherry)", true),
            ("bin IN (:b123)", true),
            // AND binds tighter than OR.
            ("num = :n10 OR num = :n9 AND num = :n11", true),
            ("num = :n9 AND num = :n10 OR num = :n10", true),
            ("(num = :n10 OR num = :n9) AND num = :n11", false),
            ("num = :n9 AND (num = :n10 OR num = :n10)", false),
            // NOT binds tighter than AND.
            ("NOT num = :n9 AND num = :n9", false),
            ("NOT (num = :n9 AND num = :n9)", true),
            ("NOT (num = :n10 AND str = :banana)", false),
            ("NOT num = :n10 OR str = :banana", true),
            ("((num = :n10))", true),
            // Keywords are case-insensitive.
            ("num between :n9 and :n11", true),
            ("num = :n9 or num = :n10", true),
            ("not num = :n9", true),
        ],
    )
    .await;
}

/// attribute_exists / attribute_not_exists / attribute_type with every type name /
/// begins_with / contains, on top-level and nested paths.
pub async fn condition_functions(h: Harness) {
    check_cases(
        &h,
        &[
            ("attribute_exists(num)", true),
            ("attribute_exists(nope)", false),
            ("attribute_not_exists(nope)", true),
            ("attribute_not_exists(num)", false),
            ("attribute_exists(nul)", true),
            ("attribute_exists(a.b[2].c)", true),
            ("attribute_exists(a.b[3])", false),
            ("attribute_exists(a.b[2].zz)", false),
            ("attribute_exists(a.b.c)", false),
            ("attribute_exists(num.x)", false),
            ("attribute_not_exists(a.b[5])", true),
            ("attribute_type(str, :tS)", true),
            ("attribute_type(num, :tN)", true),
            ("attribute_type(bin, :tB)", true),
            ("attribute_type(flag, :tBOOL)", true),
            ("attribute_type(nul, :tNULL)", true),
            ("attribute_type(lst, :tL)", true),
            ("attribute_type(mp, :tM)", true),
            ("attribute_type(tags, :tSS)", true),
            ("attribute_type(nums, :tNS)", true),
            ("attribute_type(bins, :tBS)", true),
            ("attribute_type(a.b, :tL)", true),
            ("attribute_type(a.b[2], :tM)", true),
            ("attribute_type(num, :tS)", false),
            ("attribute_type(snum, :tN)", false),
            ("attribute_type(tags, :tL)", false),
            ("attribute_type(nope, :tS)", false),
            ("begins_with(str, :ban)", true),
            ("begins_with(str, :banana)", true),
            ("begins_with(str, :nan)", false),
            ("begins_with(bin, :b12)", true),
            ("begins_with(bin, :b13)", false),
            ("begins_with(num, :ban)", false),
            ("begins_with(nope, :ban)", false),
            ("begins_with(a.b[2].c, :deep)", true),
            ("contains(str, :nan)", true),
            ("contains(str, :x)", false),
            ("contains(tags, :red)", true),
            ("contains(tags, :blue)", false),
            ("contains(nums, :one)", true),
            ("contains(nums, :n9)", false),
            ("contains(bins, :b01)", true),
            ("contains(bins, :b12)", false),
            ("contains(lst, :x)", true),
            ("contains(lst, :two)", true),
            ("contains(lst, :blue)", false),
            ("contains(tags, :one)", false),
            ("contains(nope, :x)", false),
        ],
    )
    .await;
}

/// size(): strings in UTF-16 code units, binaries in bytes, lists, maps and sets by elements;
/// no size for numbers or missing attributes.
pub async fn condition_size(h: Harness) {
    check_cases(
        &h,
        &[
            ("size(emoji) = :three", true),
            ("size(emoji) = :six", false),
            ("size(emoji) = :two", false),
            ("size(str) = :six", true),
            ("size(str) > :n5", true),
            ("size(bin) = :three", true),
            ("size(lst) = :three", true),
            ("size(mp) = :two", true),
            ("size(tags) = :two", true),
            ("size(nums) = :two", true),
            ("size(bins) = :two", true),
            ("size(a.b) = :three", true),
            ("size(a.b[2]) = :one", true),
            ("size(a.b[2].c) = :n5", false),
            ("size(a.b[2].c) BETWEEN :three AND :n5", true),
            ("size(lst) IN (:one, :three)", true),
            ("size(nope) = :zero", false),
            ("size(nope) >= :zero", false),
            ("size(num) > :zero", false),
        ],
    )
    .await;
}

/// Nested paths; comparisons with a missing attribute (only `<>` is true) and with a value of
/// another type (false, `<>` true), never an error.
pub async fn condition_missing_and_mismatched(h: Harness) {
    check_cases(
        &h,
        &[
            ("a.b[2].c = :deep", true),
            ("a.b[1] = :one", true),
            ("a.b[0] < :one", true),
            ("lst[1] = :two", true),
            ("lst[2].k <> :x", true),
            ("nope <> :n10", true),
            ("nope = :n10", false),
            ("nope < :n10", false),
            ("nope <= :n10", false),
            ("nope > :n10", false),
            ("nope >= :n10", false),
            ("nope BETWEEN :n9 AND :n11", false),
            ("nope IN (:n10)", false),
            ("NOT nope = :n10", true),
            ("NOT nope < :n10", true),
            ("a.zz <> :deep", true),
            ("a.b[9] = :deep", false),
            ("a.b[9] <> :deep", true),
            ("num = :s10", false),
            ("num <> :s10", true),
            ("num < :s9", false),
            ("num > :s9", false),
            ("num <= :s10", false),
            ("str > :n9", false),
            ("str BETWEEN :n9 AND :n11", false),
            ("num BETWEEN :s10 AND :s9", false),
            ("num IN (:s10)", false),
            ("flag < :one", false),
            ("lst = :x", false),
            ("tags = :red", false),
        ],
    )
    .await;
}

/// Conditions of writes see the same semantics as filters, on the item before the write (an
/// empty one when there is none).
pub async fn condition_expressions_on_writes(h: Harness) {
    table_pk(&h, TABLE).await;
    put(&h, TABLE, subject()).await;
    let key = item([("pk", s("c"))]);
    // Missing attribute: `<>` holds, `=` does not.
    h.kv.update_item(
        UpdateItem::new(TABLE, key.clone(), "SET seen = :one")
            .with_condition("nope <> :one AND num > :n9 AND a.b[2].c = :deep")
            .with_value(":one", 1)
            .with_value(":n9", 9)
            .with_value(":deep", "deep"),
    )
    .await
    .unwrap();
    assert_eq!(get(&h, TABLE, key.clone()).await.unwrap()["seen"], n("1"));
    let failed =
        h.kv.update_item(
            UpdateItem::new(TABLE, key.clone(), "SET seen = :two")
                .with_condition("nope = :two OR num < :two")
                .with_value(":two", 2)
                .with_return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::ALL_OLD,
                ),
        )
        .await;
    match failed {
        Err(Error::ConditionalCheckFailed { item: Some(old) }) => {
            assert_eq!(old["seen"], n("1"));
            assert_eq!(old["str"], s("banana"));
        }
        other => panic!("expected a failed condition with the old item, got {other:?}"),
    }
    // On a missing item every attribute is missing.
    h.kv.put_item(
        PutItem::new(TABLE, item([("pk", s("new"))]))
            .with_condition("attribute_not_exists(pk) AND num <> :n AND NOT num = :n")
            .with_value(":n", 1),
    )
    .await
    .unwrap();
    let missing =
        h.kv.put_item(
            PutItem::new(TABLE, item([("pk", s("other"))]))
                .with_condition("size(pk) >= :zero")
                .with_value(":zero", 0),
        )
        .await;
    assert!(
        matches!(missing, Err(Error::ConditionalCheckFailed { item: None })),
        "{missing:?}"
    );
    assert_eq!(get(&h, TABLE, item([("pk", s("other"))])).await, None);
    // A ConditionCheck action evaluates the same way.
    h.kv.transact_write_items(TransactWriteItems {
        transact_items: vec![TransactWriteItem::ConditionCheck(
            ConditionCheck::new(TABLE, key, "contains(tags, :red) AND size(emoji) = :three")
                .with_value(":red", "red")
                .with_value(":three", 3),
        )],
        client_request_token: None,
    })
    .await
    .unwrap();
}
