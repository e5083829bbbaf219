//! The kv conformance suite: each check runs on every engine through `Arc<dyn Tables>`.

use std::sync::Arc;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_kv::{KvService, Tables};
use tempfile::TempDir;

mod batch_transact;
mod checks;
mod conditions;
mod expression_errors;
mod indexes;
mod items;
mod query_scan;
mod streams;
mod support;
mod updates;

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
                checks::tables_create_describe_list_delete,
                checks::put_get_delete_round_trip,
                checks::conditions_and_return_values,
                checks::update_expressions,
                checks::query_orders_and_pages,
                checks::transactions_are_all_or_nothing,
                checks::stream_records_every_change_once_in_order,
                checks::stream_view_types_shape_records,
                checks::stream_iterators_expire_and_records_are_trimmed_after_a_day,
                checks::ttl_deletes_expired_items_as_the_service,
                checks::stream_delivers_to_a_sink_in_order_with_retries,
                conditions::condition_comparators_by_type,
                conditions::condition_between_in_and_logic,
                conditions::condition_functions,
                conditions::condition_size,
                conditions::condition_missing_and_mismatched,
                conditions::condition_expressions_on_writes,
                expression_errors::expression_syntax_errors,
                expression_errors::expression_syntax_error_near_text,
                expression_errors::expression_placeholder_errors,
                expression_errors::expression_operand_errors,
                expression_errors::expression_update_path_errors,
                expression_errors::expression_add_delete_operand_types,
                expression_errors::expression_key_attribute_update,
                updates::update_arithmetic_and_if_not_exists,
                updates::update_lists,
                updates::update_list_appends_in_index_order,
                updates::update_nested_paths,
                updates::update_add_and_delete,
                updates::update_reads_the_old_item,
                updates::update_creates_items,
                updates::update_that_only_removes_creates_no_item,
                updates::update_return_values,
                updates::update_number_limits,
                updates::update_item_size_limit,
                items::item_key_type_mismatch,
                items::item_empty_key_rejected,
                items::item_key_size_limits,
                items::item_empty_sets_rejected,
                items::item_get_projection,
                items::item_numbers_canonical,
                items::item_binary_keys_order_bytewise,
                items::item_refused_requests_change_nothing,
                query_scan::query_string_sort_key_conditions,
                query_scan::query_binary_sort_key_conditions,
                query_scan::query_pagination_walks_every_item,
                query_scan::query_scan_one_megabyte_pages,
                query_scan::query_select_count_and_projection,
                query_scan::scan_segments_partition_the_table,
                query_scan::scan_segment_parameters_validated,
                query_scan::query_key_condition_errors,
                query_scan::query_key_condition_error_messages,
                query_scan::query_exclusive_start_key_shape,
                query_scan::query_exclusive_start_key_outside_partition,
                query_scan::query_scan_missing_table,
                batch_transact::batch_get_across_tables,
                batch_transact::batch_get_limits,
                batch_transact::batch_write_puts_and_deletes,
                batch_transact::batch_write_too_many_message,
                batch_transact::transact_cancellation_reasons,
                batch_transact::transact_validation_errors,
                batch_transact::transact_client_request_token,
                batch_transact::transact_token_failed_call_not_remembered,
                batch_transact::transact_get_items,
                indexes::index_entries_follow_writes,
                indexes::index_queries_return_projected_attributes,
                indexes::index_sort_key_conditions,
                indexes::index_query_rules,
                indexes::index_key_type_mismatch_rejected,
                indexes::index_create_and_delete_global,
                indexes::index_pagination,
            );
        }
    };
    (@tests $open:expr; $($module:ident :: $check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $module::$check($open).await
            }
        )*
    };
}

conformance!(memory, Harness::memory());
conformance!(redb, Harness::redb());
