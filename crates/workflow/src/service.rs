//! The Step Functions API: state machines, executions, history, task tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudlet_core::{SharedClock, Store, Timestamp};
use futures::FutureExt as _;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::definition::{self, Machine, Problem};
use crate::error::{Error, Result};
use crate::interp::{ExecutionInfo, Frame, HistoryEvent, MAX_PAYLOAD_BYTES, Run};
use crate::journal::{self, Journal, KS_EXECUTIONS, KS_MACHINES};
use crate::task::{Callbacks, TaskFailure, TaskRegistry};

/// Standard (durable, exactly-once states) or Express (in memory, at-least-once, 5 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateMachineType {
    /// Every transition journaled; resumes after a restart.
    Standard,
    /// In memory; at most 5 minutes.
    Express,
}

/// An execution's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecutionStatus {
    /// Still going.
    Running,
    /// Reached a Succeed state or an End.
    Succeeded,
    /// A state failed and nothing caught it.
    Failed,
    /// The machine's TimeoutSeconds passed (Express: 5 minutes).
    TimedOut,
    /// Stopped by stop_execution.
    Aborted,
}

impl ExecutionStatus {
    /// The status as AWS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }
}

/// DescribeStateMachine.
#[derive(Debug, Clone)]
pub struct StateMachineDescription {
    /// `arn:aws:states:<region>:<account>:stateMachine:<name>`.
    pub arn: String,
    /// The name.
    pub name: String,
    /// The definition as given.
    pub definition: String,
    /// Standard or Express.
    pub kind: StateMachineType,
    /// When it was created.
    pub creation_date: Timestamp,
}

/// DescribeExecution.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionDescription {
    /// The execution's ARN.
    pub execution_arn: String,
    /// Its state machine's ARN.
    pub state_machine_arn: String,
    /// The execution's name.
    pub name: String,
    /// Where it is.
    pub status: ExecutionStatus,
    /// The input, as JSON.
    pub input: Value,
    /// The output, once it succeeded.
    pub output: Option<Value>,
    /// The error name, once it failed (absent when the Fail state named none).
    pub error: Option<String>,
    /// The cause, once it failed.
    pub cause: Option<String>,
    /// When it started.
    pub start_date: Timestamp,
    /// When it ended.
    pub stop_date: Option<Timestamp>,
    /// How many times it was redriven.
    #[serde(default)]
    pub redrive_count: u32,
    /// When it was last redriven.
    #[serde(default)]
    pub redrive_date: Option<Timestamp>,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct WorkflowOptions {
    /// Region in ARNs.
    pub region: String,
    /// Account id in ARNs.
    pub account: String,
    /// Whether history events carry their details (inputs, outputs); off saves time and memory
    /// when only the types and ids matter.
    pub record_details: bool,
    /// How long a finished asynchronous Express execution can still be described and listed
    /// (an extension: AWS describes no Express execution). Standard executions are kept for
    /// [`EXECUTION_RETENTION`], as AWS keeps them.
    pub express_retention: Duration,
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            record_details: true,
            express_retention: Duration::from_secs(300),
        }
    }
}

struct MachineRecord {
    description: StateMachineDescription,
    machine: Arc<Machine>,
}

/// A state machine as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMachine {
    name: String,
    definition: String,
    kind: StateMachineType,
    creation_date: Timestamp,
}

/// An execution as stored: its description and the definition it runs (an execution keeps
/// running on its definition even when the state machine is deleted).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredExecution {
    description: ExecutionDescription,
    definition: String,
    /// A stop that was acknowledged: a restart ends the execution ABORTED with it.
    #[serde(default)]
    stop: Option<(Option<String>, Option<String>)>,
}

struct ExecutionRecord {
    description: watch::Sender<ExecutionDescription>,
    /// The definition it runs: kept for a redrive after the machine changes or is deleted.
    definition: Arc<str>,
    run: Arc<Run>,
    stop: Arc<Notify>,
    stop_reason: Mutex<Option<(Option<String>, Option<String>)>>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    options: WorkflowOptions,
    tasks: Arc<TaskRegistry>,
    callbacks: Arc<Callbacks>,
    machines: Mutex<HashMap<String, Arc<MachineRecord>>>,
    executions: Mutex<HashMap<String, Arc<ExecutionRecord>>>,
    /// Executions found running by `open`, until `resume_executions` starts them.
    resumable: Mutex<Vec<(Arc<ExecutionRecord>, Arc<Machine>)>>,
    /// The background tasks running executions.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Executions a redrive is starting, so a second one is refused.
    redriving: Mutex<std::collections::HashSet<String>>,
    /// Ended executions past the redrive window whose checkpoints `resume_executions` drops.
    expired: Mutex<Vec<Arc<ExecutionRecord>>>,
    /// Ended executions still kept, by the time they are to be forgotten.
    closed: Mutex<std::collections::BTreeSet<(Timestamp, String)>>,
    /// Held while expired executions are removed: a start of the same name waits for it.
    sweeping: tokio::sync::Mutex<()>,
}

/// Step Functions as a library: see the crate docs.
#[derive(Clone)]
pub struct WorkflowService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkflowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowService")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// The most executions one ListExecutions page holds.
pub const MAX_LIST_RESULTS: u32 = 1000;
const DEFAULT_LIST_RESULTS: u32 = 100;

/// One page of ListExecutions.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    /// The executions, newest first.
    pub executions: Vec<ExecutionDescription>,
    /// Pass it back for the next page; None on the last.
    pub next_token: Option<String>,
}

fn encode_list_token(start: Timestamp, name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{name}", start.as_nanos()))
}

