//! cloudlet-workflow: Amazon States Language as a library.
//!
//! [`WorkflowService`] runs real Step Functions state machine definitions (JSON) inside the
//! process: Pass, Task, Choice, Wait, Succeed, Fail, Parallel and inline Map states; JSONPath
//! data flow (InputPath, Parameters, ResultSelector, ResultPath, OutputPath) with the 18
//! intrinsic functions; JSONata states (Arguments, Output, `{% %}` expressions) and variables
//! (Assign) in both query languages; Retry and Catch; waits and timeouts on the clock; task
//! handlers registered under resource names, with the `.waitForTaskToken` callback pattern.
//!
//! Standard executions are journaled in the store at every state entry: after a crash,
//! [`WorkflowService::open`] and [`WorkflowService::resume_executions`] carry them on from
//! where they were (finished states, branches and iterations do not run again; a task in
//! flight runs again, at least once, but keeps its history events and its TimeoutSeconds;
//! waits keep their deadlines; callback tokens stay valid), and
//! [`WorkflowService::redrive_execution`] carries a failed one on from its failed state.
//! Express executions run in memory. An ended Standard execution is kept for 90 days
//! ([`EXECUTION_RETENTION`]) and an asynchronous Express one for five minutes (an extension;
//! AWS describes none), then forgotten, in memory and in the store. Deliberate differences
//! from AWS: only inline Map (no
//! distributed Map, ItemReader or ResultWriter); no Activities; a task handler's context
//! object leaves out `Execution.Input`.
//!
//! ```
//! use cloudlet_core::{ManualClock, Store};
//! use cloudlet_workflow::{ExecutionStatus, StateMachineType, WorkflowService};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_workflow::Error> {
//! let sfn = WorkflowService::new(Store::memory(), ManualClock::default().shared());
//! let definition = r#"{
//!   "StartAt": "Greet",
//!   "States": {
//!     "Greet": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.name)"}, "End": true}
//!   }
//! }"#;
//! let machine = sfn.create_state_machine("greeter", definition, StateMachineType::Standard).await?;
//! let execution = sfn.start_execution(&machine, None, r#"{"name": "ada"}"#).await?;
//! let done = sfn.wait_for_execution(&execution).await?;
//! assert_eq!(done.status, ExecutionStatus::Succeeded);
//! assert_eq!(done.output.unwrap()["greeting"], "hello ada");
//! # Ok(()) }
//! ```

mod choice;
mod definition;
mod error;
mod interp;
mod intrinsics;
mod journal;
mod jsonata;
mod path;
mod service;
mod task;
mod template;
mod time;

pub use definition::{Problem, QueryLanguage};
pub use error::{Error, Result};
pub use interp::{HistoryEvent, MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES};
pub use service::{
    EXECUTION_RETENTION, EXPRESS_MAX_DURATION, ExecutionDescription, ExecutionPage,
    ExecutionStatus, MAX_DEFINITION_BYTES, MAX_LIST_RESULTS, REDRIVE_WINDOW,
    StateMachineDescription, StateMachineType, WorkflowOptions, WorkflowService,
    validate_definition,
};
pub use task::{TaskFailure, TaskHandler, TaskRegistry, TaskRequest};
