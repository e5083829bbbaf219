//! The interpreter: runs a parsed machine over JSON, state by state, in AWS's data-flow order,
//! recording history events. Parallel branches and Map iterations run as concurrent futures
//! of the same task; waits and retries sleep on the clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudlet_core::{SharedClock, Timestamp};
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::choice;
use crate::definition::{
    Assign, Catcher, Dynamic, Kind, Machine, PathField, QueryLanguage, Retrier, State, WaitFor,
};
use crate::intrinsics::{self, Call};
use crate::journal::{Checkpoint, Journal};
use crate::jsonata::{self, EvalError};
use crate::path::Root;
use crate::task::{Callbacks, Pattern, TaskFailure, TaskRegistry, TaskRequest, Waiting};
use crate::template::{Sources, TemplateError, read_path};
use crate::time::parse_timestamp;

/// The most bytes of an input, output or result.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// The most events of one execution's history.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// A failure travelling up the machine: an error name and a cause, either possibly absent
/// (a Fail state may name neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) error: Option<String>,
    pub(crate) cause: Option<String>,
    /// A state's own expression failed and no `EvaluationFailed` event records it yet.
    pub(crate) evaluation: bool,
}

impl Failure {
    pub(crate) fn new(error: &str, cause: impl Into<String>) -> Self {
        Self {
            error: Some(error.to_string()),
            cause: Some(cause.into()),
            evaluation: false,
        }
    }

    pub(crate) fn named(error: Option<String>, cause: Option<String>) -> Self {
        Self {
            error,
            cause,
            evaluation: false,
        }
    }

    /// Whether a retrier or catcher naming `names` handles this failure. States.Runtime is
    /// never handled; States.ALL handles everything else but States.DataLimitExceeded;
    /// States.TaskFailed everything States.ALL does except States.Timeout.
    fn matches(&self, names: &[String]) -> bool {
        let error = self.error.as_deref().unwrap_or("");
        if error == "States.Runtime" {
            return false;
        }
        let limit = error == "States.DataLimitExceeded";
        names.iter().any(|n| {
            n == error
                || (n == "States.ALL" && !limit)
                || (n == "States.TaskFailed" && !limit && error != "States.Timeout")
        })
    }

    fn output(&self) -> Value {
        let mut m = Map::new();
        if let Some(e) = &self.error {
            m.insert("Error".into(), Value::String(e.clone()));
        }
        if let Some(c) = &self.cause {
            m.insert("Cause".into(), Value::String(c.clone()));
        }
        Value::Object(m)
    }
}

/// One history event, with AWS's HistoryEventType name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEvent {
    /// 1-based, in order of occurrence.
    pub id: u64,
    /// The event this one follows in its branch (0 for the first).
    pub previous_event_id: u64,
    /// When it happened, on the service's clock.
    pub timestamp: Timestamp,
    /// `ExecutionStarted`, `PassStateEntered`, `TaskScheduled`, `MapIterationStarted`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's details, as AWS's `...EventDetails` structure for its type.
    pub details: Value,
}

/// What the execution knows about itself (the context object's Execution and StateMachine).
#[derive(Debug, Clone)]
pub(crate) struct ExecutionInfo {
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) input: Value,
    pub(crate) start_time: Timestamp,
    pub(crate) state_machine_arn: String,
    pub(crate) state_machine_name: String,
    pub(crate) role_arn: String,
    pub(crate) redrive_count: u32,
    pub(crate) express: bool,
}

/// One execution's shared state.
pub(crate) struct Run {
    pub(crate) clock: SharedClock,
    pub(crate) info: ExecutionInfo,
    pub(crate) tasks: Arc<TaskRegistry>,
    pub(crate) callbacks: Arc<Callbacks>,
    pub(crate) events: Mutex<Vec<HistoryEvent>>,
    pub(crate) journal: Option<Arc<Journal>>,
    /// Signalled when the history is full: the execution fails.
    pub(crate) history_full: tokio::sync::Notify,
    /// Checkpoints of a resumed execution, by branch path, taken as branches resume.
    pub(crate) resume: Mutex<HashMap<String, Checkpoint>>,
    pub(crate) record_details: bool,
    /// The id of the last `ExecutionRedriven` event (0 if none): events up to it belong to
    /// attempts that ended, which a resumed state never takes for its own.
    pub(crate) redriven_at: AtomicU64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("execution", &self.info.arn)
            .finish_non_exhaustive()
    }
}

/// Variables visible in a branch: its own, then its parents'.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    vars: Mutex<Vec<(String, Value)>>,
    parent: Option<Arc<Scope>>,
}

impl Scope {
    pub(crate) fn child(parent: &Arc<Scope>) -> Arc<Scope> {
        Arc::new(Scope {
            vars: Mutex::default(),
            parent: Some(parent.clone()),
        })
    }

    fn get(&self, name: &str) -> Option<Value> {
        let vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = vars.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        drop(vars);
        self.parent.as_ref().and_then(|p| p.get(name))
    }

    fn set(&self, values: Vec<(String, Value)>) {
        let mut vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in values {
            match vars.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => vars.push((name, value)),
            }
        }
    }

    /// The scope's own variables.
    pub(crate) fn local(&self) -> Vec<(String, Value)> {
        self.vars.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every visible variable, inner scopes first-wins.
    fn all(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = match &self.parent {
            Some(p) => p.all(),
            None => Vec::new(),
        };
        let vars = self.vars.lock().unwrap_or_else(|p| p.into_inner());
        for (n, v) in vars.iter() {
            match out.iter_mut().find(|(o, _)| o == n) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((n.clone(), v.clone())),
            }
        }
        out
    }
}

/// A branch of execution: the top level, a Parallel branch or a Map iteration.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) scope: Arc<Scope>,
    pub(crate) map_item: Option<(usize, Value)>,
    previous: AtomicU64,
    /// The branch's name in the journal: empty for the top, then
    /// `/<entered id>.<attempt>.<b|i><n>` per Parallel branch or Map iteration.
    path: String,
}

impl Frame {
    pub(crate) fn top() -> Self {
        Self {
            scope: Arc::default(),
            map_item: None,
            previous: AtomicU64::new(0),
            path: String::new(),
        }
    }

    fn child(&self, map_item: Option<(usize, Value)>, previous: u64, path: String) -> Self {
        Self {
            scope: Scope::child(&self.scope),
            map_item,
            previous: AtomicU64::new(previous),
            path,
        }
    }

    pub(crate) fn set_previous(&self, id: u64) {
        self.previous.store(id, Ordering::Relaxed);
    }
}

/// Where a state is when something is evaluated: for messages and the context object.
struct At<'a> {
    state: &'a State,
    entered_id: u64,
    entered_time: Timestamp,
    retry_count: u32,
    token: Option<&'a str>,
    /// Retry counters restored from a checkpoint (empty when the state starts afresh).
    retries: Vec<u32>,
    /// Whether this attempt resumes one a previous process began.
    resumed: bool,
    /// For a resumed state waiting to retry: when the retry is due.
    retry_due: Option<Timestamp>,
}

impl At<'_> {
    fn runtime(&self, message: impl std::fmt::Display) -> Failure {
        Failure::new("States.Runtime", self.prefixed(message))
    }

    fn query(&self, message: impl std::fmt::Display) -> Failure {
        let mut failure = Failure::new("States.QueryEvaluationError", self.prefixed(message));
        failure.evaluation = true;
        failure
    }

    fn prefixed(&self, message: impl std::fmt::Display) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {message}",
            self.state.name, self.entered_id
        )
    }
}

/// The data a JSONPath field reads.
struct Env<'a> {
    run: &'a Run,
    frame: &'a Frame,
    at: &'a At<'a>,
    input: &'a Value,
}

