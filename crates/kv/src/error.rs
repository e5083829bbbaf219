//! The kv crate's errors, named after the DynamoDB errors they mirror.

use serde::{Deserialize, Serialize};

use crate::value::Item;

/// What went wrong, named as DynamoDB names it. A rejected request changed nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ResourceNotFoundException`: the table or index does not exist.
    #[error("ResourceNotFoundException: {message}")]
    ResourceNotFound {
        /// DynamoDB's message, naming the resource.
        message: String,
    },
    /// `ResourceInUseException`: the table already exists.
    #[error("ResourceInUseException: {message}")]
    ResourceInUse {
        /// DynamoDB's message, naming the resource.
        message: String,
    },
    /// `ValidationException`: the request breaks a rule; the message is DynamoDB's.
    #[error("ValidationException: {message}")]
    Validation {
        /// The request field or expression at fault.
        field: &'static str,
        /// DynamoDB's message, with the limit where there is one.
        message: String,
    },
    /// `ValidationException` for an expression that does not parse: the offending token and
    /// its byte offset in the expression.
    #[error(
        "ValidationException: Invalid {expression}: Syntax error; token: \"{token}\", near: \"{near}\""
    )]
    Syntax {
        /// Which expression: `ConditionExpression`, `UpdateExpression`, ...
        expression: &'static str,
        /// The token the parser stopped at (`<EOF>` at the end).
        token: String,
        /// The text around it.
        near: String,
        /// The token's byte offset in the expression.
        position: usize,
    },
    /// `ConditionalCheckFailedException`: the condition was false; nothing was written.
    #[error("ConditionalCheckFailedException: The conditional request failed")]
    ConditionalCheckFailed {
        /// The item as it was, when `ReturnValuesOnConditionCheckFailure` is `ALL_OLD`.
        item: Option<Item>,
    },
    /// `TransactionCanceledException`: one reason per action, in order.
    #[error(
        "TransactionCanceledException: Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
        codes(.reasons)
    )]
    TransactionCanceled {
        /// One reason per action of the request, `None` for the actions that were fine.
        reasons: Vec<CancellationReason>,
    },
    /// `IdempotentParameterMismatchException`: a client request token was reused with a
    /// different request within its 10 minutes.
    #[error(
        "IdempotentParameterMismatchException: The request uses the same client token as a previous, but non-identical request."
    )]
    IdempotentParameterMismatch,
    /// `LimitExceededException`: too many indexes, or similar account-level limits.
    #[error("LimitExceededException: {message}")]
    LimitExceeded {
        /// What limit.
        message: String,
    },
    /// `ExpiredIteratorException`: a shard iterator is older than 15 minutes.
    #[error("ExpiredIteratorException: Iterator expired")]
    ExpiredIterator,
    /// `TrimmedDataAccessException`: the records asked for are older than the 24-hour
    /// retention and were trimmed.
    #[error(
        "TrimmedDataAccessException: The operation attempted to read past the oldest stream record in a shard"
    )]
    TrimmedDataAccess,
    /// The storage layer failed; nothing is known to be written unless the source says so.
    #[error(transparent)]
    Storage(#[from] cloudlet_core::Error),
}

fn codes(reasons: &[CancellationReason]) -> String {
    reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub(crate) fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn table_not_found(table: &str) -> Self {
        Self::ResourceNotFound {
            message: format!("Requested resource not found: Table: {table} not found"),
        }
    }

    /// The error's name as DynamoDB gives it (`ValidationException`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::ResourceNotFound { .. } => "ResourceNotFoundException",
            Self::ResourceInUse { .. } => "ResourceInUseException",
            Self::Validation { .. } | Self::Syntax { .. } => "ValidationException",
            Self::ConditionalCheckFailed { .. } => "ConditionalCheckFailedException",
            Self::TransactionCanceled { .. } => "TransactionCanceledException",
            Self::IdempotentParameterMismatch => "IdempotentParameterMismatchException",
            Self::LimitExceeded { .. } => "LimitExceededException",
            Self::ExpiredIterator => "ExpiredIteratorException",
            Self::TrimmedDataAccess => "TrimmedDataAccessException",
            Self::Storage(_) => "InternalServerError",
        }
    }
}

/// Why one action of a transaction was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationReason {
    /// `None`, `ConditionalCheckFailed`, `ValidationError`, `TransactionConflict`, ...
    pub code: String,
    /// A message, for the actions that failed.
    pub message: Option<String>,
    /// The item as it was, for a failed condition with `ALL_OLD` asked for.
    pub item: Option<Item>,
}

impl CancellationReason {
    pub(crate) fn none() -> Self {
        Self {
            code: "None".to_owned(),
            message: None,
            item: None,
        }
    }
}

/// The result type of the kv crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
