//! The service's errors, named as Step Functions names them.

use crate::definition::Problem;

/// A request the service refused or could not carry out. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The definition is not valid ASL: every problem, each with its JSON path.
    #[error("InvalidDefinition: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidDefinition {
        /// What is wrong, and where.
        problems: Vec<Problem>,
    },
    /// A state machine or execution name breaks the naming rules.
    #[error("InvalidName: {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An ARN that is not one of ours.
    #[error("InvalidArn: {0}")]
    InvalidArn(String),
    /// A state machine of that name exists with another definition or type.
    #[error("StateMachineAlreadyExists: {0}")]
    StateMachineAlreadyExists(String),
    /// No state machine has that ARN.
    #[error("StateMachineDoesNotExist: {0}")]
    StateMachineDoesNotExist(String),
    /// An execution of that name exists (names are unique per state machine).
    #[error("ExecutionAlreadyExists: {0}")]
    ExecutionAlreadyExists(String),
    /// No execution has that ARN.
    #[error("ExecutionDoesNotExist: {0}")]
    ExecutionDoesNotExist(String),
    /// The input is not JSON or is larger than 256 KiB.
    #[error("InvalidExecutionInput: {0}")]
    InvalidExecutionInput(String),
    /// The output given to send_task_success is not JSON or too large.
    #[error("InvalidOutput: {0}")]
    InvalidOutput(String),
    /// A task token that is malformed.
    #[error("InvalidToken: {0}")]
    InvalidToken(String),
    /// A task token that names no waiting task (it completed, timed out or never existed).
    #[error("TaskDoesNotExist: {0}")]
    TaskDoesNotExist(String),
    /// A request that is not valid for the resource's current state.
    #[error("ExecutionNotRedrivable: {0}")]
    ExecutionNotRedrivable(String),
    /// A field out of its range.
    #[error("ValidationException: {0}")]
    Validation(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] cloudlet_core::Error),
}

impl Error {
    /// The error's name as Step Functions returns it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidDefinition { .. } => "InvalidDefinition",
            Error::InvalidName { .. } => "InvalidName",
            Error::InvalidArn(_) => "InvalidArn",
            Error::StateMachineAlreadyExists(_) => "StateMachineAlreadyExists",
            Error::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            Error::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            Error::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            Error::InvalidExecutionInput(_) => "InvalidExecutionInput",
            Error::InvalidOutput(_) => "InvalidOutput",
            Error::InvalidToken(_) => "InvalidToken",
            Error::TaskDoesNotExist(_) => "TaskDoesNotExist",
            Error::ExecutionNotRedrivable(_) => "ExecutionNotRedrivable",
            Error::Validation(_) => "ValidationException",
            Error::Storage(_) => "InternalError",
        }
    }
}

/// The service's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
