//! What the benchmarks share: a two-worker runtime and a driver for concurrent writers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A multi-threaded runtime with two workers, one per core of the reference machine.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `op(i)` for `i` in `0..total` from `writers` concurrent tasks (each takes every
/// `writers`-th `i`) and returns the wall time.
pub(crate) async fn concurrently<F, Fut>(writers: u64, total: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..total / writers {
                    op(i * writers + w).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}
