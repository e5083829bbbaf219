//! cloudlet-objectstore: S3 semantics as a library, over cloudlet's storage and clock.
//!
//! [`ObjectService`] implements [`Buckets`]: buckets with S3's naming rules; objects under
//! arbitrary UTF-8 keys (`a`, `a/b`, `a//b` and `dir/` are four different keys); ranged and
//! conditional reads; conditional writes (create-only, compare-and-swap); copies; an atomic
//! rename (an extension: S3 has none); versioning with delete markers; multipart uploads whose
//! ETag is S3's; ListObjectsV2 with delimiters and continuation tokens; lifecycle rules on the
//! clock; and event notifications, written in the same transaction as the change they report
//! and delivered at least once to any core [`Sink`](cloudlet_core::Sink).
//!
//! [`BucketStore`] adapts one bucket to [`object_store::ObjectStore`], so DataFusion and every
//! other `object_store` user can read and write it.
//!
//! Deliberate differences from S3, all at the edges: two conditional writes racing on one key
//! are serialised by the store, so the loser gets `PreconditionFailed` rather than S3's 409
//! `ConditionalRequestConflict`; the rename is an extension; checksums other than MD5, ACLs, storage classes and
//! presigned URLs are not modelled.
//!
//! Metadata lives in the engine. Bodies up to 16 KiB live inside their object's record; larger
//! ones in the engine too ([`ObjectService::new`], the test double), or, when larger than
//! 128 KiB, in files ([`ObjectService::open`]): written to a
//! temporary file, fsync'd, renamed, and only then named by a committed record. Large bodies
//! stream in and out in chunks of at most 1 MiB.
//!
//! ```
//! use std::sync::Arc;
//! use cloudlet_core::{ChannelSink, ManualClock, Store};
//! use cloudlet_objectstore::{Buckets, GetObject, NotificationRule, ObjectService, PutObject};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cloudlet_objectstore::Error> {
//! let s3 = ObjectService::new(Store::memory(), ManualClock::default().shared());
//! let (sink, mut events) = ChannelSink::new();
//! s3.register_target("uploads-queue", Arc::new(sink));
//! s3.create_bucket("photos").await?;
//! s3.put_bucket_notifications(
//!     "photos",
//!     vec![NotificationRule::new("new-jpegs", "uploads-queue", ["s3:ObjectCreated:*"]).with_suffix(".jpg")],
//! )
//! .await?;
//!
//! let put = s3.put_object(PutObject::new("photos", "2025/cat one.jpg", "meow")).await?;
//! assert_eq!(put.etag, "\"4a4be40c96ac6314e91d93f38043a634\"");
//! let got = s3.get_object(GetObject::new("photos", "2025/cat one.jpg")).await?;
//! assert_eq!(got.body.bytes().await?, "meow");
//!
//! let event: serde_json::Value = serde_json::from_slice(&events.recv().await.unwrap().body).unwrap();
//! assert_eq!(event["Records"][0]["eventName"], "ObjectCreated:Put");
//! assert_eq!(event["Records"][0]["s3"]["object"]["key"], "2025/cat+one.jpg");
//! s3.shutdown().await;
//! # Ok(()) }
//! ```

mod adapter;
mod body;
mod data;
mod error;
mod events;
mod lifecycle;
mod list;
mod multipart;
mod names;
mod record;
mod service;
mod types;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use adapter::BucketStore;
pub use body::{Body, ObjectBody};
pub use error::{Error, Result};
pub use events::url_encode;
pub use lifecycle::LifecycleReport;
pub use list::MAX_KEYS;
pub use multipart::MAX_PART_NUMBER;
pub use names::{MAX_KEY_BYTES, MAX_METADATA_BYTES, MAX_TAGS, validate_bucket_name};
pub use service::{MAX_PUT_BYTES, MIN_PART_BYTES, ObjectService};
pub use types::{
    BucketInfo, ByteRange, CompletedPart, CopyObject, CopyObjectOutput, CreateMultipartUpload,
    DeleteObjectError, DeleteObjectOutput, DeleteObjectsOutput, DeletedObject, EVENT_TYPES,
    GetObject, GetObjectOutput, Headers, LifecycleRule, ListMultipartUploads,
    ListMultipartUploadsOutput, ListObjectVersions, ListObjectVersionsOutput, ListObjects,
    ListObjectsOutput, ListPartsOutput, MetadataDirective, NotificationRule, ObjectIdentifier,
    ObjectInfo, ObjectSummary, ObjectVersion, PartInfo, PutObject, PutObjectOutput, ReadConditions,
    UploadInfo, Versioning, WriteConditions,
};

