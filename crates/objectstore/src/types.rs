//! Requests and responses, shaped as S3's.

use std::collections::BTreeMap;
use std::ops::Range;

use cloudlet_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::body::{Body, ObjectBody};
use crate::error::{Error, Result};

/// A bucket's versioning state. A bucket starts unversioned; once versioning is enabled it can
/// only be suspended, never turned off again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Versioning {
    /// Never enabled: one version per key, the `null` one.
    #[default]
    Unversioned,
    /// Every write makes a new version; deletes insert delete markers.
    Enabled,
    /// New writes make `null` versions; existing versions stay.
    Suspended,
}

/// The standard HTTP headers S3 stores with an object and returns on reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Headers {
    /// `Content-Type`; S3 answers `binary/octet-stream` when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
}

/// A byte range of a read, as the HTTP `Range` header gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`, both inclusive; `last` past the end means the end.
    Bounded {
        /// The first byte.
        first: u64,
        /// The last byte, inclusive.
        last: u64,
    },
    /// `bytes=first-`: from `first` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses an HTTP `Range` header value: `bytes=a-b`, `bytes=a-` or `bytes=-n`. `None` for
    /// anything else (other units, several ranges, malformed numbers): as RFC 9110 says and S3
    /// does, such a header is ignored and the whole object is served.
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| s.trim().parse::<u64>().ok();
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Some(Self::Suffix(number(last)?)),
            (false, true) => Some(Self::From(number(first)?)),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(Self::Bounded { first, last })
            }
            (true, true) => None,
        }
    }

    /// The bytes of an object of `size` this range selects.
    ///
    /// # Errors
    /// [`Error::InvalidRange`] when the range starts past the end (or is an empty suffix). A
    /// bounded range whose last byte precedes its first is ignored: the whole object. A
    /// bounded range whose last byte precedes its first is ignored: the whole object.
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let unsatisfiable = Error::InvalidRange { size };
        match self {
            Self::Bounded { first, last } => {
                if last < first {
                    // Not a valid range: ignored, as RFC 9110 says and S3 does.
                    return Ok(0..size);
                }
                if first >= size {
                    return Err(unsatisfiable);
                }
                Ok(first..last.saturating_add(1).min(size))
            }
            Self::From(first) => {
                if first >= size {
                    return Err(unsatisfiable);
                }
                Ok(first..size)
            }
            Self::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable);
                }
                Ok(size.saturating_sub(n)..size)
            }
        }
    }
}

/// Conditions on the current object, checked atomically with a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteConditions {
    /// `If-Match`: write only if the current object's entity tag is this one (compare and
    /// swap). A missing object fails with `NoSuchKey`, as S3 answers.
    pub if_match: Option<String>,
    /// `If-None-Match: *`: write only if no current object has the key (create only). Only
    /// `*` is allowed.
    pub if_none_match: Option<String>,
}

impl WriteConditions {
    /// `If-None-Match: *`: create only.
    pub fn none_match_any() -> Self {
        Self {
            if_match: None,
            if_none_match: Some("*".to_owned()),
        }
    }

    /// `If-Match: etag`: compare and swap.
    pub fn matching(etag: impl Into<String>) -> Self {
        Self {
            if_match: Some(etag.into()),
            if_none_match: None,
        }
    }
}

/// Conditions on a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadConditions {
    /// `If-Match`: the entity tag must match (or `*`), else `PreconditionFailed`.
    pub if_match: Option<String>,
    /// `If-None-Match`: the entity tag must not match (`*` matches any), else `NotModified`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`: else `NotModified`. Compared to the second, as HTTP dates are.
    pub if_modified_since: Option<Timestamp>,
    /// `If-Unmodified-Since`: else `PreconditionFailed`.
    pub if_unmodified_since: Option<Timestamp>,
}

/// PutObject.
#[derive(Debug)]
#[non_exhaustive]
pub struct PutObject {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The bytes.
    pub body: Body,
    /// Standard headers.
    pub headers: Headers,
    /// User metadata (`x-amz-meta-*`), at most 2 KB.
    pub metadata: BTreeMap<String, String>,
    /// Tags, at most 10.
    pub tags: BTreeMap<String, String>,
    /// Conditional write.
    pub conditions: WriteConditions,
}

