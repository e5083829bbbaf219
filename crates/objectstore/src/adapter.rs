//! [`BucketStore`]: one bucket as an [`object_store::ObjectStore`].
//!
//! `object_store` paths are a subset of S3 keys (no empty segments, no leading or trailing
//! `/`); a key that is not a valid path is skipped by listings, with a warning, as
//! `object_store`'s own S3 client does.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloudlet_core::Timestamp;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, CopyMode, CopyOptions, GetOptions, GetRange, GetResult,
    GetResultPayload, ListResult, MultipartId, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, RenameTargetMode,
    UploadPart,
};

use crate::Buckets;
use crate::body::Body;
use crate::error::Error;
use crate::service::ObjectService;
use crate::types::{
    ByteRange, CompletedPart, CopyObject, CreateMultipartUpload, GetObject, Headers, ListObjects,
    ObjectInfo, PutObject, ReadConditions, WriteConditions,
};

const STORE: &str = "cloudlet";

/// One bucket of an [`ObjectService`] as an [`object_store::ObjectStore`] (with
/// [`MultipartStore`] and [`PaginatedListStore`]): `PutMode::Create` and `Update` are S3's
/// conditional writes, attributes are S3's headers and user metadata, renames are atomic.
#[derive(Debug, Clone)]
pub struct BucketStore {
    service: ObjectService,
    bucket: String,
}

impl BucketStore {
    /// `bucket` of `service`; the bucket must exist for operations to succeed.
    pub fn new(service: ObjectService, bucket: impl Into<String>) -> Self {
        Self {
            service,
            bucket: bucket.into(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl ObjectService {
    /// `bucket` as an [`object_store::ObjectStore`].
    pub fn bucket_store(&self, bucket: impl Into<String>) -> BucketStore {
        BucketStore::new(self.clone(), bucket)
    }
}

impl fmt::Display for BucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cloudlet(s3://{})", self.bucket)
    }
}

fn to_os_error(error: Error, path: &str) -> object_store::Error {
    let path = path.to_owned();
    match error {
        Error::NoSuchKey { .. }
        | Error::NoSuchVersion { .. }
        | Error::NoSuchUpload { .. }
        | Error::MethodNotAllowed => object_store::Error::NotFound {
            path,
            source: Box::new(error),
        },
        Error::PreconditionFailed { .. } => object_store::Error::Precondition {
            path,
            source: Box::new(error),
        },
        Error::NotModified { .. } => object_store::Error::NotModified {
            path,
            source: Box::new(error),
        },
        other => object_store::Error::Generic {
            store: STORE,
            source: Box::new(other),
        },
    }
}

fn already_exists(path: &Path) -> object_store::Error {
    object_store::Error::AlreadyExists {
        path: path.to_string(),
        source: "an object exists at this key".into(),
    }
}

fn chrono_time(at: Timestamp) -> DateTime<Utc> {
    let nanos = at.as_nanos();
    DateTime::from_timestamp(
        (nanos / 1_000_000_000) as i64,
        (nanos % 1_000_000_000) as u32,
    )
    .unwrap_or_default()
}

fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_nanos(
        at.timestamp_nanos_opt()
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
    )
}

fn meta(location: Path, info: &ObjectInfo) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: chrono_time(info.last_modified),
        size: info.size,
        e_tag: Some(info.etag.clone()),
        version: info.version_id.clone(),
    }
}

fn split_attributes(attributes: &Attributes) -> (Headers, BTreeMap<String, String>) {
    let mut headers = Headers::default();
    let mut metadata = BTreeMap::new();
    for (attribute, value) in attributes {
        let value = value.as_ref().to_owned();
        match attribute {
            Attribute::ContentDisposition => headers.content_disposition = Some(value),
            Attribute::ContentEncoding => headers.content_encoding = Some(value),
            Attribute::ContentLanguage => headers.content_language = Some(value),
            Attribute::ContentType => headers.content_type = Some(value),
            Attribute::CacheControl => headers.cache_control = Some(value),
            Attribute::Metadata(key) => {
                metadata.insert(key.to_string(), value);
            }
            // Storage classes do not apply; anything newer is ignored as S3 would.
            _ => {}
        }
    }
    (headers, metadata)
}

fn join_attributes(info: &ObjectInfo) -> Attributes {
    let mut out = Attributes::new();
    let headers = &info.headers;
    for (attribute, value) in [
        (Attribute::ContentDisposition, &headers.content_disposition),
        (Attribute::ContentEncoding, &headers.content_encoding),
        (Attribute::ContentLanguage, &headers.content_language),
        (Attribute::ContentType, &headers.content_type),
        (Attribute::CacheControl, &headers.cache_control),
    ] {
        if let Some(value) = value {
            out.insert(attribute, AttributeValue::from(value.clone()));
        }
    }
    for (key, value) in &info.metadata {
        out.insert(
            Attribute::Metadata(key.clone().into()),
            AttributeValue::from(value.clone()),
        );
    }
    out
}