fn decode_list_token(token: &str) -> Result<(Timestamp, String)> {
    use base64::Engine as _;
    let invalid = || Error::InvalidToken(format!("the nextToken '{token}' is not valid"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (nanos, name) = text.split_once(':').ok_or_else(invalid)?;
    let nanos: u64 = nanos.parse().map_err(|_| invalid())?;
    Ok((Timestamp::from_nanos(nanos), name.to_string()))
}

/// How long after its end an execution can be redriven.
pub const REDRIVE_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);

/// How long after its end a Standard execution can be described, listed and its history read,
/// as AWS keeps it; afterwards it is gone from memory and from the store.
pub const EXECUTION_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The Express limit on an execution's duration.
pub const EXPRESS_MAX_DURATION: Duration = Duration::from_secs(300);

fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.chars().count() > 80 {
        return bad("names are 1 to 80 characters");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c))
    {
        return bad(
            "names may not hold whitespace, brackets, wildcards, control characters or any of \" # % \\ ^ | ~ ` $ & , ; : /",
        );
    }
    Ok(())
}

/// The largest definition AWS accepts.
pub const MAX_DEFINITION_BYTES: usize = 1_048_576;

fn parse_definition(definition: &str) -> Result<Arc<Machine>> {
    if definition.len() > MAX_DEFINITION_BYTES {
        return Err(Error::InvalidDefinition {
            problems: vec![too_large(definition)],
        });
    }
    let value: Value = serde_json::from_str(definition).map_err(|e| Error::InvalidDefinition {
        problems: vec![Problem {
            path: "$".into(),
            message: format!("the definition is not JSON: {e}"),
        }],
    })?;
    definition::parse(&value).map_err(|problems| Error::InvalidDefinition { problems })
}

