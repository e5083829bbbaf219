//! Filter policies against the SNS verdicts recorded on AWS in ../shared/conformance (read only
//! when it is there; the test skips with a note otherwise), plus properties of our own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cloudlet_core::MessageAttribute;
use cloudlet_pubsub::{Error, FilterPolicy, FilterPolicyScope};
use proptest::prelude::*;
use serde_json::Value;

/// The recorded data: `CLOUDLET_CONFORMANCE_DIR`, or `shared/conformance` beside the checkout.
fn data(file: &str) -> Option<Vec<Value>> {
    let base = std::env::var_os("CLOUDLET_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let path = base.join("sns-filter-policies").join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap()),
        Err(_) => {
            println!(
                "skipped: no recorded SNS filter policy data at {}",
                path.display()
            );
            None
        }
    }
}

fn scope(case: &Value) -> Option<FilterPolicyScope> {
    match case["scope"].as_str()? {
        "MessageBody" => Some(FilterPolicyScope::MessageBody),
        _ => Some(FilterPolicyScope::MessageAttributes),
    }
}

fn policy_text(case: &Value) -> String {
    case["policy_text"]
        .as_str()
        .map_or_else(|| case["policy"].to_string(), str::to_owned)
}

fn attributes(case: &Value) -> BTreeMap<String, MessageAttribute> {
    let Some(map) = case["message_attributes"].as_object() else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(name, attribute)| {
            let data_type = attribute["DataType"].as_str().unwrap_or("String");
            let text = attribute["StringValue"].as_str().unwrap_or_default();
            let value = match data_type.split('.').next() {
                Some("Number") => MessageAttribute::number(text),
                Some("Binary") => MessageAttribute::binary(text.as_bytes().to_vec()),
                _ => MessageAttribute::string(text),
            };
            let value = match data_type.split_once('.') {
                Some((_, custom)) => value.with_custom_type(custom),
                None => value,
            };
            (name.clone(), value)
        })
        .collect()
}

fn body(case: &Value) -> String {
    match &case["message"] {
        Value::String(text) => text.clone(),
        _ => case["message_body"].to_string(),
    }
}

#[test]
fn recorded_verdicts_match() {
    let Some(cases) = data("cases.json") else {
        return;
    };
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        let policy = match FilterPolicy::parse(&policy_text(case), scope(case).unwrap()) {
            Ok(policy) => policy,
            Err(error) => {
                wrong.push(format!("{name}: rejected a valid policy: {error}"));
                continue;
            }
        };
        let matched = policy.matches(&body(case), &attributes(case));
        if matched != case["expected_match"].as_bool().unwrap() {
            wrong.push(format!("{name}: matched {matched}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn recorded_invalid_policies_are_rejected_with_the_same_reason() {
    let Some(cases) = data("invalid-policies.json") else {
        return;
    };
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        let expected = case["error_message_first_line"]
            .as_str()
            .or_else(|| case["error_message"].as_str())
            .unwrap_or_default();
        let Some(scope) = scope(case) else {
            // The scope itself is the invalid value.
            let value = case["scope_value"].as_str().unwrap_or("RandomValue");
            match value.parse::<FilterPolicyScope>() {
                Err(Error::InvalidParameter { message, .. }) if message == expected => {}
                other => wrong.push(format!("{name}: {other:?}")),
            }
            continue;
        };
        match FilterPolicy::parse(&policy_text(case), scope) {
            Ok(_) => wrong.push(format!("{name}: accepted")),
            Err(_) if expected.is_empty() => {}
            Err(Error::InvalidParameter { message, .. }) => {
                // The prefix before the reason differs between the API paths AWS was called
                // through; the reason after it is what must agree.
                let reason = |m: &str| {
                    m.rsplit_once("FilterPolicy: ")
                        .map_or(m, |(_, r)| r)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                };
                let (ours, theirs) = (reason(&message), reason(expected));
                let json_error = theirs.starts_with("failed to parse JSON");
                if ours != theirs && !(json_error && ours.starts_with("failed to parse JSON")) {
                    wrong.push(format!("{name}: ours `{ours}`, AWS `{theirs}`"));
                }
            }
            Err(other) => wrong.push(format!("{name}: {other}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn recorded_valid_policies_are_accepted() {
    let Some(cases) = data("valid-policies.json") else {
        return;
    };
    for case in &cases {
        let result = FilterPolicy::parse(&policy_text(case), scope(case).unwrap());
        assert!(result.is_ok(), "{}: {result:?}", case["name"]);
    }
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
