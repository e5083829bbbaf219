//! The sql crate's integration tests, in one binary: every test binary links DataFusion, and
//! each link costs CI time and disk.

#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod athena;
mod slt;
mod tpch;
#[allow(dead_code)]
mod tpch_data;
