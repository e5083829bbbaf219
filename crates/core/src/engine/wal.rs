//! A write-ahead log of commits, in front of the durable engine.
//!
//! A durable commit costs one write and one `fdatasync` of this file instead of a full B-tree
//! commit, and the B-tree takes the batch without syncing. Every commit is logged, eventual
//! ones unsynced, so the log is always a prefix-closed history: a sync makes every earlier
//! commit durable. At open, complete records are replayed; a torn tail (a crash mid-write)
//! fails its checksum and ends the log, which only ever loses unacknowledged commits.
//!
//! The file is reused rather than truncated: after a checkpoint the next generation of records
//! overwrites the old one from the start. Overwriting blocks that already exist lets
//! `fdatasync` skip the file-size and block-allocation metadata an append would have to
//! journal, which halves its latency here. Each record's checksum covers the generation, so a
//! stale record of an earlier generation never passes for a live one.
//!
//! Layout: a header block (`magic | generation: u64 | crc32`), then records from
//! [`RECORDS_START`]: `len: u32 | crc32(generation, payload): u32 | payload`, the payload an
//! encoded [`WriteBatch`]. A zero length ends the log.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WriteBatch;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CLWAL\x00\x00\x01";
const HEADER_LEN: usize = 20;
const RECORDS_START: u64 = 4096;
const RECORD_HEADER: usize = 8;
/// Larger records than this are corruption, not data.
const MAX_RECORD: u32 = 1 << 30;
/// The file grows in steps of this much, so most writes land inside it.
const GROWTH: u64 = 4 << 20;

pub(super) struct Wal {
    file: File,
    path: PathBuf,
    generation: u64,
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

impl Wal {
    /// Opens (or creates) the log at `path` and returns it with the batches it holds, in
    /// order.
    pub(super) fn open(path: &Path) -> Result<(Self, Vec<WriteBatch>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::storage)?;
        let mut raw = [0u8; HEADER_LEN];
        let existing = file
            .read_exact(&mut raw)
            .ok()
            .and_then(|()| parse_header(&raw));
        let mut wal = Self {
            file,
            path: path.to_owned(),
            generation: 0,
            position: RECORDS_START,
            capacity: 0,
            unsynced: false,
        };
        let batches = match existing {
            Some(generation) => {
                wal.generation = generation;
                let (batches, end) = wal.read_records()?;
                wal.position = end;
                if batches.is_empty() {
                    // Whatever lies past the end (a torn record) must never be read as part of
                    // the records written next: they go into a new generation.
                    wal.start_generation(generation + 1)?;
                }
                batches
            }
            None => {
                // New, or a header torn while starting a generation: everything before that
                // was checkpointed, so start afresh.
                wal.file.set_len(0).map_err(Error::storage)?;
                wal.start_generation(1)?;
                if let Some(dir) = path.parent() {
                    File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(Error::storage)?;
                }
                Vec::new()
            }
        };
        wal.capacity = wal.file.metadata().map_err(Error::storage)?.len();
        Ok((wal, batches))
    }

    fn start_generation(&mut self, generation: u64) -> Result<()> {
        self.file.seek(SeekFrom::Start(0)).map_err(Error::storage)?;
        self.file
            .write_all(&header(generation))
            .map_err(Error::storage)?;
        self.file.sync_all().map_err(Error::storage)?;
        self.generation = generation;
        self.position = RECORDS_START;
        self.unsynced = false;
        Ok(())
    }

    /// Reads this generation's records; returns them and the offset after the last one.
    fn read_records(&mut self) -> Result<(Vec<WriteBatch>, u64)> {
        self.file
            .seek(SeekFrom::Start(RECORDS_START))
            .map_err(Error::storage)?;
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
            if len == 0 || len > MAX_RECORD {
                break;
            }
            let mut payload = vec![0u8; len as usize];
            if reader.read_exact(&mut payload).is_err()
                || checksum(self.generation, &payload) != crc
            {
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
    pub(super) fn append(&mut self, batch: &WriteBatch) -> Result<()> {
        let mut record = BytesMut::with_capacity(RECORD_HEADER + 64);
        record.put_u64(0); // header, filled in below
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
        let crc = checksum(self.generation, &record[RECORD_HEADER..]);
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

    /// The file, for syncing from another thread while the caller works.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Whether records were written since the last sync.
    pub(super) fn is_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Records that a sync of [`file`](Self::file) succeeded.
    pub(super) fn mark_synced(&mut self) {
        self.unsynced = false;
    }

    /// Bytes of records in this generation.
    pub(super) fn len(&self) -> u64 {
        self.position - RECORDS_START
    }

    /// Starts a new, empty generation, once everything in the log is durable elsewhere.
    pub(super) fn reset(&mut self) -> Result<()> {
        self.start_generation(self.generation + 1)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
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

fn decode(mut data: Bytes) -> Option<WriteBatch> {
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
    (!data.has_remaining()).then_some(batch)
}
