//! Lifecycle rules on the clock: expiration of current objects, of noncurrent versions, and of
//! incomplete multipart uploads. As in S3, an action falls due at the first midnight UTC after
//! the age is reached, and runs asynchronously: here at each midnight of the clock, or when
//! [`ObjectService::run_lifecycle`] is called.

use cloudlet_core::keys::TupleReader;
use cloudlet_core::{BackgroundTask, Direction, KeyRange, ReadView, Timestamp};

use crate::error::{Error, Result};
use crate::multipart::remove_upload;
use crate::record::{
    BucketRecord, KS_BUCKETS, KS_HISTORY, KS_OBJECTS, KS_UPLOADS, UploadRecord, decode,
    decode_object, history_prefix, key_prefix, load_bucket, load_head,
};
use crate::service::{ObjectService, decode_object_key};
use crate::types::LifecycleRule;

const DAY: u64 = 86_400;

/// What one lifecycle run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecycleReport {
    /// Current objects expired (deleted, or hidden by a delete marker in a versioned bucket).
    pub expired: usize,
    /// Noncurrent versions deleted.
    pub noncurrent_deleted: usize,
    /// Multipart uploads aborted.
    pub uploads_aborted: usize,
}

/// When an action `days` after `since` falls due: the next midnight UTC at or after it.
pub(crate) fn due(since: Timestamp, days: u32) -> Timestamp {
    let secs = since.as_secs() + u64::from(days) * DAY;
    Timestamp::from_secs(secs.div_ceil(DAY) * DAY)
}