impl PutObject {
    /// Puts `body` at `key` in `bucket`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, body: impl Into<Body>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            body: body.into(),
            headers: Headers::default(),
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            conditions: WriteConditions::default(),
        }
    }

    /// With these standard headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// With `Content-Type`.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.headers.content_type = Some(content_type.into());
        self
    }

    /// With one more user metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// With one more tag.
    #[must_use]
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Only if no current object has the key (`If-None-Match: *`).
    #[must_use]
    pub fn if_none_match_any(mut self) -> Self {
        self.conditions.if_none_match = Some("*".to_owned());
        self
    }

    /// Only if the current object's entity tag is `etag` (`If-Match`).
    #[must_use]
    pub fn if_match(mut self, etag: impl Into<String>) -> Self {
        self.conditions.if_match = Some(etag.into());
        self
    }
}

/// What a write answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutObjectOutput {
    /// The entity tag, quoted.
    pub etag: String,
    /// The new version's id; `None` in an unversioned bucket, `"null"` in a suspended one.
    pub version_id: Option<String>,
}

/// GetObject and HeadObject.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GetObject {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// A specific version (`"null"` for the null version); the current one when `None`.
    pub version_id: Option<String>,
    /// Part of the object only.
    pub range: Option<ByteRange>,
    /// Conditional read.
    pub conditions: ReadConditions,
}

impl GetObject {
    /// Reads the current object at `key`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
            range: None,
            conditions: ReadConditions::default(),
        }
    }

    /// Reads this version.
    #[must_use]
    pub fn with_version(mut self, version_id: impl Into<String>) -> Self {
        self.version_id = Some(version_id.into());
        self
    }

    /// Reads these bytes only.
    #[must_use]
    pub fn with_range(mut self, range: ByteRange) -> Self {
        self.range = Some(range);
        self
    }

    /// With these conditions.
    #[must_use]
    pub fn with_conditions(mut self, conditions: ReadConditions) -> Self {
        self.conditions = conditions;
        self
    }
}

/// An object's metadata, as HeadObject returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The key.
    pub key: String,
    /// The version's id (`None` in an unversioned bucket).
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The entity tag, quoted.
    pub etag: String,
    /// When this version was written.
    pub last_modified: Timestamp,
    /// Standard headers.
    pub headers: Headers,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Number of tags (S3's `x-amz-tagging-count`).
    pub tag_count: usize,
    /// The number of parts of a multipart object.
    pub parts_count: Option<u32>,
}

/// What GetObject answers.
#[derive(Debug)]
#[non_exhaustive]
pub struct GetObjectOutput {
    /// The object's metadata.
    pub info: ObjectInfo,
    /// The bytes returned (all of them without a range).
    pub range: Range<u64>,
    /// The bytes.
    pub body: ObjectBody,
}

/// What DeleteObject answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteObjectOutput {
    /// A delete marker was created, or the version deleted was a delete marker.
    pub delete_marker: bool,
    /// The version created (a delete marker) or deleted.
    pub version_id: Option<String>,
}

/// One key (and version) of a DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectIdentifier {
    /// The key.
    pub key: String,
    /// The version, or the current object when `None`.
    pub version_id: Option<String>,
}

impl ObjectIdentifier {
    /// The current object at `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version_id: None,
        }
    }

    /// A specific version.
    pub fn version(key: impl Into<String>, version_id: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            version_id: Some(version_id.into()),
        }
    }
}

/// One deleted entry of a DeleteObjects answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletedObject {
    /// The key.
    pub key: String,
    /// The version asked for.
    pub version_id: Option<String>,
    /// What the delete did.
    pub output: DeleteObjectOutput,
}

/// One failed entry of a DeleteObjects answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteObjectError {
    /// The key.
    pub key: String,
    /// The version asked for.
    pub version_id: Option<String>,
    /// S3's error code.
    pub code: String,
    /// S3's message.
    pub message: String,
}

