//! The crate's error: one variant per S3 error code a caller can act on.

use std::fmt;

/// What went wrong, named as S3 names it. [`Error::code`] gives S3's error code and
/// [`Error::status`] its HTTP status; the message is S3's where S3 documents one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `NoSuchBucket`: the bucket does not exist.
    #[error("NoSuchBucket: The specified bucket does not exist ({bucket})")]
    NoSuchBucket {
        /// The bucket named in the request.
        bucket: String,
    },
    /// `NoSuchKey`: no current object has this key (or its current version is a delete
    /// marker, then `delete_marker` is true, as S3's `x-amz-delete-marker` header says).
    #[error("NoSuchKey: The specified key does not exist. ({key})")]
    NoSuchKey {
        /// The key named in the request.
        key: String,
        /// The key's current version is a delete marker.
        delete_marker: bool,
    },
    /// `NoSuchVersion`: the key has no version with this id.
    #[error("NoSuchVersion: The specified version does not exist. ({key} {version_id})")]
    NoSuchVersion {
        /// The key named in the request.
        key: String,
        /// The version named in the request.
        version_id: String,
    },
    /// `NoSuchUpload`: the multipart upload does not exist (never created, aborted or
    /// completed).
    #[error(
        "NoSuchUpload: The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed. ({upload_id})"
    )]
    NoSuchUpload {
        /// The upload named in the request.
        upload_id: String,
    },
    /// `BucketAlreadyOwnedByYou`: a bucket of this name exists already.
    #[error(
        "BucketAlreadyOwnedByYou: Your previous request to create the named bucket succeeded and you already own it. ({bucket})"
    )]
    BucketAlreadyOwnedByYou {
        /// The bucket named in the request.
        bucket: String,
    },
    /// `BucketNotEmpty`: a bucket holding objects, versions or uploads cannot be deleted.
    #[error("BucketNotEmpty: The bucket you tried to delete is not empty ({bucket})")]
    BucketNotEmpty {
        /// The bucket named in the request.
        bucket: String,
    },
    /// `PreconditionFailed` (412): an `If-Match`, `If-Unmodified-Since` or `If-None-Match: *`
    /// condition did not hold. Nothing changed.
    #[error(
        "PreconditionFailed: At least one of the pre-conditions you specified did not hold ({condition})"
    )]
    PreconditionFailed {
        /// The condition that failed: `If-Match`, `If-None-Match`, `If-Unmodified-Since`, or
        /// their `x-amz-copy-source-` forms.
        condition: &'static str,
    },
    /// 304 Not Modified: an `If-None-Match` or `If-Modified-Since` condition of a read held.
    #[error("NotModified: Not Modified")]
    NotModified {
        /// The current entity tag of the object.
        etag: String,
    },
    /// `InvalidRange` (416): the range starts past the end of the object.
    #[error("InvalidRange: The requested range is not satisfiable (object size {size})")]
    InvalidRange {
        /// The object's size in bytes.
        size: u64,
    },
    /// `EntityTooSmall`: a part other than the last is smaller than the minimum part size.
    #[error(
        "EntityTooSmall: Your proposed upload is smaller than the minimum allowed object size. (part {part_number} is {size} bytes; the minimum is {minimum})"
    )]
    EntityTooSmall {
        /// The part that is too small.
        part_number: u32,
        /// Its size.
        size: u64,
        /// The minimum size of every part but the last.
        minimum: u64,
    },
    /// `EntityTooLarge`: the body exceeds the largest size allowed for the operation.
    #[error(
        "EntityTooLarge: Your proposed upload exceeds the maximum allowed object size. (limit {limit} bytes)"
    )]
    EntityTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// `InvalidPart`: a listed part was not uploaded, or its entity tag does not match.
    #[error(
        "InvalidPart: One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag. (part {part_number})"
    )]
    InvalidPart {
        /// The first part that does not match.
        part_number: u32,
    },
    /// `InvalidPartOrder`: the parts of a complete request are not in ascending order.
    #[error(
        "InvalidPartOrder: The list of parts was not in ascending order. The parts list must be specified in order by part number."
    )]
    InvalidPartOrder,
    /// `KeyTooLongError`: a key longer than 1024 bytes.
    #[error("KeyTooLongError: Your key is too long ({length} bytes; the limit is 1024)")]
    KeyTooLong {
        /// The key's length in bytes.
        length: usize,
    },
    /// `InvalidBucketName`: the name breaks S3's bucket naming rules.
    #[error("InvalidBucketName: The specified bucket is not valid. ({bucket}: {reason})")]
    InvalidBucketName {
        /// The name given.
        bucket: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `MetadataTooLarge`: user metadata over 2 KB.
    #[error(
        "MetadataTooLarge: Your metadata headers exceed the maximum allowed metadata size. ({size} bytes; the limit is {limit})"
    )]
    MetadataTooLarge {
        /// The metadata's size: the UTF-8 bytes of every key and value.
        size: usize,
        /// The limit, 2048 bytes.
        limit: usize,
    },
    /// `InvalidTag`: too many tags, or a key or value too long.
    #[error("InvalidTag: {message}")]
    InvalidTag {
        /// What is wrong.
        message: String,
    },
    /// `MethodNotAllowed` (405): reading a delete marker by its version id.
    #[error("MethodNotAllowed: The specified method is not allowed against this resource.")]
    MethodNotAllowed,
    /// `MalformedXML`: a request S3 would reject as not matching its schema (for example
    /// DeleteObjects with more than 1000 keys).
    #[error(
        "MalformedXML: The XML you provided was not well-formed or did not validate against our published schema ({reason})"
    )]
    MalformedXml {
        /// What is wrong.
        reason: String,
    },
    /// `InvalidArgument` and other 400 errors about one field.
    #[error("{code}: {message} ({field})")]
    InvalidArgument {
        /// S3's error code: `InvalidArgument`, `InvalidRequest`, ...
        code: &'static str,
        /// The request field at fault.
        field: &'static str,
        /// What is wrong, with the limit.
        message: String,
    },
    /// `NoSuchLifecycleConfiguration`: the bucket has no lifecycle rules.
    #[error("NoSuchLifecycleConfiguration: The lifecycle configuration does not exist ({bucket})")]
    NoSuchLifecycleConfiguration {
        /// The bucket named in the request.
        bucket: String,
    },
    /// Reading or writing a body file failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage engine failed (a failed fsync poisons it).
    #[error(transparent)]
    Storage(#[from] cloudlet_core::Error),
}

