//! Bulk work that follows a definition change: removing a deleted table's data, backfilling a
//! new index, removing a dropped index's entries, rebuilding the expiry index.
//!
//! A job is recorded in the same transaction as the change that calls for it and removed in
//! the transaction that finishes it, so a crash in between leaves the job to be resumed when
//! the service starts again. While a table has a job, other definition changes are refused
//! (as DynamoDB refuses them while a table is `UPDATING`). Each chunk of a job runs in its own
//! transaction and checks that the table still exists, so a job never writes into a deleted
//! table.

use bytes::Bytes;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{Direction, Durability, ReadView, WriteTxn};
use serde::{Deserialize, Serialize};

use crate::index::{KS_INDEX, entry_key, projected};
use crate::schema::TableRecord;
use crate::service::{KS_ITEMS, KS_LIVE, KS_META, KS_TABLES, KvService, corrupt, encode};
use crate::{Error, Result};

/// Pending jobs: `(table id, job number)` to the job (JSON).
pub(crate) const KS_JOBS: &str = "kv.jobs";

/// One job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Job {
    /// The table was deleted: remove its items, index entries, expiry entries, stream records
    /// and counters.
    RemoveTable,
    /// Index the existing items in the new index, then mark it active.
    Backfill { index: String },
    /// Remove the entries of a dropped index.
    RemoveIndex { index_id: u64 },
    /// Rebuild the expiry index for the table's current TTL attribute.
    ReindexTtl,
}

/// Records `job` for table `table_id` in the caller's transaction.
pub(crate) fn push(txn: &mut WriteTxn<'_>, table_id: u64, job: &Job) -> Result<Bytes> {
    let number = txn.next_sequence(KS_META, &Tuple::new().str("job").build())?;
    let key = Tuple::new().u64(table_id).u64(number).build();
    let json = serde_json::to_vec(job).map_err(|e| corrupt(KS_JOBS, e.to_string()))?;
    txn.put(KS_JOBS, key.clone(), json);
    Ok(key)
}

/// True when table `table_id` has a job pending.
pub(crate) fn pending(view: &impl ReadView, table_id: u64) -> Result<bool> {
    let prefix = Tuple::new().u64(table_id).build();
    Ok(view
        .prefix(KS_JOBS, &prefix, Direction::Forward)?
        .next()
        .is_some())
}

/// Every pending job: its key, table id and what it is. A job that cannot be decoded is
/// logged and left alone, so it does not stop the others.
fn all(view: &impl ReadView) -> Result<Vec<(Bytes, u64, Job)>> {
    let mut jobs = Vec::new();
    for entry in view.prefix(KS_JOBS, b"", Direction::Forward)? {
        let (key, raw) = entry?;
        let decoded = TupleReader::new(&key)
            .u64()
            .map_err(Error::from)
            .and_then(|table_id| {
                let job =
                    serde_json::from_slice(&raw).map_err(|e| corrupt(KS_JOBS, e.to_string()))?;
                Ok((table_id, job))
            });
        match decoded {
            Ok((table_id, job)) => jobs.push((key, table_id, job)),
            Err(error) => tracing::error!(%error, "kv: a pending job cannot be read; skipped"),
        }
    }
    Ok(jobs)
}

