//! The kv conformance suite: each check runs on every engine through `Arc<dyn Tables>`.

use std::sync::Arc;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_kv::{KvService, Tables};
use tempfile::TempDir;

mod checks;
mod streams;

/// A kv service under test, on a manual clock.
#[allow(dead_code)] // `service` and `clock` serve the checks that need more than the trait.
pub struct Harness {
    pub kv: Arc<dyn Tables>,
    pub service: KvService,
    pub clock: ManualClock,
    _dir: Option<TempDir>,
}

impl Harness {
    fn memory() -> Self {
        Self::over(Store::memory(), None)
    }

    fn over(store: Store, dir: Option<TempDir>) -> Self {
        let clock = ManualClock::default();
        let service = KvService::new(store, clock.shared());
        Self {
            kv: Arc::new(service.clone()),
            service,
            clock,
            _dir: dir,
        }
    }

    fn redb() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(RedbEngine::open(dir.path()).unwrap());
        Self::over(store, Some(dir))
    }
}

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                tables_create_describe_list_delete,
                put_get_delete_round_trip,
                conditions_and_return_values,
                update_expressions,
                query_orders_and_pages,
                transactions_are_all_or_nothing,
                stream_records_every_change_once_in_order,
                stream_view_types_shape_records,
                stream_iterators_expire_and_records_are_trimmed_after_a_day,
                ttl_deletes_expired_items_as_the_service,
                stream_delivers_to_a_sink_in_order_with_retries,
            );
        }
    };
    (@tests $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                checks::$check($open).await
            }
        )*
    };
}

conformance!(memory, Harness::memory());
conformance!(redb, Harness::redb());