impl Error {
    /// S3's error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchBucket { .. } => "NoSuchBucket",
            Self::NoSuchKey { .. } => "NoSuchKey",
            Self::NoSuchVersion { .. } => "NoSuchVersion",
            Self::NoSuchUpload { .. } => "NoSuchUpload",
            Self::BucketAlreadyOwnedByYou { .. } => "BucketAlreadyOwnedByYou",
            Self::BucketNotEmpty { .. } => "BucketNotEmpty",
            Self::PreconditionFailed { .. } => "PreconditionFailed",
            Self::NotModified { .. } => "NotModified",
            Self::InvalidRange { .. } => "InvalidRange",
            Self::EntityTooSmall { .. } => "EntityTooSmall",
            Self::EntityTooLarge { .. } => "EntityTooLarge",
            Self::InvalidPart { .. } => "InvalidPart",
            Self::InvalidPartOrder => "InvalidPartOrder",
            Self::KeyTooLong { .. } => "KeyTooLongError",
            Self::InvalidBucketName { .. } => "InvalidBucketName",
            Self::MetadataTooLarge { .. } => "MetadataTooLarge",
            Self::InvalidTag { .. } => "InvalidTag",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::MalformedXml { .. } => "MalformedXML",
            Self::InvalidArgument { code, .. } => code,
            Self::NoSuchLifecycleConfiguration { .. } => "NoSuchLifecycleConfiguration",
            Self::Io(_) | Self::Storage(_) => "InternalError",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoSuchBucket { .. }
            | Self::NoSuchKey { .. }
            | Self::NoSuchVersion { .. }
            | Self::NoSuchUpload { .. }
            | Self::NoSuchLifecycleConfiguration { .. } => 404,
            Self::BucketAlreadyOwnedByYou { .. } | Self::BucketNotEmpty { .. } => 409,
            Self::PreconditionFailed { .. } => 412,
            Self::NotModified { .. } => 304,
            Self::InvalidRange { .. } => 416,
            Self::MethodNotAllowed => 405,
            Self::Io(_) | Self::Storage(_) => 500,
            _ => 400,
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl fmt::Display) -> Self {
        Self::InvalidArgument {
            code: "InvalidArgument",
            field,
            message: message.to_string(),
        }
    }

    pub(crate) fn no_such_key(key: &str) -> Self {
        Self::NoSuchKey {
            key: key.to_owned(),
            delete_marker: false,
        }
    }

    pub(crate) fn no_such_bucket(bucket: &str) -> Self {
        Self::NoSuchBucket {
            bucket: bucket.to_owned(),
        }
    }

    pub(crate) fn corrupt(keyspace: &str, reason: impl fmt::Display) -> Self {
        Self::Storage(cloudlet_core::Error::corrupt(keyspace, reason.to_string()))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
