//! cloudlet: the AWS serverless toolbox as embeddable Rust crates.
//!
//! This facade re-exports the foundation, [`cloudlet_core`], and each primitive crate behind a
//! feature of the same name as it lands (`queue`, `pubsub`, `stream`, `objectstore`, `kv`,
//! `workflow`, `sql`, `functions`). Everything runs inside your own tokio process, on an
//! in-memory engine for tests or a durable on-disk engine (feature `redb`, on by default).
//!
//! ```
//! use cloudlet::{Durability, ReadView, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet::Error> {
//! let store = Store::memory();
//! store.write(Durability::Durable, |txn| {
//!     txn.put("greetings", "en", "hello");
//!     Ok::<_, cloudlet::Error>(())
//! }).await?;
//! assert!(store.snapshot()?.get("greetings", b"en")?.is_some());
//! # Ok(()) }
//! ```

pub use bytes::Bytes;
pub use cloudlet_core;
pub use cloudlet_core::{
    BackgroundTask, ChannelSink, Clock, DeliveryError, Direction, Durability, Error, IdGenerator,
    KeyRange, ManualClock, Message, MessageAttribute, ReadView, SharedClock, Sink, Snapshot, Store,
    SystemClock, Timestamp, WriteTxn, clock, engine, ids, keys, message, outbox, task,
};
#[cfg(feature = "queue")]
pub use cloudlet_queue as queue;
