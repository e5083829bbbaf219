//! The pubsub crate's errors, named after the SNS errors they mirror.

/// What went wrong, named as SNS names it. A rejected request changed nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `InvalidParameter`: SNS's message, naming the parameter and the rule.
    #[error("InvalidParameter: {message}")]
    InvalidParameter {
        /// The parameter (`FilterPolicy`, `FilterPolicyScope`, ...).
        field: &'static str,
        /// SNS's message.
        message: String,
    },
    /// `NotFound`: the topic or subscription does not exist.
    #[error("NotFound: {message}")]
    NotFound {
        /// What was not found.
        message: String,
    },
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] cloudlet_core::Error),
}

impl Error {
    /// The error's name as SNS gives it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameter { .. } => "InvalidParameter",
            Self::NotFound { .. } => "NotFound",
            Self::Storage(_) => "InternalError",
        }
    }

    /// An invalid filter policy: `Invalid parameter: FilterPolicy: <reason>`.
    pub(crate) fn filter_policy(reason: impl std::fmt::Display) -> Self {
        Self::InvalidParameter {
            field: "FilterPolicy",
            message: format!("Invalid parameter: FilterPolicy: {reason}"),
        }
    }
}

/// The result type of the pubsub crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
