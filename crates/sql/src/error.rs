//! The crate's error: what a caller can act on, named as Athena names it where Athena does.

use std::fmt;

use datafusion::error::DataFusionError;

/// Where in the SQL text a problem is: 1-based line and column, as DataFusion reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `InvalidRequestException`: a field of the request is out of its range or malformed.
    /// Nothing changed.
    #[error("InvalidRequestException: {field}: {reason}")]
    InvalidArgument {
        /// The request field, as Athena names it (`QueryString`, `MaxResults`, ...).
        field: &'static str,
        /// What is wrong with it, with the limit.
        reason: String,
    },
    /// `InvalidRequestException`: the request cannot be carried out as things stand (no
    /// output location, a workgroup that still has queries, ...). Nothing changed.
    #[error("InvalidRequestException: {0}")]
    InvalidRequest(String),
    /// `ResourceNotFoundException`: no such query execution, workgroup, database or table.
    #[error("ResourceNotFoundException: {kind} {name} not found")]
    NotFound {
        /// `QueryExecution`, `WorkGroup`, `Database` or `Table`.
        kind: &'static str,
        /// The name or id given.
        name: String,
    },
    /// The workgroup or database exists already.
    #[error("AlreadyExistsException: {kind} {name} already exists")]
    AlreadyExists {
        /// `WorkGroup` or `Database`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The SQL does not parse or plan: DataFusion's message, and where in the text when
    /// DataFusion knows.
    #[error("{message}{}", position.map(|p| format!(" (at {p})")).unwrap_or_default())]
    Sql {
        /// DataFusion's message.
        message: String,
        /// Where the problem is, when known.
        position: Option<Position>,
    },
    /// The query failed while it ran: a missing bucket or object, a malformed file (the
    /// message names it), an unsupported statement.
    #[error("{0}")]
    Query(String),
    /// The query read more than its workgroup's `BytesScannedCutoffPerQuery` and was
    /// cancelled.
    #[error("Query cancelled! : Bytes scanned limit was exceeded (limit {limit} bytes)")]
    BytesScannedLimitExceeded {
        /// The workgroup's cutoff, in bytes.
        limit: u64,
    },
    /// The query was stopped by `stop_query_execution`.
    #[error("Query cancelled by user")]
    Cancelled,
    /// The query is not finished, or it failed: its results cannot be read.
    #[error("InvalidRequestException: Query has not yet finished. Current state: {state}")]
    NotFinished {
        /// The query's state.
        state: String,
    },
    /// The catalog's storage failed.
    #[error(transparent)]
    Storage(#[from] cloudlet_core::Error),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// The position in the SQL text the error points at, for [`Error::Sql`].
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Sql { position, .. } => *position,
            _ => None,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Planning errors (parse, plan, schema) become [`Error::Sql`] with their position; errors
/// while running become [`Error::Query`].
pub(crate) fn planning(error: DataFusionError) -> Error {
    let position = error
        .diagnostic()
        .and_then(|d| d.span)
        .map(|span| Position {
            line: span.start.line,
            column: span.start.column,
        })
        .or_else(|| position_in_message(&error.to_string()));
    match error.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(..) => Error::Sql {
            message: error.strip_backtrace(),
            position,
        },
        _ => running(error),
    }
}

/// An error while a query ran.
pub(crate) fn running(error: DataFusionError) -> Error {
    Error::Query(error.strip_backtrace())
}

/// sqlparser writes positions into its messages as `at Line: 1, Column: 8`.
fn position_in_message(message: &str) -> Option<Position> {
    let rest = &message[message.find("Line: ")? + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(Position {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_parser_messages() {
        assert_eq!(
            position_in_message(
                "sql parser error: Expected: end of statement, found: x at Line: 2, Column: 14"
            ),
            Some(Position {
                line: 2,
                column: 14
            })
        );
        assert_eq!(position_in_message("no position"), None);
    }
}
