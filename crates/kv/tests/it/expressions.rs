//! Expression parsing: no input panics; printing and parsing round-trips.

use cloudlet_kv::expr::{parse_condition, parse_projection, parse_update};
use proptest::prelude::*;

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse_condition("ConditionExpression", &text);
        let _ = parse_update(&text);
        let _ = parse_projection(&text);
    }

    #[test]
    fn parsing_expression_like_text_never_panics(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "a", "#n", ":v", "(", ")", "[", "]", "0", "7", ".", ",", "=", "<>", "<", "<=", ">", ">=",
            "+", "-", "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE",
            "size", "begins_with", "contains", "attribute_exists", "attribute_type",
            "if_not_exists", "list_append", "status",
        ]), 0..24)
    ) {
        let text = tokens.join(" ");
        let _ = parse_condition("ConditionExpression", &text);
        let _ = parse_update(&text);
        let _ = parse_projection(&text);
    }
}

mod round_trip {
    use cloudlet_kv::AttributeValue;
    use cloudlet_kv::ValueType;
    use cloudlet_kv::expr::builder::{
        Condition, Expressions, Operand, Path, SetOperand, Update, attr, value,
    };
    use cloudlet_kv::expr::{parse_condition, parse_update};
    use proptest::prelude::*;

    fn path() -> impl Strategy<Value = Path> {
        (
            "[a-z]{1,3}",
            prop::collection::vec(
                prop_oneof!["[a-z]{1,3}".prop_map(Ok), (0u32..20).prop_map(Err)],
                0..3,
            ),
        )
            .prop_map(|(first, rest)| {
                rest.into_iter()
                    .fold(attr(first), |p, segment| match segment {
                        Ok(name) => p.field(name),
                        Err(index) => p.index(index),
                    })
            })
    }

    fn literal() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            "[a-z]{0,4}".prop_map(AttributeValue::s),
            any::<i32>().prop_map(AttributeValue::from),
            any::<bool>().prop_map(AttributeValue::from),
        ]
    }

    fn operand() -> impl Strategy<Value = Operand> {
        prop_oneof![
            path().prop_map(Operand::from),
            literal().prop_map(value),
            path().prop_map(Path::size)
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        let leaf = prop_oneof![
            (operand(), 0..6usize, operand()).prop_map(|(a, op, b)| match op {
                0 => a.eq(b),
                1 => a.ne(b),
                2 => a.lt(b),
                3 => a.le(b),
                4 => a.gt(b),
                _ => a.ge(b),
            }),
            (operand(), operand(), operand()).prop_map(|(a, l, h)| a.between(l, h)),
            (operand(), prop::collection::vec(operand(), 1..4)).prop_map(|(a, l)| a.is_in(l)),
            path().prop_map(Path::exists),
            path().prop_map(Path::not_exists),
            path().prop_map(|p| p.has_type(ValueType::SS)),
            (path(), operand()).prop_map(|(p, o)| p.begins_with(o)),
            (path(), operand()).prop_map(|(p, o)| p.contains(o)),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
                inner.prop_map(Condition::not),
            ]
        })
    }

    fn set_operand() -> impl Strategy<Value = SetOperand> {
        let leaf = prop_oneof![
            path().prop_map(SetOperand::from),
            literal().prop_map(|v| SetOperand::from(value(v)))
        ];
        leaf.prop_recursive(2, 6, 2, |inner| {
            prop_oneof![
                (path(), inner.clone()).prop_map(|(p, f)| p.if_not_exists(f)),
                (inner.clone(), inner).prop_map(|(a, b)| a.list_append(b)),
            ]
        })
    }

    fn update() -> impl Strategy<Value = Update> {
        (
            prop::collection::vec((path(), set_operand(), 0..3usize), 1..3),
            prop::collection::vec(path(), 0..2),
            prop::collection::vec((path(), literal()), 0..2),
            prop::collection::vec((path(), literal()), 0..2),
        )
            .prop_map(|(sets, removes, adds, deletes)| {
                let mut update = Update::new();
                for (p, o, kind) in sets {
                    update = match kind {
                        0 => update.set(p, o),
                        1 => update.set(p, o.plus(value(1))),
                        _ => update.set(p.clone(), p.minus(o)),
                    };
                }
                for p in removes {
                    update = update.remove(p);
                }
                for (p, v) in adds {
                    update = update.add(p, v);
                }
                for (p, v) in deletes {
                    update = update.delete(p, v);
                }
                update
            })
    }

    proptest! {
        #[test]
        fn built_conditions_print_and_parse_back(c in condition()) {
            let text = Expressions::new().condition(c).build().condition.unwrap();
            let parsed = parse_condition("ConditionExpression", &text).unwrap();
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert_eq!(parse_condition("ConditionExpression", &parsed.to_string()).unwrap(), parsed);
        }

        #[test]
        fn built_updates_print_and_parse_back(u in update()) {
            let text = Expressions::new().update(u).build().update.unwrap();
            let parsed = parse_update(&text).unwrap();
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert_eq!(parse_update(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
