//! Expressions DynamoDB refuses, with its error texts; a refused request changes nothing.

use cloudlet_kv::{
    AttributeValue, Error, GetItem, Item, KeyAttribute, PutItem, Scan, UpdateItem, item,
};

use super::Harness;
use super::support::{
    Mismatches, expect_syntax, expect_validation, get, n, put, s, table_pk, table_pk_sk,
};

const TABLE: &str = "errs";

fn key() -> Item {
    item([("pk", s("k"))])
}

fn stored() -> Item {
    item([
        ("pk", s("k")),
        ("num", n("1")),
        ("a", AttributeValue::m([("b", n("1"))])),
        ("l", AttributeValue::L(vec![n("1"), n("2")])),
    ])
}

async fn setup(h: &Harness) {
    table_pk(h, TABLE).await;
    put(h, TABLE, stored()).await;
}

fn update(expression: &str) -> UpdateItem {
    UpdateItem::new(TABLE, key(), expression)
}

fn condition(expression: &str) -> PutItem {
    PutItem::new(TABLE, item([("pk", s("k")), ("replaced", n("1"))])).with_condition(expression)
}

async fn unchanged(h: &Harness) {
    assert_eq!(
        get(h, TABLE, key()).await,
        Some(stored()),
        "a refused request changes nothing"
    );
}

