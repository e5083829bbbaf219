//! Where bodies live: small ones (and every one in memory mode) in the engine as 1 MiB chunks,
//! written in the same transaction as the metadata; large ones in files, written to a
//! temporary file, fsync'd and renamed before the metadata that names them is committed.
//!
//! A body file is removed only after the commit that stops naming it, and not while a read
//! holds it ([`Pins`]); a crash between the two leaves an orphan, which [`Data::sweep`] removes
//! at open.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use cloudlet_core::{Direction, KeyRange, ReadView, Snapshot, WriteTxn};
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::body::{Body, ObjectBody};
use crate::error::{Error, Result};
use crate::record::{
    CHUNK, KS_DATA, KS_HISTORY, KS_OBJECTS, KS_PARTS, PartRecord, Segment, Storage, data_key,
    decode, decode_object,
};

/// Bodies up to this size stay in the engine even when a body directory is configured: they
/// then cost no file, no fsync of their own, and share the group commit.
pub(crate) const INLINE_LIMIT: u64 = 128 * 1024;

/// Bodies up to this size live inside their object's record: one key per object instead of
/// two, which is what small durable puts are bounded by.
pub(crate) const RECORD_INLINE_LIMIT: u64 = 16 * 1024;

/// A durable body file starts writing back every this many bytes.
const WRITEBACK: u64 = 8 << 20;

/// A fresh body id: 32 hex digits.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The body store of one service.
#[derive(Debug)]
pub(crate) struct Data {
    dirs: Option<Dirs>,
    durable: bool,
    pins: Arc<Mutex<Pins>>,
}

#[derive(Debug)]
struct Dirs {
    bodies: PathBuf,
    tmp: PathBuf,
}

/// Body files being read, and files whose removal waits for their readers.
#[derive(Debug, Default)]
struct Pins {
    readers: HashMap<String, usize>,
    deferred: HashSet<String>,
}

/// A body read in and stored (its file renamed into place, its chunks in hand), waiting for
/// the transaction that names it. Dropped without [`Staged::keep`], its file is removed.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) segment: Segment,
    pub(crate) md5: [u8; 16],
    chunks: Vec<Bytes>,
    file: Option<PathBuf>,
}

impl Staged {
    /// Writes the chunks of an engine-stored body into `txn`.
    pub(crate) fn write_into(&self, txn: &mut WriteTxn<'_>) {
        if self.segment.storage == Storage::Inline {
            return;
        }
        for (index, chunk) in self.chunks.iter().enumerate() {
            txn.put(
                KS_DATA,
                data_key(&self.segment.id, index as u64),
                chunk.clone(),
            );
        }
    }

    /// The transaction naming the body committed: keep its file.
    pub(crate) fn keep(mut self) {
        self.file = None;
    }

    /// The body of an inline segment, for its record.
    pub(crate) fn inline_bytes(&self) -> Option<Bytes> {
        (self.segment.storage == Storage::Inline)
            .then(|| self.chunks.first().cloned().unwrap_or_default())
    }