/// What DeleteObjects answers: results per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteObjectsOutput {
    /// The keys deleted.
    pub deleted: Vec<DeletedObject>,
    /// The keys that failed.
    pub errors: Vec<DeleteObjectError>,
}

/// Whether a copy keeps the source's metadata and tags or replaces them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataDirective {
    /// `COPY`: the source's headers and metadata.
    #[default]
    Copy,
    /// `REPLACE`: these headers and metadata.
    Replace {
        /// Standard headers.
        headers: Headers,
        /// User metadata.
        metadata: BTreeMap<String, String>,
    },
}

/// CopyObject, server side.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CopyObject {
    /// The source bucket.
    pub source_bucket: String,
    /// The source key.
    pub source_key: String,
    /// The source version, or the current object when `None`.
    pub source_version_id: Option<String>,
    /// Conditions on the source (`x-amz-copy-source-if-*`).
    pub source_conditions: ReadConditions,
    /// The destination bucket.
    pub bucket: String,
    /// The destination key.
    pub key: String,
    /// Metadata handling.
    pub metadata_directive: MetadataDirective,
    /// Tags for the copy; the source's when `None` (`x-amz-tagging-directive: COPY`).
    pub tags: Option<BTreeMap<String, String>>,
    /// Conditions on the destination.
    pub conditions: WriteConditions,
}

impl CopyObject {
    /// Copies `source_bucket/source_key` to `bucket/key`.
    pub fn new(
        source_bucket: impl Into<String>,
        source_key: impl Into<String>,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            source_bucket: source_bucket.into(),
            source_key: source_key.into(),
            source_version_id: None,
            source_conditions: ReadConditions::default(),
            bucket: bucket.into(),
            key: key.into(),
            metadata_directive: MetadataDirective::Copy,
            tags: None,
            conditions: WriteConditions::default(),
        }
    }

    /// Copies this version of the source.
    #[must_use]
    pub fn with_source_version(mut self, version_id: impl Into<String>) -> Self {
        self.source_version_id = Some(version_id.into());
        self
    }

    /// Only if no current object has the destination key.
    #[must_use]
    pub fn if_none_match_any(mut self) -> Self {
        self.conditions.if_none_match = Some("*".to_owned());
        self
    }

    /// With replaced headers and metadata.
    #[must_use]
    pub fn replacing_metadata(
        mut self,
        headers: Headers,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        self.metadata_directive = MetadataDirective::Replace { headers, metadata };
        self
    }
}

/// What CopyObject answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyObjectOutput {
    /// The copy's entity tag (the source's: the bytes are the same).
    pub etag: String,
    /// When the copy was written.
    pub last_modified: Timestamp,
    /// The copy's version id.
    pub version_id: Option<String>,
    /// The version copied.
    pub source_version_id: Option<String>,
}

/// ListObjectsV2.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListObjects {
    /// The bucket.
    pub bucket: String,
    /// Only keys that begin with this.
    pub prefix: Option<String>,
    /// Roll keys up to common prefixes at the first delimiter after the prefix.
    pub delimiter: Option<String>,
    /// At most this many keys and common prefixes together (1000 by default and at most).
    pub max_keys: Option<usize>,
    /// From a previous page's `next_continuation_token`.
    pub continuation_token: Option<String>,
    /// Only keys after this one.
    pub start_after: Option<String>,
}

impl ListObjects {
    /// Lists `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Only keys under `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Rolled up at `delimiter`.
    #[must_use]
    pub fn with_delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// At most `max_keys` entries.
    #[must_use]
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// The page after the one that gave `token`.
    #[must_use]
    pub fn with_continuation_token(mut self, token: impl Into<String>) -> Self {
        self.continuation_token = Some(token.into());
        self
    }

