//! cloudlet-pubsub's integration tests: filter policies against verdicts recorded on AWS.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod crash;
mod filter_policies;
mod http;
mod topics;