    pub(crate) fn etag(&self) -> String {
        format!("\"{}\"", hex(&self.md5))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(path) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Removes `segments`' engine chunks inside `txn`.
pub(crate) fn delete_chunks(txn: &mut WriteTxn<'_>, segments: &[Segment]) {
    for segment in segments.iter().filter(|s| s.storage == Storage::Engine) {
        for index in 0..segment.size.div_ceil(CHUNK as u64) {
            txn.delete(KS_DATA, data_key(&segment.id, index));
        }
    }
}

/// Copies `segments`' engine chunks to fresh ids inside `txn`; file segments are expected to
/// have been linked already (`linked` maps old file ids to new ones).
pub(crate) fn copy_chunks(
    txn: &mut WriteTxn<'_>,
    segments: &[Segment],
    linked: &HashMap<String, String>,
) -> Result<Vec<Segment>> {
    let mut out = Vec::with_capacity(segments.len());
    for segment in segments {
        match segment.storage {
            Storage::Engine => {
                let id = new_id();
                for index in 0..segment.size.div_ceil(CHUNK as u64) {
                    let chunk = txn
                        .get(KS_DATA, &data_key(&segment.id, index))?
                        .ok_or_else(|| Error::corrupt(KS_DATA, "missing body chunk"))?;
                    txn.put(KS_DATA, data_key(&id, index), chunk);
                }
                out.push(Segment {
                    id,
                    ..segment.clone()
                });
            }
            // The body travels inside the record.
            Storage::Inline => out.push(segment.clone()),
            Storage::File => {
                let id = linked
                    .get(&segment.id)
                    .ok_or_else(|| Error::corrupt(KS_OBJECTS, "body file not linked"))?;
                out.push(Segment {
                    id: id.clone(),
                    ..segment.clone()
                });
            }
        }
    }
    Ok(out)
}

/// One piece of a planned read.
enum Piece {
    Bytes(Bytes),
    Engine { key: Bytes, from: usize, to: usize },
    File { id: String, offset: u64, len: usize },
}

/// Holds body files open for a read; releasing the last hold on a file whose removal was
/// deferred removes it.
struct PinGuard {
    pins: Arc<Mutex<Pins>>,
    ids: Vec<String>,
    bodies: PathBuf,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            let left = match pins.readers.get_mut(id) {
                Some(count) => {
                    *count -= 1;
                    *count
                }
                None => continue,
            };
            if left == 0 {
                pins.readers.remove(id);
                if pins.deferred.remove(id) {
                    let _ = std::fs::remove_file(self.bodies.join(id));
                }
            }
        }
    }
}

/// The result of trying to start a read.
pub(crate) enum Opened {
    Body(ObjectBody),
    /// A body file vanished between the snapshot and the open: the object changed; read again.
    Changed,
}

impl Data {
    /// Bodies in the engine only.
    pub(crate) fn engine() -> Self {
        Self {
            dirs: None,
            durable: false,
            pins: Arc::default(),
        }
    }

    /// Bodies over [`INLINE_LIMIT`] in files under `dir`, fsync'd when `durable`.
    pub(crate) fn files(dir: &Path, durable: bool) -> Result<Self> {
        let dirs = Dirs {
            bodies: dir.join("bodies"),
            tmp: dir.join("tmp"),
        };
        std::fs::create_dir_all(&dirs.bodies)?;
        std::fs::create_dir_all(&dirs.tmp)?;
        Ok(Self {
            dirs: Some(dirs),
            durable,
            pins: Arc::default(),
        })
    }

