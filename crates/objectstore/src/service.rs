//! [`ObjectService`]: buckets and objects over the engine, the clock and the body store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::keys::TupleReader;
use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{
    BackgroundTask, Direction, Durability, KeyRange, ReadView, SharedClock, Sink, Snapshot, Store,
    Timestamp, WriteTxn,
};

use crate::data::{Data, Opened, Staged, copy_chunks, delete_chunks, new_id};
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::names::{
    validate_bucket_name, validate_key, validate_metadata, validate_tags, validate_version_id,
};
use crate::record::{
    BucketRecord, KS_BUCKETS, KS_HISTORY, KS_META, KS_OBJECTS, KS_UPLOADS, ObjectRecord, SEQUENCE,
    Segment, bucket_prefix, decode, decode_object, encode, encode_object, history_key,
    history_prefix, load_bucket, load_head, object_key,
};
use crate::types::{
    BucketInfo, CopyObject, CopyObjectOutput, DeleteObjectError, DeleteObjectOutput,
    DeleteObjectsOutput, DeletedObject, GetObject, GetObjectOutput, Headers, MetadataDirective,
    NotificationRule, ObjectIdentifier, ObjectInfo, PutObject, PutObjectOutput, ReadConditions,
    Versioning, WriteConditions,
};

/// The largest body of one PutObject or UploadPart: 5 GiB.
pub const MAX_PUT_BYTES: u64 = 5 << 30;
/// The smallest part of a multipart upload but the last: 5 MiB.
pub const MIN_PART_BYTES: u64 = 5 << 20;

/// S3 semantics over a [`Store`] and a [`SharedClock`]: buckets, objects with versions,
/// multipart uploads, lifecycle rules and event notifications.
///
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct ObjectService {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) data: Arc<Data>,
    pub(crate) durability: Durability,
    pub(crate) min_part_size: u64,
    pub(crate) region: String,
    pub(crate) policy: OutboxPolicy,
    pub(crate) targets: Arc<Mutex<HashMap<String, BackgroundTask>>>,
}

impl fmt::Debug for ObjectService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectService")
            .field("region", &self.region)
            .field("files", &self.data.has_files())
            .field("min_part_size", &self.min_part_size)
            .finish_non_exhaustive()
    }
}

/// A version found by id: the key's head, or one of its noncurrent versions.
pub(crate) enum Found {
    Head(ObjectRecord),
    History(ObjectRecord),
}

impl Found {
    pub(crate) fn record(&self) -> &ObjectRecord {
        match self {
            Self::Head(r) | Self::History(r) => r,
        }
    }
}

/// The parts of a new current object.
pub(crate) struct NewObject {
    pub(crate) size: u64,
    pub(crate) etag: String,
    pub(crate) segments: Vec<Segment>,
    pub(crate) parts: Option<u32>,
    pub(crate) headers: Headers,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) tags: BTreeMap<String, String>,
    /// The body, when it lives in the record.
    pub(crate) inline: Option<Bytes>,
}

/// A copy or a rename, as [`ObjectService::copy_inner`] does it.
struct Copy {
    source_bucket: String,
    source_key: String,
    source_version_id: Option<String>,
    source_conditions: ReadConditions,
    size_limit: Option<u64>,
    bucket: String,
    key: String,
    conditions: WriteConditions,
    /// Replacement headers and metadata; the source's when `None`.
    metadata: Option<(Headers, BTreeMap<String, String>)>,
    /// Replacement tags; the source's when `None`.
    tags: Option<BTreeMap<String, String>>,
    delete_source: bool,
}

/// What a write freed: body files to remove once it has committed.
pub(crate) type Freed = Vec<Segment>;

pub(crate) fn info(key: &str, record: &ObjectRecord) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        version_id: record.version_id.clone(),
        size: record.size,
        etag: record.etag.clone(),
        last_modified: record.last_modified,
        headers: record.headers.clone(),
        metadata: record.metadata.clone(),
        tag_count: record.tags.len(),
        parts_count: record.parts,
    }
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .any(|c| c == "*" || c == etag.trim_matches('"'))
}