/// S3's operations. Every method validates its input first and answers S3's error for bad
/// input; a rejected request changes nothing.
///
/// Cancel safety: a write either commits or not; cancelling one may leave, at worst, a body
/// file that the next [`ObjectService::open`] removes.
#[async_trait]
pub trait Buckets: Send + Sync + std::fmt::Debug + 'static {
    /// CreateBucket. `BucketAlreadyOwnedByYou` when it exists, `InvalidBucketName` for a bad
    /// name.
    async fn create_bucket(&self, bucket: &str) -> Result<()>;
    /// DeleteBucket: only an empty bucket (no object, version or upload).
    async fn delete_bucket(&self, bucket: &str) -> Result<()>;
    /// HeadBucket.
    async fn head_bucket(&self, bucket: &str) -> Result<BucketInfo>;
    /// ListBuckets, by name.
    async fn list_buckets(&self) -> Result<Vec<BucketInfo>>;
    /// PutBucketVersioning: `Enabled` or `Suspended`.
    async fn put_bucket_versioning(&self, bucket: &str, status: Versioning) -> Result<()>;
    /// GetBucketVersioning.
    async fn bucket_versioning(&self, bucket: &str) -> Result<Versioning>;
    /// PutBucketNotificationConfiguration: replaces the bucket's rules (empty removes them).
    async fn put_bucket_notifications(
        &self,
        bucket: &str,
        rules: Vec<NotificationRule>,
    ) -> Result<()>;
    /// GetBucketNotificationConfiguration.
    async fn bucket_notifications(&self, bucket: &str) -> Result<Vec<NotificationRule>>;
    /// PutBucketLifecycleConfiguration: replaces the bucket's rules (empty removes them).
    async fn put_bucket_lifecycle(&self, bucket: &str, rules: Vec<LifecycleRule>) -> Result<()>;
    /// GetBucketLifecycleConfiguration; `NoSuchLifecycleConfiguration` when there is none.
    async fn bucket_lifecycle(&self, bucket: &str) -> Result<Vec<LifecycleRule>>;

    /// PutObject.
    async fn put_object(&self, request: PutObject) -> Result<PutObjectOutput>;
    /// GetObject: the body streams.
    async fn get_object(&self, request: GetObject) -> Result<GetObjectOutput>;
    /// HeadObject.
    async fn head_object(&self, request: GetObject) -> Result<ObjectInfo>;
    /// DeleteObject: a missing key succeeds; in a versioned bucket, a delete marker.
    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteObjectOutput>;
    /// DeleteObjects: up to 1000 keys in one transaction, results per key.
    async fn delete_objects(
        &self,
        bucket: &str,
        objects: Vec<ObjectIdentifier>,
    ) -> Result<DeleteObjectsOutput>;
    /// CopyObject, without reading the body through the caller.
    async fn copy_object(&self, request: CopyObject) -> Result<CopyObjectOutput>;
    /// Renames the current object `from` to `to` atomically: an extension, S3 has no rename.
    /// `conditions` apply to the destination.
    async fn rename_object(
        &self,
        bucket: &str,
        from: &str,
        to: &str,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput>;
    /// PutObjectTagging.
    async fn put_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<()>;
    /// GetObjectTagging.
    async fn object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<BTreeMap<String, String>>;
    /// ListObjectsV2.
    async fn list_objects(&self, request: ListObjects) -> Result<ListObjectsOutput>;
    /// ListObjectVersions.
    async fn list_object_versions(
        &self,
        request: ListObjectVersions,
    ) -> Result<ListObjectVersionsOutput>;

    /// CreateMultipartUpload: the upload's id.
    async fn create_multipart_upload(&self, request: CreateMultipartUpload) -> Result<String>;
    /// UploadPart: the part's ETag. Uploading a part number again replaces the part.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<String>;
    /// ListParts.
    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        max_parts: Option<usize>,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsOutput>;
    /// ListMultipartUploads: uploads in progress by key then initiation, with prefix,
    /// delimiter, max-uploads and key and upload-id markers.
    async fn list_multipart_uploads(
        &self,
        request: ListMultipartUploads,
    ) -> Result<ListMultipartUploadsOutput>;
    /// CompleteMultipartUpload: parts in ascending order, ETags matching, every part but the
    /// last at least 5 MiB (unless relaxed).
    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput>;
    /// AbortMultipartUpload.
    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()>;
}

