//! cloudlet-core's integration tests, one binary to keep link times down.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod clock;
mod conformance;
mod crash;
mod group_commit;
mod ids;
mod keys;
mod message;
mod model;
mod outbox;
mod support;
mod task;
