//! The definition parser and the JSONPath and intrinsic evaluators never panic, whatever the
//! input: every definition is either accepted or rejected with problems, and every accepted
//! one runs to an end.

use cloudlet_core::{ManualClock, Store};
use cloudlet_workflow::{StateMachineType, WorkflowService, validate_definition};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        "[a-z$.\\[\\]*'0-9 ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Paths and intrinsic calls, well-formed or not.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\$(\\.[a-z]{1,3}|\\[[0-9-]{1,2}\\]|\\[\\*\\]|\\.\\.[a-z]|\\[\\?\\(@\\.[a-z] [<>=]=? [0-9]\\)\\]|\\['[a-z ]{0,3}'\\]){0,4}",
        "\\$\\$\\.(Execution|State|Map)(\\.[A-Za-z]{1,5}){0,2}",
        "States\\.(Format|Array|ArrayRange|MathAdd|StringSplit|JsonMerge|Hash|ArrayGetItem|Base64Decode|StringToJson|Nope)\\(([$.a-z0-9', ]|States\\.Array\\(\\)){0,20}\\)?",
        "[$a-zA-Z.()\\[\\]'{},0-9 ]{0,24}",
    ]
}

fn pass_machine(parameters: Value) -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": parameters, "End": true}}})
}

/// Inputs that once panicked or overflowed: each now ends the execution cleanly.
#[test]
fn hostile_inputs_end_cleanly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sfn = WorkflowService::new(Store::memory(), ManualClock::starting_2025().shared());
        let cases = [
            (json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$[1::9223372036854775807]", "End": true}}}), json!([1, 2, 3])),
            (json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.t", "IsTimestamp": true, "Next": "P"}], "Default": "P"}, "P": {"Type": "Pass", "End": true}}}), json!({"t": "2016-03-14T01:59:00+0é00"})),
            (pass_machine(json!({"v.$": "States.ArrayRange(9223372036854775806, 9223372036854775807, 5)"})), json!({})),
            (pass_machine(json!({"v.$": "States.MathRandom(-9223372036854775807, 9223372036854775807)"})), json!({})),
        ];
        for (definition, input) in cases {
            let machine = sfn
                .create_state_machine("hostile", &definition.to_string(), StateMachineType::Express)
                .await
                .unwrap();
            let done = sfn.start_sync_execution(&machine, None, &input.to_string()).await.unwrap();
            assert_ne!(done.status, cloudlet_workflow::ExecutionStatus::Running);
            sfn.delete_state_machine(&machine).await.unwrap();
        }
        // Array literals nested 5,000 deep in a filter are refused, not a stack overflow.
        let arrays = format!("$.a[?(@.b in {}'x'{})]", "[".repeat(5000), "]".repeat(5000));
        let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": arrays, "End": true}}});
        assert!(!validate_definition(&definition.to_string()).is_empty());
        // A filter nested 200,000 deep is refused, not a stack overflow.
        let deep = format!("$[?({}@.a)]", "!".repeat(200_000));
        let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": deep, "End": true}}});
        assert!(!validate_definition(&definition.to_string()).is_empty());
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_the_validator(definition in json_value()) {
        let _ = validate_definition(&definition.to_string());
        let wrapped = json!({"StartAt": "A", "States": {"A": definition}});
        let _ = validate_definition(&wrapped.to_string());
    }

    #[test]
    fn paths_and_intrinsics_never_panic(expr in expression(), input in json_value()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sfn = WorkflowService::new(Store::memory(), ManualClock::starting_2025().shared());
            for definition in [
                pass_machine(json!({"v.$": expr})),
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": expr, "OutputPath": expr, "End": true}}}),
                json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": expr, "IsPresent": true, "Next": "P"}], "Default": "P"}, "P": {"Type": "Pass", "End": true}}}),
            ] {
                let Ok(machine) = sfn
                    .create_state_machine("fuzz", &definition.to_string(), StateMachineType::Express)
                    .await
                else {
                    continue;
                };
                let done = sfn.start_sync_execution(&machine, None, &input.to_string()).await.unwrap();
                assert_ne!(done.status, cloudlet_workflow::ExecutionStatus::Running);
                sfn.delete_state_machine(&machine).await.unwrap();
            }
        });
    }
}
