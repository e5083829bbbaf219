//! Every Step Functions execution recorded on AWS (../shared/conformance/stepfunctions): each
//! case's definition runs on its input here, and the final status, output, error, cause and
//! history event types must be what AWS recorded (ignoring the redacted paths each case lists).
//!
//! A test target without the libtest harness, like DataFusion's sqllogictest runner: it prints
//! `group: N passed, M failed` per group and exits non-zero on any failure. Cases listed in
//! `tests/conformance-known-failures.txt` are expected to fail until the feature they need
//! lands; one that starts passing must be taken off the list (the run fails until it is), so
//! the list only shrinks. With `CLOUDLET_CONFORMANCE_FILTER=<substring>` only matching cases run;
//! `-v` prints every difference. When the data is not there it prints a note and passes. It
//! answers nextest's `--list` so `cargo nextest run` runs it as one test.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cloudlet_core::{ManualClock, Store};
use cloudlet_workflow::{ExecutionStatus, StateMachineType, WorkflowService};
use serde_json::Value;

const TEST_NAME: &str = "recorded_executions";

fn data_dir() -> PathBuf {
    std::env::var_os("CLOUDLET_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
        .join("stepfunctions")
}

fn known_failures() -> BTreeSet<String> {
    let text = include_str!("conformance-known-failures.txt");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes the node at an RFC 6901 pointer, if there.
fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = if parent.is_empty() {
        Some(value)
    } else {
        value.pointer_mut(parent)
    };
    match target {
        Some(Value::Object(map)) => {
            map.shift_remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items[i] = Value::Null;
            }
        }
        _ => {}
    }
}

/// The recording suite's tests that passed their histories through its Parallel
/// normalisation before storing them (the test function, without parameters).
const NORMALISED_PARALLEL_TESTS: &[&str] = &[
    "test_parallel_state",
    "test_parallel_state_order",
    "test_parallel_state_nested",
    "test_base_parallel_cases",
];

fn normalised_by_recorder(case: &Value) -> bool {
    let source = case["source"].as_str().unwrap_or_default();
    let test = source.rsplit("::").next().unwrap_or_default();
    let test = test.split('[').next().unwrap_or_default();
    NORMALISED_PARALLEL_TESTS.contains(&test)
}

/// The recording suite's Parallel normalisation, applied to our history as it was applied to
/// AWS's: at each Parallel end event, the events from just after the most recent
/// `ParallelStateStarted` up to that end event are replaced by the events collected since that
/// `ParallelStateStarted`, sorted. The replacement can be shorter than what it replaces (the
/// list shrinks while it is walked), so the recordings lack events AWS wrote: every
/// `ParallelStateSucceeded`, and the inner `ParallelStateExited` of nested Parallel states.
/// The sorting does not matter here (Parallel histories are compared as multisets); the lost
/// events do.
fn normalise_parallel(events: &mut Vec<&str>) {
    let mut start = 0;
    let mut sublist: Vec<&str> = Vec::new();
    let mut inside = false;
    let mut i = 0;
    while i < events.len() {
        match events[i] {
            "ParallelStateSucceeded"
            | "ParallelStateAborted"
            | "ParallelStateExited"
            | "ParallelStateFailed" => {
                let mut sorted = sublist.clone();
                sorted.sort_unstable();
                let end = i.max(start);
                events.splice(start..end, sorted);
                inside = false;
            }
            "ParallelStateStarted" => {
                inside = true;
                sublist.clear();
                start = i + 1;
            }
            other if inside => sublist.push(other),
            _ => {}
        }
        i += 1;
    }
}

