//! cloudlet-kv's integration tests: one conformance suite, run on every engine
//! (`conformance::memory::…`, `conformance::redb::…`), expression properties, a model test
//! and a crash test.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod conformance;
mod crash;
mod expressions;
mod model;
mod review;
