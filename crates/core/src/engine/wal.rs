//! The write-ahead log of the durable engine: two segment files used in turn.
//!
//! A durable commit costs one write and one `fdatasync` of the active segment instead of a
//! B-tree commit. Every commit is logged, eventual ones unsynced, so the log is a
//! prefix-closed history: a sync makes every earlier commit durable. When the active segment
//! is full the writer moves to the other one, and the B-tree is made durable up to that point
//! (a checkpoint) in the background; a segment is reused only after its checkpoint. So the
//! valid segments, replayed oldest generation first, always hold every commit since the last
//! durable B-tree state, and replaying commits the B-tree already has is harmless.
//!
//! Segments are reused, not truncated: overwriting blocks that already exist lets
//! `fdatasync` skip the size and allocation metadata an append must journal, which halves its
//! latency here. Each record's checksum covers the segment's generation, so a stale record of
//! an earlier use never passes for a live one, and a torn tail (a crash mid-write) fails its
//! checksum and ends the segment, losing only unacknowledged commits.
//!
//! Segment layout: a header (`magic | generation: u64 | crc32`), then records from
//! [`RECORDS_START`]: `len: u32 | crc32(generation, payload): u32 | payload`, the payload the
//! commit's sequence number and its encoded [`WriteBatch`]. A zero length ends the segment.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WriteBatch;

/// A logged commit: its sequence number (increasing, never reused) and its writes.
pub(super) type Logged = (u64, WriteBatch);
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CLWAL\x00\x00\x01";
const HEADER_LEN: usize = 20;
const RECORDS_START: u64 = 4096;
const RECORD_HEADER: usize = 8;
/// Larger records than this are corruption, not data.
const MAX_RECORD: u32 = 1 << 30;
/// The file grows in steps of this much, so most writes land inside it.
const GROWTH: u64 = 4 << 20;

pub(super) struct Segment {
    file: File,
    /// `None` while the segment holds no live records.
    generation: Option<u64>,
    /// Where the next record goes.
    position: u64,
    /// The file's length (at least `position`).
    capacity: u64,
    /// Records written since the last sync.
    unsynced: bool,
}

fn checksum(generation: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_be_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn header(generation: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&generation.to_be_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_be_bytes());
    out
}

fn parse_header(bytes: &[u8; HEADER_LEN]) -> Option<u64> {
    let crc = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    (&bytes[..8] == MAGIC && crc32fast::hash(&bytes[..16]) == crc)
        .then(|| u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default()))
}

