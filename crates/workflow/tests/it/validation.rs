//! A corpus of invalid definitions: each is rejected, and the problems name the offending
//! field by its JSON path, as statelint does. Valid definitions pass.

use cloudlet_workflow::validate_definition;
use serde_json::{Value, json};

fn pass(next: &str) -> Value {
    json!({"Type": "Pass", "Next": next})
}

/// (definition, path of a reported problem, words the message holds)
fn corpus() -> Vec<(Value, &'static str, &'static str)> {
    vec![
        (
            json!({"States": {"A": {"Type": "Pass", "End": true}}}),
            "$",
            "StartAt",
        ),
        (json!({"StartAt": "A"}), "$", "States"),
        (
            json!({"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": true}}}),
            "$.StartAt",
            "not a state",
        ),
        (
            json!({"StartAt": "A", "States": {"A": pass("Missing")}}),
            "$.States.A.Next",
            "not a state",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "Orphan": {"Type": "Pass", "End": true}}}),
            "$.States.Orphan",
            "not reachable",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
            "$.States.A",
            "Next or End",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A", "End": true}}}),
            "$.States.A",
            "not both",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Dance", "End": true}}}),
            "$.States.A.Type",
            "not a state type",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [], "Default": "A"}}}),
            "$.States.A.Choices",
            "non-empty",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}]}}}),
            "$.States.A.Choices[0]",
            "operator",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "1", "Next": "A"}]}}}),
            "$.States.A.Choices[0].NumericEquals",
            "Numeric",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Not": {"Variable": "$.x", "IsNull": true, "Next": "A"}, "Next": "A"}]}}}),
            "$.States.A.Choices[0].Not.Next",
            "nested",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
            "$.States.A.Retry[0].ErrorEquals",
            "last",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}}}),
            "$.States.A.Retry[0].ErrorEquals",
            "alone",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Catch": [{"ErrorEquals": ["States.Made.Up"], "Next": "A"}]}}}),
            "$.States.A.Catch[0].ErrorEquals[0]",
            "predefined",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}}}),
            "$.States.A.Retry[0].BackoffRate",
            "1.0",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "TimeoutSeconds": 10, "HeartbeatSeconds": 10}}}),
            "$.States.A.HeartbeatSeconds",
            "smaller",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "End": true}}}),
            "$.States.A.Resource",
            "Resource",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "ResultPath": "$.a[*]"}}}),
            "$.States.A.ResultPath",
            "reference path",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "InputPath": "a.b"}}}),
            "$.States.A.InputPath",
            "JSONPath",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Nope(1)"}}}}),
            "$.States.A.Parameters.x.$",
            "intrinsic",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "End": true}}}),
            "$.States.A",
            "exactly one",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 5, "SecondsPath": "$.s", "End": true}}}),
            "$.States.A",
            "mutually exclusive",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Timestamp": "yesterday", "End": true}}}),
            "$.States.A.Timestamp",
            "ISO-8601",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Next": "A"}}}),
            "$.States.A.Next",
            "not allowed",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Fail", "Error": 5}}}),
            "$.States.A.Error",
            "string",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": [], "End": true}}}),
            "$.States.A.Branches",
            "non-empty",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "B", "States": {"B": pass("C")}}]}}}),
            "$.States.A.Branches[0].States.B.Next",
            "not a state",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Pass"}}}}}}),
            "$.States.A.ItemProcessor.States.B",
            "Next or End",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true, "ItemReader": {}, "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}}}}),
            "$.States.A.ItemProcessor.ProcessorConfig.Mode",
            "INLINE",
        ),
        (
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.x", "End": true}}}),
            "$.States.A.InputPath",
            "JSONata",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {"x": 1}, "End": true}}}),
            "$.States.A.Output",
            "JSONPath",
        ),
        (
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}}),
            "$.States.A.QueryLanguage",
            "cannot use JSONPath",
        ),
        (
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $states.input.( %}", "End": true}}}),
            "$.States.A.Output",
            "invalid JSONata",
        ),
        (
            json!({"StartAt": "A", "TimeoutSeconds": 0, "States": {"A": {"Type": "Pass", "End": true}}}),
            "$.TimeoutSeconds",
            "positive",
        ),
        (
            json!({"StartAt": "A", "Extra": 1, "States": {"A": {"Type": "Pass", "End": true}}}),
            "$.Extra",
            "not allowed",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "ResultPath": "$$.x", "End": true}}}),
            "$.States.A.ResultPath",
            "state's input",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "TimeoutSeconds": "soon", "End": true}}}),
            "$.States.A.TimeoutSeconds",
            "integer",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "MaxConcurrency": -3, "End": true, "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}}}}),
            "$.States.A.MaxConcurrency",
            "non-negative",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "ToleratedFailurePercentage": 250, "End": true, "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}}}}),
            "$.States.A.ToleratedFailurePercentage",
            "0 to 100",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}]}}}),
            "$.States.A.Branches[0].States.A",
            "used twice",
        ),
    ]
}

#[test]
fn invalid_definitions_are_rejected_with_the_offending_path() {
    for (definition, path, words) in corpus() {
        let problems = validate_definition(&definition.to_string());
        assert!(
            problems
                .iter()
                .any(|p| p.path == path && p.message.contains(words)),
            "{definition}\n  expected a problem at {path} mentioning {words:?}\n  got {problems:#?}"
        );
    }
}

#[test]
fn definitions_over_one_mebibyte_are_refused() {
    let big = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "x".repeat(1 << 20), "End": true}}});
    let problems = validate_definition(&big.to_string());
    assert!(
        problems
            .iter()
            .any(|p| p.path == "$" && p.message.contains("1048576")),
        "{problems:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let definition = json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "Gone"},
            "B": {"Type": "Wait", "End": true},
            "C": {"Type": "Choice", "Choices": []}
        }
    });
    let problems = validate_definition(&definition.to_string());
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in ["$.States.A.Next", "$.States.B", "$.States.C.Choices"] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn valid_definitions_pass() {
    let valid = [
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}),
        json!({"Comment": "c", "Version": "1.0", "TimeoutSeconds": 60, "StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "r", "TimeoutSecondsPath": "$.t", "HeartbeatSeconds": 5,
                  "Retry": [{"ErrorEquals": ["X"], "MaxDelaySeconds": 10, "JitterStrategy": "FULL"}, {"ErrorEquals": ["States.ALL"]}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"And": [{"Variable": "$.a", "IsPresent": true}, {"Variable": "$.b", "StringMatches": "x*"}], "Next": "S"}], "Default": "F"},
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('{}', $.c)"}
        }}),
        json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {
            "M": {"Type": "Map", "Items": "{% $states.input.xs %}", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input * 2 %}", "End": true}}}, "Assign": {"n": "{% $count($states.result) %}"}, "End": true}
        }}),
    ];
    for definition in valid {
        let problems = validate_definition(&definition.to_string());
        assert!(problems.is_empty(), "{definition}: {problems:#?}");
    }
}
