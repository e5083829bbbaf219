//! A durable order book in a few lines: concurrent customers buy from limited stock inside
//! serializable transactions (group-committed, fsync'd), each order emits an event through a
//! transactional outbox to a shipping service that fails once, and time is advanced, not slept.
//!
//! Run: `cargo run --example quickstart`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cloudlet::outbox::{Outbox, OutboxPolicy};
use cloudlet::{
    DeliveryError, Direction, Durability, Error, ManualClock, Message, ReadView, Sink, Store,
};

const STOCK: u64 = 60;
const CUSTOMERS: u64 = 100;

/// A shipping service that is down for its first call.
#[derive(Debug, Default)]
struct Shipping {
    warmed_up: AtomicBool,
    count: AtomicU64,
    shipped: tokio::sync::Notify,
}

#[async_trait]
impl Sink for Shipping {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        if !self.warmed_up.swap(true, Ordering::SeqCst) {
            println!("  shipping: unavailable, will be retried");
            return Err(DeliveryError::unavailable("warming up"));
        }
        println!("  shipping: {}", String::from_utf8_lossy(&message.body));
        self.count.fetch_add(1, Ordering::SeqCst);
        self.shipped.notify_one();
        Ok(())
    }
}

fn count(store: &Store, keyspace: &str) -> usize {
    let snapshot = store.snapshot().unwrap();
    snapshot
        .prefix(keyspace, b"", Direction::Forward)
        .unwrap()
        .count()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(Error::storage)?;
    println!("durable store in {}", dir.path().display());
    let store = Store::open(dir.path())?;
    let clock = ManualClock::default();
    let events = Outbox::new("orders");

    store
        .write(Durability::Durable, |t| {
            t.put("stock", "widget", STOCK.to_be_bytes().to_vec());
            Ok::<_, Error>(())
        })
        .await?;

    println!("{CUSTOMERS} customers order one widget each; {STOCK} are in stock");
    let mut customers = Vec::new();
    for customer in 0..CUSTOMERS {
        let (store, events) = (store.clone(), events.clone());
        customers.push(tokio::spawn(async move {
            store
                .write(Durability::Durable, move |t| {
                    let left = u64::from_be_bytes(
                        t.get("stock", b"widget")?
                            .unwrap()
                            .as_ref()
                            .try_into()
                            .unwrap(),
                    );
                    if left == 0 {
                        return Ok(false); // sold out: this transaction writes nothing
                    }
                    t.put("stock", "widget", (left - 1).to_be_bytes().to_vec());
                    t.put("orders", format!("order-{customer:03}"), "widget");
                    events.push(
                        t,
                        &Message::new(format!("ship a widget to customer {customer}")),
                    )?;
                    Ok::<_, Error>(true)
                })
                .await
        }));
    }
    let mut placed = 0;
    for customer in customers {
        placed += u64::from(customer.await.unwrap()?);
    }
    let stats = store.stats();
    println!(
        "placed {placed} orders, {} sold out; {} transactions in {} fsync'd commits",
        CUSTOMERS - placed,
        stats.transactions,
        stats.commits
    );

    let shipping = Arc::new(Shipping::default());
    let policy = OutboxPolicy::default().with_batch_size(1);
    let delivery = events.start(store.clone(), clock.shared(), shipping.clone(), policy);
    shipping.shipped.notified().await;
    clock.wait_for_timers(1).await;
    println!("advancing the clock by 1 s instead of sleeping");
    clock.advance(Duration::from_secs(1));
    while shipping.count.load(Ordering::SeqCst) < placed {
        shipping.shipped.notified().await;
    }
    delivery.shutdown().await;

    drop(store);
    let reopened = Store::open(dir.path())?;
    println!(
        "reopened: {} orders on disk, {} events still pending",
        count(&reopened, "orders"),
        events.pending(&reopened.snapshot()?)?
    );
    Ok(())
}