    /// Reads `body` (at most `limit` bytes) and stores it: in memory chunks for the engine, or
    /// in a file renamed into the body directory.
    ///
    /// Cancel safety: dropping the future leaves no file behind but, at worst, a temporary one
    /// that the next open removes.
    /// `inline_ok`: a body of at most [`RECORD_INLINE_LIMIT`] may live in its object's record.
    pub(crate) async fn stage(
        &self,
        mut body: Body,
        limit: u64,
        inline_ok: bool,
    ) -> Result<Staged> {
        let id = new_id();
        let mut hasher = Md5::new();
        let mut size = 0u64;
        let mut buf = BytesMut::new();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut file: Option<(Arc<File>, TempFile)> = None;
        // Durable large bodies start their writeback while the rest streams in: one
        // `fdatasync` at a time runs beside the writes, so the last one has little left to do.
        let mut written = 0u64;
        let mut flushing: Option<tokio::task::JoinHandle<std::io::Result<()>>> = None;
        loop {
            let next = body.next_chunk().await.transpose()?;
            let end = next.is_none();
            if let Some(chunk) = next {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(Error::EntityTooLarge { limit });
                }
                buf.extend_from_slice(&chunk);
            }
            if file.is_none() && self.goes_to_file(size) {
                let dirs = self.dirs()?;
                let temp = TempFile(dirs.tmp.join(&id));
                let f = Arc::new(File::create(&temp.0)?);
                let earlier = std::mem::take(&mut chunks);
                let out = f.clone();
                blocking(move || {
                    for chunk in earlier {
                        (&*out).write_all(&chunk)?;
                    }
                    Ok(())
                })
                .await?;
                file = Some((f, temp));
            }
            while buf.len() >= CHUNK || (end && !buf.is_empty()) {
                let piece = buf.split_to(buf.len().min(CHUNK)).freeze();
                match &file {
                    Some((f, _)) => {
                        // Hash and write side by side, on two blocking threads.
                        let (out, copy) = (f.clone(), piece.clone());
                        let write = blocking(move || Ok((&*out).write_all(&copy)?));
                        let hash = blocking(move || {
                            hasher.update(&piece);
                            Ok(hasher)
                        });
                        let (wrote, hashed) = tokio::join!(write, hash);
                        wrote?;
                        hasher = hashed?;
                        written += CHUNK as u64;
                        if self.durable && written.is_multiple_of(WRITEBACK) {
                            if let Some(previous) = flushing.take() {
                                previous
                                    .await
                                    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
                            }
                            let out = f.clone();
                            flushing = Some(tokio::task::spawn_blocking(move || out.sync_data()));
                        }
                    }
                    None if piece.len() >= 64 * 1024 => {
                        let (h, piece) = blocking(move || {
                            hasher.update(&piece);
                            Ok((hasher, piece))
                        })
                        .await?;
                        hasher = h;
                        chunks.push(piece);
                    }
                    None => {
                        hasher.update(&piece);
                        chunks.push(piece);
                    }
                }
            }
            if end {
                break;
            }
        }
        if let Some(previous) = flushing.take() {
            previous
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        }
        let md5: [u8; 16] = hasher.finalize().into();
        let Some((f, temp)) = file else {
            let inline = inline_ok && size <= RECORD_INLINE_LIMIT;
            let chunks = if inline && chunks.len() > 1 {
                vec![chunks.concat().into()]
            } else {
                chunks
            };
            return Ok(Staged {
                segment: Segment {
                    id,
                    size,
                    storage: if inline {
                        Storage::Inline
                    } else {
                        Storage::Engine
                    },
                },
                md5,
                chunks,
                file: None,
            });
        };
        let bodies = self.dirs()?.bodies.clone();
        let durable = self.durable;
        // The `Staged` is made on the blocking thread: if this future is dropped meanwhile,
        // dropping the task's output removes the renamed file.
        blocking(move || {
            if durable {
                f.sync_all()?;
            }
            drop(f);
            let target = bodies.join(&id);
            std::fs::rename(&temp.0, &target)?;
            temp.disarm();
            let staged = Staged {
                segment: Segment {
                    id,
                    size,
                    storage: Storage::File,
                },
                md5,
                chunks: Vec::new(),
                file: Some(target),
            };
            if durable {
                File::open(&bodies)?.sync_all()?;
            }
            Ok(staged)
        })
        .await
    }

    fn dirs(&self) -> Result<&Dirs> {
        self.dirs
            .as_ref()
            .ok_or_else(|| Error::corrupt(KS_OBJECTS, "file body without a body directory"))
    }

    fn goes_to_file(&self, size: u64) -> bool {
        self.dirs.is_some() && size > INLINE_LIMIT
    }

    /// Hard-links the file segments of `segments` to fresh ids, for a copy. `None` when a
    /// source file vanished (the source changed; read it again).
    pub(crate) async fn link(
        &self,
        segments: &[Segment],
    ) -> Result<Option<(HashMap<String, String>, Vec<Staged>)>> {
        let files: Vec<Segment> = segments
            .iter()
            .filter(|s| s.storage == Storage::File)
            .cloned()
            .collect();
        if files.is_empty() {
            return Ok(Some((HashMap::new(), Vec::new())));
        }
        let Some(dirs) = &self.dirs else {
            return Err(Error::corrupt(
                KS_OBJECTS,
                "file body without a body directory",
            ));
        };
        let bodies = dirs.bodies.clone();
        let durable = self.durable;
        blocking(move || {
            let mut map = HashMap::new();
            let mut staged = Vec::new();
            for segment in files {
                let id = new_id();
                let target = bodies.join(&id);
                match std::fs::hard_link(bodies.join(&segment.id), &target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
                staged.push(Staged {
                    segment: Segment {
                        id: id.clone(),
                        ..segment.clone()
                    },
                    md5: [0; 16],
                    chunks: Vec::new(),
                    file: Some(target),
                });
                map.insert(segment.id, id);
            }
            if durable {
                File::open(&bodies)?.sync_all()?;
            }
            Ok(Some((map, staged)))
        })
        .await
    }

    /// Removes the files of `segments`, now that no committed record names them; a file being
    /// read is removed when its last reader finishes.
    pub(crate) fn remove_files(&self, segments: &[Segment]) {
        let Some(dirs) = &self.dirs else { return };
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for segment in segments.iter().filter(|s| s.storage == Storage::File) {
            if pins.readers.contains_key(&segment.id) {
                pins.deferred.insert(segment.id.clone());
            } else if let Err(e) = std::fs::remove_file(dirs.bodies.join(&segment.id))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(id = %segment.id, error = %e, "could not remove a body file");
            }
        }
    }

    /// Starts reading `range` of the body made of `segments`, as of `snapshot`.
    pub(crate) fn open(
        &self,
        snapshot: Arc<Snapshot>,
        segments: &[Segment],
        inline: Option<&Bytes>,
        range: std::ops::Range<u64>,
    ) -> Result<Opened> {
        let mut pieces = VecDeque::new();
        let mut files = Vec::new();
        let mut start = 0u64;
        for segment in segments {
            let (seg_from, seg_to) = (start, start + segment.size);
            start = seg_to;
            let from = range.start.max(seg_from);
            let to = range.end.min(seg_to);
            if from >= to {
                continue;
            }
            let (mut at, end) = (from - seg_from, to - seg_from);
            match segment.storage {
                Storage::Inline => {
                    let body = inline.ok_or_else(|| {
                        Error::corrupt(KS_OBJECTS, "an inline segment without its body")
                    })?;
                    if end as usize > body.len() {
                        return Err(Error::corrupt(KS_OBJECTS, "short inline body"));
                    }
                    pieces.push_back(Piece::Bytes(body.slice(at as usize..end as usize)));
                }
                Storage::Engine => {
                    while at < end {
                        let index = at / CHUNK as u64;
                        let chunk_start = index * CHUNK as u64;
                        let upto = end.min(chunk_start + CHUNK as u64);
                        pieces.push_back(Piece::Engine {
                            key: data_key(&segment.id, index),
                            from: (at - chunk_start) as usize,
                            to: (upto - chunk_start) as usize,
                        });
                        at = upto;
                    }
                }
                Storage::File => {
                    files.push(segment.id.clone());
                    while at < end {
                        let len = (end - at).min(CHUNK as u64);
                        pieces.push_back(Piece::File {
                            id: segment.id.clone(),
                            offset: at,
                            len: len as usize,
                        });
                        at += len;
                    }
                }
            }
        }
        let len = range.end - range.start;
        let guard = match (&self.dirs, files.first()) {
            (Some(dirs), Some(_)) => {
                let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
                // Files are removed under this lock: if they are all there now, pinning them
                // keeps them until this read is done.
                if !files.iter().all(|id| dirs.bodies.join(id).exists()) {
                    return Ok(Opened::Changed);
                }
                for id in &files {
                    *pins.readers.entry(id.clone()).or_default() += 1;
                }
                Some(PinGuard {
                    pins: self.pins.clone(),
                    ids: files,
                    bodies: dirs.bodies.clone(),
                })
            }
            (None, Some(_)) => {
                return Err(Error::corrupt(
                    KS_OBJECTS,
                    "file body without a body directory",
                ));
            }
            _ => None,
        };
        let bodies = self.dirs.as_ref().map(|d| d.bodies.clone());
        let state = ReadState {
            pieces,
            snapshot,
            bodies,
            open: None,
            _guard: guard,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let piece = state.pieces.pop_front()?;
            let result = state.read(piece).await;
            if result.is_err() {
                state.pieces.clear();
            }
            Some((result, state))
        });
        Ok(Opened::Body(ObjectBody::new(stream.boxed(), len)))
    }

    /// Removes temporary files and body files no record names: what a crash can leave.
    pub(crate) fn sweep(&self, view: &impl ReadView) -> Result<usize> {
        let Some(dirs) = &self.dirs else { return Ok(0) };
        for entry in std::fs::read_dir(&dirs.tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let mut named = HashSet::new();
        for keyspace in [KS_OBJECTS, KS_HISTORY] {
            for entry in view.range(keyspace, &KeyRange::all(), Direction::Forward)? {
                let (_, raw) = entry?;
                let record = decode_object(keyspace, raw)?;
                named.extend(
                    record
                        .segments
                        .into_iter()
                        .filter(|s| s.storage == Storage::File)
                        .map(|s| s.id),
                );
            }
        }
        for entry in view.range(KS_PARTS, &KeyRange::all(), Direction::Forward)? {
            let (_, raw) = entry?;
            let part: PartRecord = decode(KS_PARTS, &raw)?;
            if part.segment.storage == Storage::File {
                named.insert(part.segment.id);
            }
        }
        let mut removed = 0;
        for entry in std::fs::read_dir(&dirs.bodies)? {
            let entry = entry?;
            let name = entry.file_name();
            if !named.contains(name.to_string_lossy().as_ref()) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed body files orphaned by a crash");
        }
        Ok(removed)
    }

    /// Whether large bodies go to files.
    pub(crate) fn has_files(&self) -> bool {
        self.dirs.is_some()
    }
}

