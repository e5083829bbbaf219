//! Filter policies: each operator from the AWS documentation, and properties. The verdicts
//! recorded on AWS run in their own target, `tests/filter_policies.rs`.

use std::collections::BTreeMap;

use cloudlet_core::MessageAttribute;
use cloudlet_pubsub::{FilterPolicy, FilterPolicyScope, PolicySet};
use proptest::prelude::*;

fn attrs(pairs: &[(&str, MessageAttribute)]) -> BTreeMap<String, MessageAttribute> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// One case per operator, from the examples in the SNS documentation.
#[test]
fn each_operator_on_attributes() {
    let s = MessageAttribute::string;
    let n = MessageAttribute::number;
    let array = |json: &str| MessageAttribute::string(json).with_custom_type("Array");
    let cases: Vec<(&str, BTreeMap<String, MessageAttribute>, bool)> = vec![
        (
            r#"{"store": ["example_corp"]}"#,
            attrs(&[("store", s("example_corp"))]),
            true,
        ),
        (
            r#"{"store": ["example_corp"]}"#,
            attrs(&[("store", s("other"))]),
            false,
        ),
        (r#"{"store": ["example_corp"]}"#, attrs(&[]), false),
        (r#"{"price": [100]}"#, attrs(&[("price", n("100.0"))]), true),
        (r#"{"price": [100]}"#, attrs(&[("price", s("100"))]), false),
        (
            r#"{"event": [{"anything-but": ["order_cancelled", "order_failed"]}]}"#,
            attrs(&[("event", s("order_placed"))]),
            true,
        ),
        (
            r#"{"event": [{"anything-but": ["order_cancelled", "order_failed"]}]}"#,
            attrs(&[("event", s("order_failed"))]),
            false,
        ),
        (
            r#"{"event": [{"anything-but": ["order_cancelled"]}]}"#,
            attrs(&[]),
            false,
        ),
        (
            r#"{"price": [{"anything-but": [100, 500]}]}"#,
            attrs(&[("price", n("200"))]),
            true,
        ),
        (
            r#"{"price": [{"anything-but": [100, 500]}]}"#,
            attrs(&[("price", n("500"))]),
            false,
        ),
        (
            r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#,
            attrs(&[("event", s("order-x"))]),
            false,
        ),
        (
            r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#,
            attrs(&[("event", s("refund-x"))]),
            true,
        ),
        (
            r#"{"customer_interests": [{"prefix": "bas"}]}"#,
            attrs(&[("customer_interests", s("baseball"))]),
            true,
        ),
        (
            r#"{"customer_interests": [{"suffix": "ball"}]}"#,
            attrs(&[("customer_interests", s("baseball"))]),
            true,
        ),
        (
            r#"{"customer_interests": [{"suffix": "ball"}]}"#,
            attrs(&[("customer_interests", s("rugby"))]),
            false,
        ),
        (
            r#"{"customer_interests": [{"equals-ignore-case": "tennis"}]}"#,
            attrs(&[("customer_interests", s("TENNIS"))]),
            true,
        ),
        (
            r#"{"price": [{"numeric": ["=", 301.5]}]}"#,
            attrs(&[("price", n("301.50"))]),
            true,
        ),
        (
            r#"{"price": [{"numeric": ["<", 0]}]}"#,
            attrs(&[("price", n("-1"))]),
            true,
        ),
        (
            r#"{"price": [{"numeric": ["<=", 0]}]}"#,
            attrs(&[("price", n("0"))]),
            true,
        ),
        (
            r#"{"price": [{"numeric": [">", 0, "<", 100]}]}"#,
            attrs(&[("price", n("100"))]),
            false,
        ),
        (
            r#"{"price": [{"numeric": [">=", 0, "<=", 100]}]}"#,
            attrs(&[("price", n("100"))]),
            true,
        ),
        (
            r#"{"price": [{"numeric": [">", 0]}]}"#,
            attrs(&[("price", s("5"))]),
            false,
        ),
        (
            r#"{"store": [{"exists": true}]}"#,
            attrs(&[("store", s("x"))]),
            true,
        ),
        (
            r#"{"store": [{"exists": false}]}"#,
            attrs(&[("store", s("x"))]),
            false,
        ),
        // A message without attributes matches no attribute-scope policy.
        (r#"{"store": [{"exists": false}]}"#, attrs(&[]), false),
        (
            r#"{"store": [{"exists": false}]}"#,
            attrs(&[("other", s("x"))]),
            true,
        ),
        (
            r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#,
            attrs(&[("source_ip", s("10.0.0.255"))]),
            true,
        ),
        (
            r#"{"source_ip": [{"cidr": "10.0.0.0/24"}]}"#,
            attrs(&[("source_ip", s("10.0.1.0"))]),
            false,
        ),
        (
            r#"{"source_ip": [{"cidr": "2001:db8:1234:1a00::/64"}]}"#,
            attrs(&[("source_ip", s("2001:db8:1234:1a00::1"))]),
            true,
        ),
        (
            r#"{"interests": ["rugby", "tennis"]}"#,
            attrs(&[("interests", array(r#"["soccer", "tennis"]"#))]),
            true,
        ),
        (
            r#"{"interests": ["rugby"]}"#,
            attrs(&[("interests", array(r#"["soccer", "tennis"]"#))]),
            false,
        ),
        (
            r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
            attrs(&[("source", s("aws.cloudwatch")), ("namespace", s("AWS/EC2"))]),
            true,
        ),
        (
            r#"{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]}"#,
            attrs(&[("source", s("aws.cloudwatch"))]),
            false,
        ),
        (
            r#"{"store": ["a"], "event": ["b"]}"#,
            attrs(&[("store", s("a")), ("event", s("c"))]),
            false,
        ),
        (
            r#"{"payload": [{"exists": true}]}"#,
            attrs(&[("payload", MessageAttribute::binary(vec![1u8]))]),
            false,
        ),
    ];
    for (policy, attributes, expected) in cases {
        let compiled = FilterPolicy::parse(policy, FilterPolicyScope::MessageAttributes).unwrap();
        assert_eq!(
            compiled.matches_attributes(&attributes),
            expected,
            "{policy} on {attributes:?}"
        );
    }
}

#[test]
fn each_operator_on_bodies() {
    let cases = [
        (
            r#"{"store": {"name": ["example_corp"]}}"#,
            r#"{"store": {"name": "example_corp"}}"#,
            true,
        ),
        (
            r#"{"items": {"sku": [{"prefix": "A-"}]}}"#,
            r#"{"items": [{"sku": "B-1"}, {"sku": "A-2"}]}"#,
            true,
        ),
        (r#"{"flag": [true]}"#, r#"{"flag": true}"#, true),
        (r#"{"flag": [true]}"#, r#"{"flag": "true"}"#, false),
        (r#"{"gone": [null]}"#, r#"{"gone": null}"#, true),
        (r#"{"a.b": ["x"]}"#, r#"{"a": {"b": "x"}}"#, true),
        (r#"{"a.b": ["x"]}"#, r#"{"a.b": "x"}"#, true),
        (
            r#"{"price": [{"numeric": [">", 10]}]}"#,
            r#"{"price": [5, 20]}"#,
            true,
        ),
        (
            r#"{"missing": {"deep": [{"exists": false}]}}"#,
            r#"{"other": 1}"#,
            true,
        ),
        (r#"{"store": ["x"]}"#, r#"[{"store": "x"}]"#, false),
        (r#"{"store": ["x"]}"#, "not json", false),
    ];
    for (policy, body, expected) in cases {
        let compiled = FilterPolicy::parse(policy, FilterPolicyScope::MessageBody).unwrap();
        assert_eq!(compiled.matches_body(body), expected, "{policy} on {body}");
    }
}

#[test]
fn policies_over_256_kib_are_refused() {
    let values: Vec<String> = (0..30_000).map(|i| format!("\"value-{i:05}\"")).collect();
    let text = format!("{{\"key\": [{}]}}", values.join(", "));
    assert!(text.len() > 256 * 1024);
    let refused = FilterPolicy::parse(&text, FilterPolicyScope::MessageAttributes).unwrap_err();
    assert!(
        refused.to_string().contains("Filter policy is too long"),
        "{refused}"
    );
}

#[test]
fn nested_policies_need_the_body_scope() {
    let nested = r#"{"store": {"name": ["example_corp"]}}"#;
    assert!(FilterPolicy::parse(nested, FilterPolicyScope::MessageAttributes).is_err());
    let policy = FilterPolicy::parse(nested, FilterPolicyScope::MessageBody).unwrap();
    assert!(policy.matches_body(r#"{"store": {"name": "example_corp"}}"#));
    assert!(!policy.matches_body(r#"{"store": {"name": "other"}}"#));
    assert!(!policy.matches_body("not json"));
}

proptest! {
    #[test]
    fn parsing_arbitrary_json_never_panics(text in "\\PC{0,60}") {
        let _ = FilterPolicy::parse(&text, FilterPolicyScope::MessageBody);
        let _ = FilterPolicy::parse(&text, FilterPolicyScope::MessageAttributes);
    }

    #[test]
    fn policy_shaped_json_never_panics(
        key in "[a-z$]{1,4}",
        operator in prop::sample::select(vec!["prefix", "suffix", "numeric", "anything-but", "exists", "cidr", "equals-ignore-case", "x"]),
        argument in prop::sample::select(vec!["1", "\"a\"", "[]", "[\">\", 1, \"<\", 0]", "[\"=\"]", "{\"prefix\": 1}", "true", "null", "\"10.0.0.0/33\"", "\"::1/200\""]),
        body in "\\PC{0,40}",
    ) {
        let text = format!("{{\"{key}\": [{{\"{operator}\": {argument}}}]}}");
        if let Ok(policy) = FilterPolicy::parse(&text, FilterPolicyScope::MessageBody) {
            let _ = policy.matches_body(&body);
        }
    }
}

/// A policy from a small vocabulary, so random messages match it often enough.
fn policy() -> impl Strategy<Value = (String, FilterPolicyScope)> {
    let key = prop::sample::select(vec!["a", "b", "c"]);
    let condition = prop::sample::select(vec![
        r#""x""#,
        r#""y""#,
        "1",
        r#"{"prefix": "x"}"#,
        r#"{"exists": false}"#,
        r#"{"anything-but": "y"}"#,
        r#"{"numeric": [">", 0]}"#,
    ]);
    let entry = (key, prop::collection::vec(condition, 1..3))
        .prop_map(|(k, cs)| format!("\"{k}\": [{}]", cs.join(", ")));
    (
        prop::collection::vec(entry, 1..3),
        prop::sample::select(vec![
            FilterPolicyScope::MessageAttributes,
            FilterPolicyScope::MessageBody,
        ]),
    )
        .prop_map(|(entries, scope)| (format!("{{{}}}", entries.join(", ")), scope))
}

proptest! {
    #[test]
    fn the_index_agrees_with_evaluating_every_policy(
        policies in prop::collection::vec(prop::option::of(policy()), 0..30),
        values in prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), prop::sample::select(vec!["x", "y", "xy", "1", "2"]), any::<bool>()), 0..3),
    ) {
        let compiled: Vec<(usize, Option<FilterPolicy>)> = policies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                None => Some((i, None)),
                Some((text, scope)) => FilterPolicy::parse(text, *scope).ok().map(|p| (i, Some(p))),
            })
            .collect();
        let attributes: BTreeMap<String, MessageAttribute> = values
            .iter()
            .map(|(k, v, number)| {
                let attribute = if *number && v.parse::<f64>().is_ok() {
                    MessageAttribute::number(*v)
                } else {
                    MessageAttribute::string(*v)
                };
                ((*k).to_owned(), attribute)
            })
            .collect();
        let body = serde_json::to_string(
            &values.iter().map(|(k, v, number)| {
                let value = match v.parse::<f64>() {
                    Ok(n) if *number => serde_json::json!(n),
                    _ => serde_json::json!(v),
                };
                ((*k).to_owned(), value)
            }).collect::<serde_json::Map<_, _>>(),
        ).unwrap();
        let naive: Vec<usize> = compiled
            .iter()
            .filter(|(_, p)| p.as_ref().is_none_or(|p| p.matches(&body, &attributes)))
            .map(|(i, _)| *i)
            .collect();
        let set = PolicySet::from_entries(compiled.clone());
        prop_assert_eq!(set.matching(&body, &attributes), naive);
    }
}
