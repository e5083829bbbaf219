//! Data-driven SQL tests: every `tests/slt/*.slt` file runs against the memory engine and the
//! durable (redb) engine.
//!
//! The format, one record per blank-line-separated block (`#` starts a comment line):
//!
//! - `statement ok` then SQL: the statement succeeds.
//! - `statement error <text>` then SQL: it fails, and the error contains `<text>`.
//! - `query [rowsort]` then SQL, `----`, then the expected rows, cells joined by ` | `,
//!   NULL as `NULL`; `rowsort` sorts both sides first.
//! - `scanned <op> <n>` / `objects <op> <n>` (`op` is `=`, `<`, `>`, `<=`, `>=`): the bytes
//!   read / distinct objects read by the last `query` or `statement`.
//! - `bucket <name>`: creates a bucket.
//! - `put s3://<bucket>/<key>` then the object's body (the block's remaining lines).
//! - `workgroup <name> [output=<location>] [cutoff=<bytes>]`: creates a workgroup.
//! - `use database <name>` / `use workgroup <name>`: where the next statements run.
//! - `reopen`: drops the service and opens a new one over the same storage.

use crate::tpch_data as tpch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudlet_core::{ManualClock, SharedClock, Store, Timestamp};
use cloudlet_objectstore::{Buckets, ObjectService, PutObject};
use cloudlet_sql::{Query, QueryOutput, SqlService, WorkGroupConfiguration};

struct Env {
    dir: Option<tempfile::TempDir>,
    store: Store,
    clock: SharedClock,
    objects: ObjectService,
    sql: SqlService,
}

impl Env {
    fn new(durable: bool) -> Self {
        let clock: SharedClock =
            Arc::new(ManualClock::new(Timestamp::from_millis(1_767_225_600_000)));
        let (dir, store, objects) = if durable {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path().join("db")).expect("store");
            let objects =
                ObjectService::open(store.clone(), clock.clone(), dir.path().join("objects"))
                    .expect("objects")
                    .with_relaxed_part_sizes();
            (Some(dir), store, objects)
        } else {
            let store = Store::memory();
            let objects =
                ObjectService::new(store.clone(), clock.clone()).with_relaxed_part_sizes();
            (None, store, objects)
        };
        let sql = SqlService::open(store.clone(), clock.clone(), objects.clone()).expect("sql");
        Self {
            dir,
            store,
            clock,
            objects,
            sql,
        }
    }

    async fn reopen(&mut self) {
        let Some(dir) = &self.dir else {
            // The memory engine lives as long as the store: a new service over it.
            self.sql =
                SqlService::open(self.store.clone(), self.clock.clone(), self.objects.clone())
                    .expect("sql");
            return;
        };
        // Everything that holds the store goes first, so the database file is released.
        let scratch = Store::memory();
        let scratch_objects = ObjectService::new(scratch.clone(), self.clock.clone());
        drop(std::mem::replace(
            &mut self.sql,
            SqlService::open(scratch.clone(), self.clock.clone(), scratch_objects.clone())
                .expect("sql"),
        ));
        self.objects.shutdown().await;
        drop(std::mem::replace(&mut self.objects, scratch_objects));
        std::mem::replace(&mut self.store, scratch).close().await;
        self.store = Store::open(dir.path().join("db")).expect("store");
        self.objects = ObjectService::open(
            self.store.clone(),
            self.clock.clone(),
            dir.path().join("objects"),
        )
        .expect("objects")
        .with_relaxed_part_sizes();
        self.sql = SqlService::open(self.store.clone(), self.clock.clone(), self.objects.clone())
            .expect("sql");
    }
}

fn render(output: &QueryOutput) -> Vec<String> {
    tpch::printed(&output.batches)
        .into_iter()
        .map(|cells| cells.join(" | "))
        .collect()
}

fn compare(op: &str, actual: u64, expected: u64) -> bool {
    match op {
        "=" => actual == expected,
        "<" => actual < expected,
        ">" => actual > expected,
        "<=" => actual <= expected,
        ">=" => actual >= expected,
        _ => panic!("unknown comparison {op}"),
    }
}

