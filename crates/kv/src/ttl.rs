//! Time to live: an expiry index kept with every write, and a sweeper on the clock that
//! deletes expired items as the service (their stream records say so).
//!
//! The index key is `(table id, expiry second, item key)`, so a sweep reads only what is due.
//! As on DynamoDB, an expired item stays readable until the sweep deletes it, a TTL attribute
//! that is not a number is ignored, and so is an expiry more than five years in the past.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::{Tuple, TupleReader};
use cloudlet_core::{
    BackgroundTask, Direction, Durability, KeyRange, ReadView, Timestamp, WriteTxn,
};
use serde::{Deserialize, Serialize};

use crate::items::{Actor, read_item, write_item};
use crate::schema::TableRecord;
use crate::service::{KS_TABLES, KvService, corrupt};
use crate::value::{AttributeValue, Item};
use crate::{Error, Result};

/// The expiry index.
pub(crate) const KS_TTL: &str = "kv.ttl";
/// How many expired items one sweep transaction deletes.
const SWEEP_CHUNK: usize = 100;
/// How long after a TTL change another is refused.
pub const TTL_CHANGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Expiries further in the past than this are ignored, as DynamoDB ignores them.
const IGNORED_AGE: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// A table's time to live, as DescribeTimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeToLiveDescription {
    /// `ENABLED` or `DISABLED`.
    pub time_to_live_status: String,
    /// The attribute holding each item's expiry in epoch seconds, when enabled.
    pub attribute_name: Option<String>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Items deleted because their time to live passed.
    pub expired_items: usize,
    /// Stream records removed because they were older than 24 hours.
    pub trimmed_records: usize,
}

/// The expiry second an item's TTL attribute names, if it is a usable number.
fn expiry_of(table: &TableRecord, item: &Item) -> Option<u64> {
    let attribute = table.time_to_live_attribute.as_ref()?;
    let AttributeValue::N(number) = item.get(attribute)? else {
        return None;
    };
    let text = number.to_string();
    let whole = text.split('.').next().unwrap_or("");
    whole.parse::<u64>().ok()
}

fn entry_key(table_id: u64, expiry: u64, item_key: &[u8]) -> Bytes {
    Tuple::new()
        .u64(table_id)
        .u64(expiry)
        .bytes(item_key)
        .build()
}

/// Moves an item's expiry entry from `old` to `new`.
pub(crate) fn maintain(
    txn: &mut WriteTxn<'_>,
    table: &TableRecord,
    item_key: &[u8],
    old: Option<&Item>,
    new: Option<&Item>,
) {
    if table.time_to_live_attribute.is_none() {
        return;
    }
    let before = old.and_then(|i| expiry_of(table, i));
    let after = new.and_then(|i| expiry_of(table, i));
    if before == after {
        return;
    }
    if let Some(expiry) = before {
        txn.delete(KS_TTL, entry_key(table.id, expiry, item_key));
    }
    if let Some(expiry) = after {
        txn.put(KS_TTL, entry_key(table.id, expiry, item_key), Bytes::new());
    }
}

impl KvService {
    /// UpdateTimeToLive: enables time to live on `attribute`, or disables it with `None`.
    /// Existing items are indexed at once.
    ///
    /// # Errors
    /// `ValidationException` when it is already in that state, when enabling while enabled on
    /// another attribute, or within an hour of the last change (as DynamoDB).
    pub async fn update_time_to_live(
        &self,
        table: &str,
        attribute: Option<String>,
    ) -> Result<TimeToLiveDescription> {
        let record = self.table(table)?;
        if let Some(name) = &attribute
            && (name.is_empty() || name.len() > 255)
        {
            return Err(Error::validation(
                "AttributeName",
                "1 validation error detected: Value at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length between 1 and 255",
            ));
        }
        match (&record.time_to_live_attribute, &attribute) {
            (None, None) => {
                return Err(Error::validation(
                    "TimeToLiveSpecification",
                    "TimeToLive is already disabled",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Error::validation(
                    "TimeToLiveSpecification",
                    "TimeToLive is already enabled",
                ));
            }
            _ => {}
        }
        let now = self.now();
        if record
            .time_to_live_changed
            .is_some_and(|at| now < at.saturating_add(TTL_CHANGE_INTERVAL))
        {
            return Err(Error::validation(
                "TimeToLiveSpecification",
                "Time to live has been modified multiple times within a fixed interval",
            ));
        }
        let mut updated = (*record).clone();
        updated.time_to_live_attribute = attribute.clone();
        updated.time_to_live_changed = Some(now);
        self.change_definition(record, updated, crate::jobs::Job::ReindexTtl)
            .await?;
        Ok(TimeToLiveDescription {
            time_to_live_status: if attribute.is_some() {
                "ENABLED"
            } else {
                "DISABLED"
            }
            .to_owned(),
            attribute_name: attribute,
        })
    }

    /// DescribeTimeToLive.
    ///
    /// # Errors
    /// `ResourceNotFoundException` for a missing table.
    pub async fn describe_time_to_live(&self, table: &str) -> Result<TimeToLiveDescription> {
        let record = self.table(table)?;
        Ok(TimeToLiveDescription {
            time_to_live_status: if record.time_to_live_attribute.is_some() {
                "ENABLED"
            } else {
                "DISABLED"
            }
            .to_owned(),
            attribute_name: record.time_to_live_attribute.clone(),
        })
    }

    /// Deletes every item whose time to live has passed and trims stream records older than
    /// 24 hours, now. The sweeper task calls this on its interval; tests call it directly.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.run_blocking(|service| service.sweep_blocking()).await
    }

