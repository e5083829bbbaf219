//! The Athena-shaped API: query executions, results, CSV output, cancellation, workgroups,
//! and the events written objects emit.

use std::sync::Arc;

use cloudlet_core::{ChannelSink, ManualClock, SharedClock, Store, Timestamp};
use cloudlet_objectstore::{Buckets, GetObject, ListObjects, NotificationRule, ObjectService};
use cloudlet_sql::{
    Error, Query, QueryState, SqlService, StartQueryExecution, StatementType,
    WorkGroupConfiguration, WorkGroupState,
};

struct Env {
    clock: Arc<ManualClock>,
    objects: ObjectService,
    sql: SqlService,
}

async fn env() -> Env {
    let manual = Arc::new(ManualClock::new(Timestamp::from_millis(1_767_225_600_000)));
    let clock: SharedClock = manual.clone();
    let store = Store::memory();
    let objects = ObjectService::new(store.clone(), clock.clone()).with_relaxed_part_sizes();
    objects.create_bucket("data").await.unwrap();
    objects.create_bucket("results").await.unwrap();
    let sql = SqlService::open(store, clock, objects.clone()).unwrap();
    sql.query(Query::new(
        "COPY (SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) AS t(id, name)) TO 's3://data/t/part.parquet' STORED AS PARQUET",
    ))
    .await
    .unwrap();
    sql.query(Query::new(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://data/t/'",
    ))
    .await
    .unwrap();
    Env {
        clock: manual,
        objects,
        sql,
    }
}

async fn read(objects: &ObjectService, bucket: &str, key: &str) -> String {
    let body = objects
        .get_object(GetObject::new(bucket, key))
        .await
        .unwrap()
        .body
        .bytes()
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_runs_in_the_background_and_pages_its_results() {
    let env = env().await;
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT id, name FROM t ORDER BY id")
                .output_location("s3://results/athena/"),
        )
        .await
        .unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(execution.state, QueryState::Succeeded, "{execution:?}");
    assert_eq!(execution.statement_type, StatementType::Dml);
    assert_eq!(
        execution.output_location,
        format!("s3://results/athena/{id}.csv")
    );
    assert!(execution.statistics.data_scanned_in_bytes > 0);
    assert_eq!(execution.statistics.objects_read, 1);
    assert!(execution.completion_date_time.is_some());
    assert_eq!(env.sql.get_query_execution(&id).unwrap(), execution);

    // The header is the first row of the first page, and counts against MaxResults.
    let first = env.sql.get_query_results(&id, None, Some(2)).unwrap();
    assert_eq!(first.columns[0].name, "id");
    assert_eq!(first.columns[0].type_name, "bigint");
    assert_eq!(first.columns[1].type_name, "varchar");
    assert_eq!(
        first.rows,
        vec![
            vec![Some("id".to_owned()), Some("name".to_owned())],
            vec![Some("1".to_owned()), Some("a".to_owned())],
        ]
    );
    let token = first.next_token.clone().unwrap();
    let second = env
        .sql
        .get_query_results(&id, Some(&token), Some(2))
        .unwrap();
    assert_eq!(
        second.rows,
        vec![
            vec![Some("2".to_owned()), Some("b".to_owned())],
            vec![Some("3".to_owned()), None],
        ]
    );
    assert_eq!(second.next_token, None);

    let csv = read(&env.objects, "results", &format!("athena/{id}.csv")).await;
    assert_eq!(csv, "\"id\",\"name\"\n\"1\",\"a\"\n\"2\",\"b\"\n\"3\",\n");
    assert_eq!(ids(&env.sql, None), vec![id]);
}

