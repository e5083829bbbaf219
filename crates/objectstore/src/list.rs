//! ListObjectsV2, ListObjectVersions and ListMultipartUploads.

use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use cloudlet_core::engine::prefix_successor;
use cloudlet_core::keys::TupleReader;
use cloudlet_core::{Direction, KeyRange, ReadView};

use crate::error::{Error, Result};
use crate::record::{
    KS_HISTORY, KS_OBJECTS, KS_UPLOADS, UploadRecord, decode, decode_object, history_prefix,
    key_prefix, load_bucket, object_key,
};
use crate::service::{ObjectService, decode_object_key};
use crate::types::{
    ListMultipartUploads, ListMultipartUploadsOutput, ListObjectVersions, ListObjectVersionsOutput,
    ListObjects, ListObjectsOutput, ObjectSummary, ObjectVersion, UploadInfo,
};

/// The most entries of one page.
pub const MAX_KEYS: usize = 1000;

/// Where a listing resumes: after a key, or after every key under a common prefix.
enum After {
    Key(String),
    Prefix(String),
}

impl After {
    fn token(&self) -> String {
        let raw = match self {
            Self::Key(k) => format!("k{k}"),
            Self::Prefix(p) => format!("p{p}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn parse(token: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "ContinuationToken",
                "The continuation token provided is incorrect",
            )
        };
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        match text.split_at_checked(1) {
            Some(("k", key)) => Ok(Self::Key(key.to_owned())),
            Some(("p", prefix)) => Ok(Self::Prefix(prefix.to_owned())),
            _ => Err(bad()),
        }
    }

    fn lower_bound(&self, bucket: &str) -> Bound<Vec<u8>> {
        match self {
            Self::Key(k) => Bound::Excluded(object_key(bucket, k).to_vec()),
            Self::Prefix(p) => match prefix_successor(&key_prefix(bucket, p)) {
                Some(next) => Bound::Included(next),
                None => Bound::Excluded(key_prefix(bucket, p).to_vec()),
            },
        }
    }
}

fn range(lower: Bound<Vec<u8>>, upper: &Option<Vec<u8>>) -> KeyRange {
    let upper = match upper {
        Some(u) => Bound::Excluded(u.clone()),
        None => Bound::Unbounded,
    };
    KeyRange::new((lower, upper))
}

/// The common prefix `key` rolls up to, if the delimiter occurs after the prefix.
fn common_prefix<'a>(key: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|at| &key[..prefix.len() + at + delimiter.len()])
}