    fn sweep_blocking(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let tables: Vec<TableRecord> = self
            .store
            .snapshot()?
            .prefix(KS_TABLES, b"", Direction::Forward)?
            .map(|entry| {
                let (_, raw) = entry?;
                serde_json::from_slice(&raw).map_err(|e| corrupt(KS_TABLES, e.to_string()))
            })
            .collect::<Result<_>>()?;
        let now = self.now();
        for table in tables {
            let table = Arc::new(table);
            if table.time_to_live_attribute.is_some() {
                match self.expire(&table, now) {
                    Ok(count) => report.expired_items += count,
                    // Deleted during the sweep: nothing left to expire.
                    Err(Error::ResourceNotFound { .. }) => {}
                    Err(other) => return Err(other),
                }
            }
            if table.stream_view_type.is_some() || self.has_stream_records(&table)? {
                report.trimmed_records += self.trim_stream(&table, now)?;
            }
        }
        self.forget_client_tokens(now)?;
        Ok(report)
    }

    /// Deletes `table`'s items that expired by `now`, a chunk per transaction.
    fn expire(&self, table: &Arc<TableRecord>, now: Timestamp) -> Result<usize> {
        let now_secs = now.as_secs();
        let oldest = now.saturating_sub(IGNORED_AGE).as_secs();
        let mut deleted = 0;
        loop {
            let table = Arc::clone(table);
            let (count, more) = self.store.write_blocking(Durability::Durable, move |txn| {
                let table = crate::service::live_table(txn, &table)?;
                let range = KeyRange {
                    start: std::ops::Bound::Included(Tuple::new().u64(table.id).build()),
                    end: std::ops::Bound::Included(
                        Tuple::new().u64(table.id).u64(now_secs).build(),
                    ),
                };
                let due: Vec<Bytes> = txn
                    .range(KS_TTL, &range, Direction::Forward)?
                    .take(SWEEP_CHUNK)
                    .map(|e| e.map(|(k, _)| k))
                    .collect::<cloudlet_core::Result<_>>()?;
                let mut count = 0;
                for entry in &due {
                    let mut reader = TupleReader::new(entry);
                    let (_, expiry, item_key) = (reader.u64()?, reader.u64()?, reader.bytes()?);
                    if expiry < oldest {
                        // Ignored, as DynamoDB ignores expiries over five years old.
                        txn.delete(KS_TTL, entry.clone());
                        continue;
                    }
                    // An entry left by an earlier TTL attribute (or a write since) is stale:
                    // only the item's current expiry counts.
                    let Some(item) = read_item(txn, &item_key)?
                        .filter(|item| expiry_of(&table, item) == Some(expiry))
                    else {
                        txn.delete(KS_TTL, entry.clone());
                        continue;
                    };
                    write_item(
                        txn,
                        &table,
                        item_key,
                        Some(&item),
                        None,
                        now,
                        Actor::Service,
                    )?;
                    count += 1;
                }
                Ok::<_, Error>((count, due.len() == SWEEP_CHUNK))
            })?;
            deleted += count;
            if !more {
                return Ok(deleted);
            }
        }
    }

    /// Starts a task that calls [`sweep`](Self::sweep) every `interval` of the clock.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start_sweeper(&self, interval: Duration) -> BackgroundTask {
        let service = self.clone();
        BackgroundTask::spawn("kv sweeper", move |mut shutdown| async move {
            loop {
                tokio::select! {
                    () = shutdown.requested() => return,
                    () = service.clock.sleep(interval) => {}
                }
                if let Err(error) = service.sweep().await {
                    tracing::warn!(%error, "kv sweep failed");
                    if service.store.is_poisoned() {
                        return;
                    }
                }
            }
        })
    }
}