/// All of a workgroup's execution ids, newest first.
fn ids(sql: &SqlService, work_group: Option<&str>) -> Vec<String> {
    sql.list_query_executions(work_group, None, None)
        .unwrap()
        .query_execution_ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_checked_before_anything_runs() {
    let env = env().await;
    let no_output = env
        .sql
        .start_query_execution(StartQueryExecution::new("SELECT 1"))
        .await
        .unwrap_err();
    assert!(matches!(no_output, Error::InvalidRequest(ref m) if m.contains("No output location")));
    let long = "SELECT 1 -- ".to_owned() + &"x".repeat(cloudlet_sql::MAX_QUERY_BYTES);
    let too_long = env
        .sql
        .start_query_execution(StartQueryExecution::new(long).output_location("s3://results/"))
        .await
        .unwrap_err();
    assert!(matches!(
        too_long,
        Error::InvalidArgument {
            field: "QueryString",
            ..
        }
    ));
    let no_group = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT 1")
                .work_group("nope")
                .output_location("s3://results/"),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        no_group,
        Error::NotFound {
            kind: "WorkGroup",
            ..
        }
    ));
    assert!(matches!(
        env.sql.get_query_execution("nope").unwrap_err(),
        Error::NotFound {
            kind: "QueryExecution",
            ..
        }
    ));
    assert!(ids(&env.sql, None).is_empty());

    let low = env
        .sql
        .create_work_group(
            "low",
            WorkGroupConfiguration::with_output_location("s3://results/low/")
                .bytes_scanned_cutoff(1000),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        low,
        Error::InvalidArgument {
            field: "BytesScannedCutoffPerQuery",
            ..
        }
    ));
    let bad_name = env
        .sql
        .create_work_group("bad name", WorkGroupConfiguration::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(
        bad_name,
        Error::InvalidArgument {
            field: "WorkGroup",
            ..
        }
    ));
    assert!(matches!(
        env.sql.delete_work_group("primary").await.unwrap_err(),
        Error::InvalidRequest(_)
    ));
    assert_eq!(env.sql.list_work_groups().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_results_of_unfinished_queries() {
    let env = env().await;
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT missing_column FROM t")
                .output_location("s3://results/"),
        )
        .await
        .unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(execution.state, QueryState::Failed);
    let reason = execution.state_change_reason.unwrap();
    assert!(reason.contains("missing_column"), "{reason}");
    assert!(matches!(
        env.sql.get_query_results(&id, None, None).unwrap_err(),
        Error::NotFinished { ref state } if state == "FAILED"
    ));

    let ok = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT 1 AS one").output_location("s3://results/"),
        )
        .await
        .unwrap();
    env.sql.wait_for_query_execution(&ok).await.unwrap();
    assert!(matches!(
        env.sql.get_query_results(&ok, None, Some(0)).unwrap_err(),
        Error::InvalidArgument {
            field: "MaxResults",
            ..
        }
    ));
    assert!(matches!(
        env.sql
            .get_query_results(&ok, Some("garbage"), None)
            .unwrap_err(),
        Error::InvalidArgument {
            field: "NextToken",
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_query_is_cancelled_and_stays_cancelled() {
    let env = env().await;
    // A query that would run for a very long time.
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT count(*) FROM range(1000000000000) a")
                .output_location("s3://results/"),
        )
        .await
        .unwrap();
    env.sql.stop_query_execution(&id).await.unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(execution.state, QueryState::Cancelled);
    assert!(execution.state_change_reason.unwrap().contains("cancelled"));
    // Stopping again, or stopping a finished query, changes nothing.
    env.sql.stop_query_execution(&id).await.unwrap();
    assert_eq!(
        env.sql.get_query_execution(&id).unwrap().state,
        QueryState::Cancelled
    );
    let listing = env
        .objects
        .list_objects(ListObjects::new("results"))
        .await
        .unwrap();
    assert!(
        listing.contents.is_empty(),
        "a cancelled query writes no results"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workgroups_enforce_their_output_location_and_state() {
    let env = env().await;
    env.sql
        .create_work_group(
            "team",
            WorkGroupConfiguration::with_output_location("s3://results/team/"),
            Some("the team's".into()),
        )
        .await
        .unwrap();
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT count(*) AS n FROM t")
                .work_group("team")
                .output_location("s3://results/elsewhere/"),
        )
        .await
        .unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(
        execution.output_location,
        format!("s3://results/team/{id}.csv")
    );
    assert_eq!(
        read(&env.objects, "results", &format!("team/{id}.csv")).await,
        "\"n\"\n\"3\"\n"
    );
    assert_eq!(ids(&env.sql, Some("team")), vec![id]);
    assert!(ids(&env.sql, None).is_empty());

    // The same client request token answers the same execution.
    let token = "0123456789abcdef0123456789abcdef".to_owned();
    let mut request = StartQueryExecution::new("SELECT 2").work_group("team");
    request.client_request_token = Some(token.clone());
    let first = env
        .sql
        .start_query_execution(request.clone())
        .await
        .unwrap();
    let again = env
        .sql
        .start_query_execution(request.clone())
        .await
        .unwrap();
    assert_eq!(first, again);
    // ... and refuses the same token for another query.
    request.query_string = "SELECT 3".into();
    let mismatch = env.sql.start_query_execution(request).await.unwrap_err();
    assert!(
        matches!(mismatch, Error::InvalidRequest(ref m) if m.contains("different parameters")),
        "{mismatch}"
    );

    env.sql
        .update_work_group("team", Some(WorkGroupState::Disabled), None)
        .await
        .unwrap();
    let disabled = env
        .sql
        .start_query_execution(StartQueryExecution::new("SELECT 1").work_group("team"))
        .await
        .unwrap_err();
    assert!(matches!(disabled, Error::InvalidRequest(ref m) if m.contains("disabled")));
    let direct = env
        .sql
        .query(Query::new("SELECT 1").work_group("team"))
        .await
        .unwrap_err();
    assert!(matches!(direct, Error::InvalidRequest(ref m) if m.contains("disabled")));
    env.sql.delete_work_group("team").await.unwrap();
    assert!(env.sql.get_work_group("team").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutoff_cancels_the_execution_with_athenas_reason() {
    let env = env().await;
    env.sql
        .query(Query::new(
            "COPY (SELECT value AS v, repeat('y', 120) AS pad FROM range(100000)) TO 's3://data/wide/rows.csv' STORED AS CSV",
        ))
        .await
        .unwrap();
    env.sql
        .query(Query::new(
            "CREATE EXTERNAL TABLE wide (v BIGINT, pad VARCHAR) STORED AS CSV LOCATION 's3://data/wide/' OPTIONS ('format.has_header' 'true')",
        ))
        .await
        .unwrap();
    env.sql
        .create_work_group(
            "capped",
            WorkGroupConfiguration::with_output_location("s3://results/capped/")
                .bytes_scanned_cutoff(cloudlet_sql::MIN_BYTES_SCANNED_CUTOFF),
            None,
        )
        .await
        .unwrap();
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SELECT max(v) FROM wide").work_group("capped"),
        )
        .await
        .unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(execution.state, QueryState::Cancelled, "{execution:?}");
    assert!(
        execution
            .state_change_reason
            .unwrap()
            .contains("Bytes scanned limit was exceeded")
    );
    assert!(execution.statistics.data_scanned_in_bytes > cloudlet_sql::MIN_BYTES_SCANNED_CUTOFF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_objects_emit_events() {
    let env = env().await;
    let (sink, mut events) = ChannelSink::new();
    env.objects.register_target("queue", Arc::new(sink));
    env.objects
        .put_bucket_notifications(
            "data",
            vec![NotificationRule::new(
                "created",
                "queue",
                ["s3:ObjectCreated:*"],
            )],
        )
        .await
        .unwrap();
    env.sql
        .query(Query::new(
            "COPY (SELECT id, name FROM t) TO 's3://data/out/' STORED AS PARQUET PARTITIONED BY (name)",
        ))
        .await
        .unwrap();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let message = events.recv().await.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        keys.push(
            event["Records"][0]["s3"]["object"]["key"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    keys.sort();
    // Event keys are URL-encoded, as S3 sends them.
    assert!(
        keys.iter().all(|k| k.starts_with("out/name%3D")),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_api_streams_batches() {
    use futures::TryStreamExt;
    let env = env().await;
    let stream = env
        .sql
        .query_stream(Query::new("SELECT id FROM t WHERE id > 1 ORDER BY id"))
        .await
        .unwrap();
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    // The same through the trait object.
    let api: Arc<dyn cloudlet_sql::Queries> = Arc::new(env.sql.clone());
    let output = api
        .query(Query::new("SELECT count(*) FROM t"))
        .await
        .unwrap();
    assert_eq!(output.batches[0].num_rows(), 1);
    assert_eq!(
        output.statistics.objects_read, 0,
        "a count answered from statistics"
    );
    let error = env
        .sql
        .query(Query::new("SELECT FROM WHERE"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Sql { .. }), "{error:?}");
    let unknown_db = env
        .sql
        .query(Query::new("SELECT 1").database("nope"))
        .await
        .unwrap_err();
    assert!(matches!(
        unknown_db,
        Error::NotFound {
            kind: "Database",
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_page_newest_first_and_are_forgotten_after_45_days() {
    let env = env().await;
    let mut started = Vec::new();
    for n in 0..5 {
        let id = env
            .sql
            .start_query_execution(
                StartQueryExecution::new(format!("SELECT {n}")).output_location("s3://results/"),
            )
            .await
            .unwrap();
        env.sql.wait_for_query_execution(&id).await.unwrap();
        started.push(id);
        env.clock
            .advance(std::time::Duration::from_secs(24 * 60 * 60));
    }
    let newest_first: Vec<String> = started.iter().rev().cloned().collect();

    // Pages of two: 4 3, 2 1, 0.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = env
            .sql
            .list_query_executions(None, token.as_deref(), Some(2))
            .unwrap();
        assert!(page.query_execution_ids.len() <= 2);
        seen.extend(page.query_execution_ids);
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, newest_first);

    assert!(matches!(
        env.sql
            .list_query_executions(None, None, Some(51))
            .unwrap_err(),
        Error::InvalidArgument {
            field: "MaxResults",
            ..
        }
    ));
    assert!(matches!(
        env.sql
            .list_query_executions(None, Some("garbage"), None)
            .unwrap_err(),
        Error::InvalidArgument {
            field: "NextToken",
            ..
        }
    ));
    assert!(matches!(
        env.sql
            .list_query_executions(Some("nobody"), None, None)
            .unwrap_err(),
        Error::NotFound {
            kind: "WorkGroup",
            ..
        }
    ));

    // Now the first was submitted 45 days and a second ago, the second 44 days and a second
    // ago: only the first is forgotten.
    env.clock
        .advance(std::time::Duration::from_secs(40 * 24 * 60 * 60 + 1));
    assert_eq!(ids(&env.sql, None), newest_first[..4].to_vec());
    assert!(matches!(
        env.sql.get_query_execution(&started[0]).unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(env.sql.get_query_execution(&started[1]).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_that_fails_to_plan_reports_its_own_type() {
    let env = env().await;
    for (sql, expected) in [
        ("CREATE EXTERNAL TABLE broken (", StatementType::Ddl),
        ("DROP TABLE nothing_here", StatementType::Ddl),
        ("SELECT * FROM nothing_here", StatementType::Dml),
        ("SHOW TABLES IN nothing_here", StatementType::Utility),
    ] {
        let id = env
            .sql
            .start_query_execution(StartQueryExecution::new(sql).output_location("s3://results/"))
            .await
            .unwrap();
        let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
        assert_eq!(execution.state, QueryState::Failed, "{sql}: {execution:?}");
        assert_eq!(execution.statement_type, expected, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_tables_answers_in_athenas_shape() {
    let env = env().await;
    let id = env
        .sql
        .start_query_execution(
            StartQueryExecution::new("SHOW TABLES").output_location("s3://results/"),
        )
        .await
        .unwrap();
    let execution = env.sql.wait_for_query_execution(&id).await.unwrap();
    assert_eq!(execution.state, QueryState::Succeeded, "{execution:?}");
    assert_eq!(execution.statement_type, StatementType::Utility);
    let page = env.sql.get_query_results(&id, None, None).unwrap();
    assert_eq!(page.columns.len(), 1);
    assert_eq!(page.columns[0].name, "tab_name");
    assert_eq!(page.columns[0].type_name, "varchar");
    // A utility statement's results have no header row.
    assert_eq!(page.rows, vec![vec![Some("t".to_owned())]]);
}