fn validate(rules: &[LifecycleRule]) -> Result<()> {
    if rules.len() > 1000 {
        return Err(Error::invalid(
            "LifecycleConfiguration",
            "at most 1000 rules",
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for rule in rules {
        if rule.id.len() > 255 {
            return Err(Error::invalid("ID", "a rule id is at most 255 characters"));
        }
        if !ids.insert(rule.id.as_str()) {
            return Err(Error::invalid(
                "ID",
                format!(
                    "Rule ID must be unique. Found same ID for more than one rule: {:?}",
                    rule.id
                ),
            ));
        }
        let days = [
            rule.expiration_days,
            rule.noncurrent_expiration_days,
            rule.abort_incomplete_upload_days,
        ];
        if days.iter().all(Option::is_none) {
            return Err(Error::invalid(
                "Rule",
                "At least one action needs to be specified in a rule",
            ));
        }
        if days.iter().flatten().any(|d| *d == 0) {
            return Err(Error::invalid(
                "Days",
                "'Days' for an action must be a positive integer",
            ));
        }
    }
    Ok(())
}

/// A lifecycle action found by a scan, checked again when applied.
#[derive(Clone)]
enum Action {
    Expire {
        key: String,
        seq: u64,
    },
    Noncurrent {
        key: String,
        version: String,
        seq: u64,
    },
    Abort {
        key: String,
        upload_id: String,
    },
}

impl ObjectService {
    pub(crate) async fn put_lifecycle_impl(
        &self,
        bucket: &str,
        rules: Vec<LifecycleRule>,
    ) -> Result<()> {
        validate(&rules)?;
        self.update_bucket(bucket, move |record| {
            record.lifecycle = rules;
            Ok(())
        })
        .await
    }

    pub(crate) fn lifecycle_impl(&self, bucket: &str) -> Result<Vec<LifecycleRule>> {
        let rules = load_bucket(&self.store.snapshot()?, bucket)?.lifecycle;
        if rules.is_empty() {
            return Err(Error::NoSuchLifecycleConfiguration {
                bucket: bucket.to_owned(),
            });
        }
        Ok(rules)
    }

    /// Applies every lifecycle action due at the clock's current time, in every bucket.
    ///
    /// # Errors
    /// [`Error::Storage`] when the store fails.
    pub async fn run_lifecycle(&self) -> Result<LifecycleReport> {
        let now = self.now();
        let snapshot = self.store.snapshot()?;
        let mut buckets = Vec::new();
        for entry in snapshot.range(KS_BUCKETS, &KeyRange::all(), Direction::Forward)? {
            let (name, raw) = entry?;
            let record: BucketRecord = decode(KS_BUCKETS, &raw)?;
            if record.lifecycle.iter().any(|r| r.enabled) {
                buckets.push((String::from_utf8_lossy(&name).into_owned(), record));
            }
        }
        let mut report = LifecycleReport::default();
        for (bucket, record) in buckets {
            let actions = Self::due_actions(&snapshot, &bucket, &record, now)?;
            for chunk in actions.chunks(100) {
                let chunk: Vec<_> = chunk.to_vec();
                let this = self.clone();
                let bucket = bucket.clone();
                let done = self
                    .commit(move |txn| {
                        let mut freed = Vec::new();
                        let mut done = LifecycleReport::default();
                        for action in chunk {
                            match action {
                                Action::Expire { key, seq } => {
                                    let head = load_head(txn, &bucket, &key)?;
                                    if head.is_some_and(|h| h.seq == seq && !h.delete_marker) {
                                        this.delete_in(
                                            txn, &bucket, &key, None, true, now, &mut freed,
                                        )?;
                                        done.expired += 1;
                                    }
                                }
                                Action::Noncurrent { key, version, seq } => {
                                    // Still the same noncurrent version: a version that became
                                    // current again is not noncurrent any more.
                                    let still = matches!(
                                        Self::find_version(txn, &bucket, &key, &version)?,
                                        Some(crate::service::Found::History(r)) if r.seq == seq
                                    );
                                    if still {
                                        this.delete_in(
                                            txn,
                                            &bucket,
                                            &key,
                                            Some(&version),
                                            true,
                                            now,
                                            &mut freed,
                                        )?;
                                        done.noncurrent_deleted += 1;
                                    }
                                }
                                Action::Abort { key, upload_id } => {
                                    let exists = txn
                                        .get(
                                            KS_UPLOADS,
                                            &crate::record::upload_key(&bucket, &key, &upload_id),
                                        )?
                                        .is_some();
                                    if exists {
                                        remove_upload(
                                            txn,
                                            &bucket,
                                            &key,
                                            &upload_id,
                                            &[],
                                            &mut freed,
                                        )?;
                                        done.uploads_aborted += 1;
                                    }
                                }
                            }
                        }
                        Ok((done, freed))
                    })
                    .await?;
                report.expired += done.expired;
                report.noncurrent_deleted += done.noncurrent_deleted;
                report.uploads_aborted += done.uploads_aborted;
            }
        }
        Ok(report)
    }

    fn due_actions(
        view: &impl ReadView,
        bucket: &str,
        record: &BucketRecord,
        now: Timestamp,
    ) -> Result<Vec<Action>> {
        let mut actions = Vec::new();
        for rule in record.lifecycle.iter().filter(|r| r.enabled) {
            if rule.expiration_days.is_some() || rule.noncurrent_expiration_days.is_some() {
                let range = KeyRange::prefix(key_prefix(bucket, &rule.prefix));
                for entry in view.range(KS_OBJECTS, &range, Direction::Forward)? {
                    let (raw_key, raw) = entry?;
                    let key = decode_object_key(&raw_key)?;
                    let head = decode_object(KS_OBJECTS, raw)?;
                    if let Some(days) = rule.expiration_days
                        && !head.delete_marker
                        && now >= due(head.last_modified, days)
                    {
                        actions.push(Action::Expire {
                            key: key.clone(),
                            seq: head.seq,
                        });
                    }
                    if let Some(days) = rule.noncurrent_expiration_days {
                        // A version became noncurrent when its successor was written.
                        let mut successor = head.last_modified;
                        for h in view.prefix(
                            KS_HISTORY,
                            &history_prefix(bucket, &key),
                            Direction::Forward,
                        )? {
                            let (_, raw) = h?;
                            let version = decode_object(KS_HISTORY, raw)?;
                            if now >= due(successor, days) {
                                actions.push(Action::Noncurrent {
                                    key: key.clone(),
                                    version: version.version_label(),
                                    seq: version.seq,
                                });
                            }
                            successor = version.last_modified;
                        }
                    }
                }
            }
            if let Some(days) = rule.abort_incomplete_upload_days {
                for entry in view.prefix(
                    KS_UPLOADS,
                    &key_prefix(bucket, &rule.prefix),
                    Direction::Forward,
                )? {
                    let (raw_key, raw) = entry?;
                    let upload: UploadRecord = decode(KS_UPLOADS, &raw)?;
                    if now >= due(upload.initiated, days) {
                        let mut reader = TupleReader::new(&raw_key);
                        reader.str()?;
                        let key = reader.str()?;
                        let upload_id = reader.str()?;
                        actions.push(Action::Abort { key, upload_id });
                    }
                }
            }
        }
        Ok(actions)
    }

    /// Runs [`run_lifecycle`](Self::run_lifecycle) at every midnight UTC of the clock, until
    /// the returned task is shut down.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn start_lifecycle(&self) -> BackgroundTask {
        let this = self.clone();
        BackgroundTask::spawn("objectstore lifecycle", move |mut shutdown| async move {
            loop {
                let now = this.now();
                let next = Timestamp::from_secs((now.as_secs() / DAY + 1) * DAY);
                tokio::select! {
                    () = this.clock.sleep_until(next) => {}
                    () = shutdown.requested() => return,
                }
                if let Err(e) = this.run_lifecycle().await {
                    tracing::warn!(error = %e, "lifecycle run failed");
                    if matches!(e, Error::Storage(_)) && this.store.is_poisoned() {
                        return;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_fall_due_at_the_next_midnight() {
        let written = Timestamp::from_secs(10 * DAY + 3600);
        assert_eq!(due(written, 1), Timestamp::from_secs(12 * DAY));
        assert_eq!(
            due(Timestamp::from_secs(10 * DAY), 1),
            Timestamp::from_secs(11 * DAY)
        );
    }
}