impl Segment {
    /// Opens (or creates) the segment at `path` with the records it holds.
    fn open(path: &Path) -> Result<(Self, Vec<Logged>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::storage)?;
        let mut raw = [0u8; HEADER_LEN];
        let generation = file
            .read_exact(&mut raw)
            .ok()
            .and_then(|()| parse_header(&raw));
        let capacity = file.metadata().map_err(Error::storage)?.len();
        let mut segment = Self {
            file,
            generation,
            position: RECORDS_START,
            capacity,
            unsynced: false,
        };
        let batches = match generation {
            Some(generation) => {
                let (batches, end) = segment.read_records(generation)?;
                segment.position = end;
                batches
            }
            None => Vec::new(),
        };
        Ok((segment, batches))
    }

    /// Marks the segment as holding nothing live.
    fn invalidate(&mut self) -> Result<()> {
        self.generation = None;
        self.file.seek(SeekFrom::Start(0)).map_err(Error::storage)?;
        self.file
            .write_all(&[0u8; HEADER_LEN])
            .map_err(Error::storage)?;
        self.file.sync_data().map_err(Error::storage)?;
        self.generation = None;
        self.position = RECORDS_START;
        self.unsynced = false;
        Ok(())
    }

    fn start_generation(&mut self, generation: u64) -> Result<()> {
        // Unusable until the new header is durable: records checksummed with the old
        // generation behind a new header would never replay.
        self.generation = None;
        self.file.seek(SeekFrom::Start(0)).map_err(Error::storage)?;
        self.file
            .write_all(&header(generation))
            .map_err(Error::storage)?;
        self.file.sync_all().map_err(Error::storage)?;
        self.generation = Some(generation);
        self.position = RECORDS_START;
        self.capacity = self.capacity.max(HEADER_LEN as u64);
        self.unsynced = false;
        Ok(())
    }

    /// Reads the records of `generation`; returns them and the offset after the last one.
    fn read_records(&mut self, generation: u64) -> Result<(Vec<Logged>, u64)> {
        self.file
            .seek(SeekFrom::Start(RECORDS_START))
            .map_err(Error::storage)?;
        let file_len = self.file.metadata().map_err(Error::storage)?.len();
        let mut reader = BufReader::new(&mut self.file);
        let mut batches = Vec::new();
        let mut end = RECORDS_START;
        loop {
            let mut head = [0u8; RECORD_HEADER];
            if reader.read_exact(&mut head).is_err() {
                break;
            }
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            // A garbage length in a torn tail must not make us allocate what the file lacks.
            if len == 0
                || len > MAX_RECORD
                || end + (RECORD_HEADER as u64) + u64::from(len) > file_len
            {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            if reader.read_exact(&mut payload).is_err() || checksum(generation, &payload) != crc {
                break;
            }
            match decode(Bytes::from(payload)) {
                Some(batch) => batches.push(batch),
                None => break,
            }
            end += (RECORD_HEADER + len as usize) as u64;
        }
        Ok((batches, end))
    }

    /// Writes `batch` as the next record; durable once [`sync`](Self::sync) returns.
    fn append(&mut self, seq: u64, batch: &WriteBatch) -> Result<()> {
        let mut record = BytesMut::with_capacity(RECORD_HEADER + 64);
        record.put_u64(0); // header, filled in below
        record.put_u64(seq);
        encode(batch, &mut record);
        let len = record.len() - RECORD_HEADER;
        let len = u32::try_from(len)
            .ok()
            .filter(|len| *len <= MAX_RECORD)
            .ok_or_else(|| {
                Error::invalid(
                    "batch",
                    format!("a commit of {len} bytes exceeds the 1 GiB limit"),
                )
            })?;
        let generation = self.generation.ok_or_else(|| {
            Error::storage(std::io::Error::other("write to an inactive log segment"))
        })?;
        let crc = checksum(generation, &record[RECORD_HEADER..]);
        record[..4].copy_from_slice(&len.to_be_bytes());
        record[4..8].copy_from_slice(&crc.to_be_bytes());
        // A zero length after the record ends the log if nothing follows it yet; the stale
        // bytes there may be anything.
        let end = self.position + record.len() as u64;
        record.put_u64(0);
        if end + RECORD_HEADER as u64 > self.capacity {
            self.capacity = (end + RECORD_HEADER as u64).next_multiple_of(GROWTH);
            self.file.set_len(self.capacity).map_err(Error::storage)?;
        }
        self.file
            .seek(SeekFrom::Start(self.position))
            .map_err(Error::storage)?;
        self.file.write_all(&record).map_err(Error::storage)?;
        self.position = end;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file.sync_data().map_err(Error::storage)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Bytes of records in the segment.
    fn len(&self) -> u64 {
        self.position - RECORDS_START
    }
}

/// The two segments, one active.
pub(super) struct Log {
    segments: [Segment; 2],
    active: usize,
}

impl Log {
    /// Opens the log in `dir` and returns it with every commit it holds, oldest first.
    pub(super) fn open(dir: &Path, name: &str) -> Result<(Self, Vec<Logged>)> {
        let paths = [0, 1].map(|i| dir.join(format!("{name}.{i}")));
        let created = !paths.iter().all(|p| p.exists());
        let (first, first_batches) = Segment::open(&paths[0])?;
        let (second, second_batches) = Segment::open(&paths[1])?;
        if created {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::storage)?;
        }
        let mut log = Self {
            segments: [first, second],
            active: 0,
        };
        // The newer generation is active; replay the older one first.
        let mut batches = [first_batches, second_batches];
        if log.segments[1].generation > log.segments[0].generation {
            log.active = 1;
        } else {
            batches.swap(0, 1);
        }
        let [older, newer] = batches;
        Ok((log, older.into_iter().chain(newer).collect()))
    }

    /// Appends `batch` to the active segment; durable once [`sync`](Self::sync) returns.
    pub(super) fn append(&mut self, seq: u64, batch: &WriteBatch) -> Result<()> {
        self.segments[self.active].append(seq, batch)
    }

    /// Makes every appended record durable.
    pub(super) fn sync(&mut self) -> Result<()> {
        self.segments[self.active].sync()
    }

    /// Bytes of records in the active segment.
    pub(super) fn active_len(&self) -> u64 {
        self.segments[self.active].len()
    }

    /// Bytes of records in both segments: what an open would replay at most.
    pub(super) fn len(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }

    /// The generation of the inactive segment, if it holds records not yet known to be
    /// checkpointed.
    pub(super) fn inactive_generation(&self) -> Option<u64> {
        self.segments[1 - self.active].generation
    }

    /// Makes the inactive segment active under a new generation and returns the generation
    /// of the segment left behind, which must be checkpointed before it is reused. Call only
    /// once the inactive segment's own checkpoint is done.
    pub(super) fn switch(&mut self) -> Result<u64> {
        let old = self.segments[self.active].generation.unwrap_or(0);
        self.segments[self.active].sync()?;
        let next = 1 - self.active;
        self.segments[next].start_generation(old + 1)?;
        self.active = next;
        Ok(old)
    }

    /// Empties both segments, once everything is durable elsewhere.
    pub(super) fn reset(&mut self) -> Result<()> {
        let generation = self
            .segments
            .iter()
            .filter_map(|s| s.generation)
            .max()
            .unwrap_or(0);
        self.segments[1 - self.active].invalidate()?;
        self.segments[self.active].start_generation(generation + 1)
    }

    /// The highest generation in use.
    pub(super) fn generation(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| s.generation)
            .max()
            .unwrap_or(0)
    }
}

