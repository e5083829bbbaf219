//! TPC-H at scale factor 0.01, generated into a bucket as Parquet: all 22 queries answer what
//! an independent engine (DuckDB) answered on the same files. The answers are in
//! `tests/tpch/answers/`, made by `tests/tpch/answers.py`.
//!
//! `CLOUDLET_TPCH_DUMP=<dir>` also writes the Parquet files there, for that script.

use crate::tpch_data as tpch;

use std::path::Path;
use std::sync::Arc;

use cloudlet_core::{ManualClock, SharedClock, Store, Timestamp};
use cloudlet_objectstore::{Buckets, ObjectService};
use cloudlet_sql::{Query, SqlService};

const SCALE: f64 = 0.01;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_22_queries_answer_as_duckdb_does() {
    let clock: SharedClock = Arc::new(ManualClock::new(Timestamp::from_millis(0)));
    let store = Store::memory();
    let objects = ObjectService::new(store.clone(), clock.clone());
    objects.create_bucket("tpch").await.unwrap();
    let dump = std::env::var_os("CLOUDLET_TPCH_DUMP");
    tpch::load(&objects, "tpch", SCALE, dump.as_deref().map(Path::new)).await;
    let sql = SqlService::new(store, clock, objects);
    for table in tpch::TABLES {
        sql.query(Query::new(format!(
            "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION 's3://tpch/{table}/'"
        )))
        .await
        .unwrap();
    }
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tpch/answers");
    for (name, text) in tpch::queries(SCALE) {
        let output = sql
            .query(Query::new(text.clone()))
            .await
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
        let expected = std::fs::read_to_string(answers.join(format!("{name}.csv")))
            .unwrap_or_else(|e| panic!("{name}: no answer file: {e}"));
        if let Some(difference) = tpch::differs(&tpch::printed(&output.batches), &expected) {
            panic!("{name}: {difference}");
        }
        assert!(
            output.statistics.data_scanned_in_bytes > 0,
            "{name} read nothing"
        );
    }
}
