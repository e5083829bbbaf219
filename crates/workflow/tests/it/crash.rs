//! Crash test: a child process starts Standard executions that run a Map of tasks, wait an
//! hour on the clock and run a last task; the parent kills it with SIGKILL at random moments
//! (in a task, between Map iterations, in the wait) and starts it again on the same data. At
//! the end every acknowledged execution resumes and succeeds with the right output, and its
//! history shows no finished Map iteration run twice.

use std::collections::{BTreeMap, BTreeSet};

use cloudlet_core::{ManualClock, Store};
use cloudlet_testkit::crash::{report, run_rounds};
use cloudlet_workflow::{ExecutionStatus, StateMachineType, WorkflowOptions, WorkflowService};
use serde_json::{Value, json};

const CHILD_DIR: &str = "CLOUDLET_WORKFLOW_CRASH_DIR";
const ROUNDS: usize = 5;

fn definition() -> String {
    json!({
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
                "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "work", "End": true}}},
                "Next": "Rest"
            },
            "Rest": {"Type": "Wait", "Seconds": 3600, "Next": "Sum"},
            "Sum": {"Type": "Task", "Resource": "sum", "ResultPath": "$.sum", "End": true}
        }
    })
    .to_string()
}

fn register(sfn: &WorkflowService) {
    sfn.tasks().register_fn("work", |req| async move {
        // Some yields: a kill can land while a task is under way.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let n = req.input.as_i64().unwrap_or_default();
        report(&format!("item {n}"));
        Ok(json!(n * 10))
    });
    sfn.tasks().register_fn("sum", |req| async move {
        let total: i64 = req.input["mapped"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .sum();
        Ok(json!(total))
    });
}

#[test]
#[ignore = "the child process of executions_resume_after_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        let clock = ManualClock::starting_2025();
        let sfn = WorkflowService::open(
            Store::open(&dir).unwrap(),
            clock.shared(),
            WorkflowOptions::default(),
        )
        .unwrap();
        register(&sfn);
        sfn.resume_executions();
        let machine = sfn
            .create_state_machine("crash", &definition(), StateMachineType::Standard)
            .await
            .unwrap();
        let pid = std::process::id();
        for n in 0..1_000_000u32 {
            let name = format!("p{pid}-{n}");
            sfn.start_execution(&machine, Some(&name), r#"{"items": [1, 2, 3, 4, 5, 6]}"#)
                .await
                .unwrap();
            report(&format!("started {name}"));
            for _ in 0..200 {
                tokio::task::yield_now().await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_resume_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut started = BTreeSet::new();
    run_rounds(
        "workflow crash test",
        ROUNDS,
        (5, 60),
        CHILD_DIR,
        dir.path(),
        |line| match line.split_once(' ') {
            Some(("started", name)) => {
                started.insert(name.to_string());
                true
            }
            Some(("item", _)) => true,
            _ => false,
        },
    );
    assert!(!started.is_empty());
    let clock = ManualClock::starting_2025();
    let sfn = WorkflowService::open(
        Store::open(dir.path()).unwrap(),
        clock.shared(),
        WorkflowOptions::default(),
    )
    .unwrap();
    register(&sfn);
    sfn.resume_executions();
    let machine = "arn:aws:states:us-east-1:000000000000:stateMachine:crash";
    let ticker = {
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut ticker = crate::executions::Ticker::default();
            loop {
                ticker.tick(&clock).await;
            }
        })
    };
    let all = sfn.list_executions(machine, None).unwrap();
    let names: BTreeSet<String> = all.iter().map(|d| d.name.clone()).collect();
    assert!(
        started.is_subset(&names),
        "an acknowledged execution is missing"
    );
    for name in &names {
        let arn = format!("arn:aws:states:us-east-1:000000000000:execution:crash:{name}");
        let done = sfn.wait_for_execution(&arn).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{name}: {done:?}");
        assert_eq!(
            done.output,
            Some(
                json!({"items": [1, 2, 3, 4, 5, 6], "mapped": [10, 20, 30, 40, 50, 60], "sum": 210})
            ),
            "{name}"
        );
        let history = sfn.get_execution_history(&arn).unwrap();
        for (i, event) in history.iter().enumerate() {
            assert_eq!(event.id, i as u64 + 1, "{name}: ids are contiguous");
        }
        let count = |kind: &str| history.iter().filter(|e| e.event_type == kind).count();
        assert_eq!(count("ExecutionStarted"), 1, "{name}");
        assert_eq!(count("ExecutionSucceeded"), 1, "{name}");
        assert_eq!(count("MapStateEntered"), 1, "{name}");
        assert_eq!(count("WaitStateExited"), 1, "{name}");
        let mut begun: BTreeMap<u64, usize> = BTreeMap::new();
        for e in history
            .iter()
            .filter(|e| e.event_type == "MapIterationStarted")
        {
            *begun
                .entry(e.details["index"].as_u64().unwrap())
                .or_default() += 1;
        }
        assert_eq!(begun.len(), 6, "{name}: every iteration began");
        assert!(
            begun.values().all(|n| *n == 1),
            "{name}: an iteration began twice: {begun:?}"
        );
        assert_eq!(count("MapStateStarted"), 1, "{name}");
        let mut finished: BTreeMap<u64, usize> = BTreeMap::new();
        for e in history
            .iter()
            .filter(|e| e.event_type == "MapIterationSucceeded")
        {
            *finished
                .entry(e.details["index"].as_u64().unwrap())
                .or_default() += 1;
        }
        assert_eq!(finished.len(), 6, "{name}: every iteration finished");
        assert!(
            finished.values().all(|n| *n == 1),
            "{name}: an iteration finished twice: {finished:?}"
        );
    }
    ticker.abort();
    assert!(
        sfn.list_executions(machine, Some(ExecutionStatus::Running))
            .unwrap()
            .is_empty()
    );
}