/// Syntax errors name the offending token (`<EOF>` at the end) and the expression kind.
pub async fn expression_syntax_errors(h: Harness) {
    setup(&h).await;
    let result =
        h.kv.put_item(condition("num = = :v").with_value(":v", 1))
            .await;
    match &result {
        Err(
            error @ Error::Syntax {
                token, position, ..
            },
        ) => {
            assert_eq!(token, "=");
            assert_eq!(*position, 6, "the byte offset of the second `=`");
            assert_eq!(error.code(), "ValidationException");
            assert!(
                error
                    .to_string()
                    .contains("Invalid ConditionExpression: Syntax error; token: \"=\", near: \""),
                "{error}"
            );
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    expect_syntax(
        h.kv.put_item(condition("attribute_exists(pk) AND")).await,
        "ConditionExpression",
        "<EOF>",
    );
    expect_syntax(
        h.kv.scan(Scan::new(TABLE).with_filter("num IN ()")).await,
        "FilterExpression",
        ")",
    );
    expect_syntax(
        h.kv.update_item(update("SET num = :v,").with_value(":v", 1))
            .await,
        "UpdateExpression",
        "<EOF>",
    );
    expect_syntax(
        h.kv.update_item(update("ADD num : incr").with_value(":incr", 1))
            .await,
        "UpdateExpression",
        ":",
    );
    expect_syntax(
        h.kv.update_item(update("SET num = :v REMOVE").with_value(":v", 1))
            .await,
        "UpdateExpression",
        "<EOF>",
    );
    expect_syntax(
        h.kv.update_item(update("SET num :v").with_value(":v", 1))
            .await,
        "UpdateExpression",
        ":v",
    );
    expect_syntax(
        h.kv.get_item(GetItem::new(TABLE, key()).with_projection("num,,a"))
            .await,
        "ProjectionExpression",
        ",",
    );
    expect_validation(
        h.kv.put_item(condition("")).await,
        "Invalid ConditionExpression: The expression can not be empty;",
    );
    expect_validation(
        h.kv.put_item(condition("foo(num)")).await,
        "Invalid ConditionExpression: Invalid function name; function: foo",
    );
    unchanged(&h).await;
}

/// `near` quotes the source from the token before the offending one to the token after it.
pub async fn expression_syntax_error_near_text(h: Harness) {
    setup(&h).await;
    let mut m = Mismatches::default();
    let near = expect_syntax(
        h.kv.put_item(condition("num = = :v").with_value(":v", 1))
            .await,
        "ConditionExpression",
        "=",
    );
    m.eq("near of `num = = :v`", near.as_str(), "= = :v");
    let near = expect_syntax(
        h.kv.update_item(update("SET num = :v,").with_value(":v", 1))
            .await,
        "UpdateExpression",
        "<EOF>",
    );
    m.eq("near of `SET num = :v,`", near.as_str(), ",");
    let near = expect_syntax(
        h.kv.update_item(update("ADD hits : incr").with_value(":incr", 1))
            .await,
        "UpdateExpression",
        ":",
    );
    m.eq("near of `ADD hits : incr`", near.as_str(), "hits : incr");
    m.finish();
}

/// Undefined and unused `#names` and `:values`, and reserved words, in every expression kind.
pub async fn expression_placeholder_errors(h: Harness) {
    setup(&h).await;
    expect_validation(
        h.kv.put_item(condition("#n = :v").with_value(":v", 1))
            .await,
        "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: #n",
    );
    expect_validation(
        h.kv.put_item(condition("num = :v")).await,
        "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :v",
    );
    expect_validation(
        h.kv.update_item(update("SET #n = :v").with_value(":v", 1))
            .await,
        "Invalid UpdateExpression: An expression attribute name used in the document path is not defined; attribute name: #n",
    );
    expect_validation(
        h.kv.update_item(update("SET a.#n = :v").with_value(":v", 1))
            .await,
        "Invalid UpdateExpression: An expression attribute name used in the document path is not defined; attribute name: #n",
    );
    expect_validation(
        h.kv.update_item(update("SET num = :v")).await,
        "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :v",
    );
    expect_validation(
        h.kv.get_item(GetItem::new(TABLE, key()).with_projection("a.#n"))
            .await,
        "Invalid ProjectionExpression: An expression attribute name used in the document path is not defined; attribute name: #n",
    );
    expect_validation(
        h.kv.scan(Scan::new(TABLE).with_filter("num = :v")).await,
        "Invalid FilterExpression: An expression attribute value used in expression is not defined; attribute value: :v",
    );
    expect_validation(
        h.kv.put_item(
            condition("num = :v")
                .with_value(":v", 1)
                .with_value(":extra", 2),
        )
        .await,
        "Value provided in ExpressionAttributeValues unused in expressions: keys: {:extra}",
    );
    expect_validation(
        h.kv.update_item(
            update("SET num = :v")
                .with_value(":v", 1)
                .with_name("#unused", "num"),
        )
        .await,
        "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}",
    );
    expect_validation(
        h.kv.get_item(
            GetItem::new(TABLE, key())
                .with_projection("num")
                .with_name("#unused", "num"),
        )
        .await,
        "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}",
    );
    // Reserved words, echoed as written.
    expect_validation(
        h.kv.put_item(condition("status = :v").with_value(":v", 1))
            .await,
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status",
    );
    expect_validation(
        h.kv.update_item(update("SET Name = :v").with_value(":v", 1))
            .await,
        "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: Name",
    );
    expect_validation(
        h.kv.get_item(GetItem::new(TABLE, key()).with_projection("num, data"))
            .await,
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: data",
    );
    expect_validation(
        h.kv.scan(
            Scan::new(TABLE)
                .with_filter("size(#v) > :z AND value = :z")
                .with_name("#v", "v")
                .with_value(":z", 0),
        )
        .await,
        "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: value",
    );
    // The same names through placeholders are fine.
    h.kv.scan(
        Scan::new(TABLE)
            .with_filter("#s = :v OR #n = :v")
            .with_name("#s", "status")
            .with_name("#n", "name")
            .with_value(":v", 1),
    )
    .await
    .unwrap();
    unchanged(&h).await;
}

/// BETWEEN bounds out of order, too many IN operands, bad attribute_type names and operand
/// types that can never work.
pub async fn expression_operand_errors(h: Harness) {
    setup(&h).await;
    expect_validation(
        h.kv.put_item(
            condition("num BETWEEN :hi AND :lo")
                .with_value(":hi", 5)
                .with_value(":lo", 4),
        )
        .await,
        "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:4}",
    );
    expect_validation(
        h.kv.scan(
            Scan::new(TABLE)
                .with_filter("num BETWEEN :hi AND :lo")
                .with_value(":hi", "b")
                .with_value(":lo", "a"),
        )
        .await,
        "Invalid FilterExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {S:b}, upper bound operand: AttributeValue: {S:a}",
    );
    // Equal bounds are fine.
    h.kv.scan(
        Scan::new(TABLE)
            .with_filter("num BETWEEN :lo AND :lo")
            .with_value(":lo", 4),
    )
    .await
    .unwrap();
    let in_list = |count: usize| {
        let names: Vec<String> = (0..count).map(|i| format!(":v{i}")).collect();
        let mut scan = Scan::new(TABLE).with_filter(format!("num IN ({})", names.join(", ")));
        for (i, name) in names.iter().enumerate() {
            scan = scan.with_value(name.clone(), i);
        }
        scan
    };
    let page = h.kv.scan(in_list(100)).await.unwrap();
    assert_eq!(page.count, 1, "num = 1 is among 0..100");
    expect_validation(
        h.kv.scan(in_list(101)).await,
        "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101",
    );
    expect_validation(
        h.kv.put_item(condition("attribute_type(num, :t)").with_value(":t", "STRING"))
            .await,
        "Invalid ConditionExpression: Invalid attribute type name found; type: STRING, valid types: ",
    );
    expect_validation(
        h.kv.put_item(condition("begins_with(num, :n)").with_value(":n", 1))
            .await,
        "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
    );
    expect_validation(
        h.kv.update_item(
            update("SET num = :s + :n")
                .with_value(":s", "1")
                .with_value(":n", 1),
        )
        .await,
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S",
    );
    expect_validation(
        h.kv.update_item(update("SET l = list_append(l, :n)").with_value(":n", 1))
            .await,
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: N",
    );
    unchanged(&h).await;
}

/// Overlapping and conflicting document paths in one update or projection; a clause used
/// twice.
pub async fn expression_update_path_errors(h: Harness) {
    setup(&h).await;
    let value = |u: UpdateItem| u.with_value(":x", 1).with_value(":y", 2);
    expect_validation(
        h.kv.update_item(update("SET num = :x REMOVE num").with_value(":x", 1))
            .await,
        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [num], path two: [num]",
    );
    expect_validation(
        h.kv.update_item(value(update("SET a.b = :x, a = :y")))
            .await,
        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a]",
    );
    expect_validation(
        h.kv.update_item(value(update("SET l[1] = :x ADD l[1] :y")))
            .await,
        "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [l, [1]], path two: [l, [1]]",
    );
    expect_validation(
        h.kv.update_item(value(update("SET a.c = :x, a[1] = :y")))
            .await,
        "Invalid UpdateExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, c], path two: [a, [1]]",
    );
    expect_validation(
        h.kv.get_item(GetItem::new(TABLE, key()).with_projection("a, a.b"))
            .await,
        "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]",
    );
    expect_validation(
        h.kv.update_item(value(update("SET num = :x SET a = :y")))
            .await,
        "Invalid UpdateExpression: The \"SET\" section can only be used once in an update expression;",
    );
    expect_validation(
        h.kv.update_item(update("REMOVE num REMOVE a")).await,
        "Invalid UpdateExpression: The \"REMOVE\" section can only be used once in an update expression;",
    );
    expect_validation(
        h.kv.update_item(
            update("ADD x :one SET a = :a ADD y :one")
                .with_value(":one", 1)
                .with_value(":a", "lore ipsum"),
        )
        .await,
        "Invalid UpdateExpression: The \"ADD\" section can only be used once in an update expression;",
    );
    // Siblings do not overlap.
    h.kv.update_item(value(update("SET a.b = :x, a.c = :y")))
        .await
        .unwrap();
}

/// ADD and DELETE take numbers (ADD only) and sets; other literal types are refused up front.
pub async fn expression_add_delete_operand_types(h: Harness) {
    setup(&h).await;
    let mut m = Mismatches::default();
    for (expression, value, message) in [
        (
            "ADD num :v",
            s("one"),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING",
        ),
        (
            "ADD l :v",
            AttributeValue::L(vec![n("1")]),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: LIST",
        ),
        (
            "ADD num :v",
            AttributeValue::Bool(true),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: BOOLEAN",
        ),
        (
            "DELETE num :v",
            n("1"),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER",
        ),
        (
            "DELETE num :v",
            s("one"),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: STRING",
        ),
    ] {
        m.validation(
            expression,
            h.kv.update_item(update(expression).with_value(":v", value))
                .await,
            message,
        );
    }
    m.finish();
    unchanged(&h).await;
}

/// No action may touch a key attribute.
pub async fn expression_key_attribute_update(h: Harness) {
    table_pk_sk(&h, TABLE, KeyAttribute::n("sk")).await;
    let key = item([("pk", s("k")), ("sk", n("1"))]);
    put(&h, TABLE, key.clone()).await;
    for (expression, attribute) in [
        ("SET pk = :v", "pk"),
        ("SET sk = :n", "sk"),
        ("REMOVE sk", "sk"),
        ("ADD sk :n", "sk"),
        ("SET extra = :n, #p = :v", "pk"),
    ] {
        let mut request = UpdateItem::new(TABLE, key.clone(), expression);
        if expression.contains(":v") {
            request = request.with_value(":v", "b");
        }
        if expression.contains(":n") {
            request = request.with_value(":n", 2);
        }
        if expression.contains("#p") {
            request = request.with_name("#p", "pk");
        }
        expect_validation(
            h.kv.update_item(request).await,
            &format!(
                "One or more parameter values were invalid: Cannot update attribute {attribute}. This attribute is part of the key"
            ),
        );
    }
    assert_eq!(get(&h, TABLE, key.clone()).await, Some(key));
}