/// Checks read conditions in the order RFC 9110 and S3 give them.
pub(crate) fn check_read(
    conditions: &ReadConditions,
    record: &ObjectRecord,
    copy: bool,
) -> Result<()> {
    let modified = record.last_modified.as_secs();
    let names = if copy {
        [
            "x-amz-copy-source-if-match",
            "x-amz-copy-source-if-unmodified-since",
        ]
    } else {
        ["If-Match", "If-Unmodified-Since"]
    };
    if let Some(m) = &conditions.if_match {
        if !etag_matches(m, &record.etag) {
            return Err(Error::PreconditionFailed {
                condition: names[0],
            });
        }
    } else if let Some(since) = conditions.if_unmodified_since
        && modified > since.as_secs()
    {
        return Err(Error::PreconditionFailed {
            condition: names[1],
        });
    }
    let not_modified = |copy_condition| {
        if copy {
            Error::PreconditionFailed {
                condition: copy_condition,
            }
        } else {
            Error::NotModified {
                etag: record.etag.clone(),
            }
        }
    };
    if let Some(m) = &conditions.if_none_match {
        if etag_matches(m, &record.etag) {
            return Err(not_modified("x-amz-copy-source-if-none-match"));
        }
    } else if let Some(since) = conditions.if_modified_since
        && modified <= since.as_secs()
    {
        return Err(not_modified("x-amz-copy-source-if-modified-since"));
    }
    Ok(())
}

/// Checks write conditions against the key's head.
fn check_write(conditions: &WriteConditions, key: &str, head: Option<&ObjectRecord>) -> Result<()> {
    let live = head.filter(|h| !h.delete_marker);
    if let Some(m) = &conditions.if_none_match {
        if m.trim() != "*" {
            return Err(Error::invalid(
                "If-None-Match",
                "only If-None-Match: * is supported on writes",
            ));
        }
        if live.is_some() {
            return Err(Error::PreconditionFailed {
                condition: "If-None-Match",
            });
        }
    }
    if let Some(m) = &conditions.if_match {
        let Some(current) = live else {
            return Err(Error::no_such_key(key));
        };
        if !etag_matches(m, &current.etag) {
            return Err(Error::PreconditionFailed {
                condition: "If-Match",
            });
        }
    }
    Ok(())
}

fn validate_headers_and_tags(
    metadata: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    validate_metadata(metadata)?;
    validate_tags(tags)
}

