//! cloudlet-queue's integration tests: one conformance suite, run on every engine
//! (`conformance::memory::…`, `conformance::redb::…`), on a ManualClock.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod conformance;
mod crash;
mod md5;
mod model;