/// The stored definition of the live table `table_id`, if it still exists.
fn live_definition(txn: &WriteTxn<'_>, table_id: u64) -> Result<Option<TableRecord>> {
    if txn
        .get(KS_LIVE, &Tuple::new().u64(table_id).build())?
        .is_none()
    {
        return Ok(None);
    }
    for entry in txn.prefix(KS_TABLES, b"", Direction::Forward)? {
        let (_, raw) = entry?;
        let table: TableRecord =
            serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TABLES, e.to_string()))?;
        if table.id == table_id {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

impl KvService {
    /// Runs the jobs left by an earlier run of the service, on a thread of their own so any
    /// caller (inside an async runtime or not) can construct the service.
    pub(crate) fn resume_jobs(&self) {
        let found = self
            .store
            .snapshot()
            .and_then(|s| Ok(s.prefix(KS_JOBS, b"", Direction::Forward)?.next().is_some()));
        if !matches!(found, Ok(true)) {
            return;
        }
        let service = self.clone();
        let spawned = std::thread::Builder::new()
            .name("kv-jobs".to_owned())
            .spawn(move || {
                if let Err(error) = service.run_jobs(None) {
                    tracing::warn!(%error, "kv: could not finish resumed jobs");
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "kv: could not start the thread for resumed jobs");
        }
    }

    /// Runs the pending jobs of table `table_id` (of every table if `None`), oldest first.
    /// Blocks: call it off the async runtime.
    pub(crate) fn run_jobs(&self, table_id: Option<u64>) -> Result<()> {
        let _running = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let jobs = all(&self.store.snapshot()?)?;
        let mut first_error = None;
        for (key, id, job) in jobs {
            if table_id.is_some_and(|t| t != id) {
                continue;
            }
            // One table's failing job does not hold back the others'.
            if let Err(error) = self.run_job(key, id, &job) {
                tracing::warn!(%error, table_id = id, ?job, "kv: a job failed; it stays pending");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Finishes the work a crash interrupted (removing a deleted table's data, backfilling an
    /// index, rebuilding the expiry index), which the service resumes in the background when
    /// it is constructed: returns once none is left. Useful in tests, and before relying on
    /// an index that was being built.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn finish_pending_work(&self) -> Result<()> {
        self.run_blocking(|service| service.run_jobs(None)).await
    }

    fn run_job(&self, key: Bytes, table_id: u64, job: &Job) -> Result<()> {
        let prefix = Tuple::new().u64(table_id).build();
        match job {
            Job::RemoveTable => {
                for keyspace in [
                    KS_ITEMS,
                    KS_INDEX,
                    crate::stream::KS_STREAM,
                    crate::ttl::KS_TTL,
                ] {
                    self.delete_prefix(keyspace, &prefix)?;
                }
                self.delete_prefix(
                    KS_META,
                    &Tuple::new()
                        .str("stream-subscription")
                        .u64(table_id)
                        .build(),
                )?;
                self.store.write_blocking(Durability::Durable, move |txn| {
                    txn.delete(KS_META, crate::stream::last_sequence_key(table_id));
                    txn.delete(KS_META, crate::stream::trimmed_key(table_id));
                    // Jobs the table had left are moot now.
                    let keys: Vec<Bytes> = txn
                        .prefix(
                            KS_JOBS,
                            &Tuple::new().u64(table_id).build(),
                            Direction::Forward,
                        )?
                        .map(|e| e.map(|(k, _)| k))
                        .collect::<cloudlet_core::Result<_>>()?;
                    for key in keys {
                        txn.delete(KS_JOBS, key);
                    }
                    Ok::<_, Error>(())
                })
            }
            Job::Backfill { index } => {
                let index = index.clone();
                let finished = self.for_each_live_item(table_id, move |txn, table, _, item| {
                    if let Some(definition) =
                        crate::index::indexes(table).find(|i| i.index_name == index)
                        && let Some(entry) = entry_key(table, definition, item)
                    {
                        txn.put(KS_INDEX, entry, encode(&projected(table, definition, item)));
                    }
                    Ok(())
                })?;
                let (name, job_key) = (job_index_name(job), key);
                self.store.write_blocking(Durability::Durable, move |txn| {
                    txn.delete(KS_JOBS, job_key);
                    if finished && let Some(mut table) = live_definition(txn, table_id)? {
                        table.backfilling.remove(&name);
                        crate::index::store_version(txn, &mut table)?;
                    }
                    Ok::<_, Error>(())
                })?;
                if let Some(name) = self.table_name(table_id)? {
                    self.forget(&name);
                }
                Ok(())
            }
            Job::RemoveIndex { index_id } => {
                self.delete_prefix(KS_INDEX, &Tuple::new().u64(table_id).u64(*index_id).build())?;
                self.finish_job(key)
            }
            Job::ReindexTtl => {
                self.delete_prefix(crate::ttl::KS_TTL, &prefix)?;
                self.for_each_live_item(table_id, |txn, table, key, item| {
                    crate::ttl::maintain(txn, table, key, None, Some(item));
                    Ok(())
                })?;
                self.finish_job(key)
            }
        }
    }

    fn finish_job(&self, key: Bytes) -> Result<()> {
        self.store.write_blocking(Durability::Durable, move |txn| {
            txn.delete(KS_JOBS, key);
            Ok::<_, Error>(())
        })
    }

    fn table_name(&self, table_id: u64) -> Result<Option<String>> {
        let raw = self
            .store
            .snapshot()?
            .get(KS_LIVE, &Tuple::new().u64(table_id).build())?;
        if raw.is_none() {
            return Ok(None);
        }
        for entry in self
            .store
            .snapshot()?
            .prefix(KS_TABLES, b"", Direction::Forward)?
        {
            let (name, raw) = entry?;
            let table: TableRecord =
                serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TABLES, e.to_string()))?;
            if table.id == table_id {
                return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
            }
        }
        Ok(None)
    }

    /// Calls `visit` with every item of the live table `table_id` and its current definition,
    /// a chunk per transaction. Returns false if the table was deleted on the way.
    fn for_each_live_item<F>(&self, table_id: u64, visit: F) -> Result<bool>
    where
        F: Fn(&mut WriteTxn<'_>, &TableRecord, &Bytes, &crate::value::Item) -> Result<()>
            + Send
            + Sync
            + 'static,
    {
        let result = self.for_each_chunk(table_id, move |txn, chunk| {
            let table = live_definition(txn, table_id)?
                .ok_or_else(|| Error::table_not_found(&format!("#{table_id}")))?;
            chunk
                .iter()
                .try_for_each(|(key, item)| visit(txn, &table, key, item))
        });
        match result {
            Ok(()) => Ok(true),
            Err(Error::ResourceNotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

fn job_index_name(job: &Job) -> String {
    match job {
        Job::Backfill { index } => index.clone(),
        _ => String::new(),
    }
}