    /// Keys after `key`.
    #[must_use]
    pub fn with_start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectSummary {
    /// The key.
    pub key: String,
    /// When the current version was written.
    pub last_modified: Timestamp,
    /// The entity tag, quoted.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// A page of ListObjectsV2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListObjectsOutput {
    /// Objects, in UTF-8 byte order of their keys.
    pub contents: Vec<ObjectSummary>,
    /// Common prefixes, each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    /// `contents.len() + common_prefixes.len()`.
    pub key_count: usize,
    /// More entries follow.
    pub is_truncated: bool,
    /// Pass this back for the next page.
    pub next_continuation_token: Option<String>,
}

/// ListObjectVersions.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListObjectVersions {
    /// The bucket.
    pub bucket: String,
    /// Only keys that begin with this.
    pub prefix: Option<String>,
    /// Roll keys up at the delimiter.
    pub delimiter: Option<String>,
    /// At most this many versions, delete markers and common prefixes together.
    pub max_keys: Option<usize>,
    /// Continue after this key (with `version_id_marker`, after that version of it).
    pub key_marker: Option<String>,
    /// Continue after this version of `key_marker`.
    pub version_id_marker: Option<String>,
}

impl ListObjectVersions {
    /// Lists the versions in `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Only keys under `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
}

/// One version or delete marker of a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectVersion {
    /// The key.
    pub key: String,
    /// The version id (`"null"` for the null version).
    pub version_id: String,
    /// This is the key's latest version.
    pub is_latest: bool,
    /// A delete marker rather than an object.
    pub delete_marker: bool,
    /// When it was written.
    pub last_modified: Timestamp,
    /// The entity tag (empty for a delete marker).
    pub etag: String,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
}

/// A page of ListObjectVersions: versions of each key newest first, keys in byte order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListObjectVersionsOutput {
    /// Versions and delete markers.
    pub versions: Vec<ObjectVersion>,
    /// Common prefixes.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// The key to continue after.
    pub next_key_marker: Option<String>,
    /// The version to continue after.
    pub next_version_id_marker: Option<String>,
}

/// CreateMultipartUpload.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateMultipartUpload {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// Standard headers of the object to be.
    pub headers: Headers,
    /// User metadata of the object to be.
    pub metadata: BTreeMap<String, String>,
    /// Tags of the object to be.
    pub tags: BTreeMap<String, String>,
}

impl CreateMultipartUpload {
    /// An upload to `key`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            headers: Headers::default(),
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    /// With these standard headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// One part named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompletedPart {
    /// 1 to 10,000.
    pub part_number: u32,
    /// The entity tag UploadPart returned.
    pub etag: String,
}

impl CompletedPart {
    /// Part `part_number` with entity tag `etag`.
    pub fn new(part_number: u32, etag: impl Into<String>) -> Self {
        Self {
            part_number,
            etag: etag.into(),
        }
    }
}

/// One uploaded part, as ListParts returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartInfo {
    /// 1 to 10,000.
    pub part_number: u32,
    /// The part's entity tag.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub last_modified: Timestamp,
}

/// A page of ListParts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPartsOutput {
    /// Parts in ascending order of number.
    pub parts: Vec<PartInfo>,
    /// More parts follow.
    pub is_truncated: bool,
    /// Pass this as `part_number_marker` for the next page.
    pub next_part_number_marker: Option<u32>,
}

/// ListMultipartUploads: the uploads in progress, by key and then by initiation, a page at a
/// time.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListMultipartUploads {
    /// The bucket.
    pub bucket: String,
    /// Only keys that begin with this.
    pub prefix: Option<String>,
    /// Roll keys up at the delimiter (each common prefix counts against `max_uploads`).
    pub delimiter: Option<String>,
    /// At most this many uploads and common prefixes together (at most, and by default, 1000).
    pub max_uploads: Option<usize>,
    /// Continue after this key (with `upload_id_marker`, after that upload of it).
    pub key_marker: Option<String>,
    /// Continue after this upload of `key_marker`; ignored without a key marker, as S3 does.
    pub upload_id_marker: Option<String>,
}

impl ListMultipartUploads {
    /// Lists the uploads in progress in `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Only keys under `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Roll keys up at `delimiter`.
    #[must_use]
    pub fn with_delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// At most `max` entries.
    #[must_use]
    pub fn with_max_uploads(mut self, max: usize) -> Self {
        self.max_uploads = Some(max);
        self
    }