impl ObjectService {
    pub(crate) fn list_objects_impl(&self, request: &ListObjects) -> Result<ListObjectsOutput> {
        let snapshot = self.store.snapshot()?;
        load_bucket(&snapshot, &request.bucket)?;
        let max = request.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS);
        if max == 0 {
            return Ok(Default::default());
        }
        let prefix = request.prefix.as_deref().unwrap_or("");
        let delimiter = request.delimiter.as_deref();
        let bucket = request.bucket.as_str();
        let start = key_prefix(bucket, prefix);
        let upper = prefix_successor(&start);
        let mut lower = Bound::Included(start.to_vec());
        let after = match (&request.continuation_token, &request.start_after) {
            (Some(token), _) => Some(After::parse(token)?),
            (None, Some(key)) if !key.is_empty() => Some(After::Key(key.clone())),
            _ => None,
        };
        if let Some(after) = &after {
            let bound = after.lower_bound(bucket);
            if bound_after(&bound, &lower) {
                lower = bound;
            }
        }
        let mut out = ListObjectsOutput::default();
        let mut last: Option<After> = None;
        'scan: loop {
            for entry in snapshot.range(
                KS_OBJECTS,
                &range(lower.clone(), &upper),
                Direction::Forward,
            )? {
                let (raw_key, raw) = entry?;
                let key = decode_object_key(&raw_key)?;
                if let Some(cp) = common_prefix(&key, prefix, delimiter) {
                    let cp = cp.to_owned();
                    let resume = After::Prefix(cp.clone());
                    // A prefix under which every key is a delete marker lists nothing.
                    if !has_live_key(&snapshot, &raw_key, &resume.lower_bound(bucket))? {
                        lower = resume.lower_bound(bucket);
                        continue 'scan;
                    }
                    if out.key_count == max {
                        out.is_truncated = true;
                        break 'scan;
                    }
                    out.common_prefixes.push(cp);
                    out.key_count += 1;
                    lower = resume.lower_bound(bucket);
                    last = Some(resume);
                    continue 'scan;
                }
                let record = decode_object(KS_OBJECTS, raw)?;
                if record.delete_marker {
                    continue;
                }
                if out.key_count == max {
                    out.is_truncated = true;
                    break 'scan;
                }
                out.contents.push(ObjectSummary {
                    key: key.clone(),
                    last_modified: record.last_modified,
                    etag: record.etag,
                    size: record.size,
                });
                out.key_count += 1;
                last = Some(After::Key(key));
            }
            break;
        }
        if out.is_truncated {
            out.next_continuation_token = last.map(|l| l.token());
        }
        Ok(out)
    }

    pub(crate) fn list_versions_impl(
        &self,
        request: &ListObjectVersions,
    ) -> Result<ListObjectVersionsOutput> {
        let snapshot = self.store.snapshot()?;
        load_bucket(&snapshot, &request.bucket)?;
        let max = request.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS);
        if max == 0 {
            return Ok(Default::default());
        }
        let prefix = request.prefix.as_deref().unwrap_or("");
        let delimiter = request.delimiter.as_deref();
        let bucket = request.bucket.as_str();
        let start = key_prefix(bucket, prefix);
        let upper = prefix_successor(&start);
        let mut lower = Bound::Included(start.to_vec());
        if request.version_id_marker.is_some()
            && request.key_marker.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::invalid(
                "VersionIdMarker",
                "A version-id marker cannot be specified without a key marker.",
            ));
        }
        let key_marker = request.key_marker.as_deref().filter(|m| !m.is_empty());
        if let Some(marker) = key_marker {
            let past = Bound::Excluded(object_key(bucket, marker).to_vec());
            let inside = request.version_id_marker.is_some();
            resume_after(
                &mut lower,
                (bucket, prefix, delimiter),
                marker,
                inside,
                past,
            );
        }
        let mut out = ListObjectVersionsOutput::default();
        let mut count = 0;
        let skip_until = request.version_id_marker.clone();
        let full = |out: &mut ListObjectVersionsOutput, count: usize| {
            if count == max {
                out.is_truncated = true;
                true
            } else {
                false
            }
        };
        'scan: loop {
            for entry in snapshot.range(
                KS_OBJECTS,
                &range(lower.clone(), &upper),
                Direction::Forward,
            )? {
                let (raw_key, raw) = entry?;
                let key = decode_object_key(&raw_key)?;
                if let Some(cp) = common_prefix(&key, prefix, delimiter) {
                    if full(&mut out, count) {
                        break 'scan;
                    }
                    out.common_prefixes.push(cp.to_owned());
                    out.next_key_marker = Some(cp.to_owned());
                    out.next_version_id_marker = None;
                    count += 1;
                    lower = After::Prefix(cp.to_owned()).lower_bound(bucket);
                    continue 'scan;
                }
                let head = decode_object(KS_OBJECTS, raw)?;
                let mut versions = vec![(head, true)];
                for h in snapshot.prefix(
                    KS_HISTORY,
                    &history_prefix(bucket, &key),
                    Direction::Forward,
                )? {
                    let (_, raw) = h?;
                    versions.push((decode_object(KS_HISTORY, raw)?, false));
                }
                // The version-id marker applies to the key marker only: versions of that key
                // up to and including it were listed already.
                let marker_seq = match (&skip_until, key_marker) {
                    (Some(marker), Some(k)) if k == key => versions
                        .iter()
                        .find(|(r, _)| r.version_label() == *marker)
                        .map(|(r, _)| r.seq),
                    _ => None,
                };
                for (record, is_latest) in versions {
                    let label = record.version_label();
                    if let Some(seq) = marker_seq
                        && record.seq >= seq
                    {
                        continue;
                    }
                    if full(&mut out, count) {
                        break 'scan;
                    }
                    out.next_key_marker = Some(key.clone());
                    out.next_version_id_marker = Some(label.clone());
                    out.versions.push(ObjectVersion {
                        key: key.clone(),
                        version_id: label,
                        is_latest,
                        delete_marker: record.delete_marker,
                        last_modified: record.last_modified,
                        etag: record.etag,
                        size: record.size,
                    });
                    count += 1;
                }
            }
            break;
        }
        if !out.is_truncated {
            out.next_key_marker = None;
            out.next_version_id_marker = None;
        }
        Ok(out)
    }

    pub(crate) fn list_uploads_impl(
        &self,
        request: &ListMultipartUploads,
    ) -> Result<ListMultipartUploadsOutput> {
        let snapshot = self.store.snapshot()?;
        let bucket = request.bucket.as_str();
        load_bucket(&snapshot, bucket)?;
        let max = request.max_uploads.unwrap_or(MAX_KEYS).min(MAX_KEYS);
        if max == 0 {
            return Ok(Default::default());
        }
        let prefix = request.prefix.as_deref().unwrap_or("");
        let delimiter = request.delimiter.as_deref();
        let start = key_prefix(bucket, prefix);
        let upper = prefix_successor(&start);
        let mut lower = Bound::Included(start.to_vec());
        let key_marker = request.key_marker.as_deref().filter(|m| !m.is_empty());
        // Without a key marker S3 ignores the upload-id marker.
        let upload_marker = key_marker.and(request.upload_id_marker.as_deref());
        if let Some(marker) = key_marker {
            // Past every upload of the marker key.
            let past = match prefix_successor(&object_key(bucket, marker)) {
                Some(next) => Bound::Included(next),
                None => Bound::Excluded(object_key(bucket, marker).to_vec()),
            };
            let inside = upload_marker.is_some();
            resume_after(
                &mut lower,
                (bucket, prefix, delimiter),
                marker,
                inside,
                past,
            );
        }
        let mut out = ListMultipartUploadsOutput::default();
        let mut count = 0;
        // One key's uploads at a time, ordered by initiation.
        let mut group: Vec<UploadInfo> = Vec::new();
        let flush = |group: &mut Vec<UploadInfo>,
                     out: &mut ListMultipartUploadsOutput,
                     count: &mut usize|
         -> bool {
            group.sort_by(|a, b| {
                a.initiated
                    .cmp(&b.initiated)
                    .then(a.upload_id.cmp(&b.upload_id))
            });
            let mut uploads = std::mem::take(group).into_iter();
            // The upload-id marker applies to the key marker only: its uploads up to and
            // including the marked one were listed already.
            let first = uploads.as_slice().first().map(|u| u.key.clone());
            if let (Some(marker), Some(key)) = (upload_marker, first)
                && key_marker == Some(key.as_str())
            {
                let rest: Vec<UploadInfo> = uploads.collect();
                let skip = rest
                    .iter()
                    .position(|u| u.upload_id == marker)
                    .map_or(0, |i| i + 1);
                uploads = rest.into_iter().skip(skip).collect::<Vec<_>>().into_iter();
            }
            for upload in uploads {
                if *count == max {
                    out.is_truncated = true;
                    return true;
                }
                out.next_key_marker = Some(upload.key.clone());
                out.next_upload_id_marker = Some(upload.upload_id.clone());
                out.uploads.push(upload);
                *count += 1;
            }
            false
        };
        'scan: loop {
            for entry in snapshot.range(
                KS_UPLOADS,
                &range(lower.clone(), &upper),
                Direction::Forward,
            )? {
                let (raw_key, raw) = entry?;
                let mut reader = TupleReader::new(&raw_key);
                reader.str()?;
                let key = reader.str()?;
                let upload_id = reader.str()?;
                if group.first().is_some_and(|u| u.key != key)
                    && flush(&mut group, &mut out, &mut count)
                {
                    break 'scan;
                }
                if let Some(cp) = common_prefix(&key, prefix, delimiter) {
                    if count == max {
                        out.is_truncated = true;
                        break 'scan;
                    }
                    out.common_prefixes.push(cp.to_owned());
                    out.next_key_marker = Some(cp.to_owned());
                    out.next_upload_id_marker = None;
                    count += 1;
                    lower = After::Prefix(cp.to_owned()).lower_bound(bucket);
                    continue 'scan;
                }
                let record: UploadRecord = decode(KS_UPLOADS, &raw)?;
                group.push(UploadInfo {
                    key,
                    upload_id,
                    initiated: record.initiated,
                });
            }
            flush(&mut group, &mut out, &mut count);
            break;
        }
        if !out.is_truncated {
            out.next_key_marker = None;
            out.next_upload_id_marker = None;
        }
        Ok(out)
    }
}

