//! cloudlet-workflow's integration tests: executions on both engines, definition validation,
//! resumption after a crash, and property tests of the parsers.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod crash;
mod executions;
mod parsers;
mod validation;
