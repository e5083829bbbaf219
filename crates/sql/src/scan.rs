//! What a query reads: every object store a query sees is wrapped so that the bytes it reads
//! are counted (Athena's `DataScannedInBytes`) and the workgroup's per-query cutoff is
//! enforced at the moment a read would cross it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use cloudlet_objectstore::ObjectService;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

/// One query's reads.
#[derive(Debug, Default)]
pub(crate) struct ScanCounter {
    bytes: AtomicU64,
    objects: Mutex<HashSet<(String, Path)>>,
    limit: Option<u64>,
    exceeded: AtomicBool,
    /// The object read last, to name in errors about a file's contents.
    last: Mutex<Option<String>>,
}

impl ScanCounter {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Bytes read from object stores so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Distinct objects read from so far.
    pub(crate) fn objects(&self) -> u64 {
        self.objects.lock().map_or(0, |o| o.len() as u64)
    }

    /// The cutoff, once a read crossed it.
    pub(crate) fn exceeded(&self) -> Option<u64> {
        self.exceeded
            .load(Ordering::Relaxed)
            .then_some(self.limit)
            .flatten()
    }

    /// The object read last: the one a decoding error is most likely about.
    pub(crate) fn last_object(&self) -> Option<String> {
        self.last.lock().ok()?.clone()
    }

    /// Counts `bytes` read from `location`; refuses them when they cross the cutoff.
    fn read(&self, store: &str, location: &Path, bytes: u64) -> object_store::Result<()> {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(format!("{store}/{location}"));
        }
        if let Ok(mut objects) = self.objects.lock() {
            objects.insert((store.to_owned(), location.clone()));
        }
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        match self.limit {
            Some(limit) if total > limit => {
                self.exceeded.store(true, Ordering::Relaxed);
                Err(object_store::Error::Generic {
                    store: "cloudlet-sql",
                    source: format!(
                        "Query cancelled! : Bytes scanned limit was exceeded (limit {limit} bytes)"
                    )
                    .into(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// An object store whose reads are counted against one query's [`ScanCounter`].
#[derive(Debug)]
pub(crate) struct CountingStore {
    name: String,
    inner: Arc<dyn ObjectStore>,
    counter: Arc<ScanCounter>,
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        if !head {
            self.counter.read(
                &self.name,
                location,
                result.range.end.saturating_sub(result.range.start),
            )?;
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let parts = self.inner.get_ranges(location, ranges).await?;
        let bytes = parts.iter().map(|p| p.len() as u64).sum();
        self.counter.read(&self.name, location, bytes)?;
        Ok(parts)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// The stores a service's queries can reach: every bucket of the object service as
/// `s3://<bucket>/`, and whatever the user registered under other URLs.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    objects: ObjectService,
    registered: Arc<RwLock<HashMap<String, Arc<dyn ObjectStore>>>>,
}

/// `scheme://host`, the key a store is found under.
fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

impl Stores {
    pub(crate) fn new(objects: ObjectService) -> Self {
        Self {
            objects,
            registered: Arc::default(),
        }
    }

    pub(crate) fn register(&self, url: &Url, store: Arc<dyn ObjectStore>) {
        if let Ok(mut registered) = self.registered.write() {
            registered.insert(store_key(url), store);
        }
    }

    /// A registry for one query, counting into `counter`.
    pub(crate) fn for_query(&self, counter: Arc<ScanCounter>) -> QueryStores {
        QueryStores {
            stores: self.clone(),
            counter,
        }
    }

    /// The store behind `url`, uncounted.
    pub(crate) fn get(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        if let Some(store) = self
            .registered
            .read()
            .ok()
            .and_then(|r| r.get(&key).cloned())
        {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) if !bucket.is_empty() => {
                Ok(Arc::new(self.objects.bucket_store(bucket)))
            }
            _ => Err(DataFusionError::Configuration(format!(
                "no object store for {url}: cloudlet buckets are named s3://<bucket>/, other stores must be registered with SqlService::register_object_store"
            ))),
        }
    }
}

/// The [`ObjectStoreRegistry`] of one query.
#[derive(Debug)]
pub(crate) struct QueryStores {
    stores: Stores,
    counter: Arc<ScanCounter>,
}

impl ObjectStoreRegistry for QueryStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores.register(url, store);
        None
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(CountingStore {
            name: store_key(url),
            inner: self.stores.get(url)?,
            counter: self.counter.clone(),
        }))
    }
}
