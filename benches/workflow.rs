//! Workflow benchmarks: state transitions per second of a 10-state Pass chain in memory
//! (Express, and Standard journaled to the memory engine) and durably (Standard on redb, 100
//! executions at once, every transition journaled with group commit), and the wall time and
//! peak memory of a Map of 10,000 items over a trivial task. `cargo bench --bench workflow`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cloudlet::workflow::{ExecutionStatus, StateMachineType, WorkflowService};
use cloudlet::{ManualClock, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use support::{concurrently, runtime};

/// Ten Pass states in a row, each shaping its input a little.
fn pass_chain() -> String {
    let mut states = serde_json::Map::new();
    for i in 0..10 {
        let mut state = json!({"Type": "Pass", "Parameters": {"step": i, "value.$": "$.value"}});
        if i < 9 {
            state["Next"] = json!(format!("S{}", i + 1));
        } else {
            state["End"] = json!(true);
        }
        states.insert(format!("S{i}"), state);
    }
    json!({"StartAt": "S0", "States": states}).to_string()
}

fn in_memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("workflow_memory");
    group.throughput(Throughput::Elements(10));
    for (name, kind) in [
        ("pass_chain_express", StateMachineType::Express),
        (
            "pass_chain_standard_memory_engine",
            StateMachineType::Standard,
        ),
    ] {
        let sfn = WorkflowService::new(Store::memory(), ManualClock::default().shared());
        let machine = rt
            .block_on(sfn.create_state_machine("chain", &pass_chain(), kind))
            .unwrap();
        let n = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let name = format!("e{i}");
                rt.block_on(async {
                    match kind {
                        StateMachineType::Express => {
                            let done = sfn
                                .start_sync_execution(&machine, Some(&name), r#"{"value": 1}"#)
                                .await
                                .unwrap();
                            assert_eq!(done.status, ExecutionStatus::Succeeded);
                        }
                        StateMachineType::Standard => {
                            let arn = sfn
                                .start_execution(&machine, Some(&name), r#"{"value": 1}"#)
                                .await
                                .unwrap();
                            sfn.wait_for_execution(&arn).await.unwrap();
                        }
                    }
                })
            })
        });
    }
    group.finish();
}

fn durable(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(".").unwrap();
    let sfn = WorkflowService::new(
        Store::open(dir.path()).unwrap(),
        ManualClock::default().shared(),
    );
    let machine = rt
        .block_on(sfn.create_state_machine("chain", &pass_chain(), StateMachineType::Standard))
        .unwrap();
    let mut group = c.benchmark_group("workflow_durable");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100 * 10));
    let n = AtomicU64::new(0);
    group.bench_function("pass_chain_100_concurrent", |b| {
        b.iter_custom(|iters| {
            let (sfn, machine) = (sfn.clone(), machine.clone());
            let round = n.fetch_add(1, Ordering::Relaxed);
            // 100 executions at once, each run to its end; `iters` rounds of 100.
            rt.block_on(concurrently(100, iters * 100, move |i| {
                let (sfn, machine) = (sfn.clone(), machine.clone());
                async move {
                    let name = format!("r{round}-{i}");
                    let arn = sfn
                        .start_execution(&machine, Some(&name), r#"{"value": 1}"#)
                        .await
                        .unwrap();
                    let done = sfn.wait_for_execution(&arn).await.unwrap();
                    assert_eq!(done.status, ExecutionStatus::Succeeded);
                }
            }))
        })
    });
    group.finish();
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A Map over 10,000 items, each a trivial Task: wall time per run, and the peak RSS printed
/// once.
fn big_map(c: &mut Criterion) {
    let rt = runtime();
    let definition = json!({
        "StartAt": "Each",
        "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
            "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "noop", "End": true}}},
            "ResultSelector": {"count.$": "$.length()"},
            "End": true
        }}
    })
    .to_string();
    let items: Vec<u64> = (0..10_000).collect();
    let input = json!({ "items": items }).to_string();
    let mut group = c.benchmark_group("workflow_map");
    group.sample_size(10);
    // Express: a Standard execution of it would pass the 25,000-event history limit, as on
    // AWS (each iteration of a Task records 7 events).
    let name = "map_10000_express";
    let sfn = WorkflowService::new(Store::memory(), ManualClock::default().shared());
    sfn.tasks()
        .register_fn("noop", |req| async move { Ok(req.input) });
    let machine = rt
        .block_on(sfn.create_state_machine("map", &definition, StateMachineType::Express))
        .unwrap();
    let run = |i: u64| {
        rt.block_on(async {
            let done = sfn
                .start_sync_execution(&machine, Some(&format!("m{i}")), &input)
                .await
                .unwrap();
            assert_eq!(
                done.status,
                ExecutionStatus::Succeeded,
                "{:?} {:?}",
                done.error,
                done.cause
            );
            assert_eq!(done.output, Some(json!({"count": 10_000})));
        })
    };
    let before = peak_rss_kib();
    let start = Instant::now();
    run(u64::MAX);
    println!(
        "{name}: one run {:.2} s, peak RSS {} MiB (before: {} MiB)",
        start.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024,
        before / 1024
    );
    let n = AtomicU64::new(0);
    group.bench_function(name, |b| b.iter(|| run(n.fetch_add(1, Ordering::Relaxed))));
    group.finish();
}

criterion_group!(benches, in_memory, durable, big_map);
criterion_main!(benches);
