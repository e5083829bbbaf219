//! Multipart uploads: parts are stored as they arrive and stay invisible; completing makes
//! them, without copying a byte, the segments of the new object.

use cloudlet_core::{Direction, KeyRange, ReadView};
use md5::{Digest, Md5};

use crate::body::Body;
use crate::data::{hex, new_id};
use crate::error::{Error, Result};
use crate::names::{validate_key, validate_metadata, validate_tags};
use crate::record::{
    KS_PARTS, KS_UPLOADS, PartRecord, UploadRecord, decode, encode, load_bucket, part_key,
    part_prefix, upload_key,
};
use crate::service::{Freed, MAX_PUT_BYTES, NewObject, ObjectService, free_segment};
use crate::types::{
    CompletedPart, CreateMultipartUpload, ListPartsOutput, PartInfo, PutObjectOutput,
    WriteConditions,
};

/// The highest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

fn load_upload(
    view: &impl ReadView,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<UploadRecord> {
    load_bucket(view, bucket)?;
    let raw = view
        .get(KS_UPLOADS, &upload_key(bucket, key, upload_id))?
        .ok_or_else(|| Error::NoSuchUpload {
            upload_id: upload_id.to_owned(),
        })?;
    decode(KS_UPLOADS, &raw)
}

fn parts(view: &impl ReadView, upload_id: &str) -> Result<Vec<(u32, PartRecord)>> {
    let mut out = Vec::new();
    for entry in view.range(
        KS_PARTS,
        &KeyRange::prefix(part_prefix(upload_id)),
        Direction::Forward,
    )? {
        let (key, raw) = entry?;
        let mut reader = cloudlet_core::keys::TupleReader::new(&key);
        reader.str()?;
        let number =
            u32::try_from(reader.u64()?).map_err(|_| Error::corrupt(KS_PARTS, "part number"))?;
        out.push((number, decode(KS_PARTS, &raw)?));
    }
    Ok(out)
}

/// Removes an upload and its parts inside `txn`; the parts in `keep` become an object's and
/// are not freed.
pub(crate) fn remove_upload(
    txn: &mut cloudlet_core::WriteTxn<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    keep: &[u32],
    freed: &mut Freed,
) -> Result<()> {
    for (number, part) in parts(txn, upload_id)? {
        txn.delete(KS_PARTS, part_key(upload_id, number));
        if !keep.contains(&number) {
            free_segment(txn, &part.segment, freed);
        }
    }
    txn.delete(KS_UPLOADS, upload_key(bucket, key, upload_id));
    Ok(())
}

fn md5_of_etag(etag: &str) -> Option<[u8; 16]> {
    let hex_digits = etag.trim_matches('"');
    if hex_digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex_digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ObjectService {
    pub(crate) async fn create_upload_impl(
        &self,
        request: CreateMultipartUpload,
    ) -> Result<String> {
        validate_key(&request.key)?;
        validate_metadata(&request.metadata)?;
        validate_tags(&request.tags)?;
        let upload_id = new_id();
        let record = UploadRecord {
            initiated: self.now(),
            headers: request.headers,
            metadata: request.metadata,
            tags: request.tags,
        };
        let id = upload_id.clone();
        self.commit(move |txn| {
            load_bucket(txn, &request.bucket)?;
            txn.put(
                KS_UPLOADS,
                upload_key(&request.bucket, &request.key, &id),
                encode(&record),
            );
            Ok(((), Vec::new()))
        })
        .await?;
        Ok(upload_id)
    }

    pub(crate) async fn upload_part_impl(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Body,
    ) -> Result<String> {
        validate_key(key)?;
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::invalid(
                "partNumber",
                "Part number must be an integer between 1 and 10000, inclusive",
            ));
        }
        load_upload(&self.store.snapshot()?, bucket, key, upload_id)?;
        // Parts never live in a record: they become segments of the object.
        let staged = self.data.stage(body, MAX_PUT_BYTES, false).await?;
        let etag = staged.etag();
        let record = PartRecord {
            etag: etag.clone(),
            last_modified: self.now(),
            segment: staged.segment.clone(),
        };
        let (bucket, key, upload_id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.commit(move |txn| {
            load_upload(txn, &bucket, &key, &upload_id)?;
            let mut freed = Vec::new();
            let pk = part_key(&upload_id, part_number);
            if let Some(raw) = txn.get(KS_PARTS, &pk)? {
                let old: PartRecord = decode(KS_PARTS, &raw)?;
                free_segment(txn, &old.segment, &mut freed);
            }
            txn.put(KS_PARTS, pk, encode(&record));
            staged.write_into(txn);
            txn.on_commit(move || staged.keep());
            Ok(((), freed))
        })
        .await?;
        Ok(etag)
    }

    pub(crate) fn list_parts_impl(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        max_parts: Option<usize>,
        part_number_marker: Option<u32>,
    ) -> Result<ListPartsOutput> {
        let snapshot = self.store.snapshot()?;
        load_upload(&snapshot, bucket, key, upload_id)?;
        let max = max_parts.unwrap_or(1000).min(1000);
        let marker = part_number_marker.unwrap_or(0);
        let mut out = ListPartsOutput::default();
        for (number, part) in parts(&snapshot, upload_id)? {
            if number <= marker {
                continue;
            }
            if out.parts.len() == max {
                out.is_truncated = true;
                break;
            }
            out.next_part_number_marker = Some(number);
            out.parts.push(PartInfo {
                part_number: number,
                etag: part.etag,
                size: part.segment.size,
                last_modified: part.last_modified,
            });
        }
        if !out.is_truncated {
            out.next_part_number_marker = None;
        }
        Ok(out)
    }

    pub(crate) async fn complete_upload_impl(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completed: Vec<CompletedPart>,
        conditions: WriteConditions,
    ) -> Result<PutObjectOutput> {
        validate_key(key)?;
        if completed.is_empty() {
            return Err(Error::MalformedXml {
                reason: "CompleteMultipartUpload needs at least one part".into(),
            });
        }
        if completed
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(Error::InvalidPartOrder);
        }
        let (bucket, key, upload_id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        let min_part = self.min_part_size;
        let now = self.now();
        let this = self.clone();
        self.commit(move |txn| {
            let upload = load_upload(txn, &bucket, &key, &upload_id)?;
            let stored: std::collections::HashMap<u32, PartRecord> =
                parts(txn, &upload_id)?.into_iter().collect();
            let mut segments = Vec::with_capacity(completed.len());
            let mut digests = Md5::new();
            let mut size = 0;
            let mut chosen = Vec::with_capacity(completed.len());
            for want in &completed {
                let part = stored
                    .get(&want.part_number)
                    .filter(|p| p.etag.trim_matches('"') == want.etag.trim_matches('"'))
                    .ok_or(Error::InvalidPart {
                        part_number: want.part_number,
                    })?;
                chosen.push((want.part_number, part));
            }
            for (i, (number, part)) in chosen.iter().enumerate() {
                if i + 1 < chosen.len() && part.segment.size < min_part {
                    return Err(Error::EntityTooSmall {
                        part_number: *number,
                        size: part.segment.size,
                        minimum: min_part,
                    });
                }
                let digest =
                    md5_of_etag(&part.etag).ok_or_else(|| Error::corrupt(KS_PARTS, "part etag"))?;
                digests.update(digest);
                size += part.segment.size;
                segments.push(part.segment.clone());
            }
            let etag = format!("\"{}-{}\"", hex(&digests.finalize()), completed.len());
            let new = NewObject {
                size,
                etag,
                segments,
                parts: Some(completed.len() as u32),
                headers: upload.headers,
                metadata: upload.metadata,
                tags: upload.tags,
                inline: None,
            };
            let mut freed = Vec::new();
            let out = this.install(
                txn,
                &bucket,
                &key,
                new,
                &conditions,
                "ObjectCreated:CompleteMultipartUpload",
                now,
                &mut freed,
            )?;
            let keep: Vec<u32> = completed.iter().map(|p| p.part_number).collect();
            remove_upload(txn, &bucket, &key, &upload_id, &keep, &mut freed)?;
            Ok((out, freed))
        })
        .await
    }

    pub(crate) async fn abort_upload_impl(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        validate_key(key)?;
        let (bucket, key, upload_id) = (bucket.to_owned(), key.to_owned(), upload_id.to_owned());
        self.commit(move |txn| {
            load_upload(txn, &bucket, &key, &upload_id)?;
            let mut freed = Vec::new();
            remove_upload(txn, &bucket, &key, &upload_id, &[], &mut freed)?;
            Ok(((), freed))
        })
        .await
    }
}
