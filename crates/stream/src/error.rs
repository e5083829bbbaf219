//! The crate's error: one variant per Kinesis exception a caller can act on.

use std::fmt;

/// What went wrong, named as Kinesis names it; [`Error::code`] gives the exception's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ResourceNotFoundException`: no such stream or shard.
    #[error("ResourceNotFoundException: {message}")]
    ResourceNotFound {
        /// Kinesis's message.
        message: String,
    },
    /// `ResourceInUseException`: a stream of this name exists already.
    #[error("ResourceInUseException: {message}")]
    ResourceInUse {
        /// Kinesis's message.
        message: String,
    },
    /// `InvalidArgumentException` (and the `ValidationException`s of parameter constraints):
    /// the field and what is wrong with it.
    #[error("InvalidArgumentException: {message} ({field})")]
    InvalidArgument {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong, with the limit.
        message: String,
    },
    /// `ValidationException`: a parameter breaks its constraint (length, range, pattern),
    /// with AWS's "Value ... failed to satisfy constraint" message.
    #[error("ValidationException: {message} ({field})")]
    Validation {
        /// The request field at fault.
        field: &'static str,
        /// What is wrong, with the limit.
        message: String,
    },
    /// `ExpiredIteratorException`: the shard iterator is older than five minutes.
    #[error("ExpiredIteratorException: {message}")]
    ExpiredIterator {
        /// Kinesis's message.
        message: String,
    },
    /// `LimitExceededException`: too many shards.
    #[error("LimitExceededException: {message}")]
    LimitExceeded {
        /// Kinesis's message.
        message: String,
    },
    /// `ProvisionedThroughputExceededException`: a shard is over its limits (only when the
    /// service was built with them).
    #[error("ProvisionedThroughputExceededException: {message}")]
    ProvisionedThroughputExceeded {
        /// Kinesis's message.
        message: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] cloudlet_core::Error),
}

impl Error {
    /// The Kinesis exception's name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ResourceNotFound { .. } => "ResourceNotFoundException",
            Self::ResourceInUse { .. } => "ResourceInUseException",
            Self::InvalidArgument { .. } => "InvalidArgumentException",
            Self::Validation { .. } => "ValidationException",
            Self::ExpiredIterator { .. } => "ExpiredIteratorException",
            Self::LimitExceeded { .. } => "LimitExceededException",
            Self::ProvisionedThroughputExceeded { .. } => "ProvisionedThroughputExceededException",
            Self::Storage(_) => "InternalFailure",
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl fmt::Display) -> Self {
        Self::InvalidArgument {
            field,
            message: message.to_string(),
        }
    }

    pub(crate) fn validation(field: &'static str, message: impl fmt::Display) -> Self {
        Self::Validation {
            field,
            message: format!("1 validation error detected: {message}"),
        }
    }

    pub(crate) fn corrupt(keyspace: &str, reason: impl fmt::Display) -> Self {
        Self::Storage(cloudlet_core::Error::corrupt(keyspace, reason.to_string()))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
