//! The queue's errors, named after the SQS errors they mirror.

/// What went wrong, named as SQS names it. A rejected request changed nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `QueueDoesNotExist` (`AWS.SimpleQueueService.NonExistentQueue`).
    #[error("QueueDoesNotExist: the queue `{queue}` does not exist")]
    QueueDoesNotExist {
        /// The name or URL asked for.
        queue: String,
    },
    /// `QueueNameExists`: a queue of that name exists with different attributes.
    #[error(
        "QueueNameExists: a queue named `{name}` already exists with different attributes ({attribute} differs)"
    )]
    QueueNameExists {
        /// The queue's name.
        name: String,
        /// The first attribute that differs.
        attribute: String,
    },
    /// `InvalidParameterValue`: a parameter is outside its limits.
    #[error("InvalidParameterValue: {field}: {reason}")]
    InvalidParameterValue {
        /// The parameter.
        field: String,
        /// The rule it broke, with the limit.
        reason: String,
    },
    /// `InvalidAttributeName`: an attribute that does not exist (or not for this kind of queue).
    #[error("InvalidAttributeName: unknown attribute `{name}`")]
    InvalidAttributeName {
        /// The attribute.
        name: String,
    },
    /// `InvalidAttributeValue`: an attribute value outside its range.
    #[error("InvalidAttributeValue: {name}: {reason}")]
    InvalidAttributeValue {
        /// The attribute.
        name: String,
        /// The rule it broke, with the limit.
        reason: String,
    },
    /// `MissingParameter`: a required parameter is absent.
    #[error("MissingParameter: {field} is required{reason}")]
    MissingParameter {
        /// The parameter.
        field: String,
        /// Why it is required here, if it depends on the queue (starts with `: `).
        reason: String,
    },
    /// `ReceiptHandleIsInvalid`.
    #[error("ReceiptHandleIsInvalid: {reason}")]
    ReceiptHandleIsInvalid {
        /// Why.
        reason: String,
    },
    /// `InvalidMessageContents`: the body is not text SQS accepts (UTF-8 with the characters
    /// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`).
    #[error("InvalidMessageContents: {reason}")]
    InvalidMessageContents {
        /// The offending character or byte.
        reason: String,
    },
    /// `MessageNotInflight`: the message is not in flight, so its visibility cannot change.
    #[error("MessageNotInflight: the message is not in flight")]
    MessageNotInflight,
    /// `EmptyBatchRequest`.
    #[error("EmptyBatchRequest: a batch needs at least one entry")]
    EmptyBatchRequest,
    /// `TooManyEntriesInBatchRequest`: more than 10 entries.
    #[error("TooManyEntriesInBatchRequest: {count} entries, the maximum is 10")]
    TooManyEntriesInBatchRequest {
        /// How many were sent.
        count: usize,
    },
    /// `BatchEntryIdsNotDistinct`.
    #[error("BatchEntryIdsNotDistinct: the id `{id}` appears more than once")]
    BatchEntryIdsNotDistinct {
        /// The repeated id.
        id: String,
    },
    /// `InvalidBatchEntryId`: ids are 1-80 characters of letters, digits, `-` and `_`.
    #[error(
        "InvalidBatchEntryId: `{id}` is not 1-80 characters of letters, digits, hyphens and underscores"
    )]
    InvalidBatchEntryId {
        /// The id.
        id: String,
    },
    /// `BatchRequestTooLong`: the entries' bodies and attributes add up to more than the limit.
    #[error("BatchRequestTooLong: the batch is {size} bytes, the maximum is {limit}")]
    BatchRequestTooLong {
        /// Its size.
        size: usize,
        /// The queue's limit.
        limit: usize,
    },
    /// `OverLimit`: a short-polling receive from a standard queue that has as many messages
    /// in flight as it may (120,000 unless [`QueueService::with_in_flight_limit`] says
    /// otherwise). A long-polling receive, or one from a FIFO queue, gets no messages and no
    /// error instead.
    ///
    /// [`QueueService::with_in_flight_limit`]: crate::QueueService::with_in_flight_limit
    #[error(
        "OverLimit: {limit} messages are in flight, the most this queue allows; delete some or let their visibility timeouts end"
    )]
    OverLimit {
        /// The cap.
        limit: usize,
    },
    /// `QueueDeletedRecently`: a queue of this name was deleted less than 60 seconds ago.
    #[error(
        "QueueDeletedRecently: you must wait 60 seconds after deleting a queue before you can create another with the same name ({name})"
    )]
    QueueDeletedRecently {
        /// The queue's name.
        name: String,
    },
    /// `PurgeQueueInProgress`: a purge ran less than 60 seconds ago.
    #[error("PurgeQueueInProgress: only one purge per 60 seconds is allowed")]
    PurgeQueueInProgress,
    /// `UnsupportedOperation`: a feature this implementation does not have yet.
    #[error("UnsupportedOperation: {operation} is not supported yet")]
    UnsupportedOperation {
        /// What was asked for.
        operation: String,
    },
    /// The storage layer failed; see the source.
    #[error("storage failure: {0}")]
    Storage(#[source] cloudlet_core::Error),
}

impl Error {
    /// A shorthand for [`Error::InvalidParameterValue`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameterValue {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A shorthand for [`Error::InvalidAttributeValue`].
    pub fn invalid_attribute(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidAttributeValue {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The SQS error code, as the AWS SDKs report it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::QueueDoesNotExist { .. } => "AWS.SimpleQueueService.NonExistentQueue",
            Self::QueueNameExists { .. } => "QueueAlreadyExists",
            Self::InvalidParameterValue { .. } => "InvalidParameterValue",
            Self::InvalidAttributeName { .. } => "InvalidAttributeName",
            Self::InvalidAttributeValue { .. } => "InvalidAttributeValue",
            Self::MissingParameter { .. } => "MissingParameter",
            Self::ReceiptHandleIsInvalid { .. } => "ReceiptHandleIsInvalid",
            Self::InvalidMessageContents { .. } => "InvalidMessageContents",
            Self::MessageNotInflight => "AWS.SimpleQueueService.MessageNotInflight",
            Self::EmptyBatchRequest => "AWS.SimpleQueueService.EmptyBatchRequest",
            Self::TooManyEntriesInBatchRequest { .. } => {
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
            }
            Self::BatchEntryIdsNotDistinct { .. } => {
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
            }
            Self::InvalidBatchEntryId { .. } => "AWS.SimpleQueueService.InvalidBatchEntryId",
            Self::BatchRequestTooLong { .. } => "AWS.SimpleQueueService.BatchRequestTooLong",
            Self::OverLimit { .. } => "OverLimit",
            Self::PurgeQueueInProgress => "AWS.SimpleQueueService.PurgeQueueInProgress",
            Self::QueueDeletedRecently { .. } => "AWS.SimpleQueueService.QueueDeletedRecently",
            Self::UnsupportedOperation { .. } => "AWS.SimpleQueueService.UnsupportedOperation",
            Self::Storage(_) => "InternalError",
        }
    }
}

impl From<cloudlet_core::Error> for Error {
    fn from(error: cloudlet_core::Error) -> Self {
        Self::Storage(error)
    }
}

/// The result type of the queue crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
