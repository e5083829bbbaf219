//! Every SNS filter-policy verdict recorded on AWS (../shared/conformance/sns-filter-policies):
//! each recorded policy and message must match or not as AWS decided, each policy AWS rejected
//! must be rejected with the same reason, each policy AWS accepted must be accepted.
//!
//! A test target without the libtest harness: it prints `filter-policies: N passed, M failed`
//! and exits non-zero on any failure. When the data is not there it prints a note and passes.
//! It answers nextest's `--list` so `cargo nextest run` runs it as one test.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use cloudlet_core::MessageAttribute;
use cloudlet_pubsub::{Error, FilterPolicy, FilterPolicyScope};
use serde_json::Value;

const TEST_NAME: &str = "recorded_filter_policies";

/// The recorded data: `CLOUDLET_CONFORMANCE_DIR`, or `shared/conformance` beside the checkout.
fn data(file: &str) -> Option<Vec<Value>> {
    let base = std::env::var_os("CLOUDLET_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let path = base.join("sns-filter-policies").join(file);
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
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

/// The reason after `FilterPolicy: ` (the prefix before it differs between the APIs AWS was
/// called through).
fn reason(message: &str) -> String {
    message
        .rsplit_once("FilterPolicy: ")
        .map_or(message, |(_, r)| r)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Runs every case; returns the failures.
fn run(cases: &[Value], invalid: &[Value], valid: &[Value]) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut check = |ok: bool, failure: String| {
        if ok {
            passed += 1;
        } else {
            failures.push(failure);
        }
    };
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        match FilterPolicy::parse(&policy_text(case), scope(case).unwrap()) {
            Ok(policy) => {
                let matched = policy.matches(&body(case), &attributes(case));
                let expected = case["expected_match"].as_bool().unwrap();
                check(
                    matched == expected,
                    format!("{name}: matched {matched}, AWS {expected}"),
                );
            }
            Err(error) => check(false, format!("{name}: rejected a valid policy: {error}")),
        }
    }
    for case in invalid {
        let name = case["name"].as_str().unwrap_or("?");
        let expected = case["error_message_first_line"]
            .as_str()
            .or_else(|| case["error_message"].as_str())
            .unwrap_or_default();
        let Some(scope) = scope(case) else {
            // The scope itself is the invalid value.
            let value = case["scope_value"].as_str().unwrap_or("RandomValue");
            let ok = matches!(value.parse::<FilterPolicyScope>(),
                Err(Error::InvalidParameter { ref message, .. }) if message == expected);
            check(
                ok,
                format!("{name}: scope `{value}` not refused as AWS refused it"),
            );
            continue;
        };
        match FilterPolicy::parse(&policy_text(case), scope) {
            Ok(_) => check(false, format!("{name}: accepted")),
            Err(_) if expected.is_empty() => check(true, String::new()),
            Err(Error::InvalidParameter { message, .. }) => {
                let (ours, theirs) = (reason(&message), reason(expected));
                let both_json = theirs.starts_with("failed to parse JSON")
                    && ours.starts_with("failed to parse JSON");
                check(
                    ours == theirs || both_json,
                    format!("{name}: ours `{ours}`, AWS `{theirs}`"),
                );
            }
            Err(other) => check(false, format!("{name}: {other}")),
        }
    }
    for case in valid {
        let name = case["name"].as_str().unwrap_or("?");
        let result = FilterPolicy::parse(&policy_text(case), scope(case).unwrap());
        check(result.is_ok(), format!("{name}: rejected: {result:?}"));
    }
    (passed, failures)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // nextest's protocol: one test, and no ignored ones.
        if !args.iter().any(|a| a == "--ignored") {
            println!("{TEST_NAME}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filtered_out = args
        .iter()
        .skip(1)
        .any(|a| !a.starts_with('-') && !TEST_NAME.contains(a.as_str()));
    if filtered_out {
        return ExitCode::SUCCESS;
    }
    let (Some(cases), Some(invalid), Some(valid)) = (
        data("cases.json"),
        data("invalid-policies.json"),
        data("valid-policies.json"),
    ) else {
        println!(
            "filter-policies: skipped, the recorded data (../shared/conformance/sns-filter-policies) is not here"
        );
        return ExitCode::SUCCESS;
    };
    let (passed, failures) = run(&cases, &invalid, &valid);
    for failure in &failures {
        println!("  {failure}");
    }
    println!(
        "filter-policies: {passed} passed, {} failed",
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
