//! The error type of cloudlet-core.

use std::sync::Arc;

/// A boxed error from an engine or another lower layer, shared so one failure can be
/// reported to every caller whose write it affected.
pub type BoxError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the storage layer, clocks, ids and the outbox.
///
/// Engine errors are boxed inside [`Error::Storage`]: no engine type appears here.
/// The type is `Clone` because a group commit reports one failure to many callers.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine failed to read or write; the source says why.
    #[error("storage failure: {0}")]
    Storage(#[source] BoxError),
    /// A commit failed to reach disk earlier; the store accepts no more writes, because
    /// nothing written after a failed fsync could honestly be called durable. Reopen the store.
    #[error("the store is poisoned by an earlier failed commit ({0}); reopen it")]
    Poisoned(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A stored record could not be decoded: the data is corrupt or from a newer version.
    #[error("corrupt record in keyspace `{keyspace}`: {reason}")]
    Corrupt {
        /// The keyspace that held the record.
        keyspace: String,
        /// What was wrong with it.
        reason: String,
    },
    /// An argument was out of range or malformed; nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument or field that was rejected.
        field: &'static str,
        /// The rule it broke, with the limit.
        reason: String,
    },
}

impl Error {
    /// Wraps any engine error.
    pub fn storage(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Storage(Arc::new(source))
    }

    /// A shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// A shorthand for [`Error::Corrupt`].
    pub fn corrupt(keyspace: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            keyspace: keyspace.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The result type of cloudlet-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