/// Decodes a URL-encoded tag set (`a=1&b=2`).
fn parse_tags(encoded: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(hi), Some(lo)) => {
                            out.push((hi * 16 + lo) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    encoded
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The raw prefix of everything under `prefix` (whole path segments).
fn dir_prefix(prefix: Option<&Path>) -> Option<String> {
    prefix
        .map(|p| p.as_ref())
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/"))
}

/// The object_store path of `key`, if it has one: a key `Path::parse` would change (a leading
/// or trailing `/`, as in `dir/`) has none, since its path would name another key.
fn parse_path(key: &str) -> Option<Path> {
    match Path::parse(key) {
        Ok(path) if path.as_ref() == key => Some(path),
        Ok(_) => {
            tracing::warn!(
                key,
                "skipping a key that is not a canonical object_store path"
            );
            None
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "skipping a key that is not an object_store path");
            None
        }
    }
}

impl BucketStore {
    fn list_pages(
        &self,
        prefix: Option<String>,
        start_after: Option<String>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        struct State {
            store: BucketStore,
            prefix: Option<String>,
            start_after: Option<String>,
            token: Option<String>,
            done: bool,
            buffer: VecDeque<ObjectMeta>,
        }
        let state = State {
            store: self.clone(),
            prefix,
            start_after,
            token: None,
            done: false,
            buffer: VecDeque::new(),
        };
        futures::stream::try_unfold(state, |mut state| async move {
            loop {
                if let Some(meta) = state.buffer.pop_front() {
                    return Ok(Some((meta, state)));
                }
                if state.done {
                    return Ok(None);
                }
                let mut request = ListObjects::new(&state.store.bucket);
                request.prefix = state.prefix.clone();
                request.start_after = state.start_after.clone();
                request.continuation_token = state.token.take();
                let page = state
                    .store
                    .service
                    .list_objects(request)
                    .await
                    .map_err(|e| to_os_error(e, state.prefix.as_deref().unwrap_or("")))?;
                state.done = !page.is_truncated;
                state.token = page.next_continuation_token;
                for object in page.contents {
                    if let Some(location) = parse_path(&object.key) {
                        state.buffer.push_back(ObjectMeta {
                            location,
                            last_modified: chrono_time(object.last_modified),
                            size: object.size,
                            e_tag: Some(object.etag),
                            version: None,
                        });
                    }
                }
            }
        })
        .boxed()
    }

    async fn list_page(
        &self,
        prefix: Option<String>,
        delimiter: Option<String>,
        start_after: Option<String>,
        max_keys: Option<usize>,
        token: Option<String>,
    ) -> object_store::Result<(ListResult, Option<String>)> {
        let mut request = ListObjects::new(&self.bucket);
        request.prefix = prefix.clone();
        request.delimiter = delimiter.clone();
        request.start_after = start_after;
        request.max_keys = max_keys;
        request.continuation_token = token;
        let page = self
            .service
            .list_objects(request)
            .await
            .map_err(|e| to_os_error(e, prefix.as_deref().unwrap_or("")))?;
        let delimiter = delimiter.unwrap_or_default();
        let result = ListResult {
            common_prefixes: page
                .common_prefixes
                .iter()
                .filter_map(|cp| parse_path(cp.strip_suffix(delimiter.as_str()).unwrap_or(cp)))
                .collect(),
            objects: page
                .contents
                .into_iter()
                .filter_map(|o| {
                    Some(ObjectMeta {
                        location: parse_path(&o.key)?,
                        last_modified: chrono_time(o.last_modified),
                        size: o.size,
                        e_tag: Some(o.etag),
                        version: None,
                    })
                })
                .collect(),
        };
        Ok((result, page.next_continuation_token))
    }
}

#[async_trait]
impl ObjectStore for BucketStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let key = location.as_ref();
        let (headers, metadata) = split_attributes(&opts.attributes);
        let mut request = PutObject::new(
            &self.bucket,
            key,
            Body::from_chunks(payload.iter().cloned()),
        )
        .with_headers(headers);
        request.metadata = metadata;
        request.tags = parse_tags(opts.tags.encoded());
        let create = matches!(opts.mode, PutMode::Create);
        match opts.mode {
            PutMode::Overwrite => {}
            PutMode::Create => request = request.if_none_match_any(),
            PutMode::Update(version) => {
                let Some(etag) = version.e_tag else {
                    return Err(object_store::Error::Generic {
                        store: STORE,
                        source: "PutMode::Update needs an entity tag".into(),
                    });
                };
                request = request.if_match(etag);
            }
        }
        match self.service.put_object(request).await {
            Ok(out) => Ok(PutResult {
                e_tag: Some(out.etag),
                version: out.version_id,
            }),
            Err(Error::PreconditionFailed { .. }) if create => {
                Err(object_store::Error::AlreadyExists {
                    path: key.to_owned(),
                    source: "an object exists at this key".into(),
                })
            }
            Err(e @ Error::NoSuchKey { .. }) => Err(object_store::Error::Precondition {
                path: key.to_owned(),
                source: Box::new(e),
            }),
            Err(e) => Err(to_os_error(e, key)),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let key = location.as_ref().to_owned();
        let (headers, metadata) = split_attributes(&opts.attributes);
        let mut request = CreateMultipartUpload::new(&self.bucket, &key).with_headers(headers);
        request.metadata = metadata;
        request.tags = parse_tags(opts.tags.encoded());
        let upload_id = self
            .service
            .create_multipart_upload(request)
            .await
            .map_err(|e| to_os_error(e, &key))?;
        Ok(Box::new(Upload {
            store: self.clone(),
            key,
            upload_id,
            next_part: 0,
            etags: Arc::default(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let key = location.as_ref();
        let mut request = GetObject::new(&self.bucket, key);
        request.version_id = options.version.clone();
        request.conditions = ReadConditions {
            if_match: options.if_match.clone(),
            if_none_match: options.if_none_match.clone(),
            if_modified_since: options.if_modified_since.map(timestamp),
            if_unmodified_since: options.if_unmodified_since.map(timestamp),
        };
        request.range = match &options.range {
            None => None,
            Some(GetRange::Bounded(r)) => {
                if r.end <= r.start {
                    return Err(object_store::Error::Generic {
                        store: STORE,
                        source: format!("Range started at {} and ended at {}", r.start, r.end)
                            .into(),
                    });
                }
                Some(ByteRange::Bounded {
                    first: r.start,
                    last: r.end - 1,
                })
            }
            Some(GetRange::Offset(o)) => Some(ByteRange::From(*o)),
            Some(GetRange::Suffix(n)) => Some(ByteRange::Suffix(*n)),
        };
        let output = if options.head {
            let info = self
                .service
                .head_object(request)
                .await
                .map_err(|e| to_os_error(e, key))?;
            let size = info.size;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta: meta(location.clone(), &info),
                range: 0..size,
                attributes: join_attributes(&info),
            });
        } else {
            self.service
                .get_object(request)
                .await
                .map_err(|e| to_os_error(e, key))?
        };
        let path = key.to_owned();
        let stream = output
            .body
            .into_stream()
            .map_err(move |e| to_os_error(e, &path))
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta: meta(location.clone(), &output.info),
            range: output.range,
            attributes: join_attributes(&output.info),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .and_then(move |path| {
                let this = this.clone();
                async move {
                    this.service
                        .delete_object(&this.bucket, path.as_ref(), None)
                        .await
                        .map_err(|e| to_os_error(e, path.as_ref()))?;
                    Ok(path)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_pages(dir_prefix(prefix), None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_pages(dir_prefix(prefix), Some(offset.as_ref().to_owned()))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = dir_prefix(prefix);
        let mut out = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        let mut token = None;
        loop {
            let (page, next) = self
                .list_page(prefix.clone(), Some("/".to_owned()), None, None, token)
                .await?;
            out.common_prefixes.extend(page.common_prefixes);
            out.objects.extend(page.objects);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let mut request = CopyObject::new(&self.bucket, from.as_ref(), &self.bucket, to.as_ref());
        let create = matches!(options.mode, CopyMode::Create);
        if create {
            request = request.if_none_match_any();
        }
        if from == to {
            // object_store allows copying onto itself; S3 only with new metadata. Nothing
            // changes: the source must exist, and in create mode it is the destination too.
            self.head(from).await?;
            return match create {
                true => Err(already_exists(to)),
                false => Ok(()),
            };
        }
        match self.service.copy_object(request).await {
            Ok(_) => Ok(()),
            Err(Error::PreconditionFailed { .. }) if create => {
                Err(object_store::Error::AlreadyExists {
                    path: to.to_string(),
                    source: "an object exists at this key".into(),
                })
            }
            Err(e) => Err(to_os_error(e, from.as_ref())),
        }
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.target_mode, RenameTargetMode::Create);
        let conditions = if create {
            WriteConditions::none_match_any()
        } else {
            WriteConditions::default()
        };
        if from == to {
            self.head(from).await?;
            return match create {
                true => Err(already_exists(to)),
                false => Ok(()),
            };
        }
        match self
            .service
            .rename_object(&self.bucket, from.as_ref(), to.as_ref(), conditions)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::PreconditionFailed { .. }) if create => {
                Err(object_store::Error::AlreadyExists {
                    path: to.to_string(),
                    source: "an object exists at this key".into(),
                })
            }
            Err(e) => Err(to_os_error(e, from.as_ref())),
        }
    }
}

impl BucketStore {
    async fn head(&self, location: &Path) -> object_store::Result<ObjectInfo> {
        self.service
            .head_object(GetObject::new(&self.bucket, location.as_ref()))
            .await
            .map_err(|e| to_os_error(e, location.as_ref()))
    }

    async fn finish(
        &self,
        key: &str,
        upload_id: &str,
        etags: Vec<Option<String>>,
    ) -> object_store::Result<PutResult> {
        let mut etags = etags;
        if etags.is_empty() {
            // S3 refuses an empty part list; object_store's S3 client uploads one empty part.
            let etag = self
                .service
                .upload_part(&self.bucket, key, upload_id, 1, Body::empty())
                .await
                .map_err(|e| to_os_error(e, key))?;
            etags.push(Some(etag));
        }
        let mut parts = Vec::with_capacity(etags.len());
        for (i, etag) in etags.into_iter().enumerate() {
            let etag = etag.ok_or_else(|| object_store::Error::Generic {
                store: STORE,
                source: format!("part {} was not uploaded", i + 1).into(),
            })?;
            parts.push(CompletedPart::new(part_number(i)?, etag));
        }
        let out = self
            .service
            .complete_multipart_upload(
                &self.bucket,
                key,
                upload_id,
                parts,
                WriteConditions::default(),
            )
            .await
            .map_err(|e| to_os_error(e, key))?;
        Ok(PutResult {
            e_tag: Some(out.etag),
            version: out.version_id,
        })
    }
}

fn part_number(index: usize) -> object_store::Result<u32> {
    u32::try_from(index + 1)
        .ok()
        .filter(|n| *n <= crate::MAX_PART_NUMBER)
        .ok_or_else(|| object_store::Error::Generic {
            store: STORE,
            source: "Part number must be an integer between 1 and 10000, inclusive".into(),
        })
}

/// A multipart upload through [`ObjectStore::put_multipart`].
#[derive(Debug)]
struct Upload {
    store: BucketStore,
    key: String,
    upload_id: String,
    next_part: usize,
    etags: Arc<Mutex<Vec<Option<String>>>>,
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = self.next_part;
        self.next_part += 1;
        {
            let mut etags = self.etags.lock().unwrap_or_else(|p| p.into_inner());
            if etags.len() <= index {
                etags.resize(index + 1, None);
            }
        }
        let (store, key, upload_id, etags) = (
            self.store.clone(),
            self.key.clone(),
            self.upload_id.clone(),
            self.etags.clone(),
        );
        Box::pin(async move {
            let number = part_number(index)?;
            let etag = store
                .service
                .upload_part(
                    &store.bucket,
                    &key,
                    &upload_id,
                    number,
                    Body::from_chunks(data.iter().cloned()),
                )
                .await
                .map_err(|e| to_os_error(e, &key))?;
            etags.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(etag);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let etags = self.etags.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.store.finish(&self.key, &self.upload_id, etags).await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.store
            .service
            .abort_multipart_upload(&self.store.bucket, &self.key, &self.upload_id)
            .await
            .map_err(|e| to_os_error(e, &self.key))
    }
}

#[async_trait]
impl MultipartStore for BucketStore {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.service
            .create_multipart_upload(CreateMultipartUpload::new(&self.bucket, path.as_ref()))
            .await
            .map_err(|e| to_os_error(e, path.as_ref()))
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        let etag = self
            .service
            .upload_part(
                &self.bucket,
                path.as_ref(),
                id,
                part_number(part_idx)?,
                Body::from_chunks(data.iter().cloned()),
            )
            .await
            .map_err(|e| to_os_error(e, path.as_ref()))?;
        Ok(PartId { content_id: etag })
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.finish(
            path.as_ref(),
            id,
            parts.into_iter().map(|p| Some(p.content_id)).collect(),
        )
        .await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        self.service
            .abort_multipart_upload(&self.bucket, path.as_ref(), id)
            .await
            .map_err(|e| to_os_error(e, path.as_ref()))
    }
}

#[async_trait]
impl PaginatedListStore for BucketStore {
    async fn list_paginated(
        &self,
        prefix: Option<&str>,
        opts: PaginatedListOptions,
    ) -> object_store::Result<PaginatedListResult> {
        let (result, page_token) = self
            .list_page(
                prefix.filter(|p| !p.is_empty()).map(str::to_owned),
                opts.delimiter.map(|d| d.into_owned()),
                opts.offset,
                opts.max_keys,
                opts.page_token,
            )
            .await?;
        Ok(PaginatedListResult { result, page_token })
    }
}
