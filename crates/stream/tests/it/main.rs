//! cloudlet-stream's integration tests: the Kinesis conformance suite on both engines and a
//! resharding model test.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod conformance;
mod crash;
mod model;