fn put_chunk(out: &mut BytesMut, chunk: &[u8]) {
    out.put_u32(chunk.len() as u32);
    out.put_slice(chunk);
}

fn encode(batch: &WriteBatch, out: &mut BytesMut) {
    let keyspaces: Vec<_> = batch.keyspaces().collect();
    out.put_u32(keyspaces.len() as u32);
    for (name, writes) in keyspaces {
        put_chunk(out, name.as_bytes());
        out.put_u32(writes.len() as u32);
        for (key, value) in writes {
            put_chunk(out, key);
            match value {
                Some(value) => {
                    out.put_u8(1);
                    put_chunk(out, value);
                }
                None => out.put_u8(0),
            }
        }
    }
}

fn take_chunk(data: &mut Bytes) -> Option<Bytes> {
    let len = data.try_get_u32().ok()? as usize;
    (data.remaining() >= len).then(|| data.split_to(len))
}

fn decode(mut data: Bytes) -> Option<Logged> {
    let seq = data.try_get_u64().ok()?;
    let mut batch = WriteBatch::new();
    for _ in 0..data.try_get_u32().ok()? {
        let name = String::from_utf8(take_chunk(&mut data)?.to_vec()).ok()?;
        for _ in 0..data.try_get_u32().ok()? {
            let key = take_chunk(&mut data)?;
            match data.try_get_u8().ok()? {
                1 => batch.put(&name, key, take_chunk(&mut data)?),
                0 => batch.delete(&name, key),
                _ => return None,
            }
        }
    }
    (!data.has_remaining()).then_some((seq, batch))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn batch(key: &str, value: &str) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(
            "ks",
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
        batch
    }

    fn open(dir: &Path) -> (Log, Vec<WriteBatch>) {
        let (log, logged) = Log::open(dir, "log").unwrap();
        let seqs: Vec<u64> = logged.iter().map(|(seq, _)| *seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "replayed in commit order: {seqs:?}"
        );
        (log, logged.into_iter().map(|(_, batch)| batch).collect())
    }

    fn next() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(1);
        SEQ.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn a_fresh_log_is_empty_until_started() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, batches) = open(dir.path());
        assert!(batches.is_empty());
        assert!(
            log.append(next(), &batch("a", "1")).is_err(),
            "no generation yet"
        );
        log.reset().unwrap();
        log.append(next(), &batch("a", "1")).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(open(dir.path()).1, vec![batch("a", "1")]);
    }

    #[test]
    fn a_torn_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.reset().unwrap();
        for i in 0..3 {
            log.append(next(), &batch(&format!("k{i}"), "v")).unwrap();
        }
        log.sync().unwrap();
        // A record header promising 100 bytes, and only some of them, where the next record goes.
        let segment = &mut log.segments[log.active];
        let at = segment.position;
        segment.file.seek(SeekFrom::Start(at)).unwrap();
        segment
            .file
            .write_all(&[0, 0, 0, 100, 1, 2, 3, 4, 9, 9, 9])
            .unwrap();
        drop(log);
        let (_, batches) = open(dir.path());
        assert_eq!(batches.len(), 3);
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.reset().unwrap();
        log.append(next(), &batch("a", "1")).unwrap();
        let second = log.segments[log.active].position;
        log.append(next(), &batch("b", "2")).unwrap();
        log.append(next(), &batch("c", "3")).unwrap();
        log.sync().unwrap();
        let segment = &mut log.segments[log.active];
        segment
            .file
            .seek(SeekFrom::Start(second + RECORD_HEADER as u64 + 2))
            .unwrap();
        segment.file.write_all(&[0xEE]).unwrap();
        drop(log);
        assert_eq!(open(dir.path()).1, vec![batch("a", "1")]);
    }

    #[test]
    fn records_of_an_earlier_generation_are_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.reset().unwrap();
        log.append(next(), &batch("old-long-key-one", "x".repeat(50).as_str()))
            .unwrap();
        log.append(next(), &batch("old-long-key-two", "y".repeat(50).as_str()))
            .unwrap();
        log.sync().unwrap();
        log.reset().unwrap();
        log.append(next(), &batch("n", "1")).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(open(dir.path()).1, vec![batch("n", "1")]);
    }

    #[test]
    fn both_segments_replay_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.reset().unwrap();
        log.append(next(), &batch("a", "1")).unwrap();
        let left = log.switch().unwrap();
        assert_eq!(log.inactive_generation(), Some(left));
        log.append(next(), &batch("a", "2")).unwrap();
        log.sync().unwrap();
        drop(log);
        let (mut log, batches) = open(dir.path());
        assert_eq!(batches, vec![batch("a", "1"), batch("a", "2")]);
        // Switching back reuses the first segment under a newer generation.
        log.switch().unwrap();
        log.append(next(), &batch("a", "3")).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(open(dir.path()).1, vec![batch("a", "2"), batch("a", "3")]);
    }
}
