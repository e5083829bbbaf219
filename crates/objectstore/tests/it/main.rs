//! cloudlet-objectstore's integration tests: object_store's own suite, the S3 conformance
//! suite, a model test and a crash test, each on the memory and the redb engine.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod conformance;
mod crash;
mod harness;
mod model;
mod object_store_suite;