impl ObjectService {
    /// A service keeping every body in the engine: the test double over
    /// [`Store::memory`], or a durable store for small objects.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self::with_data(store, clock, Data::engine())
    }

    /// A durable service keeping bodies over 128 KiB in files under `dir` (written to a
    /// temporary file, fsync'd and renamed before their metadata commits) and the rest in the
    /// engine. Opening removes the files a crash left behind: this reads every object record
    /// once.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` cannot be created or read; [`Error::Storage`] from the store.
    pub fn open(store: Store, clock: SharedClock, dir: impl AsRef<Path>) -> Result<Self> {
        let data = Data::files(dir.as_ref(), true)?;
        data.sweep(&store.snapshot()?)?;
        Ok(Self::with_data(store, clock, data))
    }

    fn with_data(store: Store, clock: SharedClock, data: Data) -> Self {
        Self {
            store,
            clock,
            data: Arc::new(data),
            durability: Durability::Durable,
            min_part_size: MIN_PART_BYTES,
            region: "us-east-1".to_owned(),
            policy: OutboxPolicy::default()
                .with_backoff(Duration::from_secs(1), Duration::from_secs(300), 2)
                .with_max_attempts(u32::MAX),
            targets: Arc::default(),
        }
    }

    /// The same service accepting multipart parts of any size (S3 requires 5 MiB for every
    /// part but the last): for tests that should not upload megabytes.
    #[must_use]
    pub fn with_relaxed_part_sizes(mut self) -> Self {
        self.min_part_size = 0;
        self
    }

    /// The same service delivering events with `policy` (by default: retried with backoff from
    /// one second to five minutes, without end).
    #[must_use]
    pub fn with_delivery_policy(mut self, policy: OutboxPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Registers `sink` as the notification target called `name` and starts delivering its
    /// events, including those recorded before a restart.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn register_target(&self, name: impl Into<String>, sink: Arc<dyn Sink>) {
        let name = name.into();
        let task = events::outbox(&name).start(
            self.store.clone(),
            self.clock.clone(),
            sink,
            self.policy.clone(),
        );
        let old = self
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, task);
        if let Some(old) = old {
            tokio::spawn(old.shutdown());
        }
    }

    /// Events recorded for `target` and not yet accepted by it.
    ///
    /// # Errors
    /// [`Error::Storage`] when the read fails.
    pub fn pending_events(&self, target: &str) -> Result<usize> {
        Ok(events::outbox(target).pending(&self.store.snapshot()?)?)
    }

    /// Stops event delivery. Events not yet delivered are delivered after the next
    /// [`register_target`](Self::register_target).
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = self
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, t)| t)
            .collect();
        for task in tasks {
            task.shutdown().await;
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn snapshot(&self) -> Result<Arc<Snapshot>> {
        Ok(Arc::new(self.store.snapshot()?))
    }

    /// Runs `f` in a write transaction; the files it freed are removed once it has committed,
    /// on the writer, so a caller cancelled after the commit leaks nothing.
    pub(crate) async fn commit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<(T, Freed)> + Send + 'static,
    ) -> Result<T> {
        let data = self.data.clone();
        self.store
            .write(self.durability, move |txn| {
                let (value, freed) = f(txn)?;
                if !freed.is_empty() {
                    txn.on_commit(move || data.remove_files(&freed));
                }
                Ok(value)
            })
            .await
    }

    // ---- buckets ----

    pub(crate) async fn create_bucket_impl(&self, bucket: &str) -> Result<()> {
        validate_bucket_name(bucket)?;
        let name = bucket.to_owned();
        let now = self.now();
        self.commit(move |txn| {
            if txn.get(KS_BUCKETS, name.as_bytes())?.is_some() {
                return Err(Error::BucketAlreadyOwnedByYou { bucket: name });
            }
            let record = BucketRecord {
                created: now,
                versioning: Versioning::Unversioned,
                notifications: Vec::new(),
                lifecycle: Vec::new(),
            };
            txn.put(KS_BUCKETS, name.into_bytes(), encode(&record));
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(crate) async fn delete_bucket_impl(&self, bucket: &str) -> Result<()> {
        let name = bucket.to_owned();
        self.commit(move |txn| {
            load_bucket(txn, &name)?;
            let prefix = bucket_prefix(&name);
            for keyspace in [KS_OBJECTS, KS_HISTORY, KS_UPLOADS] {
                if txn
                    .first(keyspace, &KeyRange::prefix(&prefix), Direction::Forward)?
                    .is_some()
                {
                    return Err(Error::BucketNotEmpty { bucket: name });
                }
            }
            txn.delete(KS_BUCKETS, name.into_bytes());
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(crate) fn list_buckets_impl(&self) -> Result<Vec<BucketInfo>> {
        let snapshot = self.store.snapshot()?;
        let mut out = Vec::new();
        for entry in snapshot.range(KS_BUCKETS, &KeyRange::all(), Direction::Forward)? {
            let (name, raw) = entry?;
            let record: BucketRecord = decode(KS_BUCKETS, &raw)?;
            out.push(BucketInfo {
                name: String::from_utf8_lossy(&name).into_owned(),
                creation_date: record.created,
            });
        }
        Ok(out)
    }

    pub(crate) fn head_bucket_impl(&self, bucket: &str) -> Result<BucketInfo> {
        let record = load_bucket(&self.store.snapshot()?, bucket)?;
        Ok(BucketInfo {
            name: bucket.to_owned(),
            creation_date: record.created,
        })
    }

    pub(crate) async fn update_bucket(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut BucketRecord) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let name = bucket.to_owned();
        self.commit(move |txn| {
            let mut record = load_bucket(txn, &name)?;
            f(&mut record)?;
            txn.put(KS_BUCKETS, name.into_bytes(), encode(&record));
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(crate) async fn put_versioning_impl(&self, bucket: &str, status: Versioning) -> Result<()> {
        if status == Versioning::Unversioned {
            return Err(Error::MalformedXml {
                reason:
                    "versioning can be Enabled or Suspended; a bucket never returns to unversioned"
                        .into(),
            });
        }
        self.update_bucket(bucket, move |record| {
            record.versioning = status;
            Ok(())
        })
        .await
    }

    pub(crate) fn versioning_impl(&self, bucket: &str) -> Result<Versioning> {
        Ok(load_bucket(&self.store.snapshot()?, bucket)?.versioning)
    }

    pub(crate) async fn put_notifications_impl(
        &self,
        bucket: &str,
        rules: Vec<NotificationRule>,
    ) -> Result<()> {
        {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            events::validate(&rules, |t| targets.contains_key(t))?;
        }
        self.update_bucket(bucket, move |record| {
            record.notifications = rules;
            Ok(())
        })
        .await
    }

    pub(crate) fn notifications_impl(&self, bucket: &str) -> Result<Vec<NotificationRule>> {
        Ok(load_bucket(&self.store.snapshot()?, bucket)?.notifications)
    }

    // ---- reads ----

    /// The version `version_id` of `key` (`null` for the null version).
    pub(crate) fn find_version(
        view: &impl ReadView,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<Found>> {
        let wanted = (version_id != "null").then_some(version_id);
        if let Some(head) = load_head(view, bucket, key)?
            && head.version_id.as_deref() == wanted
        {
            return Ok(Some(Found::Head(head)));
        }
        for entry in view.prefix(KS_HISTORY, &history_prefix(bucket, key), Direction::Forward)? {
            let (_, raw) = entry?;
            let record = decode_object(KS_HISTORY, raw)?;
            if record.version_id.as_deref() == wanted {
                return Ok(Some(Found::History(record)));
            }
        }
        Ok(None)
    }

    /// The record a read of `key` (at `version_id`) sees, with S3's errors for missing keys,
    /// missing versions and delete markers.
    pub(crate) fn resolve(
        view: &impl ReadView,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectRecord> {
        load_bucket(view, bucket)?;
        match version_id {
            None => match load_head(view, bucket, key)? {
                Some(head) if head.delete_marker => Err(Error::NoSuchKey {
                    key: key.to_owned(),
                    delete_marker: true,
                }),
                Some(head) => Ok(head),
                None => Err(Error::no_such_key(key)),
            },
            Some(version) => {
                validate_version_id(version)?;
                match Self::find_version(view, bucket, key, version)? {
                    Some(found) if found.record().delete_marker => Err(Error::MethodNotAllowed),
                    Some(found) => Ok(match found {
                        Found::Head(r) | Found::History(r) => r,
                    }),
                    None => Err(Error::NoSuchVersion {
                        key: key.to_owned(),
                        version_id: version.to_owned(),
                    }),
                }
            }
        }
    }

    pub(crate) async fn get_object_impl(
        &self,
        request: GetObject,
        head_only: bool,
    ) -> Result<GetObjectOutput> {
        validate_key(&request.key)?;
        // A body file removed between the snapshot and the open means the object changed:
        // read again from a newer snapshot.
        let mut seen = None;
        loop {
            let snapshot = self.snapshot()?;
            let record = Self::resolve(
                &*snapshot,
                &request.bucket,
                &request.key,
                request.version_id.as_deref(),
            )?;
            check_read(&request.conditions, &record, false)?;
            let range = match request.range {
                Some(r) => r.resolve(record.size)?,
                None => 0..record.size,
            };
            let info = info(&request.key, &record);
            if head_only {
                return Ok(GetObjectOutput {
                    info,
                    range,
                    body: crate::body::ObjectBody::empty(),
                });
            }
            match self.data.open(
                snapshot,
                &record.segments,
                record.inline.as_ref(),
                range.clone(),
            )? {
                Opened::Body(body) => return Ok(GetObjectOutput { info, range, body }),
                Opened::Changed => vanished(&mut seen, &record).await?,
            }
        }
    }

    // ---- writes ----

    /// Moves the key's head out of the way of a new version, as the bucket's versioning says:
    /// freed (unversioned, or the null version of a suspended bucket) or kept as noncurrent.
    /// In a suspended bucket the null version in the history goes too.
    fn retire(
        txn: &mut WriteTxn<'_>,
        versioning: Versioning,
        bucket: &str,
        key: &str,
        head: Option<ObjectRecord>,
        freed: &mut Freed,
    ) -> Result<()> {
        if versioning == Versioning::Suspended {
            let mut null = None;
            for entry in txn.prefix(KS_HISTORY, &history_prefix(bucket, key), Direction::Forward)? {
                let (k, raw) = entry?;
                let record = decode_object(KS_HISTORY, raw)?;
                if record.version_id.is_none() {
                    null = Some((k, record));
                    break;
                }
            }
            if let Some((k, record)) = null {
                txn.delete(KS_HISTORY, k);
                free(txn, &record, freed);
            }
        }
        let Some(head) = head else { return Ok(()) };
        let keep = match versioning {
            Versioning::Unversioned => false,
            Versioning::Enabled => true,
            Versioning::Suspended => head.version_id.is_some(),
        };
        if keep {
            txn.put(
                KS_HISTORY,
                history_key(bucket, key, head.seq),
                encode_object(&head),
            );
        } else {
            free(txn, &head, freed);
        }
        Ok(())
    }

    /// Makes `new` the current object of `key` inside `txn`, after checking `conditions`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn install(
        &self,
        txn: &mut WriteTxn<'_>,
        bucket: &str,
        key: &str,
        new: NewObject,
        conditions: &WriteConditions,
        event_name: &str,
        now: Timestamp,
        freed: &mut Freed,
    ) -> Result<PutObjectOutput> {
        let bucket_record = load_bucket(txn, bucket)?;
        let head = load_head(txn, bucket, key)?;
        check_write(conditions, key, head.as_ref())?;
        let seq = txn.next_sequence(KS_META, SEQUENCE)?;
        let version_id = (bucket_record.versioning == Versioning::Enabled).then(new_id);
        Self::retire(txn, bucket_record.versioning, bucket, key, head, freed)?;
        let record = ObjectRecord {
            seq,
            version_id,
            delete_marker: false,
            last_modified: now,
            size: new.size,
            etag: new.etag,
            segments: new.segments,
            parts: new.parts,
            headers: new.headers,
            metadata: new.metadata,
            tags: new.tags,
            inline: new.inline,
        };
        txn.put(KS_OBJECTS, object_key(bucket, key), encode_object(&record));
        events::emit(
            txn,
            &bucket_record,
            &Event {
                name: event_name,
                bucket,
                key,
                record: &record,
                time: now,
                region: &self.region,
            },
        )?;
        Ok(PutObjectOutput {
            version_id: match bucket_record.versioning {
                Versioning::Unversioned => None,
                _ => Some(record.version_label()),
            },
            etag: record.etag,
        })
    }

    pub(crate) async fn put_object_impl(&self, request: PutObject) -> Result<PutObjectOutput> {
        let PutObject {
            bucket,
            key,
            body,
            headers,
            metadata,
            tags,
            conditions,
        } = request;
        validate_key(&key)?;
        validate_headers_and_tags(&metadata, &tags)?;
        if let Some(m) = &conditions.if_none_match
            && m.trim() != "*"
        {
            return Err(Error::invalid(
                "If-None-Match",
                "only If-None-Match: * is supported on writes",
            ));
        }
        load_bucket(&self.store.snapshot()?, &bucket)?;
        let staged = self.data.stage(body, MAX_PUT_BYTES, true).await?;
        let new = NewObject {
            size: staged.segment.size,
            etag: staged.etag(),
            segments: vec![staged.segment.clone()],
            parts: None,
            headers,
            metadata,
            tags,
            inline: staged.inline_bytes(),
        };
        let now = self.now();
        let this = self.clone();
        self.commit(move |txn| {
            let mut freed = Vec::new();
            let output = this.install(
                txn,
                &bucket,
                &key,
                new,
                &conditions,
                "ObjectCreated:Put",
                now,
                &mut freed,
            )?;
            staged.write_into(txn);
            // The body's file is kept only if this commits, whether or not we are still
            // waiting for the answer.
            txn.on_commit(move || staged.keep());
            Ok((output, freed))
        })
        .await
    }

    /// Deletes `key` (or one version of it) inside `txn`, as DeleteObject does.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn delete_in(
        &self,
        txn: &mut WriteTxn<'_>,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        lifecycle: bool,
        now: Timestamp,
        freed: &mut Freed,
    ) -> Result<DeleteObjectOutput> {
        let bucket_record = load_bucket(txn, bucket)?;
        let head = load_head(txn, bucket, key)?;
        let family = if lifecycle {
            "LifecycleExpiration"
        } else {
            "ObjectRemoved"
        };
        let emit = |txn: &mut WriteTxn<'_>, name: &str, record: &ObjectRecord| {
            events::emit(
                txn,
                &bucket_record,
                &Event {
                    name,
                    bucket,
                    key,
                    record,
                    time: now,
                    region: &self.region,
                },
            )
        };
        if let Some(version) = version_id {
            validate_version_id(version)?;
            let Some(found) = Self::find_version(txn, bucket, key, version)? else {
                return Ok(DeleteObjectOutput {
                    delete_marker: false,
                    version_id: Some(version.to_owned()),
                });
            };
            let record = found.record().clone();
            match found {
                Found::Head(_) => {
                    let next = txn.first(
                        KS_HISTORY,
                        &KeyRange::prefix(history_prefix(bucket, key)),
                        Direction::Forward,
                    )?;
                    match next {
                        Some((k, raw)) => {
                            txn.delete(KS_HISTORY, k);
                            txn.put(KS_OBJECTS, object_key(bucket, key), raw);
                        }
                        None => txn.delete(KS_OBJECTS, object_key(bucket, key)),
                    }
                }
                Found::History(_) => txn.delete(KS_HISTORY, history_key(bucket, key, record.seq)),
            }
            free(txn, &record, freed);
            // The event's sequencer orders it after every earlier event of the key.
            let mut removed = record.clone();
            removed.seq = txn.next_sequence(KS_META, SEQUENCE)?;
            emit(txn, &format!("{family}:Delete"), &removed)?;
            return Ok(DeleteObjectOutput {
                delete_marker: record.delete_marker,
                version_id: Some(version.to_owned()),
            });
        }
        match bucket_record.versioning {
            Versioning::Unversioned => {
                let Some(head) = head else {
                    return Ok(DeleteObjectOutput::default());
                };
                txn.delete(KS_OBJECTS, object_key(bucket, key));
                free(txn, &head, freed);
                let mut removed = head;
                removed.seq = txn.next_sequence(KS_META, SEQUENCE)?;
                emit(txn, &format!("{family}:Delete"), &removed)?;
                Ok(DeleteObjectOutput::default())
            }
            versioning => {
                let seq = txn.next_sequence(KS_META, SEQUENCE)?;
                Self::retire(txn, versioning, bucket, key, head, freed)?;
                let marker = ObjectRecord {
                    seq,
                    version_id: (versioning == Versioning::Enabled).then(new_id),
                    delete_marker: true,
                    last_modified: now,
                    size: 0,
                    etag: String::new(),
                    segments: Vec::new(),
                    parts: None,
                    headers: Headers::default(),
                    metadata: BTreeMap::new(),
                    tags: BTreeMap::new(),
                    inline: None,
                };
                txn.put(KS_OBJECTS, object_key(bucket, key), encode_object(&marker));
                emit(txn, &format!("{family}:DeleteMarkerCreated"), &marker)?;
                Ok(DeleteObjectOutput {
                    delete_marker: true,
                    version_id: Some(marker.version_label()),
                })
            }
        }
    }

    pub(crate) async fn delete_object_impl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteObjectOutput> {
        validate_key(key)?;
        let (bucket, key, version_id) = (
            bucket.to_owned(),
            key.to_owned(),
            version_id.map(str::to_owned),
        );
        let now = self.now();
        let this = self.clone();
        self.commit(move |txn| {
            let mut freed = Vec::new();
            let out = this.delete_in(
                txn,
                &bucket,
                &key,
                version_id.as_deref(),
                false,
                now,
                &mut freed,
            )?;
            Ok((out, freed))
        })
        .await
    }

    pub(crate) async fn delete_objects_impl(
        &self,
        bucket: &str,
        objects: Vec<ObjectIdentifier>,
    ) -> Result<DeleteObjectsOutput> {
        if objects.len() > 1000 {
            return Err(Error::MalformedXml {
                reason: format!(
                    "DeleteObjects takes at most 1000 keys, not {}",
                    objects.len()
                ),
            });
        }
        if objects.is_empty() {
            return Err(Error::MalformedXml {
                reason: "DeleteObjects needs at least one key".into(),
            });
        }
        load_bucket(&self.store.snapshot()?, bucket)?;
        let bucket = bucket.to_owned();
        let now = self.now();
        let this = self.clone();
        self.commit(move |txn| {
            let mut freed = Vec::new();
            let mut out = DeleteObjectsOutput::default();
            for object in objects {
                let result = validate_key(&object.key).and_then(|()| {
                    this.delete_in(
                        txn,
                        &bucket,
                        &object.key,
                        object.version_id.as_deref(),
                        false,
                        now,
                        &mut freed,
                    )
                });
                match result {
                    Ok(output) => out.deleted.push(DeletedObject {
                        key: object.key,
                        version_id: object.version_id,
                        output,
                    }),
                    Err(e @ (Error::Storage(_) | Error::Io(_))) => return Err(e),
                    Err(e) => out.errors.push(DeleteObjectError {
                        key: object.key,
                        version_id: object.version_id,
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    }),
                }
            }
            Ok((out, freed))
        })
        .await
    }

    pub(crate) async fn copy_object_impl(&self, request: CopyObject) -> Result<CopyObjectOutput> {
        validate_key(&request.source_key)?;
        validate_key(&request.key)?;
        if let MetadataDirective::Replace { metadata, .. } = &request.metadata_directive {
            validate_metadata(metadata)?;
        }
        if let Some(tags) = &request.tags {
            validate_tags(tags)?;
        }
        let same = request.source_bucket == request.bucket && request.source_key == request.key;
        // Copying a version onto its own key is how a previous version is restored.
        if same
            && request.source_version_id.is_none()
            && request.metadata_directive == MetadataDirective::Copy
            && request.tags.is_none()
        {
            return Err(Error::InvalidArgument {
                code: "InvalidRequest",
                field: "CopySource",
                message: "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
            });
        }
        let (out, (source_version_id, last_modified)) = self
            .copy_inner(Copy {
                source_bucket: request.source_bucket,
                source_key: request.source_key,
                source_version_id: request.source_version_id,
                source_conditions: request.source_conditions,
                size_limit: Some(MAX_PUT_BYTES),
                bucket: request.bucket,
                key: request.key,
                conditions: request.conditions,
                metadata: match request.metadata_directive {
                    MetadataDirective::Copy => None,
                    MetadataDirective::Replace { headers, metadata } => Some((headers, metadata)),
                },
                tags: request.tags,
                delete_source: false,
            })
            .await?;
        Ok(CopyObjectOutput {
            etag: out.etag,
            last_modified,
            version_id: out.version_id,
            source_version_id,
        })
    }

    /// Renames the current object `from` to `to` in one transaction (an extension: S3 has no
    /// rename). The destination is written as a copy would write it, the source deleted as
    /// DeleteObject would delete it, both or neither.
    pub(crate) async fn rename_object_impl(
        &self,
        bucket: &str,
        from: &str,
        to: &str,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput> {
        validate_key(from)?;
        validate_key(to)?;
        if from == to {
            return Err(Error::invalid("Key", "a rename needs two different keys"));
        }
        let (out, _) = self
            .copy_inner(Copy {
                source_bucket: bucket.to_owned(),
                source_key: from.to_owned(),
                source_version_id: None,
                source_conditions: ReadConditions::default(),
                size_limit: None,
                bucket: bucket.to_owned(),
                key: to.to_owned(),
                conditions,
                metadata: None,
                tags: None,
                delete_source: true,
            })
            .await?;
        Ok(out)
    }

    /// Copies a version to a key without the body passing through the caller: file bodies are
    /// hard-linked first, then one transaction checks that the source has not changed, copies
    /// engine chunks, installs the copy and, for a rename, deletes the source. Answers the
    /// copy's output with the source's version id and the copy's time.
    async fn copy_inner(
        &self,
        copy: Copy,
    ) -> Result<(PutObjectOutput, (Option<String>, Timestamp))> {
        let copy = Arc::new(copy);
        let mut seen = None;
        loop {
            let snapshot = self.store.snapshot()?;
            let source = Self::resolve(
                &snapshot,
                &copy.source_bucket,
                &copy.source_key,
                copy.source_version_id.as_deref(),
            )?;
            check_read(&copy.source_conditions, &source, true)?;
            if let Some(limit) = copy.size_limit
                && source.size > limit
            {
                return Err(Error::InvalidArgument {
                    code: "InvalidRequest",
                    field: "CopySource",
                    message: format!(
                        "The specified copy source is larger than the maximum allowable size for a copy source: {limit}"
                    ),
                });
            }
            load_bucket(&snapshot, &copy.bucket)?;
            drop(snapshot);
            let Some((linked, links)) = self.data.link(&source.segments).await? else {
                vanished(&mut seen, &source).await?;
                continue;
            };
            let (copy2, now, this) = (copy.clone(), self.now(), self.clone());
            let result = self
                .commit(move |txn| {
                    let copy = copy2;
                    // The source must not have changed since it was linked.
                    let current = Self::resolve(
                        txn,
                        &copy.source_bucket,
                        &copy.source_key,
                        copy.source_version_id.as_deref(),
                    )?;
                    if current.seq != source.seq {
                        return Ok((None, Vec::new()));
                    }
                    txn.on_commit(move || links.into_iter().for_each(Staged::keep));
                    let segments = copy_chunks(txn, &source.segments, &linked)?;
                    let (headers, metadata) = copy
                        .metadata
                        .clone()
                        .unwrap_or_else(|| (source.headers.clone(), source.metadata.clone()));
                    let new = NewObject {
                        size: source.size,
                        etag: source.etag.clone(),
                        segments,
                        parts: source.parts,
                        headers,
                        metadata,
                        tags: copy.tags.clone().unwrap_or_else(|| source.tags.clone()),
                        inline: source.inline.clone(),
                    };
                    let mut freed = Vec::new();
                    let out = this.install(
                        txn,
                        &copy.bucket,
                        &copy.key,
                        new,
                        &copy.conditions,
                        "ObjectCreated:Copy",
                        now,
                        &mut freed,
                    )?;
                    if copy.delete_source {
                        this.delete_in(
                            txn,
                            &copy.source_bucket,
                            &copy.source_key,
                            None,
                            false,
                            now,
                            &mut freed,
                        )?;
                    }
                    Ok((Some((out, (source.version_id.clone(), now))), freed))
                })
                .await?;
            if let Some(done) = result {
                return Ok(done);
            }
        }
    }

    pub(crate) async fn put_object_tags_impl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        validate_key(key)?;
        validate_tags(&tags)?;
        let (bucket, key, version_id) = (
            bucket.to_owned(),
            key.to_owned(),
            version_id.map(str::to_owned),
        );
        self.commit(move |txn| {
            let mut record = Self::resolve(txn, &bucket, &key, version_id.as_deref())?;
            let is_head = load_head(txn, &bucket, &key)?.is_some_and(|h| h.seq == record.seq);
            record.tags = tags;
            if is_head {
                txn.put(
                    KS_OBJECTS,
                    object_key(&bucket, &key),
                    encode_object(&record),
                );
            } else {
                txn.put(
                    KS_HISTORY,
                    history_key(&bucket, &key, record.seq),
                    encode_object(&record),
                );
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    pub(crate) fn object_tags_impl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<BTreeMap<String, String>> {
        validate_key(key)?;
        Ok(Self::resolve(&self.store.snapshot()?, bucket, key, version_id)?.tags)
    }
}

/// A body file of `record` was gone when a read or copy tried to open it: the record was
/// replaced meanwhile, so the caller reads again. Gone twice for the same record, the file is
/// missing for good: an error, not a loop.
async fn vanished(seen: &mut Option<u64>, record: &ObjectRecord) -> Result<()> {
    if *seen == Some(record.seq) {
        return Err(Error::corrupt(
            KS_OBJECTS,
            format!(
                "a body file of version {} is missing",
                record.version_label()
            ),
        ));
    }
    *seen = Some(record.seq);
    tokio::task::yield_now().await;
    Ok(())
}

/// Frees `record`'s body: its engine chunks now, its files after the commit.
pub(crate) fn free(txn: &mut WriteTxn<'_>, record: &ObjectRecord, freed: &mut Freed) {
    delete_chunks(txn, &record.segments);
    freed.extend(record.segments.iter().cloned());
}

/// Frees one segment: its engine chunks now, its file after the commit.
pub(crate) fn free_segment(txn: &mut WriteTxn<'_>, segment: &Segment, freed: &mut Freed) {
    delete_chunks(txn, std::slice::from_ref(segment));
    freed.push(segment.clone());
}

/// Decodes the key part of an engine key of `KS_OBJECTS` (bucket, key).
pub(crate) fn decode_object_key(raw: &[u8]) -> Result<String> {
    let mut reader = TupleReader::new(raw);
    reader.str()?;
    Ok(reader.str()?)
}
