//! What the crate stores in the engine: keyspaces, keys and records.

use std::collections::BTreeMap;

use bytes::Bytes;
use cloudlet_core::keys::Tuple;
use cloudlet_core::{ReadView, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{Headers, LifecycleRule, NotificationRule, Versioning};

/// Bucket name → [`BucketRecord`].
pub(crate) const KS_BUCKETS: &str = "s3.buckets";
/// (bucket, key) → the key's latest [`ObjectRecord`]: its current object or a delete marker.
pub(crate) const KS_OBJECTS: &str = "s3.objects";
/// (bucket, key, !sequence) → the key's noncurrent versions, newest first.
pub(crate) const KS_HISTORY: &str = "s3.history";
/// (body id, chunk index) → up to [`CHUNK`] bytes of a body kept in the engine.
pub(crate) const KS_DATA: &str = "s3.data";
/// (bucket, key, upload id) → [`UploadRecord`] of a multipart upload in progress.
pub(crate) const KS_UPLOADS: &str = "s3.uploads";
/// (upload id, part number) → [`PartRecord`].
pub(crate) const KS_PARTS: &str = "s3.parts";
/// Counters.
pub(crate) const KS_META: &str = "s3.meta";
/// The sequence that orders every change (versions, sequencers, uploads).
pub(crate) const SEQUENCE: &[u8] = b"sequence";

/// Bodies kept in the engine are split into chunks of this size.
pub(crate) const CHUNK: usize = 1 << 20;

/// A bucket's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BucketRecord {
    pub(crate) created: Timestamp,
    #[serde(default)]
    pub(crate) versioning: Versioning,
    #[serde(default)]
    pub(crate) notifications: Vec<NotificationRule>,
    #[serde(default)]
    pub(crate) lifecycle: Vec<LifecycleRule>,
}

/// Where a body's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Storage {
    /// In the engine, under [`KS_DATA`].
    Engine,
    /// In a file of the body directory, named by the id.
    File,
    /// In the object's own record, after its JSON: small bodies cost no key of their own.
    Inline,
}

/// One stored body: a whole single-part object, or one part of a multipart object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    /// 32 hex digits, unique forever.
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) storage: Storage,
}

/// One version of a key: an object or a delete marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    /// Orders the versions of a key and the events about it.
    pub(crate) seq: u64,
    /// `None` is the `null` version of unversioned and suspended buckets.
    pub(crate) version_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) delete_marker: bool,
    pub(crate) last_modified: Timestamp,
    #[serde(default)]
    pub(crate) size: u64,
    /// Quoted, as S3 returns it.
    #[serde(default)]
    pub(crate) etag: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) segments: Vec<Segment>,
    /// The number of parts of a multipart object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parts: Option<u32>,
    #[serde(default)]
    pub(crate) headers: Headers,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
    /// The body of a [`Storage::Inline`] object, stored after the JSON.
    #[serde(skip)]
    pub(crate) inline: Option<Bytes>,
}

impl ObjectRecord {
    pub(crate) fn version_label(&self) -> String {
        self.version_id.clone().unwrap_or_else(|| "null".to_owned())
    }

    pub(crate) fn sequencer(&self) -> String {
        format!("{:016X}", self.seq)
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub(crate) initiated: Timestamp,
    #[serde(default)]
    pub(crate) headers: Headers,
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
}

/// An uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    pub(crate) etag: String,
    pub(crate) last_modified: Timestamp,
    pub(crate) segment: Segment,
}

pub(crate) fn object_key(bucket: &str, key: &str) -> Bytes {
    Tuple::new().str(bucket).str(key).build()
}

pub(crate) fn bucket_prefix(bucket: &str) -> Bytes {
    Tuple::new().str(bucket).build()
}

/// The start of every key of `bucket` that begins with `prefix`.
pub(crate) fn key_prefix(bucket: &str, prefix: &str) -> Bytes {
    Tuple::new().str(bucket).str_prefix(prefix).build()
}

pub(crate) fn history_key(bucket: &str, key: &str, seq: u64) -> Bytes {
    Tuple::new().str(bucket).str(key).u64(!seq).build()
}

pub(crate) fn history_prefix(bucket: &str, key: &str) -> Bytes {
    Tuple::new().str(bucket).str(key).build()
}

pub(crate) fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Bytes {
    Tuple::new().str(bucket).str(key).str(upload_id).build()
}

pub(crate) fn part_key(upload_id: &str, part: u32) -> Bytes {
    Tuple::new().str(upload_id).u64(u64::from(part)).build()
}

pub(crate) fn part_prefix(upload_id: &str) -> Bytes {
    Tuple::new().str(upload_id).build()
}

pub(crate) fn data_key(id: &str, chunk: u64) -> Bytes {
    Tuple::new().str(id).u64(chunk).build()
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(keyspace: &str, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| Error::corrupt(keyspace, e))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serializing these plain records to JSON cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

pub(crate) fn load_bucket(view: &impl ReadView, bucket: &str) -> Result<BucketRecord> {
    let raw = view
        .get(KS_BUCKETS, bucket.as_bytes())?
        .ok_or_else(|| Error::no_such_bucket(bucket))?;
    decode(KS_BUCKETS, &raw)
}

/// An object record as stored: its JSON, then, for an inline body, a 0 byte (which compact
/// JSON never contains) and the body.
pub(crate) fn encode_object(record: &ObjectRecord) -> Bytes {
    let json = serde_json::to_vec(record).unwrap_or_default();
    match &record.inline {
        None => Bytes::from(json),
        Some(body) => {
            let mut out = Vec::with_capacity(json.len() + 1 + body.len());
            out.extend_from_slice(&json);
            out.push(0);
            out.extend_from_slice(body);
            Bytes::from(out)
        }
    }
}

pub(crate) fn decode_object(keyspace: &str, raw: Bytes) -> Result<ObjectRecord> {
    match raw.iter().position(|b| *b == 0) {
        None => decode(keyspace, &raw),
        Some(at) => {
            let mut record: ObjectRecord = decode(keyspace, &raw[..at])?;
            record.inline = Some(raw.slice(at + 1..));
            Ok(record)
        }
    }
}

pub(crate) fn load_head(
    view: &impl ReadView,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>> {
    view.get(KS_OBJECTS, &object_key(bucket, key))?
        .map(|raw| decode_object(KS_OBJECTS, raw))
        .transpose()
}
