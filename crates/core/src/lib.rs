//! cloudlet-core: the foundation every cloudlet primitive is built on.
//!
//! - [`Store`]: snapshot reads and serializable write transactions with group commit, over an
//!   [`Engine`](engine::Engine): the in-memory [`MemoryEngine`](engine::MemoryEngine) (the test
//!   double) or the durable [`RedbEngine`](engine::RedbEngine).
//! - [`keys`]: order-preserving tuple encoding for keys, decimals included.
//! - [`Clock`]: [`SystemClock`] in production, [`ManualClock`] in tests.
//! - [`Message`] and [`Sink`]: what flows between primitives and what accepts it.
//! - [`outbox`]: events committed with the change that caused them, delivered with retries.
//! - [`IdGenerator`]: time-ordered unique ids; [`BackgroundTask`]: owned background work.
//!
//! ```
//! use cloudlet_core::{Durability, ReadView, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_core::Error> {
//! let store = Store::memory();
//! let created = store
//!     .write(Durability::Durable, |txn| {
//!         if txn.get("users", b"ada")?.is_some() {
//!             return Ok(false);
//!         }
//!         txn.put("users", "ada", "Ada Lovelace");
//!         Ok::<_, cloudlet_core::Error>(true)
//!     })
//!     .await?;
//! assert!(created);
//! assert_eq!(store.snapshot()?.get("users", b"ada")?.as_deref(), Some(&b"Ada Lovelace"[..]));
//! # Ok(()) }
//! ```

pub mod clock;
pub mod engine;
mod error;
pub mod ids;
pub mod keys;
pub mod message;
pub mod outbox;
mod store;
pub mod task;

pub use bytes::Bytes;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use engine::{Direction, Durability, KeyRange};
pub use error::{BoxError, Error, Result};
pub use ids::IdGenerator;
pub use message::{
    AttributeValue, ChannelSink, DeliveryError, FnSink, Message, MessageAttribute, Sink, sink_fn,
};
pub use store::{ReadView, Snapshot, Store, StoreStats, WriteTxn};
pub use task::{BackgroundTask, ShutdownSignal};
