//! Executions, checked on the memory and the redb engine: data flow and history, tasks with
//! retries, catches, timeouts and heartbeats, callbacks, Map tolerance and concurrency,
//! execution limits, stop, Express, and resumption after a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_workflow::{
    Error, ExecutionDescription, ExecutionStatus, StateMachineType, TaskFailure, WorkflowOptions,
    WorkflowService,
};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct Harness {
    pub sfn: WorkflowService,
    pub clock: ManualClock,
    store: Store,
    dir: Option<TempDir>,
}

impl Harness {
    fn memory() -> Self {
        let clock = ManualClock::starting_2025();
        let store = Store::memory();
        Self {
            sfn: WorkflowService::new(store.clone(), clock.shared()),
            clock,
            store,
            dir: None,
        }
    }

    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_2025();
        let store = Store::new(RedbEngine::open(dir.path()).unwrap());
        Self {
            sfn: WorkflowService::new(store.clone(), clock.shared()),
            clock,
            store,
            dir: Some(dir),
        }
    }

    /// Opens a second service over the same data (on redb, a fresh engine over the same
    /// files), after dropping the first.
    /// Reopens and resumes the executions that were running.
    async fn reopen(self) -> Self {
        let h = self.reopen_paused().await;
        h.sfn.resume_executions();
        h
    }

    /// Reopens without resuming yet (register task handlers, then `resume_executions`).
    async fn reopen_paused(mut self) -> Self {
        let store = match &self.dir {
            Some(dir) => {
                let old = std::mem::replace(&mut self.store, Store::memory());
                self.sfn.shutdown().await;
                drop(self.sfn);
                old.close().await;
                Store::new(RedbEngine::open(dir.path()).unwrap())
            }
            None => {
                self.sfn.shutdown().await;
                drop(self.sfn);
                self.store.clone()
            }
        };
        let sfn = WorkflowService::open(
            store.clone(),
            self.clock.shared(),
            WorkflowOptions::default(),
        )
        .unwrap();
        Self {
            sfn,
            clock: self.clock,
            store,
            dir: self.dir,
        }
    }

    async fn machine(&self, name: &str, definition: Value) -> String {
        self.sfn
            .create_state_machine(name, &definition.to_string(), StateMachineType::Standard)
            .await
            .unwrap()
    }

    /// Starts an execution and runs it to its end, advancing the clock whenever it waits.
    async fn run(&self, machine: &str, input: Value) -> ExecutionDescription {
        let arn = self
            .sfn
            .start_execution(machine, None, &input.to_string())
            .await
            .unwrap();
        self.finish(&arn).await
    }

    async fn finish(&self, arn: &str) -> ExecutionDescription {
        finish(&self.sfn, &self.clock, arn).await
    }
}

async fn finish(sfn: &WorkflowService, clock: &ManualClock, arn: &str) -> ExecutionDescription {
    let done = sfn.wait_for_execution(arn);
    tokio::pin!(done);
    let mut ticker = Ticker::default();
    loop {
        tokio::select! {
            biased;
            d = &mut done => return d.unwrap(),
            () = ticker.tick(clock) => {}
        }
    }
}

/// The history of a one-Task execution whose task failed, then was redriven and succeeded.
const REDRIVEN_TASK: [&str; 12] = [
    "ExecutionStarted",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskFailed",
    "ExecutionFailed",
    "ExecutionRedriven",
    "TaskScheduled",
    "TaskStarted",
    "TaskSucceeded",
    "TaskStateExited",
    "ExecutionSucceeded",
];

/// Runs `work` as a process that then dies: on a runtime of its own, in a thread of its own,
/// both gone when it returns, as after a crash (nothing it spawned runs on).
fn in_a_process_that_dies<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(work())
    })
    .join()
    .unwrap()
}

/// Moves a manual clock from deadline to deadline, one at a time: after each advance it waits
/// until the woken work has registered a new timer, so time never runs ahead of the work.
#[derive(Default)]
pub struct Ticker {
    floor: usize,
}

impl Ticker {
    pub async fn tick(&mut self, clock: &ManualClock) {
        clock.wait_for_timers(self.floor.max(1)).await;
        self.floor = clock.step().unwrap_or(0) + 1;
    }
}

macro_rules! executions {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            executions!(@tests $open;
                data_flows_in_aws_order_and_history_links_events,
                tasks_receive_their_input_and_context,
                retries_back_off_on_the_clock_then_catch,
                task_timeouts_raise_states_timeout,
                callbacks_complete_by_token,
                heartbeats_keep_a_callback_alive_until_they_stop,
                map_tolerates_failures_up_to_its_threshold,
                map_runs_at_most_max_concurrency_iterations_at_once,
                executions_time_out_and_stop,
                start_rejects_bad_requests_and_changes_nothing,
                express_runs_synchronously_within_five_minutes,
                executions_resume_after_a_restart,
                state_machines_are_idempotent_and_listed,
                errors_match_as_aws_matches_them,
                jsonata_reads_the_workflow_clock,
                redrive_goes_on_from_the_failed_state,
                callback_tokens_survive_a_restart,
                a_stop_survives_a_restart,
                a_retry_keeps_its_due_time_across_a_restart,
                a_task_keeps_its_time_limit_and_events_across_a_restart,
                a_redriven_task_is_a_new_attempt,
                redriven_parallel_branches_keep_their_own_events,
                a_redriven_task_resumes_after_a_restart,
                ended_executions_are_forgotten_after_their_retention,
                executions_are_listed_in_pages,
                checkpoints_go_when_the_redrive_window_closes,
            );
        }
    };
    (@tests $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                checks::$check($open).await
            }
        )*
    };
}

executions!(memory, Harness::memory());
executions!(redb, Harness::redb());

/// The 25,000-event limit, on the memory engine only: on redb the 12,500 state entries would
/// each be a durable commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_history_ends_at_25000_events() {
    let h = Harness::memory();
    let machine = h
        .machine(
            "forever",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}),
        )
        .await;
    let done = h.run(&machine, json!({})).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.as_deref(), Some("States.Runtime"));
    let history = h.sfn.get_execution_history(&done.execution_arn).unwrap();
    assert_eq!(history.len(), 25_000);
    assert_eq!(history.last().unwrap().event_type, "ExecutionFailed");
    // A full history has no room for a redrive.
    assert!(matches!(
        h.sfn.redrive_execution(&done.execution_arn).await,
        Err(Error::ExecutionNotRedrivable(_))
    ));
}

mod checks {
    use super::*;