async fn run_file(path: &Path, durable: bool) {
    let text = std::fs::read_to_string(path).expect("read slt");
    let mut env = Env::new(durable);
    let mut database = "default".to_owned();
    let mut work_group = "primary".to_owned();
    let mut last: Option<QueryOutput> = None;
    let mut line_no = 0usize;
    let mut blocks: Vec<(usize, Vec<&str>)> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut start = 1;
    for line in text.lines() {
        line_no += 1;
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push((start, std::mem::take(&mut current)));
            }
            start = line_no + 1;
            continue;
        }
        if line.starts_with('#') && current.is_empty() {
            start = line_no + 1;
            continue;
        }
        current.push(line);
    }
    if !current.is_empty() {
        blocks.push((start, current));
    }
    let engine = if durable { "redb" } else { "memory" };
    for (at, block) in blocks {
        let here = format!("{}:{at} ({engine})", path.display());
        eprintln!("{here}");
        let head = block[0];
        let words: Vec<&str> = head.split_whitespace().collect();
        let run = |sql: String, database: String, work_group: String, sql_service: SqlService| async move {
            sql_service
                .query(Query::new(sql).database(database).work_group(work_group))
                .await
        };
        match words.as_slice() {
            ["statement", expectation @ ..] => {
                let expected = match expectation {
                    ["ok"] => None,
                    ["error", ..] => Some(head["statement error".len()..].trim()),
                    _ => panic!("{here}: unknown directive {head:?}"),
                };
                let sql = block[1..].join("\n");
                let result = run(
                    sql.clone(),
                    database.clone(),
                    work_group.clone(),
                    env.sql.clone(),
                )
                .await;
                match (result, expected) {
                    (Ok(output), None) => last = Some(output),
                    (Err(e), None) => panic!("{here}: statement failed: {e}\n{sql}"),
                    (Ok(_), Some(expected)) => panic!(
                        "{here}: statement succeeded, expected an error containing {expected:?}\n{sql}"
                    ),
                    (Err(e), Some(expected)) => assert!(
                        e.to_string().contains(expected),
                        "{here}: error {e:?} does not contain {expected:?}"
                    ),
                }
            }
            ["query", rest @ ..] => {
                let rowsort = rest.contains(&"rowsort");
                let split = block
                    .iter()
                    .position(|l| *l == "----")
                    .unwrap_or_else(|| panic!("{here}: query without ----"));
                let sql = block[1..split].join("\n");
                let mut expected: Vec<String> =
                    block[split + 1..].iter().map(|l| (*l).to_owned()).collect();
                let output = run(
                    sql.clone(),
                    database.clone(),
                    work_group.clone(),
                    env.sql.clone(),
                )
                .await
                .unwrap_or_else(|e| panic!("{here}: query failed: {e}\n{sql}"));
                let mut actual = render(&output);
                if rowsort {
                    actual.sort();
                    expected.sort();
                }
                assert_eq!(actual, expected, "{here}: wrong result\n{sql}");
                last = Some(output);
            }
            [what @ ("scanned" | "objects"), op, n] => {
                let stats = last
                    .as_ref()
                    .unwrap_or_else(|| panic!("{here}: no query before"))
                    .statistics;
                let actual = if *what == "scanned" {
                    stats.data_scanned_in_bytes
                } else {
                    stats.objects_read
                };
                let expected: u64 = n.parse().expect("number");
                assert!(
                    compare(op, actual, expected),
                    "{here}: {what} is {actual}, expected {op} {expected}"
                );
            }
            ["bucket", name] => env.objects.create_bucket(name).await.expect("bucket"),
            ["put", url] => {
                let (bucket, key) = url
                    .strip_prefix("s3://")
                    .and_then(|r| r.split_once('/'))
                    .expect("put s3://bucket/key");
                let body = block[1..].join("\n") + "\n";
                env.objects
                    .put_object(PutObject::new(bucket, key, body.into_bytes()))
                    .await
                    .expect("put");
            }
            ["workgroup", name, settings @ ..] => {
                let mut configuration = WorkGroupConfiguration {
                    enforce_work_group_configuration: true,
                    ..WorkGroupConfiguration::default()
                };
                for setting in settings {
                    match setting.split_once('=') {
                        Some(("output", v)) => configuration.output_location = Some(v.into()),
                        Some(("cutoff", v)) => {
                            configuration.bytes_scanned_cutoff_per_query =
                                Some(v.parse().expect("cutoff"));
                        }
                        _ => panic!("{here}: unknown workgroup setting {setting}"),
                    }
                }
                env.sql
                    .create_work_group(name, configuration, None)
                    .await
                    .unwrap_or_else(|e| panic!("{here}: {e}"));
            }
            ["use", "database", name] => database = (*name).to_owned(),
            ["use", "workgroup", name] => work_group = (*name).to_owned(),
            ["reopen"] => env.reopen().await,
            _ => panic!("{here}: unknown record {head:?}"),
        }
    }
}

fn slt(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/slt")
        .join(format!("{name}.slt"))
}

macro_rules! slt_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_file(&super::slt(stringify!($name)), false).await;
                }
            )*
        }
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_file(&super::slt(stringify!($name)), true).await;
                }
            )*
        }
    };
}

slt_tests!(
    ddl, partitions, projection, writes, catalog, cutoff, errors, views
);