#[async_trait]
impl Buckets for ObjectService {
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.create_bucket_impl(bucket).await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        self.delete_bucket_impl(bucket).await
    }

    async fn head_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        self.head_bucket_impl(bucket)
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        self.list_buckets_impl()
    }

    async fn put_bucket_versioning(&self, bucket: &str, status: Versioning) -> Result<()> {
        self.put_versioning_impl(bucket, status).await
    }

    async fn bucket_versioning(&self, bucket: &str) -> Result<Versioning> {
        self.versioning_impl(bucket)
    }

    async fn put_bucket_notifications(
        &self,
        bucket: &str,
        rules: Vec<NotificationRule>,
    ) -> Result<()> {
        self.put_notifications_impl(bucket, rules).await
    }

    async fn bucket_notifications(&self, bucket: &str) -> Result<Vec<NotificationRule>> {
        self.notifications_impl(bucket)
    }

    async fn put_bucket_lifecycle(&self, bucket: &str, rules: Vec<LifecycleRule>) -> Result<()> {
        self.put_lifecycle_impl(bucket, rules).await
    }

    async fn bucket_lifecycle(&self, bucket: &str) -> Result<Vec<LifecycleRule>> {
        self.lifecycle_impl(bucket)
    }

    async fn put_object(&self, request: PutObject) -> Result<PutObjectOutput> {
        self.put_object_impl(request).await
    }

    async fn get_object(&self, request: GetObject) -> Result<GetObjectOutput> {
        self.get_object_impl(request, false).await
    }

    async fn head_object(&self, request: GetObject) -> Result<ObjectInfo> {
        Ok(self.get_object_impl(request, true).await?.info)
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteObjectOutput> {
        self.delete_object_impl(bucket, key, version_id).await
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        objects: Vec<ObjectIdentifier>,
    ) -> Result<DeleteObjectsOutput> {
        self.delete_objects_impl(bucket, objects).await
    }

    async fn copy_object(&self, request: CopyObject) -> Result<CopyObjectOutput> {
        self.copy_object_impl(request).await
    }

    async fn rename_object(
        &self,
        bucket: &str,
        from: &str,
        to: &str,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput> {
        self.rename_object_impl(bucket, from, to, conditions).await
    }

    async fn put_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        self.put_object_tags_impl(bucket, key, version_id, tags)
            .await
    }

    async fn object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<BTreeMap<String, String>> {
        self.object_tags_impl(bucket, key, version_id)
    }

    async fn list_objects(&self, request: ListObjects) -> Result<ListObjectsOutput> {
        self.list_objects_impl(&request)
    }

    async fn list_object_versions(
        &self,
        request: ListObjectVersions,
    ) -> Result<ListObjectVersionsOutput> {
        self.list_versions_impl(&request)
    }

    async fn create_multipart_upload(&self, request: CreateMultipartUpload) -> Result<String> {
        self.create_upload_impl(request).await
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<String> {
        self.upload_part_impl(bucket, key, upload_id, part_number, body)
            .await
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        max_parts: Option<usize>,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsOutput> {
        self.list_parts_impl(bucket, key, upload_id, max_parts, part_number_marker)
    }

    async fn list_multipart_uploads(
        &self,
        request: ListMultipartUploads,
    ) -> Result<ListMultipartUploadsOutput> {
        self.list_uploads_impl(&request)
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput> {
        self.complete_upload_impl(bucket, key, upload_id, parts, conditions)
            .await
    }

    async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.abort_upload_impl(bucket, key, upload_id).await
    }
}