fn too_large(definition: &str) -> Problem {
    Problem {
        path: "$".into(),
        message: format!(
            "the definition is {} bytes; at most {MAX_DEFINITION_BYTES} are allowed",
            definition.len()
        ),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks a definition as ValidateStateMachineDefinition does: every problem, with its path.
pub fn validate_definition(definition: &str) -> Vec<Problem> {
    if definition.len() > MAX_DEFINITION_BYTES {
        return vec![too_large(definition)];
    }
    match serde_json::from_str::<Value>(definition) {
        Err(e) => vec![Problem {
            path: "$".into(),
            message: format!("the definition is not JSON: {e}"),
        }],
        Ok(v) => match definition::parse(&v) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        },
    }
}

impl WorkflowService {
    /// A service over `store`, on `clock`.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self::with_options(store, clock, WorkflowOptions::default())
    }

    /// A service with explicit options.
    pub fn with_options(store: Store, clock: SharedClock, options: WorkflowOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                options,
                tasks: Arc::default(),
                callbacks: Arc::default(),
                machines: Mutex::default(),
                executions: Mutex::default(),
                resumable: Mutex::default(),
                background: Mutex::default(),
                redriving: Mutex::default(),
                expired: Mutex::default(),
                closed: Mutex::default(),
                sweeping: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// The task registry: register handlers for Task resources here.
    pub fn tasks(&self) -> &TaskRegistry {
        &self.inner.tasks
    }

    fn machine_arn(&self, name: &str) -> String {
        let o = &self.inner.options;
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            o.region, o.account
        )
    }

    /// CreateStateMachine. Idempotent when the name, definition and type match. The machine
    /// is stored durably before this returns.
    pub async fn create_state_machine(
        &self,
        name: &str,
        definition: &str,
        kind: StateMachineType,
    ) -> Result<String> {
        check_name(name)?;
        let machine = parse_definition(definition)?;
        let arn = self.machine_arn(name);
        {
            let machines = lock(&self.inner.machines);
            if let Some(existing) = machines.get(&arn) {
                if existing.description.definition == definition
                    && existing.description.kind == kind
                {
                    return Ok(arn);
                }
                return Err(Error::StateMachineAlreadyExists(arn));
            }
        }
        let stored = StoredMachine {
            name: name.to_string(),
            definition: definition.to_string(),
            kind,
            creation_date: self.inner.clock.now(),
        };
        let value = serde_json::to_vec(&stored).map_err(|e| Error::Validation(e.to_string()))?;
        let key = arn.clone().into_bytes();
        self.inner
            .store
            .write(cloudlet_core::Durability::Durable, move |txn| {
                txn.put(KS_MACHINES, key, value);
                Ok::<_, cloudlet_core::Error>(())
            })
            .await?;
        let description = StateMachineDescription {
            arn: arn.clone(),
            name: stored.name,
            definition: stored.definition,
            kind,
            creation_date: stored.creation_date,
        };
        let mut machines = lock(&self.inner.machines);
        if let Some(existing) = machines.get(&arn)
            && (existing.description.definition != definition || existing.description.kind != kind)
        {
            return Err(Error::StateMachineAlreadyExists(arn));
        }
        machines.insert(
            arn.clone(),
            Arc::new(MachineRecord {
                description,
                machine,
            }),
        );
        Ok(arn)
    }

    /// DescribeStateMachine.
    pub fn describe_state_machine(&self, arn: &str) -> Result<StateMachineDescription> {
        lock(&self.inner.machines)
            .get(arn)
            .map(|m| m.description.clone())
            .ok_or_else(|| Error::StateMachineDoesNotExist(arn.to_string()))
    }

    /// ListStateMachines, by name.
    pub fn list_state_machines(&self) -> Vec<StateMachineDescription> {
        let mut out: Vec<_> = lock(&self.inner.machines)
            .values()
            .map(|m| m.description.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// DeleteStateMachine. Running executions go on to their end.
    pub async fn delete_state_machine(&self, arn: &str) -> Result<()> {
        let key = arn.as_bytes().to_vec();
        self.inner
            .store
            .write(cloudlet_core::Durability::Durable, move |txn| {
                txn.delete(KS_MACHINES, key);
                Ok::<_, cloudlet_core::Error>(())
            })
            .await?;
        lock(&self.inner.machines).remove(arn);
        Ok(())
    }

    /// StartExecution: returns the execution's ARN once the execution is recorded (durably,
    /// for a Standard machine); the execution runs in the background on the current tokio
    /// runtime.
    pub async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &str,
    ) -> Result<String> {
        let (record, machine, kind) = match self.prepare(state_machine_arn, name, input).await {
            // Starting a running Standard execution again with the same input answers as the
            // first start did, as StartExecution is idempotent.
            Err(Error::ExecutionAlreadyExists(arn)) => {
                let existing = self.execution(&arn)?;
                let d = existing.description.borrow().clone();
                let same_input = serde_json::from_str::<Value>(input).ok() == Some(d.input);
                if existing.run.journal.is_some()
                    && d.status == ExecutionStatus::Running
                    && same_input
                {
                    return Ok(arn);
                }
                return Err(Error::ExecutionAlreadyExists(arn));
            }
            other => other?,
        };
        let arn = record.description.borrow().execution_arn.clone();
        self.spawn(record, machine, kind);
        Ok(arn)
    }

    /// StartSyncExecution (Express): runs the execution to its end and describes it. An
    /// Express execution started this way is not kept: it cannot be described or listed
    /// afterwards.
    pub async fn start_sync_execution(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &str,
    ) -> Result<ExecutionDescription> {
        let (record, machine, kind) = self.prepare(state_machine_arn, name, input).await?;
        self.drive(record.clone(), machine, kind).await;
        let description = record.description.borrow().clone();
        // A synchronous Express execution lives only in its answer, as in AWS (which keeps
        // no history for Express executions): nothing accumulates.
        if kind == StateMachineType::Express {
            lock(&self.inner.executions).remove(&description.execution_arn);
        }
        Ok(description)
    }

    async fn prepare(
        &self,
        state_machine_arn: &str,
        name: Option<&str>,
        input: &str,
    ) -> Result<(Arc<ExecutionRecord>, Arc<Machine>, StateMachineType)> {
        // Executions past their retention go first: their names are free again.
        self.sweep().await;
        let machine = lock(&self.inner.machines)
            .get(state_machine_arn)
            .cloned()
            .ok_or_else(|| Error::StateMachineDoesNotExist(state_machine_arn.to_string()))?;
        if input.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidExecutionInput(format!(
                "the input is {} bytes; at most {MAX_PAYLOAD_BYTES} are allowed",
                input.len()
            )));
        }
        let input: Value = serde_json::from_str(input)
            .map_err(|e| Error::InvalidExecutionInput(format!("the input is not JSON: {e}")))?;
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let o = &self.inner.options;
        let sm_name = &machine.description.name;
        let express = machine.description.kind == StateMachineType::Express;
        let kind = if express { "express" } else { "execution" };
        let arn = format!(
            "arn:aws:states:{}:{}:{kind}:{sm_name}:{name}",
            o.region, o.account
        );
        let now = self.inner.clock.now();
        let info = ExecutionInfo {
            arn: arn.clone(),
            name: name.clone(),
            input: input.clone(),
            start_time: now,
            state_machine_arn: state_machine_arn.to_string(),
            state_machine_name: sm_name.clone(),
            role_arn: format!("arn:aws:iam::{}:role/cloudlet", o.account),
            redrive_count: 0,
            express,
        };
        let description = ExecutionDescription {
            execution_arn: arn.clone(),
            state_machine_arn: state_machine_arn.to_string(),
            name,
            status: ExecutionStatus::Running,
            input,
            output: None,
            error: None,
            cause: None,
            start_date: now,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
        };
        let kind = machine.description.kind;
        let journal = (kind == StateMachineType::Standard)
            .then(|| Arc::new(Journal::new(self.inner.store.clone(), arn.clone())));
        let record = self.record(
            Arc::from(machine.description.definition.as_str()),
            info,
            description,
            journal.clone(),
            Vec::new(),
            Default::default(),
        );
        {
            let mut executions = lock(&self.inner.executions);
            if executions.contains_key(&arn) {
                return Err(Error::ExecutionAlreadyExists(arn));
            }
            executions.insert(arn.clone(), record.clone());
        }
        let run = &record.run;
        run.emit(
            &Frame::top(),
            "ExecutionStarted",
            json!({"input": run.info.input.to_string(), "roleArn": run.info.role_arn}),
        );
        if let Some(journal) = journal {
            let stored = StoredExecution {
                description: record.description.borrow().clone(),
                definition: machine.description.definition.clone(),
                stop: None,
            };
            let value =
                serde_json::to_vec(&stored).map_err(|e| Error::Validation(e.to_string()))?;
            if let Err(e) = journal
                .write_with(KS_EXECUTIONS, arn.clone().into_bytes(), value)
                .await
            {
                lock(&self.inner.executions).remove(&arn);
                return Err(e.into());
            }
        }
        Ok((record, machine.machine.clone(), kind))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        definition: Arc<str>,
        info: ExecutionInfo,
        description: ExecutionDescription,
        journal: Option<Arc<Journal>>,
        events: Vec<HistoryEvent>,
        resume: HashMap<String, journal::Checkpoint>,
    ) -> Arc<ExecutionRecord> {
        let redriven_at = events
            .iter()
            .rev()
            .find(|e| e.event_type == "ExecutionRedriven")
            .map_or(0, |e| e.id);
        let run = Arc::new(Run {
            redriven_at: std::sync::atomic::AtomicU64::new(redriven_at),
            clock: self.inner.clock.clone(),
            info,
            tasks: self.inner.tasks.clone(),
            callbacks: self.inner.callbacks.clone(),
            events: Mutex::new(events),
            journal,
            history_full: tokio::sync::Notify::new(),
            resume: Mutex::new(resume),
            record_details: self.inner.options.record_details,
        });
        Arc::new(ExecutionRecord {
            description: watch::channel(description).0,
            definition,
            run,
            stop: Arc::new(Notify::new()),
            stop_reason: Mutex::new(None),
        })
    }

    async fn drive(
        &self,
        record: Arc<ExecutionRecord>,
        machine: Arc<Machine>,
        kind: StateMachineType,
    ) {
        let run = record.run.clone();
        let top = Frame::top();
        let input = run.info.input.clone();
        top.set_previous(run.event_count() as u64);
        let timeout = match (machine.timeout_seconds, kind) {
            (Some(s), StateMachineType::Express) => {
                Some(Duration::from_secs(s).min(EXPRESS_MAX_DURATION))
            }
            (Some(s), StateMachineType::Standard) => Some(Duration::from_secs(s)),
            (None, StateMachineType::Express) => Some(EXPRESS_MAX_DURATION),
            (None, StateMachineType::Standard) => None,
        };
        // A redriven execution's time limit counts from its redrive.
        let since = record
            .description
            .borrow()
            .redrive_date
            .unwrap_or(run.info.start_time);
        let deadline = timeout.map(|t| since.saturating_add(t));
        let clock = self.inner.clock.clone();
        let timer = async {
            match deadline {
                Some(d) => clock.sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        enum End {
            Done(std::result::Result<Value, crate::interp::Failure>),
            TimedOut,
            Stopped,
        }
        // A stop or a timeout that falls due with the last state wins.
        // A panic in the engine fails the execution rather than leaving it running forever.
        let body =
            std::panic::AssertUnwindSafe(run.run_machine(&machine, input, &top)).catch_unwind();
        let end = tokio::select! {
            biased;
            () = record.stop.notified() => End::Stopped,
            () = timer => End::TimedOut,
            () = run.history_full.notified() => End::Done(Err(crate::interp::Failure::new(
                "States.Runtime",
                format!(
                    "The execution reached the maximum number of history events ({}).",
                    crate::interp::MAX_HISTORY_EVENTS
                ),
            ))),
            r = body => End::Done(r.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(execution = %run.info.arn, %message, "the workflow engine panicked");
                Err(crate::interp::Failure::new(
                    "States.Runtime",
                    format!("An internal error ended the execution: {message}"),
                ))
            })),
        };
        let now = self.inner.clock.now();
        let mut description = record.description.borrow().clone();
        description.stop_date = Some(now);
        match end {
            End::Done(Ok(output)) => {
                run.emit(
                    &top,
                    "ExecutionSucceeded",
                    json!({"output": output.to_string()}),
                );
                description.status = ExecutionStatus::Succeeded;
                description.output = Some(output);
            }
            End::Done(Err(failure)) => {
                run.emit(
                    &top,
                    "ExecutionFailed",
                    json!({"error": failure.error, "cause": failure.cause}),
                );
                description.status = ExecutionStatus::Failed;
                description.error = failure.error;
                description.cause = failure.cause;
            }
            End::TimedOut => {
                // It timed out at its deadline, whenever this task saw it.
                description.stop_date = deadline;
                run.emit(
                    &top,
                    "ExecutionTimedOut",
                    json!({"error": "States.Timeout"}),
                );
                description.status = ExecutionStatus::TimedOut;
                description.error = Some("States.Timeout".into());
            }
            End::Stopped => {
                let (error, cause) = lock(&record.stop_reason).take().unwrap_or_default();
                run.emit(
                    &top,
                    "ExecutionAborted",
                    json!({"error": error, "cause": cause}),
                );
                description.status = ExecutionStatus::Aborted;
                description.error = error;
                description.cause = cause;
            }
        }
        if let Some(journal) = &run.journal {
            let stored = StoredExecution {
                description: description.clone(),
                definition: record.definition.to_string(),
                stop: None,
            };
            let key = description.execution_arn.clone().into_bytes();
            let written = match serde_json::to_vec(&stored) {
                // A succeeded execution drops its checkpoints; one that failed, timed out or
                // was stopped keeps them for a redrive.
                Ok(value) if description.status == ExecutionStatus::Succeeded => {
                    journal.finish(KS_EXECUTIONS, key, value).await
                }
                Ok(value) => journal.write_with(KS_EXECUTIONS, key, value).await,
                Err(e) => Err(cloudlet_core::Error::corrupt(KS_EXECUTIONS, e.to_string())),
            };
            match written {
                // The history is in the store now: memory keeps only the description.
                Ok(()) => {
                    let mut events = lock(&run.events);
                    events.clear();
                    events.shrink_to_fit();
                }
                // The end is not durable: the execution resumes after a restart.
                Err(e) => {
                    tracing::error!(execution = %description.execution_arn, error = %e, "could not journal the end of an execution");
                }
            }
        }
        let express = run.info.express;
        record.description.send_replace(description.clone());
        self.closed(&description, express);
    }

    /// When an ended execution is to be forgotten: its end plus its retention.
    fn forget_at(&self, d: &ExecutionDescription, express: bool) -> Option<Timestamp> {
        if d.status == ExecutionStatus::Running {
            return None;
        }
        let retention = if express {
            self.inner.options.express_retention
        } else {
            EXECUTION_RETENTION
        };
        Some(
            d.stop_date
                .unwrap_or(d.start_date)
                .saturating_add(retention),
        )
    }

    /// Whether an execution ended longer ago than its retention: it is not there any more,
    /// whether or not [`WorkflowService::sweep`] has removed it yet.
    fn gone(&self, record: &ExecutionRecord) -> bool {
        let d = record.description.borrow();
        self.forget_at(&d, record.run.info.express)
            .is_some_and(|at| self.inner.clock.now() >= at)
    }

    /// Notes an ended execution, to be forgotten after its retention.
    fn closed(&self, d: &ExecutionDescription, express: bool) {
        if let Some(at) = self.forget_at(d, express) {
            lock(&self.inner.closed).insert((at, d.execution_arn.clone()));
        }
    }

    /// Removes the executions whose retention has passed, from memory and from the store.
    /// An entry stays in `closed` until its rows are gone, so a start that finds it due waits
    /// on the lock rather than writing rows the removal would then delete.
    async fn sweep(&self) {
        let due = |closed: &std::collections::BTreeSet<(Timestamp, String)>| {
            let now = self.inner.clock.now();
            closed.first().filter(|(at, _)| *at <= now).cloned()
        };
        let next = || {
            let closed = lock(&self.inner.closed);
            due(&closed)
        };
        if next().is_none() {
            return;
        }
        let _sweeping = self.inner.sweeping.lock().await;
        while let Some(entry) = next() {
            let arn = &entry.1;
            let record = lock(&self.inner.executions).get(arn).cloned();
            // A redriven execution is kept by its later end.
            if let Some(record) = record.filter(|r| self.gone(r)) {
                if record.run.journal.is_some()
                    && let Err(e) = journal::forget(&self.inner.store, arn).await
                {
                    // Kept, name and all, for the next sweep: a new execution of the same
                    // name must not write over rows that are still there.
                    tracing::warn!(execution = %arn, error = %e, "could not remove an expired execution");
                    return;
                }
                lock(&self.inner.executions).remove(arn);
            }
            lock(&self.inner.closed).remove(&entry);
        }
    }

    /// Opens the service over `store`: its state machines and executions. Standard executions
    /// that were running wait for [`WorkflowService::resume_executions`] (register task
    /// handlers first); each branch then goes on from the state it was in (a Task in flight
    /// runs again), waits keep their deadlines, and finished Parallel branches and Map
    /// iterations do not run again.
    pub fn open(store: Store, clock: SharedClock, options: WorkflowOptions) -> Result<Self> {
        let service = Self::with_options(store, clock, options);
        let snapshot = service.inner.store.snapshot()?;
        use cloudlet_core::ReadView as _;
        let corrupt =
            |ks: &str, e: serde_json::Error| cloudlet_core::Error::corrupt(ks, e.to_string());
        for entry in snapshot.range(
            KS_MACHINES,
            &cloudlet_core::KeyRange::all(),
            cloudlet_core::Direction::Forward,
        )? {
            let (key, value) = entry?;
            let stored: StoredMachine =
                serde_json::from_slice(&value).map_err(|e| corrupt(KS_MACHINES, e))?;
            let arn = String::from_utf8_lossy(&key).into_owned();
            // One unreadable definition does not keep the others from opening.
            let machine = match parse_definition(&stored.definition) {
                Ok(machine) => machine,
                Err(e) => {
                    tracing::error!(state_machine = %arn, error = %e, "skipping a stored state machine whose definition no longer parses");
                    continue;
                }
            };
            let description = StateMachineDescription {
                arn: arn.clone(),
                name: stored.name,
                definition: stored.definition,
                kind: stored.kind,
                creation_date: stored.creation_date,
            };
            lock(&service.inner.machines).insert(
                arn,
                Arc::new(MachineRecord {
                    description,
                    machine,
                }),
            );
        }
        let mut resumed = Vec::new();
        for entry in snapshot.range(
            KS_EXECUTIONS,
            &cloudlet_core::KeyRange::all(),
            cloudlet_core::Direction::Forward,
        )? {
            let (_, value) = entry?;
            let stored: StoredExecution =
                serde_json::from_slice(&value).map_err(|e| corrupt(KS_EXECUTIONS, e))?;
            let d = stored.description;
            let running = d.status == ExecutionStatus::Running;
            let now = service.inner.clock.now();
            let past_redrive = d.status != ExecutionStatus::Succeeded
                && !running
                && d.stop_date
                    .is_some_and(|stop| now.saturating_duration_since(stop) > REDRIVE_WINDOW);
            // A finished execution's history stays in the store until asked for.
            let (events, checkpoints) = if running {
                journal::load(&service.inner.store, &d.execution_arn)?
            } else {
                (Vec::new(), HashMap::new())
            };
            let o = &service.inner.options;
            let sm_name = d
                .state_machine_arn
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            let info = ExecutionInfo {
                arn: d.execution_arn.clone(),
                name: d.name.clone(),
                input: d.input.clone(),
                start_time: d.start_date,
                state_machine_arn: d.state_machine_arn.clone(),
                state_machine_name: sm_name,
                role_arn: format!("arn:aws:iam::{}:role/cloudlet", o.account),
                redrive_count: d.redrive_count,
                express: false,
            };
            let journal = Arc::new(Journal::resumed(
                service.inner.store.clone(),
                d.execution_arn.clone(),
                checkpoints.keys().cloned().collect(),
            ));
            let arn = d.execution_arn.clone();
            let definition: Arc<str> = Arc::from(stored.definition.as_str());
            service.closed(&d, false);
            let record = service.record(definition, info, d, Some(journal), events, checkpoints);
            lock(&service.inner.executions).insert(arn, record.clone());
            if past_redrive {
                lock(&service.inner.expired).push(record.clone());
            }
            if running {
                if let Some(reason) = stored.stop {
                    // Stopped before the restart: it ends ABORTED as soon as it is resumed.
                    *lock(&record.stop_reason) = Some(reason);
                    record.stop.notify_one();
                }
                match parse_definition(&stored.definition) {
                    Ok(machine) => resumed.push((record, machine)),
                    Err(e) => {
                        tracing::error!(execution = %record.run.info.arn, error = %e, "not resuming an execution whose definition no longer parses");
                        record.description.send_modify(|d| {
                            d.status = ExecutionStatus::Failed;
                            d.error = Some("States.Runtime".into());
                            d.cause =
                                Some(format!("The execution's definition no longer parses: {e}"));
                            d.stop_date = Some(now);
                        });
                        service.closed(&record.description.borrow(), false);
                    }
                }
            }
        }
        *lock(&service.inner.resumable) = resumed;
        Ok(service)
    }

    /// RedriveExecution: a Standard execution that failed, timed out or was stopped within
    /// the last 14 days goes on from where it stopped: each branch re-enters the state it was
    /// in, finished Parallel branches and Map iterations keep their outputs, failed ones run
    /// again. Its history gains `ExecutionRedriven`; `$$.Execution.RedriveCount` counts up.
    pub async fn redrive_execution(&self, arn: &str) -> Result<()> {
        if !lock(&self.inner.redriving).insert(arn.to_string()) {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: a redrive of it is already starting"
            )));
        }
        let result = self.redrive(arn).await;
        lock(&self.inner.redriving).remove(arn);
        result
    }

    async fn redrive(&self, arn: &str) -> Result<()> {
        let record = self.execution(arn)?;
        let old = record.description.borrow().clone();
        if record.run.journal.is_none() {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: Express executions cannot be redriven"
            )));
        }
        if !matches!(
            old.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: the execution is {}; only FAILED, TIMED_OUT or ABORTED ones can be redriven",
                old.status.as_str()
            )));
        }
        let now = self.inner.clock.now();
        let stopped = old.stop_date.unwrap_or(old.start_date);
        if now.saturating_duration_since(stopped) > REDRIVE_WINDOW {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: the execution ended more than 14 days ago"
            )));
        }
        let machine = parse_definition(&record.definition)?;
        let (events, mut checkpoints) = journal::load(&self.inner.store, arn)?;
        if events.len() + 1 >= crate::interp::MAX_HISTORY_EVENTS {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: its history holds {} events; a redrive needs room under {}",
                events.len(),
                crate::interp::MAX_HISTORY_EVENTS
            )));
        }
        if !checkpoints.contains_key("") {
            return Err(Error::ExecutionNotRedrivable(format!(
                "{arn}: the execution failed before its first state"
            )));
        }
        let paths: Vec<String> = checkpoints.keys().cloned().collect();
        // Failed branches run again; finished ones keep their outputs. The failed ones'
        // checkpoints go in the redrive's own write, so a restart does not find them again.
        let failed: Vec<String> = checkpoints
            .iter()
            .filter(|(_, cp)| cp.failure.is_some())
            .map(|(path, _)| path.clone())
            .collect();
        checkpoints.retain(|_, cp| cp.failure.is_none());
        let last = events.last().map_or(0, |e| e.id);
        // The top branch's next events follow ExecutionRedriven; its checkpoint says so in the
        // redrive's own write, so a restart continues the same chain.
        let top_checkpoint = checkpoints
            .get_mut("")
            .filter(|cp| cp.state.is_some())
            .map(|cp| {
                cp.previous = last + 1;
                cp.clone()
            });
        let mut info = record.run.info.clone();
        info.redrive_count += 1;
        let description = ExecutionDescription {
            status: ExecutionStatus::Running,
            output: None,
            error: None,
            cause: None,
            stop_date: None,
            redrive_count: old.redrive_count + 1,
            redrive_date: Some(now),
            ..old
        };
        let journal = Arc::new(Journal::resumed(
            self.inner.store.clone(),
            arn.to_string(),
            paths,
        ));
        let redriven = self.record(
            record.definition.clone(),
            info,
            description.clone(),
            Some(journal.clone()),
            events,
            checkpoints,
        );
        let top = Frame::top();
        top.set_previous(last);
        let redriven_at = redriven.run.emit(
            &top,
            "ExecutionRedriven",
            json!({"redriveCount": description.redrive_count}),
        );
        // A redrive is a new attempt of every unfinished state: no event of the attempt that
        // ended is taken for its own (a task's TaskStarted would carry its old start time).
        redriven
            .run
            .redriven_at
            .store(redriven_at, std::sync::atomic::Ordering::Relaxed);
        if let Some(cp) = top_checkpoint {
            journal.checkpoint_later("", cp);
        }
        let execution = journal::execution_key(arn);
        for path in failed {
            journal.delete_later(
                journal::KS_CHECKPOINTS,
                journal::checkpoint_key(&execution, &path),
            );
        }
        let stored = StoredExecution {
            description,
            definition: record.definition.to_string(),
            stop: None,
        };
        let value = serde_json::to_vec(&stored).map_err(|e| Error::Validation(e.to_string()))?;
        journal
            .write_with(KS_EXECUTIONS, arn.as_bytes().to_vec(), value)
            .await?;
        lock(&self.inner.executions).insert(arn.to_string(), redriven.clone());
        self.spawn(redriven, machine, StateMachineType::Standard);
        Ok(())
    }

    /// Resumes the executions `open` found running, in the background on the current tokio
    /// runtime. Register the task handlers they need first. Calling it again does nothing.
    pub fn resume_executions(&self) {
        // Checkpoints kept for a redrive that can no longer come are dropped.
        let expired = std::mem::take(&mut *lock(&self.inner.expired));
        let service = self.clone();
        let cleanup = tokio::spawn(async move {
            {
                // Under the sweep's lock, and only while the execution is still the one
                // `open` found: a new execution of the same name keeps its checkpoints.
                let _sweeping = service.inner.sweeping.lock().await;
                for record in expired {
                    let arn = &record.run.info.arn;
                    let current = lock(&service.inner.executions).get(arn).cloned();
                    if !current.is_some_and(|c| Arc::ptr_eq(&c, &record)) {
                        continue;
                    }
                    if let Err(e) = journal::drop_checkpoints(&service.inner.store, arn).await {
                        tracing::warn!(execution = %arn, error = %e, "could not drop an expired execution's checkpoints");
                    }
                }
            }
            service.sweep().await;
        });
        lock(&self.inner.background).push(cleanup);
        let resumed = std::mem::take(&mut *lock(&self.inner.resumable));
        for (record, machine) in resumed {
            self.spawn(record, machine, StateMachineType::Standard);
        }
    }

    fn spawn(&self, record: Arc<ExecutionRecord>, machine: Arc<Machine>, kind: StateMachineType) {
        let service = self.clone();
        let handle = tokio::spawn(async move { service.drive(record, machine, kind).await });
        let mut background = lock(&self.inner.background);
        background.retain(|h| !h.is_finished());
        background.push(handle);
    }

    /// Stops every running execution where it is and waits until their tasks are gone, as a
    /// crash would but cleanly: Standard executions resume on the next
    /// [`WorkflowService::open`]; Express ones are lost, as AWS loses them. Afterwards the
    /// service's store has no other user but the caller's handles.
    pub async fn shutdown(&self) {
        let handles = std::mem::take(&mut *lock(&self.inner.background));
        for handle in &handles {
            handle.abort();
        }
        for handle in handles {
            let _ = handle.await;
        }
    }

    fn execution(&self, arn: &str) -> Result<Arc<ExecutionRecord>> {
        lock(&self.inner.executions)
            .get(arn)
            .filter(|r| !self.gone(r))
            .cloned()
            .ok_or_else(|| Error::ExecutionDoesNotExist(arn.to_string()))
    }

    /// DescribeExecution.
    pub fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription> {
        Ok(self.execution(arn)?.description.borrow().clone())
    }

    /// Waits until the execution is no longer RUNNING and describes it (an extension: AWS
    /// callers poll DescribeExecution).
    pub async fn wait_for_execution(&self, arn: &str) -> Result<ExecutionDescription> {
        let record = self.execution(arn)?;
        let mut rx = record.description.subscribe();
        let description = rx
            .wait_for(|d| d.status != ExecutionStatus::Running)
            .await
            .map(|d| d.clone())
            .unwrap_or_else(|_| record.description.borrow().clone());
        Ok(description)
    }

    /// GetExecutionHistory: every event so far, in order.
    pub fn get_execution_history(&self, arn: &str) -> Result<Vec<HistoryEvent>> {
        let record = self.execution(arn)?;
        let events = lock(&record.run.events).clone();
        // A finished Standard execution's history is read back from the store.
        if events.is_empty() && record.run.journal.is_some() {
            return Ok(journal::load(&self.inner.store, arn)?.0);
        }
        Ok(events)
    }

    /// Every execution of a state machine, newest first, optionally of one status (an
    /// extension: one call, no paging; [`WorkflowService::list_executions_page`] pages as
    /// ListExecutions does).
    pub fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
    ) -> Result<Vec<ExecutionDescription>> {
        if !lock(&self.inner.machines).contains_key(state_machine_arn) {
            return Err(Error::StateMachineDoesNotExist(
                state_machine_arn.to_string(),
            ));
        }
        let mut out: Vec<ExecutionDescription> = lock(&self.inner.executions)
            .values()
            .filter(|r| !self.gone(r))
            .map(|r| r.description.borrow().clone())
            .filter(|d| d.state_machine_arn == state_machine_arn)
            .filter(|d| status.is_none_or(|s| d.status == s))
            .collect();
        out.sort_by(|a, b| b.start_date.cmp(&a.start_date).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// ListExecutions with AWS's paging: at most `max_results` (1-1,000; 0 means 100) of the
    /// state machine's executions, newest first, and a `next_token` while more remain. A
    /// token is opaque; one this service did not make is `InvalidToken`.
    pub fn list_executions_page(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
        max_results: u32,
        next_token: Option<&str>,
    ) -> Result<ExecutionPage> {
        if max_results > MAX_LIST_RESULTS {
            return Err(Error::Validation(format!(
                "maxResults is {max_results}; it must be at most {MAX_LIST_RESULTS}"
            )));
        }
        let limit = match max_results {
            0 => DEFAULT_LIST_RESULTS,
            n => n,
        } as usize;
        let after = next_token.map(decode_list_token).transpose()?;
        let all = self.list_executions(state_machine_arn, status)?;
        let start = match &after {
            None => 0,
            // The first execution after the cursor in the listing's order (newest first, then
            // by name): executions started or ended since keep their places.
            Some((date, name)) => all
                .iter()
                .position(|d| d.start_date < *date || (d.start_date == *date && d.name > *name))
                .unwrap_or(all.len()),
        };
        let executions: Vec<ExecutionDescription> =
            all.into_iter().skip(start).take(limit + 1).collect();
        let mut executions = executions;
        let next_token = if executions.len() > limit {
            executions.truncate(limit);
            executions
                .last()
                .map(|d| encode_list_token(d.start_date, &d.name))
        } else {
            None
        };
        Ok(ExecutionPage {
            executions,
            next_token,
        })
    }

    /// StopExecution: the execution ends ABORTED with the given error and cause.
    /// A Standard execution's stop is durable before this answers: after a restart the
    /// execution ends ABORTED rather than resuming.
    pub async fn stop_execution(
        &self,
        arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<()> {
        let record = self.execution(arn)?;
        let description = record.description.borrow().clone();
        if description.status != ExecutionStatus::Running {
            return Ok(());
        }
        let reason = (error.map(str::to_string), cause.map(str::to_string));
        if record.run.journal.is_some() {
            // Stored only while the stored record still says RUNNING: a stop that loses a race
            // with the execution's end changes nothing.
            let stored = StoredExecution {
                description,
                definition: record.definition.to_string(),
                stop: Some(reason.clone()),
            };
            let value =
                serde_json::to_vec(&stored).map_err(|e| Error::Validation(e.to_string()))?;
            let key = arn.as_bytes().to_vec();
            let running = self
                .inner
                .store
                .write(cloudlet_core::Durability::Durable, move |txn| {
                    use cloudlet_core::ReadView as _;
                    let still = match txn.get(KS_EXECUTIONS, &key)? {
                        Some(bytes) => serde_json::from_slice::<StoredExecution>(&bytes)
                            .map(|s| s.description.status == ExecutionStatus::Running)
                            .unwrap_or(false),
                        None => false,
                    };
                    if still {
                        txn.put(KS_EXECUTIONS, key, value);
                    }
                    Ok::<_, cloudlet_core::Error>(still)
                })
                .await?;
            if !running {
                return Ok(());
            }
        }
        *lock(&record.stop_reason) = Some(reason);
        record.stop.notify_one();
        Ok(())
    }

    /// SendTaskSuccess: completes the `.waitForTaskToken` task holding `token` with `output`.
    pub async fn send_task_success(&self, token: &str, output: &str) -> Result<()> {
        if output.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidOutput(format!(
                "the output is larger than {MAX_PAYLOAD_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_str(output)
            .map_err(|e| Error::InvalidOutput(format!("the output is not JSON: {e}")))?;
        self.resolve(token, Ok(value)).await
    }

    /// SendTaskFailure: fails the task holding `token`.
    pub async fn send_task_failure(&self, token: &str, error: &str, cause: &str) -> Result<()> {
        self.resolve(token, Err(TaskFailure::new(error, cause)))
            .await
    }

    /// SendTaskHeartbeat: restarts the task's HeartbeatSeconds.
    pub fn send_task_heartbeat(&self, token: &str) -> Result<()> {
        check_token(token)?;
        if self.inner.callbacks.heartbeat(token) {
            return Ok(());
        }
        // A stored, unanswered token whose task has not resumed yet: alive, nothing to restart.
        match self.inner.store.get(journal::KS_TOKENS, token.as_bytes())? {
            Some(bytes)
                if serde_json::from_slice::<journal::StoredToken>(&bytes)
                    .is_ok_and(|t| t.outcome.is_none()) =>
            {
                Ok(())
            }
            _ => Err(Error::TaskDoesNotExist(token.to_string())),
        }
    }

    /// Completes a callback task. A Standard execution's outcome is durable before this
    /// answers: after a restart, the resumed task takes it instead of waiting again.
    async fn resolve(
        &self,
        token: &str,
        outcome: std::result::Result<Value, TaskFailure>,
    ) -> Result<()> {
        check_token(token)?;
        // The outcome is stored only for a token that is stored and not yet answered, checked
        // in the same transaction.
        let recorded = match &outcome {
            Ok(v) => Ok(v.clone()),
            Err(f) => Err((f.error.clone(), f.cause.clone())),
        };
        let key = token.as_bytes().to_vec();
        let stored = self
            .inner
            .store
            .write(cloudlet_core::Durability::Durable, move |txn| {
                use cloudlet_core::ReadView as _;
                let Some(bytes) = txn.get(journal::KS_TOKENS, &key)? else {
                    return Ok::<_, cloudlet_core::Error>(None);
                };
                let mut row: journal::StoredToken =
                    serde_json::from_slice(&bytes).map_err(|e| {
                        cloudlet_core::Error::corrupt(journal::KS_TOKENS, e.to_string())
                    })?;
                if row.outcome.is_some() {
                    return Ok(Some(false));
                }
                row.outcome = Some(recorded);
                let value = serde_json::to_vec(&row).map_err(|e| {
                    cloudlet_core::Error::corrupt(journal::KS_TOKENS, e.to_string())
                })?;
                txn.put(journal::KS_TOKENS, key, value);
                Ok(Some(true))
            })
            .await?;
        let durable = match stored {
            // Already answered.
            Some(false) => return Err(Error::TaskDoesNotExist(token.to_string())),
            Some(true) => true,
            None => false,
        };
        match self.inner.callbacks.remove(token) {
            Some(waiting) => waiting
                .done
                .send(outcome)
                .map_err(|_| Error::TaskDoesNotExist(token.to_string())),
            // A Standard task between a restart and its resumption picks the outcome up.
            None if durable => Ok(()),
            None => Err(Error::TaskDoesNotExist(token.to_string())),
        }
    }
}

fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > 1024 {
        return Err(Error::InvalidToken(
            "a task token is 1 to 1024 characters".into(),
        ));
    }
    Ok(())
}
