//! How records are stored: one engine row per shard per put, holding that put's records for
//! the shard. A put of 500 records over 4 shards writes 4 rows, not 500; a row is read with
//! zero-copy slices of one buffer.
//!
//! A row's key is (stream id, shard index, first sequence); its value:
//!
//! ```text
//! arrival  u64  milliseconds: every record of one put arrives at the same time
//! last     u64  the last record's sequence
//! count    u32
//! count x  { delta u32 (sequence - first), key length u16, key, data length u32, data }
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use cloudlet_core::Timestamp;
use cloudlet_core::keys::{Tuple, TupleReader};

use crate::error::{Error, Result};

/// (stream id, shard index, first sequence) → a batch of records.
pub(crate) const KS_BATCHES: &str = "kinesis.batches";

const HEADER: usize = 8 + 8 + 4;

pub(crate) fn batch_key(stream: u64, shard: u64, first: u64) -> Bytes {
    Tuple::new().u64(stream).u64(shard).u64(first).build()
}

/// The first sequence of the batch under `key`.
pub(crate) fn batch_first(key: &[u8]) -> Result<u64> {
    let mut reader = TupleReader::new(key);
    reader.u64()?;
    reader.u64()?;
    Ok(reader.u64()?)
}

/// One record of a batch being written: its sequence, partition key and data.
pub(crate) struct Entry<'a> {
    pub(crate) n: u64,
    pub(crate) partition_key: &'a str,
    pub(crate) data: &'a [u8],
}

/// Encodes a non-empty batch whose entries are in sequence order.
pub(crate) fn encode(arrival: Timestamp, entries: &[Entry<'_>]) -> Bytes {
    let first = entries.first().map_or(0, |e| e.n);
    let last = entries.last().map_or(0, |e| e.n);
    let size: usize = entries
        .iter()
        .map(|e| 10 + e.partition_key.len() + e.data.len())
        .sum();
    let mut out = BytesMut::with_capacity(HEADER + size);
    out.put_u64(arrival.as_millis());
    out.put_u64(last);
    out.put_u32(entries.len() as u32);
    for entry in entries {
        // A put holds at most 500 records, so the delta is small.
        out.put_u32((entry.n - first) as u32);
        out.put_u16(entry.partition_key.len() as u16);
        out.put_slice(entry.partition_key.as_bytes());
        out.put_u32(entry.data.len() as u32);
        out.put_slice(entry.data);
    }
    out.freeze()
}

/// A stored batch, decoded lazily.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) first: u64,
    pub(crate) arrival: Timestamp,
    pub(crate) last: u64,
    count: u32,
    body: Bytes,
}

/// One record read from a batch.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) n: u64,
    pub(crate) partition_key: String,
    pub(crate) data: Bytes,
}

fn corrupt(reason: &str) -> Error {
    Error::corrupt(KS_BATCHES, reason)
}

impl Batch {
    /// The batch stored under `key` as `raw`.
    pub(crate) fn decode(key: &[u8], mut raw: Bytes) -> Result<Self> {
        if raw.len() < HEADER {
            return Err(corrupt("short batch header"));
        }
        let arrival = Timestamp::from_millis(raw.get_u64());
        let last = raw.get_u64();
        let count = raw.get_u32();
        let first = batch_first(key)?;
        if last < first {
            return Err(corrupt("a batch ends before it starts"));
        }
        Ok(Self {
            first,
            arrival,
            last,
            count,
            body: raw,
        })
    }

    /// The arrival time alone, without decoding the rest.
    pub(crate) fn arrival_of(raw: &[u8]) -> Result<Timestamp> {
        let millis = raw
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("short batch header"))?;
        Ok(Timestamp::from_millis(millis))
    }

    /// The batch's records in sequence order, from sequence `from` on.
    pub(crate) fn records(self, from: u64) -> impl Iterator<Item = Result<Stored>> {
        let Self {
            first,
            count,
            mut body,
            ..
        } = self;
        let mut left = count;
        std::iter::from_fn(move || {
            while left > 0 {
                left -= 1;
                let record = (|| {
                    if body.remaining() < 6 {
                        return Err(corrupt("short record header"));
                    }
                    let n = first
                        .checked_add(u64::from(body.get_u32()))
                        .ok_or_else(|| corrupt("a record's sequence overflows"))?;
                    let key_len = usize::from(body.get_u16());
                    if body.remaining() < key_len + 4 {
                        return Err(corrupt("short partition key"));
                    }
                    let key = body.split_to(key_len);
                    let data_len = body.get_u32() as usize;
                    if body.remaining() < data_len {
                        return Err(corrupt("short record data"));
                    }
                    let data = body.split_to(data_len);
                    Ok((n, key, data))
                })();
                match record {
                    Err(e) => {
                        left = 0;
                        return Some(Err(e));
                    }
                    Ok((n, _, _)) if n < from => {}
                    Ok((n, key, data)) => {
                        return Some(match String::from_utf8(key.to_vec()) {
                            Ok(partition_key) => Ok(Stored {
                                n,
                                partition_key,
                                data,
                            }),
                            Err(e) => {
                                left = 0;
                                Err(Error::corrupt(KS_BATCHES, e))
                            }
                        });
                    }
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_from_any_sequence() {
        let entries = [
            Entry {
                n: 10,
                partition_key: "a",
                data: b"one",
            },
            Entry {
                n: 13,
                partition_key: "bb",
                data: b"",
            },
            Entry {
                n: 20,
                partition_key: "c",
                data: b"three",
            },
        ];
        let raw = encode(Timestamp::from_millis(7), &entries);
        let key = batch_key(1, 2, 10);
        let read = |from| -> Vec<(u64, String, Vec<u8>)> {
            Batch::decode(&key, raw.clone())
                .unwrap()
                .records(from)
                .map(|r| {
                    let r = r.unwrap();
                    (r.n, r.partition_key, r.data.to_vec())
                })
                .collect()
        };
        assert_eq!(read(0).len(), 3);
        assert_eq!(read(11)[0].0, 13);
        assert_eq!(read(13)[0], (13, "bb".to_owned(), Vec::new()));
        assert_eq!(read(20), vec![(20, "c".to_owned(), b"three".to_vec())]);
        assert!(read(21).is_empty());
        let batch = Batch::decode(&key, raw.clone()).unwrap();
        assert_eq!((batch.first, batch.last), (10, 20));
        assert_eq!(batch.arrival, Timestamp::from_millis(7));
        assert_eq!(Batch::arrival_of(&raw).unwrap(), Timestamp::from_millis(7));
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let raw = encode(
            Timestamp::from_millis(1),
            &[Entry {
                n: 1,
                partition_key: "k",
                data: b"data",
            }],
        );
        let key = batch_key(1, 1, 1);
        for cut in 0..raw.len() {
            let short = raw.slice(..cut);
            match Batch::decode(&key, short) {
                Err(_) => assert!(cut < HEADER),
                Ok(batch) => {
                    let results: Vec<_> = batch.records(0).collect();
                    assert!(results.iter().any(Result::is_err), "cut at {cut}");
                }
            }
        }
    }
}