/// Whether a key from `from` (inclusive) up to `end` (the start of what follows a common
/// prefix) is a live object rather than a delete marker.
fn has_live_key(view: &impl ReadView, from: &[u8], end: &Bound<Vec<u8>>) -> Result<bool> {
    let upper = match end {
        Bound::Included(k) => Bound::Excluded(k.clone()),
        Bound::Excluded(k) => Bound::Included(k.clone()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let range = KeyRange::new((Bound::Included(from.to_vec()), upper));
    for entry in view.range(KS_OBJECTS, &range, Direction::Forward)? {
        let (_, raw) = entry?;
        let record = decode_object(KS_OBJECTS, raw)?;
        if !record.delete_marker {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Moves `lower` to where a listing resumes after a key marker: past all of a rolled-up
/// prefix the last page ended on; at the marker key when a second marker (a version or an
/// upload id) continues inside it; otherwise at `past` (just after the key's rows).
fn resume_after(
    lower: &mut Bound<Vec<u8>>,
    (bucket, prefix, delimiter): (&str, &str, Option<&str>),
    marker: &str,
    inside: bool,
    past: Bound<Vec<u8>>,
) {
    let bound = if common_prefix(marker, prefix, delimiter) == Some(marker) {
        After::Prefix(marker.to_owned()).lower_bound(bucket)
    } else if inside {
        Bound::Included(object_key(bucket, marker).to_vec())
    } else {
        past
    };
    if bound_after(&bound, lower) {
        *lower = bound;
    }
}

/// Whether `candidate` starts a range later than `current` does.
fn bound_after(candidate: &Bound<Vec<u8>>, current: &Bound<Vec<u8>>) -> bool {
    let key = |b: &Bound<Vec<u8>>| match b {
        Bound::Included(k) => (Bytes::from(k.clone()), 0),
        Bound::Excluded(k) => (Bytes::from(k.clone()), 1),
        Bound::Unbounded => (Bytes::new(), 0),
    };
    key(candidate) > key(current)
}
