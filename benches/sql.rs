//! sql benchmark: TPC-H (scale factor 1, or `CLOUDLET_TPCH_SCALE`) generated as Parquet into a
//! durable bucket; the 22 queries through cloudlet-sql, the same files through DataFusion's
//! local filesystem store, and the same files with DuckDB (the Python package, installed by
//! `benches/sql_duckdb.py`, not a dependency). Criterion measures the first two; a summary of
//! all three, per query, follows, and every cloudlet-sql result is checked against DuckDB's.
//! `cargo bench --bench sql`.
#![allow(clippy::unwrap_used, missing_docs)]

#[allow(dead_code)]
mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../crates/sql/tests/it/tpch_data.rs"]
mod tpch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cloudlet::objectstore::{Buckets, ObjectService};
use cloudlet::sql::datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use cloudlet::sql::{Query, SqlService};
use cloudlet::{Store, SystemClock};
use criterion::Criterion;
use support::runtime;

fn scale() -> f64 {
    std::env::var("CLOUDLET_TPCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// Mean of `runs` runs after one warm-up.
fn time<F: FnMut()>(runs: u32, mut f: F) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed() / runs
}

fn main() {
    let scale = scale();
    let rt = runtime();
    let dir = tempfile::tempdir_in(".").unwrap();
    let files: PathBuf = dir.path().join("files");

    // The data: Parquet files on disk and, the same bytes, objects in a durable bucket.
    let store = Store::open(dir.path().join("db")).unwrap();
    let objects = ObjectService::open(
        store.clone(),
        SystemClock::shared(),
        dir.path().join("objects"),
    )
    .unwrap();
    let generated = Instant::now();
    rt.block_on(async {
        objects.create_bucket("tpch").await.unwrap();
        tpch::load(&objects, "tpch", scale, Some(&files)).await;
    });
    println!("TPC-H SF {scale} generated in {:?}", generated.elapsed());

    let sql = SqlService::open(store, SystemClock::shared(), objects).unwrap();
    // The same batch size as the service's, so the two differ only in where the bytes come from.
    let local = SessionContext::new_with_config(
        SessionConfig::new().with_batch_size(cloudlet::sql::BATCH_SIZE),
    );
    rt.block_on(async {
        for table in tpch::TABLES {
            sql.query(Query::new(format!(
                "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION 's3://tpch/{table}/'"
            )))
            .await
            .unwrap();
            local
                .register_parquet(
                    table,
                    files.join(table).to_str().unwrap(),
                    ParquetReadOptions::default(),
                )
                .await
                .unwrap();
        }
    });
    let queries = tpch::queries(scale);

    // DuckDB first: its answers check ours, its times go in the summary.
    let duckdb_out = dir.path().join("duckdb");
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sql_duckdb.py"))
        .arg(&files)
        .arg(&duckdb_out)
        .arg(scale.to_string())
        .status();
    let duckdb: BTreeMap<String, f64> = match status {
        Ok(s) if s.success() => std::fs::read_to_string(duckdb_out.join("times.txt"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (q, t) = l.split_once(' ')?;
                Some((q.to_owned(), t.parse().ok()?))
            })
            .collect(),
        _ => {
            println!("DuckDB could not run (python3 with pip needed); its column is left out");
            BTreeMap::new()
        }
    };

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut summary = Vec::new();
    for (name, text) in &queries {
        let mut group = c.benchmark_group(format!("tpch_sf{scale}_{name}"));
        group.bench_function("cloudlet_sql", |b| {
            b.iter(|| rt.block_on(sql.query(Query::new(text.clone()))).unwrap())
        });
        group.bench_function("datafusion_local", |b| {
            b.iter(|| {
                rt.block_on(async { local.sql(text).await.unwrap().collect().await.unwrap() })
            })
        });
        group.finish();

        let ours = time(3, || {
            rt.block_on(sql.query(Query::new(text.clone()))).unwrap();
        });
        let theirs = time(3, || {
            rt.block_on(async { local.sql(text).await.unwrap().collect().await.unwrap() });
        });
        let output = rt.block_on(sql.query(Query::new(text.clone()))).unwrap();
        let check = match std::fs::read_to_string(duckdb_out.join(format!("{name}.csv"))) {
            Ok(csv) => tpch::differs(&tpch::printed(&output.batches), &csv)
                .map_or("equal".to_owned(), |d| format!("DIFFERS: {d}")),
            Err(_) => "unchecked".to_owned(),
        };
        summary.push((
            name.clone(),
            ours,
            theirs,
            duckdb.get(name).copied(),
            output.statistics.data_scanned_in_bytes,
            check,
        ));
    }

    println!("\nquery  cloudlet-sql  datafusion-local  duckdb    scanned MiB  result");
    let (mut total_ours, mut total_local, mut total_duck) = (0.0, 0.0, 0.0);
    for (name, ours, theirs, duck, scanned, check) in &summary {
        total_ours += ours.as_secs_f64();
        total_local += theirs.as_secs_f64();
        total_duck += duck.unwrap_or(0.0);
        println!(
            "{name}    {:>9.1} ms  {:>13.1} ms  {:>7}  {:>10.1}   {check}",
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            duck.map_or("-".to_owned(), |d| format!("{:.1} ms", d * 1e3)),
            *scanned as f64 / (1 << 20) as f64,
        );
    }
    println!(
        "total  {:>9.1} ms  {:>13.1} ms  {:>7.1} ms",
        total_ours * 1e3,
        total_local * 1e3,
        total_duck * 1e3
    );
    println!(
        "cloudlet-sql / datafusion-local = {:.3}; cloudlet-sql / duckdb = {}",
        total_ours / total_local,
        if total_duck > 0.0 {
            format!("{:.3}", total_ours / total_duck)
        } else {
            "-".to_owned()
        }
    );
    c.final_summary();
}