    pub async fn checkpoints_go_when_the_redrive_window_closes(h: Harness) {
        let machine = h
            .machine(
                "failing",
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "F"}, "F": {"Type": "Fail", "Error": "E"}}}),
            )
            .await;
        let done = h.run(&machine, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        let checkpoints = |store: &Store| {
            use cloudlet_core::ReadView as _;
            store
                .snapshot()
                .unwrap()
                .range(
                    "sfn.checkpoints",
                    &cloudlet_core::KeyRange::all(),
                    cloudlet_core::Direction::Forward,
                )
                .unwrap()
                .count()
        };
        // Kept for a redrive ...
        assert!(checkpoints(&h.store) > 0);
        // ... until the 14-day window has passed.
        h.clock
            .advance(cloudlet_workflow::REDRIVE_WINDOW + Duration::from_secs(1));
        let h = h.reopen().await;
        while checkpoints(&h.store) > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            h.sfn.redrive_execution(&done.execution_arn).await,
            Err(Error::ExecutionNotRedrivable(_))
        ));
    }

    pub async fn a_retry_keeps_its_due_time_across_a_restart(h: Harness) {
        let machine = h
            .machine(
                "retrying",
                json!({"StartAt": "T", "States": {"T": {
                    "Type": "Task", "Resource": "flaky",
                    "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 100, "MaxAttempts": 1}],
                    "End": true
                }}}),
            )
            .await;
        // The first attempt fails in a process that then dies during the 100 s backoff.
        let arn = {
            let sfn = h.sfn.clone();
            let machine = machine.clone();
            let clock = h.clock.clone();
            in_a_process_that_dies(move || async move {
                sfn.tasks().register_fn("flaky", |_req| async {
                    Err(TaskFailure::new("Flaky", "first attempt"))
                });
                let arn = sfn
                    .start_execution(&machine, Some("retrying"), "{}")
                    .await
                    .unwrap();
                clock.wait_for_timers(1).await;
                arn
            })
        };
        h.clock.advance(Duration::from_secs(40));
        let h = h.reopen_paused().await;
        let clock = h.clock.clone();
        let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = attempts.clone();
        h.sfn.tasks().register_fn("flaky", move |_req| {
            use cloudlet_core::Clock as _;
            seen.lock().unwrap().push(clock.now());
            async { Ok(json!("second attempt")) }
        });
        h.sfn.resume_executions();
        let done = h.finish(&arn).await;
        assert_eq!(done.output, Some(json!("second attempt")));
        // The retry ran 100 s after the failure, not 100 s after the restart.
        let at = attempts.lock().unwrap().clone();
        assert_eq!(at.len(), 1);
        assert_eq!(
            at[0].saturating_duration_since(done.start_date),
            Duration::from_secs(100)
        );
    }

    pub async fn a_task_keeps_its_time_limit_and_events_across_a_restart(h: Harness) {
        let machine = h
            .machine(
                "slow",
                json!({"StartAt": "T", "States": {"T": {
                    "Type": "Task", "Resource": "slow", "TimeoutSeconds": 100, "End": true
                }}}),
            )
            .await;
        // The task starts in a process that dies 60 s into its 100 s limit.
        let arn = {
            let sfn = h.sfn.clone();
            let machine = machine.clone();
            let clock = h.clock.clone();
            in_a_process_that_dies(move || async move {
                sfn.tasks()
                    .register_fn("slow", |_req| futures::future::pending());
                let arn = sfn
                    .start_execution(&machine, Some("slow"), "{}")
                    .await
                    .unwrap();
                clock.wait_for_timers(1).await;
                arn
            })
        };
        h.clock.advance(Duration::from_secs(60));
        let h = h.reopen_paused().await;
        let invoked = Arc::new(AtomicUsize::new(0));
        let count = invoked.clone();
        h.sfn.tasks().register_fn("slow", move |_req| {
            count.fetch_add(1, Ordering::SeqCst);
            futures::future::pending()
        });
        h.sfn.resume_executions();
        let done = h.finish(&arn).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.Timeout"));
        // In flight at the crash, the task ran again (at least once) ...
        assert_eq!(invoked.load(Ordering::SeqCst), 1);
        // ... but timed out 100 s after it first started, not 100 s after the restart.
        let stopped = done.stop_date.unwrap();
        assert_eq!(
            stopped.saturating_duration_since(done.start_date),
            Duration::from_secs(100)
        );
        // The history records the task once, with contiguous ids.
        let history = h.sfn.get_execution_history(&arn).unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "TaskScheduled",
                "TaskStarted",
                "TaskTimedOut",
                "ExecutionFailed"
            ]
        );
        for (i, e) in history.iter().enumerate() {
            assert_eq!(e.id, i as u64 + 1);
        }
    }

    pub async fn a_redriven_task_is_a_new_attempt(h: Harness) {
        let calls = Arc::new(AtomicUsize::new(0));
        let count = calls.clone();
        h.sfn.tasks().register_fn("once", move |_req| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(TaskFailure::new("Downstream.Down", "first call"))
                } else {
                    Ok(json!("fixed"))
                }
            }
        });
        let machine = h
            .machine(
                "redriven-task",
                json!({"StartAt": "T", "States": {"T": {
                    "Type": "Task", "Resource": "once", "TimeoutSeconds": 10, "End": true
                }}}),
            )
            .await;
        let first = h.run(&machine, json!({})).await;
        assert_eq!(first.error.as_deref(), Some("Downstream.Down"));
        // Redriven an hour later: the task runs again with its whole time limit.
        h.clock.advance(Duration::from_secs(3600));
        h.sfn.redrive_execution(&first.execution_arn).await.unwrap();
        let done = h.finish(&first.execution_arn).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(done.output, Some(json!("fixed")));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let history = h.sfn.get_execution_history(&first.execution_arn).unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, REDRIVEN_TASK);
        // The new attempt's events follow ExecutionRedriven.
        assert_eq!(history[7].previous_event_id, 7);
        for (i, e) in history.iter().enumerate() {
            assert_eq!(e.id, i as u64 + 1);
        }
    }

    pub async fn redriven_parallel_branches_keep_their_own_events(h: Harness) {
        // The first time, branch A fails once branch B's task is in flight; B is cancelled.
        let redriven = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b_started = Arc::new(tokio::sync::Notify::new());
        let (after, started) = (redriven.clone(), b_started.clone());
        h.sfn.tasks().register_fn("a", move |_req| {
            let now = after.load(Ordering::SeqCst);
            let started = started.clone();
            async move {
                if now {
                    return Ok(json!("a"));
                }
                started.notified().await;
                Err(TaskFailure::new("A.Down", "first call"))
            }
        });
        let (after, started) = (redriven.clone(), b_started.clone());
        h.sfn.tasks().register_fn("b", move |_req| {
            let now = after.load(Ordering::SeqCst);
            started.notify_one();
            async move {
                if !now {
                    futures::future::pending::<()>().await;
                }
                Ok(json!("b"))
            }
        });
        let machine = h
            .machine(
                "both",
                json!({"StartAt": "P", "States": {"P": {
                    "Type": "Parallel", "End": true,
                    "Branches": [
                        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "a", "End": true}}},
                        {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "b", "End": true}}}
                    ]
                }}}),
            )
            .await;
        let first = h.run(&machine, json!({})).await;
        assert_eq!(first.error.as_deref(), Some("A.Down"));
        h.clock.advance(Duration::from_secs(3600));
        redriven.store(true, Ordering::SeqCst);
        h.sfn.redrive_execution(&first.execution_arn).await.unwrap();
        let done = h.finish(&first.execution_arn).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(done.output, Some(json!(["a", "b"])));
        let history = h.sfn.get_execution_history(&first.execution_arn).unwrap();
        let redriven = history
            .iter()
            .position(|e| e.event_type == "ExecutionRedriven")
            .unwrap();
        let after = &history[redriven..];
        let count = |kind: &str| after.iter().filter(|e| e.event_type == kind).count();
        // Each branch records its own task again: nothing of the first attempt, nor of the
        // other branch, is taken for its own.
        assert_eq!(count("TaskScheduled"), 2);
        assert_eq!(count("TaskStarted"), 2);
        assert_eq!(count("TaskSucceeded"), 2);
        let started: std::collections::BTreeSet<u64> = after
            .iter()
            .filter(|e| e.event_type == "TaskSucceeded")
            .map(|e| e.previous_event_id)
            .collect();
        assert_eq!(started.len(), 2, "each success follows its own TaskStarted");
        for (i, e) in history.iter().enumerate() {
            assert_eq!(e.id, i as u64 + 1);
        }
    }

    pub async fn a_redriven_task_resumes_after_a_restart(h: Harness) {
        let machine = h
            .machine(
                "redrive-crash",
                json!({"StartAt": "T", "States": {"T": {
                    "Type": "Task", "Resource": "flaky", "TimeoutSeconds": 100, "End": true
                }}}),
            )
            .await;
        h.sfn.tasks().register_fn("flaky", |_req| async {
            Err(TaskFailure::new("Flaky", "down"))
        });
        let first = h.run(&machine, json!({})).await;
        let arn = first.execution_arn.clone();
        assert_eq!(first.error.as_deref(), Some("Flaky"));
        h.clock.advance(Duration::from_secs(3600));
        // The redrive runs in a process that dies while the task is in flight.
        {
            let sfn = h.sfn.clone();
            let clock = h.clock.clone();
            let arn = arn.clone();
            in_a_process_that_dies(move || async move {
                sfn.tasks()
                    .register_fn("flaky", |_req| futures::future::pending());
                sfn.redrive_execution(&arn).await.unwrap();
                clock.wait_for_timers(1).await;
            });
        }
        h.clock.advance(Duration::from_secs(30));
        let h = h.reopen_paused().await;
        h.sfn
            .tasks()
            .register_fn("flaky", |_req| async { Ok(json!("up")) });
        h.sfn.resume_executions();
        let done = h.finish(&arn).await;
        // The redriven attempt carries on: not timed out on the first attempt's start.
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(done.output, Some(json!("up")));
        let history = h.sfn.get_execution_history(&arn).unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, REDRIVEN_TASK);
    }

    pub async fn ended_executions_are_forgotten_after_their_retention(h: Harness) {
        let standard = h
            .machine(
                "kept",
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
            )
            .await;
        let express = h
            .sfn
            .create_state_machine(
                "fleeting",
                &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}})
                    .to_string(),
                StateMachineType::Express,
            )
            .await
            .unwrap();
        let old = h
            .sfn
            .start_execution(&standard, Some("nightly"), r#"{"run": 1}"#)
            .await
            .unwrap();
        let old_end = h.finish(&old).await.stop_date.unwrap();
        let once = h
            .sfn
            .start_execution(&standard, Some("once"), "{}")
            .await
            .unwrap();
        h.finish(&once).await;
        let quick = h.sfn.start_execution(&express, None, "{}").await.unwrap();
        let quick_end = h.finish(&quick).await.stop_date.unwrap();
        // The name is taken while the execution is kept.
        assert!(matches!(
            h.sfn
                .start_execution(&standard, Some("nightly"), "{}")
                .await,
            Err(Error::ExecutionAlreadyExists(_))
        ));
        // An asynchronous Express execution can be described for five minutes after its end.
        h.clock
            .advance_to(quick_end.saturating_add(Duration::from_secs(299)));
        assert!(h.sfn.describe_execution(&quick).is_ok());
        h.clock.advance(Duration::from_secs(1));
        assert!(matches!(
            h.sfn.describe_execution(&quick),
            Err(Error::ExecutionDoesNotExist(_))
        ));
        // A Standard one for 90 days, as AWS keeps it.
        let keep = cloudlet_workflow::EXECUTION_RETENTION - Duration::from_secs(1);
        h.clock.advance_to(old_end.saturating_add(keep));
        assert_eq!(h.sfn.get_execution_history(&old).unwrap().len(), 4);
        h.clock.advance(Duration::from_secs(1));
        assert!(matches!(
            h.sfn.describe_execution(&old),
            Err(Error::ExecutionDoesNotExist(_))
        ));
        assert!(matches!(
            h.sfn.get_execution_history(&old),
            Err(Error::ExecutionDoesNotExist(_))
        ));
        assert!(h.sfn.list_executions(&standard, None).unwrap().is_empty());
        // Its name is free again, and the new execution's history is its own.
        let new = h
            .sfn
            .start_execution(&standard, Some("nightly"), r#"{"run": 2}"#)
            .await
            .unwrap();
        assert_eq!(new, old);
        let done = h.finish(&new).await;
        assert_eq!(done.output, Some(json!({"run": 2})));
        // The expired executions' rows are gone from the store: only the new one's are left.
        h.clock.advance(Duration::from_secs(3600));
        h.sfn.start_execution(&express, None, "{}").await.unwrap();
        let rows = |keyspace: &str| {
            use cloudlet_core::ReadView as _;
            let snapshot = h.store.snapshot().unwrap();
            snapshot
                .range(
                    keyspace,
                    &cloudlet_core::KeyRange::all(),
                    cloudlet_core::Direction::Forward,
                )
                .unwrap()
                .count()
        };
        assert_eq!(rows("sfn.executions"), 1);
        let batches: usize = h.sfn.get_execution_history(&new).unwrap().len();
        assert!(rows("sfn.history") <= batches);
        let history = h.sfn.get_execution_history(&new).unwrap();
        assert_eq!(history.len(), 4);
        assert!(
            history
                .iter()
                .enumerate()
                .all(|(i, e)| e.id == i as u64 + 1)
        );
        // What was removed stays removed after a restart.
        let h = h.reopen().await;
        let listed = h.sfn.list_executions(&standard, None).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].input, json!({"run": 2}));
        assert_eq!(h.sfn.get_execution_history(&new).unwrap().len(), 4);
    }

    pub async fn executions_are_listed_in_pages(h: Harness) {
        let machine = h
            .machine(
                "paged",
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
            )
            .await;
        // 25 executions, three of them started at each instant.
        let mut started = Vec::new();
        for i in 0..25 {
            if i % 3 == 0 {
                h.clock.advance(Duration::from_secs(1));
            }
            let name = format!("run-{i:02}");
            started.push(
                h.sfn
                    .start_execution(&machine, Some(&name), "{}")
                    .await
                    .unwrap(),
            );
        }
        let all = h.sfn.list_executions(&machine, None).unwrap();
        assert_eq!(all.len(), 25);
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = h
                .sfn
                .list_executions_page(&machine, None, 10, token.as_deref())
                .unwrap();
            pages += 1;
            assert!(page.executions.len() <= 10);
            paged.extend(page.executions.into_iter().map(|d| d.execution_arn));
            if pages == 1 {
                // Executions started meanwhile are newer: later pages keep their places.
                h.sfn
                    .start_execution(&machine, Some("late"), "{}")
                    .await
                    .unwrap();
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = all.into_iter().map(|d| d.execution_arn).collect();
        assert_eq!(paged, expected);
        // Newest first, then by name.
        assert!(paged[0].ends_with(":run-24"));
        assert!(paged[1].ends_with(":run-21"));
        assert!(paged[22].ends_with(":run-00"));
        assert!(paged[24].ends_with(":run-02"));
        // The default page is 100; the limit is 1,000; a token must be one of ours.
        let page = h.sfn.list_executions_page(&machine, None, 0, None).unwrap();
        assert_eq!(page.executions.len(), 26);
        assert!(page.next_token.is_none());
        assert!(matches!(
            h.sfn.list_executions_page(&machine, None, 1001, None),
            Err(Error::Validation(m)) if m.contains("maxResults")
        ));
        assert!(matches!(
            h.sfn
                .list_executions_page(&machine, None, 10, Some("not-a-token")),
            Err(Error::InvalidToken(_))
        ));
        assert!(matches!(
            h.sfn.list_executions_page(
                "arn:aws:states:us-east-1:000000000000:stateMachine:none",
                None,
                10,
                None
            ),
            Err(Error::StateMachineDoesNotExist(_))
        ));
        for arn in started {
            h.finish(&arn).await;
        }
    }

    pub async fn a_stop_survives_a_restart(h: Harness) {
        let machine = h
            .machine(
                "stoppable",
                json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
            )
            .await;
        // The execution runs on a runtime of its own, which then stands still: the stop is
        // acknowledged, and the process dies before the execution sees it.
        let (runtime, arn) = {
            let sfn = h.sfn.clone();
            let machine = machine.clone();
            let clock = h.clock.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let arn = rt.block_on(async move {
                    let arn = sfn
                        .start_execution(&machine, Some("stopped"), "{}")
                        .await
                        .unwrap();
                    clock.wait_for_timers(1).await;
                    arn
                });
                (rt, arn)
            })
            .join()
            .unwrap()
        };
        h.sfn
            .stop_execution(&arn, Some("Operator"), Some("halt"))
            .await
            .unwrap();
        tokio::task::spawn_blocking(move || drop(runtime))
            .await
            .unwrap();
        let h = h.reopen().await;
        let done = h.sfn.wait_for_execution(&arn).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Aborted);
        assert_eq!(done.error.as_deref(), Some("Operator"));
        assert_eq!(done.cause.as_deref(), Some("halt"));
    }

    pub async fn callback_tokens_survive_a_restart(h: Harness) {
        let definition = json!({
            "StartAt": "Ask",
            "States": {"Ask": {"Type": "Task", "Resource": "ask.waitForTaskToken", "TimeoutSeconds": 100, "End": true}}
        });
        let machine = h.machine("ask", definition).await;
        // The first process hands the token out and dies while the task waits.
        let (arn, token) = {
            let sfn = h.sfn.clone();
            let machine = machine.clone();
            in_a_process_that_dies(move || async move {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                sfn.tasks().register_fn("ask", move |req| {
                    let tx = tx.clone();
                    async move {
                        tx.send(req.task_token.unwrap()).unwrap();
                        Ok(Value::Null)
                    }
                });
                let arn = sfn
                    .start_execution(&machine, Some("asked"), "{}")
                    .await
                    .unwrap();
                let token = rx.recv().await.unwrap();
                (arn, token)
            })
        };
        // The answer arrives while no process runs the task, within its time limit: it is
        // kept, and used even though the task resumes after the limit.
        h.clock.advance(Duration::from_secs(50));
        let h = h.reopen_paused().await;
        // A heartbeat for the stored token is accepted before the task resumes.
        h.sfn.send_task_heartbeat(&token).unwrap();
        h.sfn
            .send_task_success(&token, r#"{"answer": 42}"#)
            .await
            .unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        h.sfn.tasks().register_fn("ask", move |_req| {
            count.fetch_add(1, Ordering::SeqCst);
            async { Ok(Value::Null) }
        });
        h.clock.advance(Duration::from_secs(150));
        h.sfn.resume_executions();
        let done = h.finish(&arn).await;
        assert_eq!(done.output, Some(json!({"answer": 42})));
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "the answered task was not asked again"
        );
        // An answered token answers nothing more.
        assert!(matches!(
            h.sfn.send_task_success(&token, "{}").await,
            Err(Error::TaskDoesNotExist(_))
        ));
    }

    pub async fn redrive_goes_on_from_the_failed_state(h: Harness) {
        // Item 1 fails on its first attempt only; every call is counted per item.
        let calls = Arc::new(std::sync::Mutex::new(
            std::collections::BTreeMap::<i64, u32>::new(),
        ));
        let seen = calls.clone();
        h.sfn.tasks().register_fn("item", move |req| {
            let seen = seen.clone();
            async move {
                let n = req.input["n"].as_i64().unwrap();
                let count = {
                    let mut calls = seen.lock().unwrap();
                    let c = calls.entry(n).or_default();
                    *c += 1;
                    *c
                };
                if n == 1 && count == 1 {
                    return Err(TaskFailure::new("Item.Flaky", "first time"));
                }
                Ok(json!({"n": n, "redrives": req.context["Execution"]["RedriveCount"]}))
            }
        });
        let machine = h
            .machine(
                "redrive",
                json!({
                    "StartAt": "Before",
                    "States": {
                        "Before": {"Type": "Pass", "Result": [{"n": 0}, {"n": 1}, {"n": 2}], "ResultPath": "$.items", "Next": "Each"},
                        "Each": {
                            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
                            "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "item", "End": true}}},
                            "End": true
                        }
                    }
                }),
            )
            .await;
        let first = h.run(&machine, json!({})).await;
        assert_eq!(first.status, ExecutionStatus::Failed);
        assert_eq!(first.error.as_deref(), Some("Item.Flaky"));
        let arn = first.execution_arn.clone();
        // Only a stopped, failed or timed-out Standard execution can be redriven.
        let fine = h
            .machine(
                "fine",
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
            )
            .await;
        let done = h.run(&fine, json!({})).await;
        assert!(matches!(
            h.sfn.redrive_execution(&done.execution_arn).await,
            Err(Error::ExecutionNotRedrivable(_))
        ));
        // Two redrives at once: one starts it, the other is refused.
        let (a, b) = tokio::join!(h.sfn.redrive_execution(&arn), h.sfn.redrive_execution(&arn));
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        let done = h.finish(&arn).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(done.redrive_count, 1);
        assert_eq!(
            done.output,
            Some(
                json!([{"n": 0, "redrives": 0}, {"n": 1, "redrives": 1}, {"n": 2, "redrives": 1}])
            )
        );
        // Item 0 finished before the failure and did not run again; item 1 ran twice.
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.get(&0), Some(&1));
        assert_eq!(calls.get(&1), Some(&2));
        assert_eq!(calls.get(&2), Some(&1));
        let history = h.sfn.get_execution_history(&arn).unwrap();
        let count = |kind: &str| history.iter().filter(|e| e.event_type == kind).count();
        assert_eq!(count("ExecutionRedriven"), 1);
        assert_eq!(
            count("PassStateEntered"),
            1,
            "the Pass state before the Map did not run again"
        );
        for (i, event) in history.iter().enumerate() {
            assert_eq!(event.id, i as u64 + 1);
        }
        // A succeeded execution cannot be redriven again.
        assert!(matches!(
            h.sfn.redrive_execution(&arn).await,
            Err(Error::ExecutionNotRedrivable(_))
        ));
    }

    pub async fn jsonata_reads_the_workflow_clock(h: Harness) {
        let machine = h
            .machine(
                "clock",
                json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
                    "Type": "Pass",
                    "Output": {"now": "{% $now() %}", "millis": "{% $millis() %}", "twice": "{% $now() = $now() %}"},
                    "End": true
                }}}),
            )
            .await;
        let done = h.run(&machine, json!({})).await;
        use cloudlet_core::Clock as _;
        let now = h.clock.now();
        assert_eq!(
            done.output,
            Some(json!({"now": now.iso8601(), "millis": now.as_millis(), "twice": true}))
        );
    }

    pub async fn errors_match_as_aws_matches_them(h: Harness) {
        h.sfn.tasks().register_fn("fails", |_req| async {
            Err(TaskFailure::new("Custom.Error", "custom"))
        });
        h.sfn.tasks().register_fn("hangs", |_req| async {
            futures::future::pending::<()>().await;
            Ok(Value::Null)
        });
        h.sfn
            .tasks()
            .register_fn("ok", |_req| async { Ok(json!(1)) });
        let caught_by = |resource: &str, extra: Value| {
            let mut task = json!({
                "Type": "Task", "Resource": resource,
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "ByTaskFailed"},
                    {"ErrorEquals": ["States.ALL"], "Next": "ByAll"}
                ],
                "End": true
            });
            for (k, v) in extra.as_object().unwrap() {
                task[k] = v.clone();
            }
            json!({"StartAt": "T", "States": {
                "T": task,
                "ByTaskFailed": {"Type": "Pass", "Result": "task-failed", "End": true},
                "ByAll": {"Type": "Pass", "Result": "all", "End": true}
            }})
        };
        // States.TaskFailed matches a handler's own error ...
        let m = h.machine("custom", caught_by("fails", json!({}))).await;
        assert_eq!(
            h.run(&m, json!({})).await.output,
            Some(json!("task-failed"))
        );
        // ... but not States.Timeout, which States.ALL catches.
        let m = h
            .machine("timeout", caught_by("hangs", json!({"TimeoutSeconds": 1})))
            .await;
        assert_eq!(h.run(&m, json!({})).await.output, Some(json!("all")));
        // A ResultPath that cannot apply fails the state, and Catch sees it.
        let m = h
            .machine(
                "resultpath",
                caught_by("ok", json!({"ResultPath": "$.a.b"})),
            )
            .await;
        assert_eq!(
            h.run(&m, json!({"a": "text"})).await.output,
            Some(json!("task-failed"))
        );
        // States.Runtime is never caught, even by name.
        let m = h
            .machine(
                "runtime",
                json!({"StartAt": "T", "States": {
                    "T": {"Type": "Task", "Resource": "ok", "InputPath": "$.missing",
                          "Catch": [{"ErrorEquals": ["States.Runtime"], "Next": "Caught"}], "End": true},
                    "Caught": {"Type": "Pass", "End": true}
                }}),
            )
            .await;
        let done = h.run(&m, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.Runtime"));
    }

    pub async fn data_flows_in_aws_order_and_history_links_events(h: Harness) {
        let machine = h
            .machine(
                "flow",
                json!({
                    "StartAt": "Shape",
                    "States": {
                        "Shape": {
                            "Type": "Pass",
                            "InputPath": "$.order",
                            "Parameters": {"id.$": "$.id", "total.$": "States.MathAdd($.a, $.b)"},
                            "ResultPath": "$.shaped",
                            "OutputPath": "$.shaped",
                            "Next": "Route"
                        },
                        "Route": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.total", "NumericGreaterThan": 10, "Next": "Big"}],
                            "Default": "Small"
                        },
                        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": true},
                        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "End": true}
                    }
                }),
            )
            .await;
        let done = h
            .run(&machine, json!({"order": {"id": "o-1", "a": 7, "b": 5}}))
            .await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(
            done.output,
            Some(json!({"id": "o-1", "total": 12, "size": "big"}))
        );
        let history = h.sfn.get_execution_history(&done.execution_arn).unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "ChoiceStateEntered",
                "ChoiceStateExited",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );
        for (i, event) in history.iter().enumerate() {
            assert_eq!(event.id, i as u64 + 1);
            assert_eq!(event.previous_event_id, i as u64);
        }
        assert_eq!(history[1].details["name"], "Shape");
        assert_eq!(
            history[2].details["output"],
            json!({"id": "o-1", "total": 12}).to_string()
        );
    }

    pub async fn tasks_receive_their_input_and_context(h: Harness) {
        h.sfn.tasks().register_fn(
            "arn:aws:lambda:us-east-1:000000000000:function:double",
            |req| async move {
                assert_eq!(req.context["State"]["Name"], "Double");
                assert_eq!(req.context["State"]["RetryCount"], 0);
                let n = req.input["n"].as_i64().unwrap();
                Ok(json!({"doubled": n * 2, "payload": {"ignored": true}}))
            },
        );
        let machine = h
            .machine(
                "tasks",
                json!({
                    "StartAt": "Double",
                    "States": {"Double": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
                        "Parameters": {"n.$": "$.value"},
                        "ResultSelector": {"d.$": "$.doubled"},
                        "ResultPath": "$.result",
                        "End": true
                    }}
                }),
            )
            .await;
        let done = h.run(&machine, json!({"value": 21})).await;
        assert_eq!(done.output, Some(json!({"value": 21, "result": {"d": 42}})));
        let types: Vec<String> = h
            .sfn
            .get_execution_history(&done.execution_arn)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "TaskScheduled",
                "TaskStarted",
                "TaskSucceeded",
                "TaskStateExited",
                "ExecutionSucceeded"
            ]
        );
        // A resource without a handler fails the task.
        let missing = h
            .machine(
                "missing",
                json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:nothing", "End": true}}}),
            )
            .await;
        let done = h.run(&missing, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.Runtime"));
    }

    pub async fn retries_back_off_on_the_clock_then_catch(h: Harness) {
        let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let clock = h.clock.clone();
        let seen = attempts.clone();
        h.sfn.tasks().register_fn("flaky", move |_req| {
            let seen = seen.clone();
            let clock = clock.clone();
            async move {
                use cloudlet_core::Clock as _;
                seen.lock().unwrap().push(clock.now());
                Err(TaskFailure::new("Flaky.Error", "not today"))
            }
        });
        let machine = h
            .machine(
                "retry",
                json!({
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": "flaky",
                            "Retry": [
                                {"ErrorEquals": ["Other"], "MaxAttempts": 5},
                                {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 2}
                            ],
                            "Catch": [{"ErrorEquals": ["Flaky.Error"], "ResultPath": "$.error", "Next": "Recovered"}],
                            "End": true
                        },
                        "Recovered": {"Type": "Pass", "End": true}
                    }
                }),
            )
            .await;
        let done = h.run(&machine, json!({"keep": 1})).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(
            done.output,
            Some(json!({"keep": 1, "error": {"Error": "Flaky.Error", "Cause": "not today"}}))
        );
        let at = attempts.lock().unwrap().clone();
        assert_eq!(at.len(), 3, "one attempt and two retries");
        assert_eq!(
            at[1].saturating_duration_since(at[0]),
            Duration::from_secs(2)
        );
        assert_eq!(
            at[2].saturating_duration_since(at[1]),
            Duration::from_secs(6)
        );
    }

    pub async fn task_timeouts_raise_states_timeout(h: Harness) {
        h.sfn.tasks().register_fn("forever", |_req| async {
            futures::future::pending::<()>().await;
            Ok(Value::Null)
        });
        let machine = h
            .machine(
                "timeout",
                json!({
                    "StartAt": "Slow",
                    "States": {"Slow": {
                        "Type": "Task", "Resource": "forever", "TimeoutSeconds": 30,
                        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"}],
                        "End": true
                    },
                    "TimedOut": {"Type": "Pass", "End": true}}
                }),
            )
            .await;
        let done = h.run(&machine, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(done.output, Some(json!({"Error": "States.Timeout"})));
        let history = h.sfn.get_execution_history(&done.execution_arn).unwrap();
        assert!(history.iter().any(|e| e.event_type == "TaskTimedOut"));
        // A callback task's limit covers its handler's call too.
        let callback = h
            .machine(
                "callback-timeout",
                json!({"StartAt": "Slow", "States": {"Slow": {
                    "Type": "Task", "Resource": "forever.waitForTaskToken", "TimeoutSeconds": 30, "End": true
                }}}),
            )
            .await;
        let done = h.run(&callback, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.Timeout"));
    }

    pub async fn callbacks_complete_by_token(h: Harness) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        h.sfn
            .tasks()
            .register_fn("arn:aws:states:::sqs:sendMessage", move |req| {
                let tx = tx.clone();
                async move {
                    tx.send((req.task_token.clone().unwrap(), req.input.clone()))
                        .unwrap();
                    Ok(Value::Null)
                }
            });
        let machine = h
            .machine(
                "callback",
                json!({
                    "StartAt": "Ask",
                    "States": {"Ask": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                        "Parameters": {"token.$": "$$.Task.Token", "q": "approve?"},
                        "End": true
                    }}
                }),
            )
            .await;
        let arn = h.sfn.start_execution(&machine, None, "{}").await.unwrap();
        let (token, input) = rx.recv().await.unwrap();
        assert_eq!(input["token"], token);
        assert!(matches!(
            h.sfn.send_task_success("no-such-token", "{}").await,
            Err(Error::TaskDoesNotExist(_))
        ));
        assert!(matches!(
            h.sfn.send_task_success(&token, "not json").await,
            Err(Error::InvalidOutput(_))
        ));
        h.sfn
            .send_task_success(&token, r#"{"approved": true}"#)
            .await
            .unwrap();
        let done = h.finish(&arn).await;
        assert_eq!(done.output, Some(json!({"approved": true})));
        assert!(matches!(
            h.sfn.send_task_success(&token, "{}").await,
            Err(Error::TaskDoesNotExist(_))
        ));
        let types: Vec<String> = h
            .sfn
            .get_execution_history(&arn)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert!(types.contains(&"TaskSubmitted".to_string()), "{types:?}");

        // A failure sent for the token fails the task with that error.
        let arn = h.sfn.start_execution(&machine, None, "{}").await.unwrap();
        let (token, _) = rx.recv().await.unwrap();
        h.sfn
            .send_task_failure(&token, "Rejected", "the approver said no")
            .await
            .unwrap();
        let done = h.finish(&arn).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("Rejected"));
        assert_eq!(done.cause.as_deref(), Some("the approver said no"));

        // A task that ended without its answer (here: stopped) no longer takes one.
        let arn = h.sfn.start_execution(&machine, None, "{}").await.unwrap();
        let (token, _) = rx.recv().await.unwrap();
        h.sfn.stop_execution(&arn, None, None).await.unwrap();
        let done = h.sfn.wait_for_execution(&arn).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Aborted);
        assert!(matches!(
            h.sfn.send_task_success(&token, "{}").await,
            Err(Error::TaskDoesNotExist(_))
        ));
    }

    pub async fn heartbeats_keep_a_callback_alive_until_they_stop(h: Harness) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        h.sfn.tasks().register_fn("work", move |req| {
            let tx = tx.clone();
            async move {
                tx.send(req.task_token.unwrap()).unwrap();
                Ok(Value::Null)
            }
        });
        let machine = h
            .machine(
                "heartbeat",
                json!({
                    "StartAt": "Work",
                    "States": {"Work": {
                        "Type": "Task", "Resource": "work.waitForTaskToken",
                        "HeartbeatSeconds": 10, "TimeoutSeconds": 100, "End": true
                    }}
                }),
            )
            .await;
        let arn = h.sfn.start_execution(&machine, None, "{}").await.unwrap();
        let token = rx.recv().await.unwrap();
        // Three heartbeats 8 s apart carry the task past its first 10 s.
        use cloudlet_core::Clock as _;
        let heartbeat_due =
            |clock: &ManualClock| clock.now().saturating_add(Duration::from_secs(10));
        let mut due = heartbeat_due(&h.clock);
        for _ in 0..3 {
            // The task's timer stands at its heartbeat deadline before time moves.
            while h.clock.next_deadline() != Some(due) {
                tokio::task::yield_now().await;
            }
            h.clock.advance(Duration::from_secs(8));
            h.sfn.send_task_heartbeat(&token).unwrap();
            due = heartbeat_due(&h.clock);
        }
        while h.clock.next_deadline() != Some(due) {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            h.sfn.describe_execution(&arn).unwrap().status,
            ExecutionStatus::Running
        );
        let done = h.finish(&arn).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("States.HeartbeatTimeout"));
        assert!(matches!(
            h.sfn.send_task_heartbeat(&token),
            Err(Error::TaskDoesNotExist(_))
        ));
    }

    pub async fn map_tolerates_failures_up_to_its_threshold(h: Harness) {
        let definition = |tolerated: u32| {
            json!({
                "StartAt": "Each",
                "States": {"Each": {
                    "Type": "Map",
                    "ToleratedFailureCount": tolerated,
                    "ItemProcessor": {
                        "StartAt": "Check",
                        "States": {
                            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": false, "Next": "Bad"}], "Default": "Good"},
                            "Bad": {"Type": "Fail", "Error": "Item.Bad", "Cause": "not ok"},
                            "Good": {"Type": "Pass", "Result": "fine", "End": true}
                        }
                    },
                    "End": true
                }}
            })
        };
        let items = json!([{"ok": true}, {"ok": false}, {"ok": true}, {"ok": false}]);
        let lenient = h.machine("lenient", definition(2)).await;
        let done = h.run(&lenient, items.clone()).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(
            done.output,
            Some(
                json!(["fine", {"Error": "Item.Bad", "Cause": "not ok"}, "fine", {"Error": "Item.Bad", "Cause": "not ok"}])
            )
        );
        let strict = h.machine("strict", definition(1)).await;
        let done = h.run(&strict, items.clone()).await;
        assert_eq!(done.status, ExecutionStatus::Failed);
        assert_eq!(
            done.error.as_deref(),
            Some("States.ExceedToleratedFailureThreshold")
        );
        // Exceeding either threshold fails the Map: 2 of 4 is within a count of 3 but above 25%.
        let mut both = definition(3);
        both["States"]["Each"]["ToleratedFailurePercentage"] = json!(25);
        let both = h.machine("both", both).await;
        let done = h.run(&both, items).await;
        assert_eq!(
            done.error.as_deref(),
            Some("States.ExceedToleratedFailureThreshold")
        );
    }

    pub async fn map_runs_at_most_max_concurrency_iterations_at_once(h: Harness) {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        h.sfn.tasks().register_fn("slow", move |req| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(req.input)
            }
        });
        let machine = h
            .machine(
                "bounded",
                json!({
                    "StartAt": "Each",
                    "States": {"Each": {
                        "Type": "Map", "MaxConcurrency": 2, "ItemsPath": "$.items",
                        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                        "ItemProcessor": {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": "slow", "End": true}}},
                        "End": true
                    }}
                }),
            )
            .await;
        let done = h
            .run(&machine, json!({"items": ["a", "b", "c", "d", "e"]}))
            .await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        let output = done.output.unwrap();
        assert_eq!(output[4], json!({"v": "e", "i": 4}));
        // Never more than two at once (how many overlap depends on the engine's write speed).
        assert!((1..=2).contains(&peak.load(Ordering::SeqCst)), "{peak:?}");
    }

    pub async fn executions_time_out_and_stop(h: Harness) {
        let machine = h
            .machine(
                "slow",
                json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
            )
            .await;
        let done = h.run(&machine, json!({})).await;
        assert_eq!(done.status, ExecutionStatus::TimedOut);
        assert_eq!(
            done.stop_date
                .unwrap()
                .saturating_duration_since(done.start_date),
            Duration::from_secs(60)
        );
        let arn = h
            .sfn
            .start_execution(&machine, Some("to-stop"), "{}")
            .await
            .unwrap();
        h.clock.wait_for_timers(2).await;
        h.sfn
            .stop_execution(&arn, Some("Operator"), Some("no longer needed"))
            .await
            .unwrap();
        let done = h.sfn.wait_for_execution(&arn).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Aborted);
        assert_eq!(done.error.as_deref(), Some("Operator"));
        let aborted = h
            .sfn
            .list_executions(&machine, Some(ExecutionStatus::Aborted))
            .unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(h.sfn.list_executions(&machine, None).unwrap().len(), 2);
    }

    pub async fn start_rejects_bad_requests_and_changes_nothing(h: Harness) {
        let machine = h
            .machine(
                "m",
                json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
            )
            .await;
        let first = h
            .sfn
            .start_execution(&machine, Some("once"), "{}")
            .await
            .unwrap();
        h.finish(&first).await;
        // A finished execution's name is taken.
        let again = h.sfn.start_execution(&machine, Some("once"), "{}").await;
        assert!(
            matches!(again, Err(Error::ExecutionAlreadyExists(_))),
            "{again:?}"
        );
        // Starting a running Standard execution again with the same input is idempotent.
        let waiting = h
            .machine("waiting", json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": true}}}))
            .await;
        let a = h
            .sfn
            .start_execution(&waiting, Some("same"), r#"{"n": 1}"#)
            .await
            .unwrap();
        let b = h
            .sfn
            .start_execution(&waiting, Some("same"), r#"{ "n" : 1 }"#)
            .await
            .unwrap();
        assert_eq!(a, b);
        let other = h
            .sfn
            .start_execution(&waiting, Some("same"), r#"{"n": 2}"#)
            .await;
        assert!(matches!(other, Err(Error::ExecutionAlreadyExists(_))));
        h.finish(&a).await;
        let bad_name = h
            .sfn
            .start_execution(&machine, Some("has space"), "{}")
            .await;
        assert!(matches!(bad_name, Err(Error::InvalidName { .. })));
        let bad_input = h.sfn.start_execution(&machine, None, "{not json").await;
        assert!(matches!(bad_input, Err(Error::InvalidExecutionInput(_))));
        let big = format!("\"{}\"", "x".repeat(262_144));
        let too_big = h.sfn.start_execution(&machine, None, &big).await;
        assert!(matches!(too_big, Err(Error::InvalidExecutionInput(_))));
        let missing = h
            .sfn
            .start_execution(
                "arn:aws:states:us-east-1:000000000000:stateMachine:nope",
                None,
                "{}",
            )
            .await;
        assert!(matches!(missing, Err(Error::StateMachineDoesNotExist(_))));
        h.finish(&first).await;
        assert_eq!(h.sfn.list_executions(&machine, None).unwrap().len(), 1);
    }

    pub async fn express_runs_synchronously_within_five_minutes(h: Harness) {
        let express = |wait: u64| {
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": wait, "Next": "P"}, "P": {"Type": "Pass", "End": true}}})
                .to_string()
        };
        let short = h
            .sfn
            .create_state_machine("express", &express(10), StateMachineType::Express)
            .await
            .unwrap();
        let long = h
            .sfn
            .create_state_machine("express-long", &express(600), StateMachineType::Express)
            .await
            .unwrap();
        for (machine, status, took) in [
            (short, ExecutionStatus::Succeeded, 10),
            (long, ExecutionStatus::TimedOut, 300),
        ] {
            let sfn = h.sfn.clone();
            let run =
                tokio::spawn(async move { sfn.start_sync_execution(&machine, None, "{}").await });
            // The wait's timer and the five-minute limit's.
            h.clock.wait_for_timers(2).await;
            h.clock.advance(Duration::from_secs(took));
            let done = run.await.unwrap().unwrap();
            assert_eq!(done.status, status);
            assert!(done.execution_arn.contains(":express:"));
            assert_eq!(
                done.stop_date
                    .unwrap()
                    .saturating_duration_since(done.start_date),
                Duration::from_secs(took)
            );
            // A synchronous Express execution is not kept.
            assert!(matches!(
                h.sfn.describe_execution(&done.execution_arn),
                Err(Error::ExecutionDoesNotExist(_))
            ));
        }
    }

    pub async fn executions_resume_after_a_restart(h: Harness) {
        let machine = h
            .machine(
                "resume",
                json!({
                    "StartAt": "Before",
                    "States": {
                        "Before": {"Type": "Pass", "Result": 1, "ResultPath": "$.before", "Assign": {"seen": "yes"}, "Next": "Wait"},
                        "Wait": {"Type": "Wait", "Seconds": 100, "Next": "After"},
                        "After": {"Type": "Pass", "Parameters": {"before.$": "$.before", "seen.$": "$seen"}, "End": true}
                    }
                }),
            )
            .await;
        // The first service runs on its own runtime, which is dropped mid-wait: a crash.
        let arn = {
            let sfn = h.sfn.clone();
            let machine = machine.clone();
            let clock = h.clock.clone();
            in_a_process_that_dies(move || async move {
                let arn = sfn
                    .start_execution(&machine, Some("survivor"), r#"{"x": 1}"#)
                    .await
                    .unwrap();
                clock.wait_for_timers(1).await;
                arn
            })
        };
        h.clock.advance(Duration::from_secs(40));
        let h = h.reopen().await;
        let sfn = h.sfn.clone();
        let done = finish(&sfn, &h.clock, &arn).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded);
        assert_eq!(done.output, Some(json!({"before": 1, "seen": "yes"})));
        // The wait kept its deadline: 100 s after the state was entered, not after the restart.
        assert_eq!(
            done.stop_date
                .unwrap()
                .saturating_duration_since(done.start_date),
            Duration::from_secs(100)
        );
        let types: Vec<String> = sfn
            .get_execution_history(&arn)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "WaitStateEntered",
                "WaitStateExited",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );
        // Finished executions stay described after another restart.
        drop(sfn);
        let again = h.reopen().await;
        assert_eq!(
            again.sfn.describe_execution(&arn).unwrap().status,
            ExecutionStatus::Succeeded
        );
        assert_eq!(
            again.sfn.describe_state_machine(&machine).unwrap().name,
            "resume"
        );
    }

    pub async fn state_machines_are_idempotent_and_listed(h: Harness) {
        let def =
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}).to_string();
        let a = h
            .sfn
            .create_state_machine("same", &def, StateMachineType::Standard)
            .await
            .unwrap();
        let b = h
            .sfn
            .create_state_machine("same", &def, StateMachineType::Standard)
            .await
            .unwrap();
        assert_eq!(a, b);
        let other =
            json!({"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": true}}}).to_string();
        assert!(matches!(
            h.sfn
                .create_state_machine("same", &other, StateMachineType::Standard)
                .await,
            Err(Error::StateMachineAlreadyExists(_))
        ));
        assert!(matches!(
            h.sfn
                .create_state_machine("bad name!", &def, StateMachineType::Standard)
                .await,
            Err(Error::InvalidName { .. })
        ));
        assert_eq!(h.sfn.list_state_machines().len(), 1);
        h.sfn.delete_state_machine(&a).await.unwrap();
        assert!(h.sfn.list_state_machines().is_empty());
        assert!(matches!(
            h.sfn.describe_state_machine(&a),
            Err(Error::StateMachineDoesNotExist(_))
        ));
    }
}