impl Sources for Env<'_> {
    fn input(&self) -> &Value {
        self.input
    }

    fn context(&self) -> Value {
        self.run.context(self.frame, self.at)
    }

    fn variable(&self, name: &str) -> Option<Value> {
        self.frame.scope.get(name)
    }
}

enum Step {
    Next(String, Value),
    End(Value),
}

fn payload_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn as_text(v: &Value) -> String {
    v.to_string()
}

impl Run {
    /// Records an event in `frame`'s branch and returns its id.
    pub(crate) fn emit(&self, frame: &Frame, event_type: &str, details: Value) -> u64 {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let id = events.len() as u64 + 1;
        // A Standard history holds 25,000 events, the last the execution's end: a state event
        // that would take that place fails the execution instead (Express keeps no history).
        if !self.info.express
            && id as usize >= MAX_HISTORY_EVENTS
            && !event_type.starts_with("Execution")
        {
            self.history_full.notify_one();
            return id - 1;
        }
        let event = HistoryEvent {
            id,
            previous_event_id: frame.previous.swap(id, Ordering::Relaxed),
            timestamp: self.clock.now(),
            event_type: event_type.to_string(),
            details,
        };
        if let Some(journal) = &self.journal {
            journal.event(&event);
        }
        events.push(event);
        id
    }