    /// Continue after `key` (and, if given, after `upload_id` of it).
    #[must_use]
    pub fn after(mut self, key: impl Into<String>, upload_id: Option<String>) -> Self {
        self.key_marker = Some(key.into());
        self.upload_id_marker = upload_id;
        self
    }
}

/// A page of ListMultipartUploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListMultipartUploadsOutput {
    /// The uploads, by key and then by initiation.
    pub uploads: Vec<UploadInfo>,
    /// Common prefixes.
    pub common_prefixes: Vec<String>,
    /// More entries follow.
    pub is_truncated: bool,
    /// Pass as `key_marker` for the next page.
    pub next_key_marker: Option<String>,
    /// Pass as `upload_id_marker` for the next page.
    pub next_upload_id_marker: Option<String>,
}

/// A multipart upload in progress, as ListMultipartUploads returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadInfo {
    /// The key.
    pub key: String,
    /// The upload's id.
    pub upload_id: String,
    /// When it was created.
    pub initiated: Timestamp,
}

/// The kinds of events a notification rule selects, as S3 spells them.
pub const EVENT_TYPES: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
];

/// One notification rule: the events of keys that match the filters go to a target registered
/// with [`ObjectService::register_target`](crate::ObjectService::register_target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NotificationRule {
    /// The rule's id, the event's `s3.configurationId`.
    pub id: String,
    /// The registered target's name (in S3, a queue, topic or function ARN).
    pub target: String,
    /// Event types from [`EVENT_TYPES`].
    pub events: Vec<String>,
    /// Only keys that begin with this.
    #[serde(default)]
    pub prefix: String,
    /// Only keys that end with this.
    #[serde(default)]
    pub suffix: String,
}

impl NotificationRule {
    /// A rule sending `events` to `target`.
    pub fn new(
        id: impl Into<String>,
        target: impl Into<String>,
        events: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            id: id.into(),
            target: target.into(),
            events: events.into_iter().map(Into::into).collect(),
            prefix: String::new(),
            suffix: String::new(),
        }
    }

    /// Only keys beginning with `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Only keys ending with `suffix`.
    #[must_use]
    pub fn with_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }
}

/// One lifecycle rule. Ages count in days; as in S3, an action falls due at the first
/// midnight UTC after the age is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LifecycleRule {
    /// The rule's id.
    pub id: String,
    /// Only keys that begin with this.
    #[serde(default)]
    pub prefix: String,
    /// A disabled rule does nothing.
    pub enabled: bool,
    /// Expire current objects this many days after they were written.
    #[serde(default)]
    pub expiration_days: Option<u32>,
    /// Delete noncurrent versions this many days after they became noncurrent.
    #[serde(default)]
    pub noncurrent_expiration_days: Option<u32>,
    /// Abort multipart uploads this many days after they were created.
    #[serde(default)]
    pub abort_incomplete_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// An enabled rule with no action yet.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            prefix: String::new(),
            enabled: true,
            expiration_days: None,
            noncurrent_expiration_days: None,
            abort_incomplete_upload_days: None,
        }
    }

    /// Only keys under `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Expire current objects after `days`.
    #[must_use]
    pub fn expire_after_days(mut self, days: u32) -> Self {
        self.expiration_days = Some(days);
        self
    }

    /// Delete noncurrent versions after `days`.
    #[must_use]
    pub fn expire_noncurrent_after_days(mut self, days: u32) -> Self {
        self.noncurrent_expiration_days = Some(days);
        self
    }

    /// Abort incomplete multipart uploads after `days`.
    #[must_use]
    pub fn abort_incomplete_uploads_after_days(mut self, days: u32) -> Self {
        self.abort_incomplete_upload_days = Some(days);
        self
    }
}

/// A bucket, as ListBuckets returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketInfo {
    /// The name.
    pub name: String,
    /// When it was created.
    pub creation_date: Timestamp,
}