async fn run_case(case: &Value) -> Result<(), String> {
    let clock = ManualClock::default();
    let sfn = WorkflowService::new(Store::memory(), clock.shared());
    let kind = match case["state_machine_type"].as_str() {
        Some("EXPRESS") => StateMachineType::Express,
        _ => StateMachineType::Standard,
    };
    let definition = case["definition"].to_string();
    let machine = sfn
        .create_state_machine("conformance", &definition, kind)
        .await
        .map_err(|e| format!("create_state_machine: {e}"))?;
    let input = case["input"].to_string();
    let arn = sfn
        .start_execution(&machine, Some("case"), &input)
        .await
        .map_err(|e| format!("start_execution: {e}"))?;
    let done = sfn.wait_for_execution(&arn);
    tokio::pin!(done);
    let mut spins = 0u32;
    let description = loop {
        tokio::select! {
            biased;
            d = &mut done => break d.map_err(|e| e.to_string())?,
            () = tokio::task::yield_now() => {
                spins += 1;
                if spins.is_multiple_of(16) && clock.advance_to_next().is_none() && spins > 100_000 {
                    return Err("the execution never finished".into());
                }
            }
        }
    };
    let expected = &case["expected"];
    let mut actual = serde_json::Map::new();
    let status = match description.status {
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
        ExecutionStatus::Running => "RUNNING",
    };
    actual.insert("status".into(), Value::from(status));
    if let Some(o) = description.output {
        actual.insert("output".into(), o);
    }
    if let Some(e) = description.error {
        actual.insert("error".into(), Value::from(e));
    }
    if let Some(c) = description.cause {
        actual.insert("cause".into(), Value::from(c));
    }
    let mut actual = Value::Object(actual);
    let mut expected = expected.clone();
    for pointer in case["ignore_pointers"].as_array().into_iter().flatten() {
        let pointer = pointer.as_str().unwrap_or_default();
        remove_pointer(&mut expected, pointer);
        remove_pointer(&mut actual, pointer);
    }
    let mut problems = Vec::new();
    if actual != expected {
        problems.push(format!(
            "result differs:\n      expected {expected}\n      actual   {actual}"
        ));
    }
    if let Some(types) = case["history_types"].as_array() {
        let expected: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        let history = sfn.get_execution_history(&arn).map_err(|e| e.to_string())?;
        let mut actual: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        if normalised_by_recorder(case) {
            normalise_parallel(&mut actual);
        }
        let same = if case["history_order_deterministic"] == Value::Bool(false) {
            let count = |v: &[&str]| {
                let mut m = BTreeMap::new();
                for t in v {
                    *m.entry(t.to_string()).or_insert(0) += 1;
                }
                m
            };
            count(&expected) == count(&actual)
        } else {
            expected == actual
        };
        if !same {
            problems.push(format!(
                "history differs:\n      expected {expected:?}\n      actual   {actual:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{TEST_NAME}: test");
        }
        return ExitCode::SUCCESS;
    }
    let verbose = args.iter().any(|a| a == "-v");
    if args
        .iter()
        .skip(1)
        .any(|a| !a.starts_with('-') && !TEST_NAME.contains(a.as_str()))
    {
        return ExitCode::SUCCESS;
    }
    let dir = data_dir().join("cases");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "stepfunctions: skipped, the recorded data ({}) is not here",
            dir.display()
        );
        return ExitCode::SUCCESS;
    };
    let filter = std::env::var("CLOUDLET_CONFORMANCE_FILTER").ok();
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let known = known_failures();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for path in paths {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap_or_default().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let group = name.split("__").next().unwrap_or_default().to_string();
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), run_case(&case))
                .await
                .unwrap_or_else(|_| Err("timed out after 60 s of real time".into()))
        });
        let tally = groups.entry(group).or_default();
        match outcome {
            Ok(()) => {
                tally.0 += 1;
                if known.contains(&name) {
                    fixed.push(name);
                }
            }
            Err(why) => {
                tally.1 += 1;
                if !known.contains(&name) {
                    unexpected.push(name.clone());
                }
                if verbose || !known.contains(&name) {
                    println!("FAIL {name}\n    {why}");
                }
            }
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for (group, (p, f)) in &groups {
        println!("{group}: {p} passed, {f} failed");
        passed += p;
        failed += f;
    }
    println!(
        "stepfunctions: {passed} passed, {failed} failed ({} known failures listed)",
        known.len()
    );
    for name in &fixed {
        println!("NOW PASSES (take it off tests/conformance-known-failures.txt): {name}");
    }
    if unexpected.is_empty() && fixed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