    pub(crate) fn event_count(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn context(&self, frame: &Frame, at: &At<'_>) -> Value {
        self.context_with(frame, at, true)
    }

    /// The context object; `with_input` false leaves out `Execution.Input`.
    fn context_with(&self, frame: &Frame, at: &At<'_>, with_input: bool) -> Value {
        let info = &self.info;
        let mut state = Map::new();
        state.insert(
            "EnteredTime".into(),
            Value::String(at.entered_time.iso8601()),
        );
        state.insert("Name".into(), Value::String(at.state.name.clone()));
        if matches!(
            at.state.kind,
            Kind::Task(_) | Kind::Map(_) | Kind::Parallel { .. }
        ) {
            state.insert("RetryCount".into(), Value::from(at.retry_count));
        }
        let mut context = json!({
            "Execution": {
                "Id": info.arn,
                                "StartTime": info.start_time.iso8601(),
                "Name": info.name,
                "RoleArn": info.role_arn,
            },
            "StateMachine": {"Id": info.state_machine_arn, "Name": info.state_machine_name},
            "State": state,
        });
        if with_input && let Some(Value::Object(execution)) = context.get_mut("Execution") {
            // Where AWS puts it: after Id.
            execution.shift_insert(1, "Input".to_string(), info.input.clone());
        }
        if !info.express {
            context["Execution"]["RedriveCount"] = Value::from(info.redrive_count);
        }
        if let Some(token) = at.token {
            context["Task"] = json!({"Token": token});
        }
        if let Some((index, value)) = &frame.map_item {
            context["Map"] = json!({"Item": {"Index": index, "Value": value}});
        }
        context
    }

    fn details(&self, make: impl FnOnce() -> Value) -> Value {
        if self.record_details {
            make()
        } else {
            Value::Null
        }
    }

    /// Runs `machine` from its StartAt (or from `start`) with `input`.
    pub(crate) fn run_machine<'a>(
        &'a self,
        machine: &'a Machine,
        input: Value,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let mut name = machine.start_at.clone();
            let mut input = input;
            let mut resumed = None;
            let restored = self.journal.as_ref().and_then(|_| {
                self.resume
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&frame.path)
            });
            if let Some(cp) = restored {
                if let Some(output) = cp.done {
                    return Ok(output);
                }
                frame.scope.set(cp.variables);
                frame.set_previous(cp.previous);
                if let Some(state) = cp.state {
                    name = state;
                    input = cp.input;
                    resumed = Some((cp.entered_id, cp.entered_time, cp.retries, cp.retry_due));
                }
            }
            loop {
                let Some(state) = machine.states.get(&name).cloned() else {
                    return Err(Failure::new(
                        "States.Runtime",
                        format!("no state named '{name}'"),
                    ));
                };
                let (entered_id, entered_time, retries, retry_due, was_resumed) = match resumed
                    .take()
                {
                    Some((id, time, retries, due)) => (id, time, retries, due, true),
                    None => {
                        let entered_time = self.clock.now();
                        let entered_id = self.emit(
                            frame,
                            state.kind.entered_event(),
                            self.details(|| json!({"name": state.name, "input": as_text(&input)})),
                        );
                        self.checkpoint(
                            frame,
                            &state,
                            &input,
                            entered_id,
                            entered_time,
                            Vec::new(),
                            None,
                        )
                        .await?;
                        (entered_id, entered_time, Vec::new(), None, false)
                    }
                };
                let retry_count = retries.last().copied().unwrap_or(0);
                let at = At {
                    state: &state,
                    entered_id,
                    entered_time,
                    retry_count,
                    token: None,
                    retries,
                    resumed: was_resumed,
                    retry_due,
                };
                let step = match self.run_state(&at, input, frame).await {
                    Ok(step) => step,
                    Err(mut failure) => {
                        self.evaluation_failed(frame, &state, &mut failure);
                        return Err(failure);
                    }
                };
                let output = match &step {
                    Step::Next(_, output) | Step::End(output) => output,
                };
                self.exited(frame, &state, output)?;
                match step {
                    Step::Next(next, output) => {
                        name = next;
                        input = output;
                    }
                    Step::End(output) => return Ok(output),
                }
            }
        })
    }

    /// For a resumed attempt: the id of the `kind` event the previous process recorded right
    /// after the frame's checkpoint, if it did (the frame then continues after it).
    fn recorded(&self, at: &At<'_>, frame: &Frame, kind: &str) -> Option<u64> {
        self.recorded_at(at, frame, kind).map(|(id, _)| id)
    }

    /// [`Run::recorded`], with the recorded event's time.
    fn recorded_at(&self, at: &At<'_>, frame: &Frame, kind: &str) -> Option<(u64, Timestamp)> {
        if !at.resumed {
            return None;
        }
        let previous = frame.previous.load(Ordering::Relaxed);
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let floor = self.redriven_at.load(Ordering::Relaxed);
        let event = events
            .iter()
            .find(|e| e.id > floor && e.event_type == kind && e.previous_event_id == previous)?;
        let found = (event.id, event.timestamp);
        drop(events);
        frame.set_previous(found.0);
        Some(found)
    }

    /// For a resumed branch: Some(the output) when it finished, Some(None) when it was under way.
    fn restored(&self, path: &str) -> Option<Option<Result<Value, Failure>>> {
        self.journal.as_ref()?;
        let resume = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        resume.get(path).map(|cp| match (&cp.done, &cp.failure) {
            (_, Some((error, cause))) => Some(Err(Failure::named(error.clone(), cause.clone()))),
            (Some(output), None) => Some(Ok(output.clone())),
            (None, None) => None,
        })
    }

    fn resume_take(&self, path: &str) {
        self.resume
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
    }

    /// Journals that `frame` is in `state` (Standard executions only).
    #[allow(clippy::too_many_arguments)]
    async fn checkpoint(
        &self,
        frame: &Frame,
        state: &State,
        input: &Value,
        entered_id: u64,
        entered_time: Timestamp,
        retries: Vec<u32>,
        retry_due: Option<Timestamp>,
    ) -> Result<(), Failure> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            state: Some(state.name.clone()),
            input: input.clone(),
            entered_id,
            entered_time,
            previous: frame.previous.load(Ordering::Relaxed),
            variables: frame.scope.local(),
            retries,
            retry_due,
            done: None,
            failure: None,
        };
        journal
            .checkpoint(&frame.path, checkpoint)
            .await
            .map_err(journal_failure)
    }

    /// Journals that the branch `frame` finished with `output`.
    async fn finished(&self, frame: &Frame, output: &Value) -> Result<(), Failure> {
        self.ended(frame, Some(output.clone()), None).await
    }

    /// Journals that the branch `frame` failed with `failure`.
    async fn failed(&self, frame: &Frame, failure: &Failure) -> Result<(), Failure> {
        let failure = (failure.error.clone(), failure.cause.clone());
        self.ended(frame, None, Some(failure)).await
    }

    /// Journals the end of the branch `frame`: its output or its failure.
    async fn ended(
        &self,
        frame: &Frame,
        done: Option<Value>,
        failure: Option<(Option<String>, Option<String>)>,
    ) -> Result<(), Failure> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            state: None,
            input: Value::Null,
            entered_id: 0,
            entered_time: Timestamp::EPOCH,
            previous: frame.previous.load(Ordering::Relaxed),
            variables: Vec::new(),
            retries: Vec::new(),
            retry_due: None,
            done,
            failure,
        };
        journal
            .checkpoint(&frame.path, checkpoint)
            .await
            .map_err(journal_failure)
    }

    /// Records `EvaluationFailed` for a failure of the state's own expressions, once.
    fn evaluation_failed(&self, frame: &Frame, state: &State, failure: &mut Failure) {
        if failure.evaluation {
            failure.evaluation = false;
            let mut details = self.failure_details(failure);
            if let Value::Object(m) = &mut details {
                m.insert("state".into(), Value::String(state.name.clone()));
            }
            self.emit(frame, "EvaluationFailed", details);
        }
    }

    /// Checks the state's output against the payload limit and records its exit, serializing
    /// the output once for both.
    fn exited(&self, frame: &Frame, state: &State, output: &Value) -> Result<(), Failure> {
        let text = as_text(output);
        if text.len() > MAX_PAYLOAD_BYTES {
            return Err(Failure::new(
                "States.DataLimitExceeded",
                format!(
                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                    state.name
                ),
            ));
        }
        self.emit(
            frame,
            state.kind.exited_event(),
            self.details(|| json!({"name": state.name, "output": text})),
        );
        Ok(())
    }

    fn step(state: &State, output: Value) -> Step {
        match &state.next {
            Some(next) => Step::Next(next.clone(), output),
            None => Step::End(output),
        }
    }

    async fn run_state(&self, at: &At<'_>, input: Value, frame: &Frame) -> Result<Step, Failure> {
        let state = at.state;
        match &state.kind {
            Kind::Pass { result } => {
                if state.language == QueryLanguage::Jsonata {
                    let output = self.finish_jsonata(at, frame, &input, None, None)?;
                    return Ok(Self::step(state, output));
                }
                let effective = self.input_path(at, frame, &input)?;
                let params = self.parameters(at, frame, effective)?;
                let result = result.clone().unwrap_or(params);
                let output = self.finish_jsonpath(at, frame, input, result)?;
                Ok(Self::step(state, output))
            }
            Kind::Succeed => {
                let output = if state.language == QueryLanguage::Jsonata {
                    self.finish_jsonata(at, frame, &input, None, None)?
                } else {
                    let effective = self.input_path(at, frame, &input)?;
                    self.output_path(at, frame, effective)?
                };
                Ok(Step::End(output))
            }
            Kind::Fail(fields) => {
                let effective = if state.language == QueryLanguage::JsonPath {
                    self.input_path(at, frame, &input)?
                } else {
                    input.clone()
                };
                let error =
                    self.fail_field(at, frame, &effective, fields.error.as_ref(), "Error")?;
                let cause =
                    self.fail_field(at, frame, &effective, fields.cause.as_ref(), "Cause")?;
                Err(Failure::named(error, cause))
            }
            Kind::Choice { choices, default } => {
                let effective = if state.language == QueryLanguage::JsonPath {
                    self.input_path(at, frame, &input)?
                } else {
                    input.clone()
                };
                let mut chosen = None;
                for branch in choices {
                    let matched = match &branch.rule {
                        crate::definition::Rule::Condition(condition) => {
                            let states = self.states_value(frame, at, &effective, None, None);
                            match self.jsonata_value(at, frame, condition, states, "Condition")? {
                                Value::Bool(b) => b,
                                other => {
                                    return Err(at.query(format!(
                                        "The JSONata expression specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '{}' for value: {}",
                                        type_name(&other),
                                        other
                                    )));
                                }
                            }
                        }
                        rule => {
                            let env = Env {
                                run: self,
                                frame,
                                at,
                                input: &effective,
                            };
                            choice::evaluate(rule, &env).map_err(|m| {
                                at.runtime(format!(
                                    "Invalid path '{}': The choice state's condition path references an invalid value.",
                                    m.0
                                ))
                            })?
                        }
                    };
                    if matched {
                        chosen = Some(branch);
                        break;
                    }
                }
                let (next, assign, output_field) = match chosen {
                    Some(b) => (b.next.clone(), b.assign.as_ref(), b.output.as_ref()),
                    None => match default {
                        Some(d) => (d.clone(), None, None),
                        None => {
                            return Err(Failure::new(
                                "States.NoChoiceMatched",
                                at.prefixed("No Matches!"),
                            ));
                        }
                    },
                };
                let output = if state.language == QueryLanguage::Jsonata {
                    let states = self.states_value(frame, at, &effective, None, None);
                    let mut values = Vec::new();
                    if let Some(Assign::Jsonata(a)) = assign {
                        values = self.assign_jsonata(at, frame, a, states.clone())?;
                    }
                    if let Some(Assign::Jsonata(a)) = &state.assign {
                        values.extend(self.assign_jsonata(at, frame, a, states.clone())?);
                    }
                    let output = match output_field.or(state.output.as_ref()) {
                        Some(o) => self.jsonata_template(at, frame, o, states, "Output")?,
                        None => effective,
                    };
                    frame.scope.set(values);
                    output
                } else {
                    let mut values = Vec::new();
                    if let Some(Assign::JsonPath(t)) = assign {
                        values = self.assign_jsonpath(at, frame, t, &effective)?;
                    }
                    if let Some(Assign::JsonPath(t)) = &state.assign {
                        values.extend(self.assign_jsonpath(at, frame, t, &effective)?);
                    }
                    frame.scope.set(values);
                    self.output_path(at, frame, effective)?
                };
                Ok(Step::Next(next, output))
            }
            Kind::Wait(wait) => {
                let effective = if state.language == QueryLanguage::JsonPath {
                    self.input_path(at, frame, &input)?
                } else {
                    input.clone()
                };
                let deadline = self.wait_deadline(at, frame, wait, &effective)?;
                if deadline > self.clock.now() {
                    self.clock.sleep_until(deadline).await;
                }
                let output = if state.language == QueryLanguage::Jsonata {
                    self.finish_jsonata(at, frame, &input, None, None)?
                } else {
                    self.finish_jsonpath(at, frame, input, effective)?
                };
                Ok(Self::step(state, output))
            }
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_) => {
                self.run_with_retry(at, input, frame).await
            }
        }
    }

    async fn run_with_retry(
        &self,
        at: &At<'_>,
        input: Value,
        frame: &Frame,
    ) -> Result<Step, Failure> {
        let state = at.state;
        let mut counts = vec![0u32; state.retry.len()];
        let mut retry_count = 0;
        if at.retries.len() == counts.len() + 1 {
            counts.copy_from_slice(&at.retries[..state.retry.len()]);
            retry_count = at.retries[state.retry.len()];
        }
        let mut resumed = at.resumed;
        // A retry that was waiting when the process stopped keeps its due time.
        if let Some(due) = at.retry_due {
            self.clock.sleep_until(due).await;
        }
        loop {
            let attempt_at = At {
                state,
                entered_id: at.entered_id,
                entered_time: at.entered_time,
                retry_count,
                token: None,
                retries: Vec::new(),
                resumed,
                retry_due: None,
            };
            resumed = false;
            let failure = match self.attempt(&attempt_at, &input, frame).await {
                // What follows the task (ResultSelector, ResultPath, OutputPath, Assign,
                // Output) fails the state too, and goes through Retry and Catch like it.
                Ok((result, states)) => {
                    let finished = match state.language {
                        QueryLanguage::JsonPath => {
                            self.finish_jsonpath(&attempt_at, frame, input.clone(), result)
                        }
                        QueryLanguage::Jsonata => {
                            self.finish_jsonata(&attempt_at, frame, &input, Some(&result), states)
                        }
                    };
                    match finished {
                        Ok(output) => return Ok(Self::step(state, output)),
                        Err(f) => f,
                    }
                }
                Err(f) => f,
            };
            let mut failure = failure;
            if let Some(i) = state
                .retry
                .iter()
                .position(|r| failure.matches(&r.error_equals))
            {
                let retrier = &state.retry[i];
                if counts[i] < retrier.max_attempts {
                    let delay = retry_delay(retrier, counts[i]);
                    counts[i] += 1;
                    retry_count += 1;
                    let mut retries = counts.clone();
                    retries.push(retry_count);
                    let due = self.clock.now().saturating_add(delay);
                    self.checkpoint(
                        frame,
                        state,
                        &input,
                        at.entered_id,
                        at.entered_time,
                        retries,
                        Some(due),
                    )
                    .await?;
                    self.clock.sleep_until(due).await;
                    continue;
                }
            }
            // The state fails for good: Map and Parallel say so once.
            self.evaluation_failed(frame, state, &mut failure);
            let fatal = failure.error.as_deref() == Some("States.Runtime");
            match &state.kind {
                _ if fatal => {}
                Kind::Map(_) => {
                    self.emit(frame, "MapStateFailed", self.failure_details(&failure));
                }
                Kind::Parallel { .. } => {
                    self.emit(frame, "ParallelStateFailed", self.failure_details(&failure));
                }
                _ => {}
            }
            let Some(catcher) = state
                .catch
                .iter()
                .find(|c| failure.matches(&c.error_equals))
            else {
                return Err(failure);
            };
            let output = self.caught(at, frame, catcher, &failure, input)?;
            return Ok(Step::Next(catcher.next.clone(), output));
        }
    }

    fn caught(
        &self,
        at: &At<'_>,
        frame: &Frame,
        catcher: &Catcher,
        failure: &Failure,
        input: Value,
    ) -> Result<Value, Failure> {
        let error_output = failure.output();
        match at.state.language {
            QueryLanguage::JsonPath => {
                if let Some(Assign::JsonPath(t)) = &catcher.assign {
                    let values = self.assign_jsonpath(at, frame, t, &error_output)?;
                    frame.scope.set(values);
                }
                self.result_path(at, &catcher.result_path, input, error_output)
            }
            QueryLanguage::Jsonata => {
                let mut states = self.states_value(frame, at, &input, None, None);
                states["errorOutput"] = error_output.clone();
                let values = match &catcher.assign {
                    Some(Assign::Jsonata(a)) => {
                        self.assign_jsonata(at, frame, a, states.clone())?
                    }
                    _ => Vec::new(),
                };
                let output = match &catcher.output {
                    Some(o) => self.jsonata_template(at, frame, o, states, "Output")?,
                    None => error_output,
                };
                frame.scope.set(values);
                Ok(output)
            }
        }
    }

    /// One attempt of a Task, Parallel or Map state: its result (after ResultSelector) and,
    /// for JSONata states, the `$states` view it was produced from.
    async fn attempt(
        &self,
        at: &At<'_>,
        input: &Value,
        frame: &Frame,
    ) -> Result<(Value, Option<Value>), Failure> {
        let state = at.state;
        // A callback task's token exists before its Parameters read `$$.Task.Token`.
        let token = match &state.kind {
            Kind::Task(task) if task.resource.ends_with(".waitForTaskToken") => {
                Some(self.token(frame, at))
            }
            _ => None,
        };
        let at = &At {
            state,
            entered_id: at.entered_id,
            entered_time: at.entered_time,
            retry_count: at.retry_count,
            token: token.as_deref(),
            retries: Vec::new(),
            resumed: at.resumed,
            retry_due: None,
        };
        let effective = match state.language {
            QueryLanguage::JsonPath => {
                let effective = self.input_path(at, frame, input)?;
                if matches!(state.kind, Kind::Map(_)) {
                    effective
                } else {
                    self.parameters(at, frame, effective)?
                }
            }
            QueryLanguage::Jsonata => match &state.arguments {
                Some(args) => {
                    let states = self.states_value(frame, at, input, None, None);
                    self.jsonata_template(at, frame, args, states, "Arguments")?
                }
                None => input.clone(),
            },
        };
        let result = match &state.kind {
            Kind::Task(task) => self.task(at, frame, task, effective).await?,
            Kind::Parallel { branches } => self.parallel(at, frame, branches, effective).await?,
            Kind::Map(map) => self.map(at, frame, map, effective).await?,
            _ => unreachable!("only Task, Parallel and Map states attempt"),
        };
        if payload_size(&result) > MAX_PAYLOAD_BYTES {
            return Err(Failure::new(
                "States.DataLimitExceeded",
                format!(
                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                    state.name
                ),
            ));
        }
        match state.language {
            QueryLanguage::JsonPath => {
                let result = match &state.result_selector {
                    Some(t) => {
                        let env = Env {
                            run: self,
                            frame,
                            at,
                            input: &result,
                        };
                        t.eval(&env)
                            .map_err(|e| self.template_error(at, e, &result))?
                    }
                    None => result,
                };
                Ok((result, None))
            }
            QueryLanguage::Jsonata => Ok((result, None)),
        }
    }

    async fn task(
        &self,
        at: &At<'_>,
        frame: &Frame,
        task: &crate::definition::Task,
        input: Value,
    ) -> Result<Value, Failure> {
        let resource = &task.resource;
        // A task a previous process had started keeps its events and its start time: it is
        // invoked again (at least once), but its TimeoutSeconds still counts from that start.
        let scheduled = self.recorded(at, frame, "TaskScheduled").is_some();
        if !scheduled {
            self.emit(
                frame,
                "TaskScheduled",
                self.details(|| json!({"resource": resource, "parameters": as_text(&input)})),
            );
        }
        let Some((handler, pattern)) = self.tasks.resolve(resource) else {
            let failure = Failure::new(
                "States.Runtime",
                at.prefixed(format!(
                    "No handler is registered for the resource '{resource}'."
                )),
            );
            self.emit(frame, "TaskFailed", self.failure_details(&failure));
            return Err(failure);
        };
        let timeout = self.seconds(at, frame, task.timeout.as_ref(), &input, "TimeoutSeconds")?;
        let heartbeat = self.seconds(
            at,
            frame,
            task.heartbeat.as_ref(),
            &input,
            "HeartbeatSeconds",
        )?;
        let token = match (pattern, at.token) {
            (Pattern::Callback, Some(token)) => Some(token.to_string()),
            (Pattern::Callback, None) => Some(uuid::Uuid::new_v4().to_string()),
            (Pattern::RequestResponse, _) => None,
        };
        let request = TaskRequest {
            resource: resource.clone(),
            input,
            task_token: token.clone(),
            // Without Execution.Input: a Map's every task would copy the whole input.
            // Parameters pass it with `$$.Execution.Input` when a task needs it.
            context: self.context_with(frame, at, false),
        };
        let (started_at, restarted) = match self.recorded_at(at, frame, "TaskStarted") {
            Some((_, time)) => (time, true),
            None => {
                self.emit(
                    frame,
                    "TaskStarted",
                    self.details(|| json!({"resource": resource})),
                );
                // A Standard execution's task start is durable before the task runs, so a
                // restart neither records it twice nor gives the task a fresh time limit.
                if let Some(journal) = &self.journal {
                    journal.sync().await.map_err(journal_failure)?;
                }
                (self.clock.now(), false)
            }
        };
        let deadline = timeout.map(|t| started_at.saturating_add(t));
        // Resumed after its time limit had passed: it timed out while nothing ran (unless a
        // callback's answer was stored in time, which is looked up first below).
        let expired = restarted && deadline.is_some_and(|d| self.clock.now() >= d);
        let outcome = match &token {
            None if expired => TaskOutcome::TimedOut,
            None => {
                let call = handler.invoke(request);
                match deadline {
                    // A result that is there when the deadline falls due wins.
                    Some(d) => tokio::select! {
                        biased;
                        r = call => TaskOutcome::Done(r),
                        () = self.clock.sleep_until(d) => TaskOutcome::TimedOut,
                    },
                    None => TaskOutcome::Done(call.await),
                }
            }
            Some(token) => {
                // The waiter exists before the token is stored, so an answer finds it; the
                // guard removes both when the task ends in any way (answer, timeout, stop,
                // a failing sibling).
                let (done_tx, done_rx) = oneshot::channel();
                let (beat_tx, beat_rx) = mpsc::unbounded_channel();
                self.callbacks.insert(
                    token.clone(),
                    Waiting {
                        done: done_tx,
                        heartbeat: beat_tx,
                    },
                );
                let _guard = TokenGuard { run: self, token };
                // A Standard execution's token is durable before anyone can hold it, and an
                // outcome sent for it before a restart is used rather than waited for again.
                if let Some(journal) = &self.journal {
                    let key = token.as_bytes().to_vec();
                    let waiting = crate::journal::StoredToken {
                        execution: self.info.arn.clone(),
                        outcome: None,
                    };
                    let stored = journal
                        .store()
                        .write(cloudlet_core::Durability::Durable, move |txn| {
                            use cloudlet_core::ReadView as _;
                            let existing = match txn.get(crate::journal::KS_TOKENS, &key)? {
                                Some(bytes) => {
                                    serde_json::from_slice::<crate::journal::StoredToken>(&bytes)
                                        .map_err(|e| {
                                            cloudlet_core::Error::corrupt(
                                                crate::journal::KS_TOKENS,
                                                e.to_string(),
                                            )
                                        })?
                                        .outcome
                                }
                                None => None,
                            };
                            if existing.is_none() {
                                let value = serde_json::to_vec(&waiting).map_err(|e| {
                                    cloudlet_core::Error::corrupt(
                                        crate::journal::KS_TOKENS,
                                        e.to_string(),
                                    )
                                })?;
                                txn.put(crate::journal::KS_TOKENS, key, value);
                            }
                            Ok::<_, cloudlet_core::Error>(existing)
                        })
                        .await
                        .map_err(journal_failure)?;
                    if let Some(outcome) = stored {
                        return self.task_outcome(
                            frame,
                            resource,
                            TaskOutcome::Done(
                                outcome.map_err(|(error, cause)| TaskFailure { error, cause }),
                            ),
                        );
                    }
                }
                if expired {
                    TaskOutcome::TimedOut
                } else {
                    self.callback(
                        &*handler, request, done_rx, beat_rx, deadline, heartbeat, at, frame,
                    )
                    .await
                }
            }
        };
        self.task_outcome(frame, resource, outcome)
    }

    /// A callback token: for a Standard execution derived from where the task is (execution,
    /// branch, state entry, attempt), so the same task attempt has the same token after a
    /// restart; random otherwise.
    fn token(&self, frame: &Frame, at: &At<'_>) -> String {
        if self.journal.is_none() {
            return uuid::Uuid::new_v4().to_string();
        }
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(
            format!(
                "{}|{}|{}|{}|{}",
                self.info.arn, self.info.redrive_count, frame.path, at.entered_id, at.retry_count
            )
            .as_bytes(),
        );
        digest[..24].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn task_outcome(
        &self,
        frame: &Frame,
        resource: &str,
        outcome: TaskOutcome,
    ) -> Result<Value, Failure> {
        match outcome {
            TaskOutcome::Done(Ok(result)) => {
                self.emit(
                    frame,
                    "TaskSucceeded",
                    self.details(|| json!({"resource": resource, "output": as_text(&result)})),
                );
                Ok(result)
            }
            TaskOutcome::Done(Err(f)) => {
                let failure = Failure::named(Some(f.error), f.cause);
                self.emit(frame, "TaskFailed", self.failure_details(&failure));
                Err(failure)
            }
            TaskOutcome::TimedOut | TaskOutcome::HeartbeatTimedOut => {
                let error = if matches!(outcome, TaskOutcome::HeartbeatTimedOut) {
                    "States.HeartbeatTimeout"
                } else {
                    "States.Timeout"
                };
                let failure = Failure::named(Some(error.into()), None);
                self.emit(frame, "TaskTimedOut", self.failure_details(&failure));
                Err(failure)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn callback(
        &self,
        handler: &dyn crate::task::TaskHandler,
        request: TaskRequest,
        mut done: oneshot::Receiver<Result<Value, TaskFailure>>,
        mut beats: mpsc::UnboundedReceiver<crate::task::Signal>,
        deadline: Option<Timestamp>,
        heartbeat: Option<Duration>,
        at: &At<'_>,
        frame: &Frame,
    ) -> TaskOutcome {
        // The task's time limit covers the handler's own call too.
        let invoked = match deadline {
            Some(d) => tokio::select! {
                biased;
                r = handler.invoke(request) => r,
                () = self.clock.sleep_until(d) => return TaskOutcome::TimedOut,
            },
            None => handler.invoke(request).await,
        };
        if let Err(f) = invoked {
            return TaskOutcome::Done(Err(f));
        }
        if self.recorded(at, frame, "TaskSubmitted").is_none() {
            self.emit(frame, "TaskSubmitted", Value::Null);
        }
        // Heartbeats sent while no process ran were lost, so a resumed task's heartbeat
        // window starts again here.
        let mut beat_deadline = heartbeat.map(|h| self.clock.now().saturating_add(h));
        loop {
            let next = match (deadline, beat_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match next {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = &mut done => {
                    return TaskOutcome::Done(r.unwrap_or_else(|_| {
                        Err(TaskFailure::new("States.Runtime", "the task token was abandoned"))
                    }));
                }
                Some(_) = beats.recv() => {
                    beat_deadline = heartbeat.map(|h| self.clock.now().saturating_add(h));
                }
                () = sleep => {
                    let now = self.clock.now();
                    if deadline.is_some_and(|d| now >= d) {
                        return TaskOutcome::TimedOut;
                    }
                    if beat_deadline.is_some_and(|d| now >= d) {
                        return TaskOutcome::HeartbeatTimedOut;
                    }
                }
            }
        }
    }

    async fn parallel(
        &self,
        at: &At<'_>,
        frame: &Frame,
        branches: &[Arc<Machine>],
        input: Value,
    ) -> Result<Value, Failure> {
        let started = match self.recorded(at, frame, "ParallelStateStarted") {
            Some(id) => id,
            None => self.emit(frame, "ParallelStateStarted", Value::Null),
        };
        let frames: Vec<Frame> = (0..branches.len())
            .map(|i| {
                let path = format!("{}/{}.{}.b{i}", frame.path, at.entered_id, at.retry_count);
                frame.child(None, started, path)
            })
            .collect();
        let mut runs: Vec<BoxFuture<'_, Result<Value, Failure>>> = Vec::with_capacity(frames.len());
        for (branch, child) in branches.iter().zip(&frames) {
            runs.push(Box::pin(self.branch(branch, input.clone(), child)));
        }
        let outputs = futures::future::try_join_all(runs).await?;
        self.emit(frame, "ParallelStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }

    /// Runs a Parallel branch or Map iteration and journals its output.
    async fn branch(
        &self,
        machine: &Machine,
        input: Value,
        frame: &Frame,
    ) -> Result<Value, Failure> {
        let output = self.run_machine(machine, input, frame).await?;
        self.finished(frame, &output).await?;
        Ok(output)
    }

    async fn map(
        &self,
        at: &At<'_>,
        frame: &Frame,
        map: &crate::definition::MapFields,
        effective: Value,
    ) -> Result<Value, Failure> {
        let state = at.state;
        let items = match state.language {
            QueryLanguage::JsonPath => match &map.items_path {
                PathField::Default | PathField::Null => effective.clone(),
                PathField::Path(p) => self.select(at, frame, p, &effective).map_err(|missing| {
                    at.runtime(format!(
                        "Invalid path '{p}' : No results for path: {missing}"
                    ))
                })?,
            },
            QueryLanguage::Jsonata => match &map.items {
                Some(items) => {
                    let states = self.states_value(frame, at, &effective, None, None);
                    let value = self.jsonata_template(at, frame, items, states, "Items")?;
                    if !value.is_array() {
                        let expr = items
                            .as_str()
                            .and_then(jsonata::expression)
                            .unwrap_or_default();
                        return Err(at.query(format!(
                            "The JSONata expression '{expr}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '{}' for value: {}",
                            type_name(&value),
                            value
                        )));
                    }
                    value
                }
                None => effective.clone(),
            },
        };
        let Value::Array(items) = items else {
            let message = format!("Map state input must be an array but was: {items}");
            return Err(match state.language {
                QueryLanguage::Jsonata => at.query(message),
                QueryLanguage::JsonPath => at.runtime(message),
            });
        };
        let limit = match &map.max_concurrency {
            None => 0,
            Some(d) => self.integer_field(at, frame, d, &effective, "MaxConcurrency")?,
        };
        let tolerated = self.tolerance(at, frame, map, &effective, items.len())?;
        let started = match self.recorded(at, frame, "MapStateStarted") {
            Some(id) => id,
            None => self.emit(
                frame,
                "MapStateStarted",
                self.details(|| json!({"length": items.len()})),
            ),
        };
        // Iterations whose start a resumed attempt already recorded.
        let begun: std::collections::HashSet<u64> = if at.resumed {
            let floor = self.redriven_at.load(Ordering::Relaxed);
            let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events
                .iter()
                .filter(|e| e.id > floor)
                .filter(|e| e.event_type == "MapIterationStarted" && e.previous_event_id == started)
                .filter_map(|e| e.details["index"].as_u64())
                .collect()
        } else {
            Default::default()
        };
        let frames: Vec<Frame> = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{}/{}.{}.i{i}", frame.path, at.entered_id, at.retry_count);
                frame.child(Some((i, v.clone())), started, path)
            })
            .collect();
        let mut iterations: Vec<BoxFuture<'_, Result<Value, Failure>>> =
            Vec::with_capacity(frames.len());
        for (index, child) in frames.iter().enumerate() {
            let begun = begun.contains(&(index as u64));
            iterations.push(Box::pin(
                self.iteration(at, map, child, index, &effective, begun),
            ));
        }
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let mut results = stream::iter(iterations).buffered(limit.min(items.len().max(1)));
        let mut outputs = Vec::with_capacity(items.len());
        let mut failures = 0usize;
        while let Some(result) = results.next().await {
            match result {
                Ok(v) => outputs.push(v),
                Err(failure) => {
                    failures += 1;
                    let exceeded = match tolerated {
                        None => true,
                        Some(t) => failures > t,
                    };
                    if exceeded {
                        let failure = if tolerated.is_some() {
                            Failure::new(
                                "States.ExceedToleratedFailureThreshold",
                                "The specified tolerated failure threshold was exceeded",
                            )
                        } else {
                            failure
                        };
                        return Err(failure);
                    }
                    outputs.push(failure.output());
                }
            }
        }
        self.emit(frame, "MapStateSucceeded", Value::Null);
        Ok(Value::Array(outputs))
    }

    async fn iteration(
        &self,
        at: &At<'_>,
        map: &crate::definition::MapFields,
        child: &Frame,
        index: usize,
        effective: &Value,
        begun: bool,
    ) -> Result<Value, Failure> {
        let state = at.state;
        // A resumed iteration already recorded its start; a finished one its end too.
        let restored = self.restored(&child.path);
        if let Some(Some(outcome)) = restored.clone() {
            self.resume_take(&child.path);
            return outcome;
        }
        let item = child
            .map_item
            .as_ref()
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        let item_input = match state.language {
            QueryLanguage::JsonPath => match &map.item_selector {
                Some(t) => {
                    let env = Env {
                        run: self,
                        frame: child,
                        at,
                        input: effective,
                    };
                    t.eval(&env)
                        .map_err(|e| self.template_error(at, e, effective))?
                }
                None => item,
            },
            QueryLanguage::Jsonata => match &map.item_selector_jsonata {
                Some(selector) => {
                    let states = self.states_value(child, at, effective, None, None);
                    self.jsonata_template(at, child, selector, states, "ItemSelector")?
                }
                None => item,
            },
        };
        // Iteration events always carry their index: a resumed Map reads it back.
        let details = json!({"name": state.name, "index": index});
        if restored.is_none() && !begun {
            self.emit(child, "MapIterationStarted", details.clone());
        }
        // The success is recorded before the iteration's output is journaled, so a finished
        // iteration always has its event.
        match self.run_machine(&map.processor, item_input, child).await {
            Ok(output) => {
                self.emit(child, "MapIterationSucceeded", details);
                self.finished(child, &output).await?;
                Ok(output)
            }
            Err(failure) => {
                self.emit(child, "MapIterationFailed", details);
                // A tolerated failure must not run again after a restart.
                self.failed(child, &failure).await?;
                Err(failure)
            }
        }
    }

    fn tolerance(
        &self,
        at: &At<'_>,
        frame: &Frame,
        map: &crate::definition::MapFields,
        input: &Value,
        items: usize,
    ) -> Result<Option<usize>, Failure> {
        let count = match &map.tolerated_count {
            Some(d) => {
                Some(self.integer_field(at, frame, d, input, "ToleratedFailureCount")? as usize)
            }
            None => None,
        };
        let percentage = match &map.tolerated_percentage {
            Some(d) => {
                let v = self.number_field(at, frame, d, input, "ToleratedFailurePercentage")?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(at.runtime(format!(
                        "ToleratedFailurePercentage must be between 0 and 100, was {v}"
                    )));
                }
                Some((v / 100.0 * items as f64).floor() as usize)
            }
            None => None,
        };
        // Exceeding either threshold fails the Map.
        Ok(match (count, percentage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn select(
        &self,
        at: &At<'_>,
        frame: &Frame,
        path: &crate::path::Path,
        input: &Value,
    ) -> Result<Value, String> {
        let missing = |m: crate::path::Missing| m.normalized;
        match path.root() {
            Root::Input => path.select(input).map_err(missing),
            Root::Context => path.select(&self.context(frame, at)).map_err(missing),
            Root::Variable(name) => match frame.scope.get(name) {
                Some(v) => path.select(&v).map_err(missing),
                None => Err(format!("${name}")),
            },
        }
    }

    fn input_path(&self, at: &At<'_>, frame: &Frame, input: &Value) -> Result<Value, Failure> {
        match &at.state.input_path {
            PathField::Default => Ok(input.clone()),
            PathField::Null => Ok(Value::Object(Map::new())),
            PathField::Path(p) => self.select(at, frame, p, input).map_err(|missing| {
                at.runtime(format!(
                    "Invalid path '{p}' : No results for path: {missing}"
                ))
            }),
        }
    }

    fn output_path(&self, at: &At<'_>, frame: &Frame, output: Value) -> Result<Value, Failure> {
        match &at.state.output_path {
            PathField::Default => Ok(output),
            PathField::Null => Ok(Value::Object(Map::new())),
            PathField::Path(p) => self.select(at, frame, p, &output).map_err(|missing| {
                at.runtime(format!(
                    "Invalid path '{p}' : No results for path: {missing}"
                ))
            }),
        }
    }

    fn result_path(
        &self,
        at: &At<'_>,
        field: &PathField,
        input: Value,
        result: Value,
    ) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(result),
            PathField::Null => Ok(input),
            PathField::Path(p) => {
                let mut output = input;
                let shown = as_text(&output);
                p.assign(&mut output, result).map_err(|()| {
                    Failure::new(
                        "States.ResultPathMatchFailure",
                        at.prefixed(format!(
                            "Unable to apply ResultPath \"{p}\" to input \"{shown}\""
                        )),
                    )
                })?;
                Ok(output)
            }
        }
    }

    fn parameters(&self, at: &At<'_>, frame: &Frame, effective: Value) -> Result<Value, Failure> {
        match &at.state.parameters {
            Some(t) => {
                let env = Env {
                    run: self,
                    frame,
                    at,
                    input: &effective,
                };
                t.eval(&env)
                    .map_err(|e| self.template_error(at, e, &effective))
            }
            None => Ok(effective),
        }
    }

    fn template_error(&self, at: &At<'_>, error: TemplateError, input: &Value) -> Failure {
        match error {
            TemplateError::PathMissing { field, path } => at.runtime(format!(
                "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                as_text(input)
            )),
            TemplateError::Intrinsic { field, message } => Failure::new(
                "States.IntrinsicFailure",
                at.prefixed(format!("The function specified for the field '{field}' failed: {message}")),
            ),
        }
    }

    fn finish_jsonpath(
        &self,
        at: &At<'_>,
        frame: &Frame,
        input: Value,
        result: Value,
    ) -> Result<Value, Failure> {
        let state = at.state;
        let values = match &state.assign {
            Some(Assign::JsonPath(t)) => self.assign_jsonpath(at, frame, t, &result)?,
            _ => Vec::new(),
        };
        let output = self.result_path(at, &state.result_path, input, result)?;
        let output = self.output_path(at, frame, output)?;
        frame.scope.set(values);
        Ok(output)
    }

    fn finish_jsonata(
        &self,
        at: &At<'_>,
        frame: &Frame,
        input: &Value,
        result: Option<&Value>,
        _states: Option<Value>,
    ) -> Result<Value, Failure> {
        let state = at.state;
        let states = self.states_value(frame, at, input, result, None);
        let values = match &state.assign {
            Some(Assign::Jsonata(a)) => self.assign_jsonata(at, frame, a, states.clone())?,
            _ => Vec::new(),
        };
        let output = match &state.output {
            Some(o) => self.jsonata_template(at, frame, o, states, "Output")?,
            None => result.cloned().unwrap_or_else(|| input.clone()),
        };
        frame.scope.set(values);
        Ok(output)
    }

    fn states_value(
        &self,
        frame: &Frame,
        at: &At<'_>,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
    ) -> Value {
        let mut states = Map::new();
        states.insert("input".into(), input.clone());
        states.insert("context".into(), self.context(frame, at));
        if let Some(r) = result {
            states.insert("result".into(), r.clone());
        }
        if let Some(e) = error_output {
            states.insert("errorOutput".into(), e.clone());
        }
        Value::Object(states)
    }

    /// Evaluates every `{% %}` string inside `value`; `field` names it in messages
    /// (`Output/result`).
    fn jsonata_template(
        &self,
        at: &At<'_>,
        frame: &Frame,
        value: &Value,
        states: Value,
        field: &str,
    ) -> Result<Value, Failure> {
        let variables = frame.scope.all();
        let env = jsonata::Env {
            states,
            variables: &variables,
            now: self.clock.now(),
        };
        self.jsonata_walk(at, value, &env, field)
    }

    fn jsonata_walk(
        &self,
        at: &At<'_>,
        value: &Value,
        env: &jsonata::Env<'_>,
        field: &str,
    ) -> Result<Value, Failure> {
        match value {
            Value::String(s) => match jsonata::expression(s) {
                Some(expr) => jsonata::eval(expr, env).map_err(|e| match e {
                    EvalError::Undefined => at.query(format!(
                        "The JSONata expression '{expr}' specified for the field '{field}' returned nothing (undefined)."
                    )),
                    EvalError::NotJson => at.query(format!(
                        "The JSONata expression '{expr}' specified for the field '{field}' returned an unsupported result type."
                    )),
                    EvalError::Failed(message) => at.query(format!(
                        "The JSONata expression '{expr}' specified for the field '{field}' threw an error during evaluation. {message}"
                    )),
                }),
                None => Ok(value.clone()),
            },
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.jsonata_walk(at, v, env, &format!("{field}/{k}"))?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.jsonata_walk(at, v, env, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn jsonata_value(
        &self,
        at: &At<'_>,
        frame: &Frame,
        value: &Value,
        states: Value,
        field: &str,
    ) -> Result<Value, Failure> {
        self.jsonata_template(at, frame, value, states, field)
    }

    fn assign_jsonata(
        &self,
        at: &At<'_>,
        frame: &Frame,
        assign: &Value,
        states: Value,
    ) -> Result<Vec<(String, Value)>, Failure> {
        let Value::Object(map) = assign else {
            return Ok(Vec::new());
        };
        let variables = frame.scope.all();
        let env = jsonata::Env {
            states,
            variables: &variables,
            now: self.clock.now(),
        };
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            out.push((
                k.clone(),
                self.jsonata_walk(at, v, &env, &format!("Assign/{k}"))?,
            ));
        }
        Ok(out)
    }

    fn assign_jsonpath(
        &self,
        at: &At<'_>,
        frame: &Frame,
        template: &crate::template::Template,
        input: &Value,
    ) -> Result<Vec<(String, Value)>, Failure> {
        let env = Env {
            run: self,
            frame,
            at,
            input,
        };
        match template
            .eval(&env)
            .map_err(|e| self.template_error(at, e, input))?
        {
            Value::Object(map) => Ok(map.into_iter().collect()),
            _ => Ok(Vec::new()),
        }
    }

    fn fail_field(
        &self,
        at: &At<'_>,
        frame: &Frame,
        input: &Value,
        field: Option<&Dynamic>,
        key: &str,
    ) -> Result<Option<String>, Failure> {
        let Some(field) = field else { return Ok(None) };
        let value = match field {
            Dynamic::Literal(v) => v.clone(),
            Dynamic::Path(p) => self.select(at, frame, p, input).map_err(|_| {
                at.runtime(format!(
                    "The JSONPath '{p}' specified for the field '{key}Path' could not be found in the input '{}'",
                    as_text(input)
                ))
            })?,
            Dynamic::Intrinsic(call) => self.intrinsic(at, frame, call, input, &format!("{key}Path"))?,
            Dynamic::Jsonata(expr) => {
                let states = self.states_value(frame, at, input, None, None);
                self.jsonata_value(at, frame, &Value::String(expr.clone()), states, key)?
            }
        };
        Ok(Some(intrinsics::to_text(&value)))
    }

    fn intrinsic(
        &self,
        at: &At<'_>,
        frame: &Frame,
        call: &Call,
        input: &Value,
        field: &str,
    ) -> Result<Value, Failure> {
        let env = Env {
            run: self,
            frame,
            at,
            input,
        };
        struct R<'a>(&'a Env<'a>);
        impl intrinsics::Resolver for R<'_> {
            fn resolve(&self, path: &crate::path::Path) -> Result<Value, String> {
                read_path(path, self.0)
                    .map_err(|()| format!("the JSONPath '{path}' could not be found"))
            }
        }
        call.eval(&R(&env)).map_err(|message| {
            Failure::new(
                "States.IntrinsicFailure",
                at.prefixed(format!(
                    "The function specified for the field '{field}' failed: {message}"
                )),
            )
        })
    }

    /// A dynamic numeric field's value (literal, path or JSONata).
    fn dynamic_value(
        &self,
        at: &At<'_>,
        frame: &Frame,
        field: &Dynamic,
        input: &Value,
        key: &str,
    ) -> Result<Value, Failure> {
        match field {
            Dynamic::Literal(v) => Ok(v.clone()),
            Dynamic::Path(p) => self.select(at, frame, p, input).map_err(|missing| {
                at.runtime(format!(
                    "Invalid path '{p}' : No results for path: {missing}"
                ))
            }),
            Dynamic::Intrinsic(call) => self.intrinsic(at, frame, call, input, key),
            Dynamic::Jsonata(expr) => {
                let states = self.states_value(frame, at, input, None, None);
                self.jsonata_value(at, frame, &Value::String(expr.clone()), states, key)
            }
        }
    }

    fn integer_field(
        &self,
        at: &At<'_>,
        frame: &Frame,
        field: &Dynamic,
        input: &Value,
        key: &str,
    ) -> Result<u64, Failure> {
        let value = self.dynamic_value(at, frame, field, input, key)?;
        // A path may name a string holding an integer, as Jackson coerces it.
        let coerced = match (&value, field) {
            (Value::String(s), Dynamic::Path(_)) => s.trim().parse::<u64>().ok(),
            _ => value.as_u64(),
        };
        match coerced {
            Some(n) => Ok(n),
            None => {
                let shown = intrinsics::to_text(&value);
                Err(match field {
                    Dynamic::Path(p) => at.runtime(format!(
                        "The {key}Path field refers to value \"{shown}\" which is not a valid integer: {p}"
                    )),
                    Dynamic::Jsonata(_) => at.query(format!(
                        "The {key} field must evaluate to a non-negative integer, but was: {shown}"
                    )),
                    _ => at.runtime(format!("The {key} field must be a non-negative integer, but was: {shown}")),
                })
            }
        }
    }

    fn number_field(
        &self,
        at: &At<'_>,
        frame: &Frame,
        field: &Dynamic,
        input: &Value,
        key: &str,
    ) -> Result<f64, Failure> {
        let value = self.dynamic_value(at, frame, field, input, key)?;
        value.as_f64().ok_or_else(|| {
            at.runtime(format!(
                "The {key} field must be a number, but was: {}",
                intrinsics::to_text(&value)
            ))
        })
    }

    fn seconds(
        &self,
        at: &At<'_>,
        frame: &Frame,
        field: Option<&Dynamic>,
        input: &Value,
        key: &str,
    ) -> Result<Option<Duration>, Failure> {
        match field {
            None => Ok(None),
            Some(d) => {
                let n = self.integer_field(at, frame, d, input, key)?;
                Ok(Some(Duration::from_secs(n)))
            }
        }
    }

    fn wait_deadline(
        &self,
        at: &At<'_>,
        frame: &Frame,
        wait: &WaitFor,
        input: &Value,
    ) -> Result<Timestamp, Failure> {
        // From the state's entry, so a resumed wait keeps its deadline.
        let now = at.entered_time;
        match wait {
            WaitFor::Seconds(field) => {
                let value = self.dynamic_value(at, frame, field, input, "Seconds")?;
                let seconds = match (&value, field) {
                    (v, _) if v.as_u64().is_some() => v.as_u64().unwrap_or_default(),
                    (v, Dynamic::Path(p)) if v.as_i64().is_some_and(|n| n < 0) => {
                        return Err(at.runtime(format!(
                            "The SecondsPath parameter references a negative value: {p} == {v}"
                        )));
                    }
                    (v, Dynamic::Path(p)) => {
                        return Err(at.runtime(format!(
                            "The SecondsPath parameter cannot be parsed as a long value: {p} == {v}"
                        )));
                    }
                    (v, _) => {
                        return Err(at.query(format!(
                            "The Seconds field must evaluate to a non-negative integer, but was: {v}"
                        )));
                    }
                };
                Ok(now.saturating_add(Duration::from_secs(seconds)))
            }
            WaitFor::Timestamp(field) => {
                let value = self.dynamic_value(at, frame, field, input, "Timestamp")?;
                let parsed = value.as_str().and_then(parse_timestamp);
                let Some(nanos) = parsed else {
                    return Err(match field {
                        Dynamic::Path(p) => at.runtime(format!(
                            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                            intrinsics::to_text(&value)
                        )),
                        _ => at.query(format!(
                            "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {}",
                            intrinsics::to_text(&value)
                        )),
                    });
                };
                Ok(Timestamp::from_nanos(
                    u64::try_from(nanos.max(0)).unwrap_or(u64::MAX),
                ))
            }
        }
    }

    fn failure_details(&self, failure: &Failure) -> Value {
        self.details(|| {
            let mut m = Map::new();
            if let Some(e) = &failure.error {
                m.insert("error".into(), Value::String(e.clone()));
            }
            if let Some(c) = &failure.cause {
                m.insert("cause".into(), Value::String(c.clone()));
            }
            Value::Object(m)
        })
    }
}

fn journal_failure(e: cloudlet_core::Error) -> Failure {
    Failure::new(
        "States.Runtime",
        format!("The execution journal could not be written: {e}"),
    )
}

/// Removes a callback task's waiter and (later, with the journal's next write) its stored
/// token, however the task ends.
struct TokenGuard<'a> {
    run: &'a Run,
    token: &'a str,
}

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        self.run.callbacks.remove(self.token);
        if let Some(journal) = &self.run.journal {
            journal.delete_later(crate::journal::KS_TOKENS, self.token.as_bytes().to_vec());
        }
    }
}

enum TaskOutcome {
    Done(Result<Value, TaskFailure>),
    TimedOut,
    HeartbeatTimedOut,
}

/// IntervalSeconds × BackoffRate^attempt, capped by MaxDelaySeconds, with full jitter if asked.
fn retry_delay(retrier: &Retrier, attempt: u32) -> Duration {
    let mut seconds = retrier.interval_seconds
        * retrier
            .backoff_rate
            .powi(i32::try_from(attempt).unwrap_or(i32::MAX));
    if let Some(max) = retrier.max_delay_seconds {
        seconds = seconds.min(max);
    }
    seconds = seconds.min(99_999_999.0);
    if retrier.full_jitter {
        let unit = (uuid::Uuid::new_v4().as_u64_pair().0 >> 11) as f64 / (1u64 << 53) as f64;
        seconds *= unit;
    }
    Duration::from_secs_f64(seconds.max(0.0))
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