struct ReadState {
    pieces: VecDeque<Piece>,
    snapshot: Arc<Snapshot>,
    bodies: Option<PathBuf>,
    open: Option<(String, Arc<File>)>,
    _guard: Option<PinGuard>,
}

impl ReadState {
    async fn read(&mut self, piece: Piece) -> Result<Bytes> {
        match piece {
            Piece::Bytes(bytes) => Ok(bytes),
            Piece::Engine { key, from, to } => {
                let chunk = self
                    .snapshot
                    .get(KS_DATA, &key)?
                    .ok_or_else(|| Error::corrupt(KS_DATA, "missing body chunk"))?;
                if to > chunk.len() {
                    return Err(Error::corrupt(KS_DATA, "short body chunk"));
                }
                Ok(chunk.slice(from..to))
            }
            Piece::File { id, offset, len } => {
                let file = match &self.open {
                    Some((open_id, file)) if *open_id == id => file.clone(),
                    _ => {
                        let path = self
                            .bodies
                            .as_ref()
                            .ok_or_else(|| {
                                Error::corrupt(KS_OBJECTS, "file body without a body directory")
                            })?
                            .join(&id);
                        let file = Arc::new(blocking(move || Ok(File::open(path)?)).await?);
                        self.open = Some((id, file.clone()));
                        file
                    }
                };
                blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, offset)?;
                    Ok(Bytes::from(buf))
                })
                .await
            }
        }
    }
}

/// A temporary file removed on drop unless disarmed.
struct TempFile(PathBuf);

impl TempFile {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}
