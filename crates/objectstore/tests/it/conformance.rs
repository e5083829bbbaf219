//! The S3 conformance suite: each check runs on the memory and the redb engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{ChannelSink, Clock, DeliveryError, Message, Timestamp, sink_fn};
use cloudlet_objectstore::{
    Body, Buckets, ByteRange, CompletedPart, CopyObject, CreateMultipartUpload, Error, GetObject,
    Headers, LifecycleRule, ListMultipartUploads, ListObjectVersions, ListObjects,
    NotificationRule, ObjectIdentifier, PutObject, ReadConditions, Versioning, WriteConditions,
};
use md5::{Digest, Md5};

use crate::harness::Harness;

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            conformance!(@tests $open;
                buckets_are_created_listed_and_deleted,
                keys_are_bytes_not_paths,
                objects_are_put_read_and_deleted,
                byte_ranges_follow_http,
                conditional_reads,
                conditional_writes_change_nothing_when_they_fail,
                delete_objects_reports_per_key,
                copies_are_server_side,
                rename_is_atomic,
                list_objects_v2_pages_and_delimiters,
                multipart_uploads,
                multipart_uploads_are_listed_in_pages,
                versioning_keeps_versions_and_delete_markers,
                suspended_versioning_writes_null_versions,
                lifecycle_rules_run_on_the_clock,
                events_reach_the_sink,
                events_wait_for_their_target_across_restarts,
                failed_event_deliveries_retry_on_the_clock,
                large_bodies_stream_and_leave_no_files_behind,
                a_read_keeps_its_bytes_while_the_object_changes,
                tags_and_metadata_are_validated,
                listings_skip_delete_markers_and_end,
                restoring_a_version_by_copying_it_onto_its_key,
                lifecycle_spares_a_version_that_became_current,
                a_ranged_read_survives_a_delete_of_other_parts,
            );
        }
    };
    (@tests $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                checks::$check($open).await
            }
        )*
    };
}

conformance!(memory, Harness::memory());
conformance!(redb, Harness::redb());

fn md5_etag(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    format!(
        "\"{}\"",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

async fn read(h: &Harness, bucket: &str, key: &str) -> Result<Bytes, Error> {
    h.s3.get_object(GetObject::new(bucket, key))
        .await?
        .body
        .bytes()
        .await
}

fn json(message: &Message) -> serde_json::Value {
    serde_json::from_slice(&message.body).unwrap()
}

fn big(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

mod checks {
    use super::*;

    pub async fn buckets_are_created_listed_and_deleted(h: Harness) {
        h.s3.create_bucket("logs").await.unwrap();
        h.s3.create_bucket("assets.example").await.unwrap();
        let again = h.s3.create_bucket("logs").await.unwrap_err();
        assert_eq!(again.code(), "BucketAlreadyOwnedByYou");
        assert_eq!(again.status(), 409);
        for bad in ["Logs", "ab", "-logs", "192.168.1.1", "a..b", "xn--logs"] {
            let err = h.s3.create_bucket(bad).await.unwrap_err();
            assert_eq!(err.code(), "InvalidBucketName", "{bad}");
        }
        let names: Vec<_> =
            h.s3.list_buckets()
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.name)
                .collect();
        assert_eq!(names, ["assets.example", "logs"]);
        assert_eq!(
            h.s3.head_bucket("logs").await.unwrap().creation_date,
            h.clock.now()
        );

        h.s3.put_object(PutObject::new("logs", "a", "x"))
            .await
            .unwrap();
        let err = h.s3.delete_bucket("logs").await.unwrap_err();
        assert_eq!(err.code(), "BucketNotEmpty");
        h.s3.delete_object("logs", "a", None).await.unwrap();
        // An upload in progress also keeps a bucket.
        let upload =
            h.s3.create_multipart_upload(CreateMultipartUpload::new("logs", "big"))
                .await
                .unwrap();
        assert_eq!(
            h.s3.delete_bucket("logs").await.unwrap_err().code(),
            "BucketNotEmpty"
        );
        h.s3.abort_multipart_upload("logs", "big", &upload)
            .await
            .unwrap();
        h.s3.delete_bucket("logs").await.unwrap();
        assert_eq!(
            h.s3.head_bucket("logs").await.unwrap_err().code(),
            "NoSuchBucket"
        );
        assert_eq!(
            h.s3.delete_bucket("logs").await.unwrap_err().code(),
            "NoSuchBucket"
        );
        let err =
            h.s3.put_object(PutObject::new("logs", "a", "x"))
                .await
                .unwrap_err();
        assert_eq!(err.code(), "NoSuchBucket");
    }

    pub async fn keys_are_bytes_not_paths(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        for (key, body) in [
            ("a", "1"),
            ("a/b", "2"),
            ("a//b", "3"),
            ("dir/", "4"),
            ("é/ü", "5"),
            ("a b", "6"),
        ] {
            h.s3.put_object(PutObject::new("bkt", key, body))
                .await
                .unwrap();
        }
        for (key, body) in [
            ("a", "1"),
            ("a/b", "2"),
            ("a//b", "3"),
            ("dir/", "4"),
            ("é/ü", "5"),
        ] {
            assert_eq!(read(&h, "bkt", key).await.unwrap(), body, "{key}");
        }
        let listed: Vec<_> =
            h.s3.list_objects(ListObjects::new("bkt"))
                .await
                .unwrap()
                .contents
                .into_iter()
                .map(|o| o.key)
                .collect();
        // UTF-8 byte order.
        assert_eq!(listed, ["a", "a b", "a//b", "a/b", "dir/", "é/ü"]);
        let long = "k".repeat(1025);
        let err =
            h.s3.put_object(PutObject::new("bkt", long.as_str(), "x"))
                .await
                .unwrap_err();
        assert_eq!(err.code(), "KeyTooLongError");
        assert!(
            h.s3.put_object(PutObject::new("bkt", "k".repeat(1024), "x"))
                .await
                .is_ok()
        );
        let err =
            h.s3.put_object(PutObject::new("bkt", "", "x"))
                .await
                .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { field: "Key", .. }));
    }

    pub async fn objects_are_put_read_and_deleted(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let mut headers = Headers::default();
        headers.content_type = Some("text/plain".into());
        headers.cache_control = Some("max-age=60".into());
        let put =
            h.s3.put_object(
                PutObject::new("bkt", "hello.txt", "hello world")
                    .with_headers(headers.clone())
                    .with_metadata("owner", "ada")
                    .with_tag("team", "core"),
            )
            .await
            .unwrap();
        assert_eq!(put.etag, md5_etag(b"hello world"));
        assert_eq!(put.version_id, None);
        let got =
            h.s3.get_object(GetObject::new("bkt", "hello.txt"))
                .await
                .unwrap();
        assert_eq!(got.info.size, 11);
        assert_eq!(got.info.headers, headers);
        assert_eq!(got.info.metadata["owner"], "ada");
        assert_eq!(got.info.tag_count, 1);
        assert_eq!(got.info.last_modified, h.clock.now());
        assert_eq!(got.range, 0..11);
        assert_eq!(got.body.bytes().await.unwrap(), "hello world");
        let head =
            h.s3.head_object(GetObject::new("bkt", "hello.txt"))
                .await
                .unwrap();
        assert_eq!(head.etag, put.etag);

        // Overwrite, then delete; deleting a missing key succeeds.
        h.clock.advance(Duration::from_secs(5));
        h.s3.put_object(PutObject::new("bkt", "hello.txt", ""))
            .await
            .unwrap();
        let head =
            h.s3.head_object(GetObject::new("bkt", "hello.txt"))
                .await
                .unwrap();
        assert_eq!(
            (head.size, head.etag.as_str()),
            (0, "\"d41d8cd98f00b204e9800998ecf8427e\"")
        );
        assert!(head.metadata.is_empty());
        h.s3.delete_object("bkt", "hello.txt", None).await.unwrap();
        h.s3.delete_object("bkt", "hello.txt", None).await.unwrap();
        let err =
            h.s3.get_object(GetObject::new("bkt", "hello.txt"))
                .await
                .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoSuchKey {
                    delete_marker: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.status(), 404);
        assert_eq!(
            h.s3.head_object(GetObject::new("nope", "k"))
                .await
                .unwrap_err()
                .code(),
            "NoSuchBucket"
        );
    }

    pub async fn byte_ranges_follow_http(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_object(PutObject::new("bkt", "digits", "0123456789"))
            .await
            .unwrap();
        let get = |range| {
            h.s3.get_object(GetObject::new("bkt", "digits").with_range(range))
        };
        for (range, want, span) in [
            (ByteRange::Bounded { first: 2, last: 4 }, "234", 2..5),
            (
                ByteRange::Bounded {
                    first: 8,
                    last: 100,
                },
                "89",
                8..10,
            ),
            (ByteRange::From(7), "789", 7..10),
            (ByteRange::Suffix(3), "789", 7..10),
            (ByteRange::Suffix(50), "0123456789", 0..10),
        ] {
            let out = get(range).await.unwrap();
            assert_eq!(out.range, span);
            assert_eq!(out.info.size, 10);
            assert_eq!(out.body.bytes().await.unwrap(), want, "{range:?}");
        }
        for range in [
            ByteRange::From(10),
            ByteRange::Bounded {
                first: 10,
                last: 12,
            },
            ByteRange::Suffix(0),
        ] {
            let err = get(range).await.unwrap_err();
            assert!(
                matches!(err, Error::InvalidRange { size: 10 }),
                "{range:?}: {err:?}"
            );
            assert_eq!(err.status(), 416);
        }
        assert_eq!(
            ByteRange::parse("bytes=0-9").unwrap(),
            ByteRange::Bounded { first: 0, last: 9 }
        );
        assert_eq!(ByteRange::parse("bytes=5-").unwrap(), ByteRange::From(5));
        assert_eq!(ByteRange::parse("bytes=-5").unwrap(), ByteRange::Suffix(5));
        // Headers S3 ignores, serving the whole object.
        for ignored in ["bytes=a-b", "items=0-1", "bytes=5-3", "bytes=0-1,4-5"] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored}");
        }
        let reversed = get(ByteRange::Bounded { first: 5, last: 3 }).await.unwrap();
        assert_eq!(reversed.body.bytes().await.unwrap(), "0123456789");
    }

    pub async fn conditional_reads(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let etag =
            h.s3.put_object(PutObject::new("bkt", "k", "v1"))
                .await
                .unwrap()
                .etag;
        let written = h.clock.now();
        let with = |c: ReadConditions| {
            h.s3.get_object(GetObject::new("bkt", "k").with_conditions(c))
        };
        let mut c = ReadConditions::default();
        c.if_match = Some(etag.clone());
        assert!(with(c.clone()).await.is_ok());
        c.if_match = Some("\"0000\"".into());
        assert!(matches!(
            with(c).await.unwrap_err(),
            Error::PreconditionFailed {
                condition: "If-Match"
            }
        ));
        let mut c = ReadConditions::default();
        c.if_none_match = Some(etag.clone());
        let err = with(c.clone()).await.unwrap_err();
        assert!(matches!(err, Error::NotModified { .. }));
        assert_eq!(err.status(), 304);
        c.if_none_match = Some("*".into());
        assert!(matches!(
            with(c).await.unwrap_err(),
            Error::NotModified { .. }
        ));
        let mut c = ReadConditions::default();
        c.if_modified_since = Some(written);
        assert!(matches!(
            with(c.clone()).await.unwrap_err(),
            Error::NotModified { .. }
        ));
        c.if_modified_since = Some(written.saturating_sub(Duration::from_secs(1)));
        assert!(with(c).await.is_ok());
        let mut c = ReadConditions::default();
        c.if_unmodified_since = Some(written.saturating_sub(Duration::from_secs(1)));
        assert!(matches!(
            with(c.clone()).await.unwrap_err(),
            Error::PreconditionFailed { .. }
        ));
        // If-Match holding wins over a failing If-Unmodified-Since, as RFC 9110 orders them.
        c.if_match = Some(etag);
        assert!(with(c).await.is_ok());
    }

    pub async fn conditional_writes_change_nothing_when_they_fail(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let first =
            h.s3.put_object(PutObject::new("bkt", "lock", "one").if_none_match_any())
                .await
                .unwrap();
        let err =
            h.s3.put_object(PutObject::new("bkt", "lock", "two").if_none_match_any())
                .await
                .unwrap_err();
        assert!(matches!(
            err,
            Error::PreconditionFailed {
                condition: "If-None-Match"
            }
        ));
        assert_eq!(err.status(), 412);
        assert_eq!(read(&h, "bkt", "lock").await.unwrap(), "one");
        // Compare and swap.
        let second =
            h.s3.put_object(PutObject::new("bkt", "lock", "two").if_match(first.etag.clone()))
                .await
                .unwrap();
        let stale =
            h.s3.put_object(PutObject::new("bkt", "lock", "three").if_match(first.etag))
                .await
                .unwrap_err();
        assert!(matches!(
            stale,
            Error::PreconditionFailed {
                condition: "If-Match"
            }
        ));
        assert_eq!(read(&h, "bkt", "lock").await.unwrap(), "two");
        let missing =
            h.s3.put_object(PutObject::new("bkt", "none", "x").if_match(second.etag))
                .await
                .unwrap_err();
        assert_eq!(missing.code(), "NoSuchKey");
        assert_eq!(
            read(&h, "bkt", "none").await.unwrap_err().code(),
            "NoSuchKey"
        );
        let mut bad = PutObject::new("bkt", "lock", "x");
        bad.conditions.if_none_match = Some("\"abc\"".into());
        assert!(matches!(
            h.s3.put_object(bad).await.unwrap_err(),
            Error::InvalidArgument {
                field: "If-None-Match",
                ..
            }
        ));
        assert_eq!(read(&h, "bkt", "lock").await.unwrap(), "two");
        // A body stream that fails leaves the previous object.
        let failing = Body::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("connection reset")),
        ]));
        assert!(
            h.s3.put_object(PutObject::new("bkt", "lock", failing))
                .await
                .is_err()
        );
        assert_eq!(read(&h, "bkt", "lock").await.unwrap(), "two");
    }

    pub async fn delete_objects_reports_per_key(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        for key in ["a", "b", "c"] {
            h.s3.put_object(PutObject::new("bkt", key, key))
                .await
                .unwrap();
        }
        let out =
            h.s3.delete_objects(
                "bkt",
                vec![
                    ObjectIdentifier::new("a"),
                    ObjectIdentifier::new("missing"),
                    ObjectIdentifier::version("b", "not-a-version"),
                    ObjectIdentifier::new("c"),
                ],
            )
            .await
            .unwrap();
        let deleted: Vec<_> = out.deleted.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(deleted, ["a", "missing", "c"]);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(
            (out.errors[0].key.as_str(), out.errors[0].code.as_str()),
            ("b", "InvalidArgument")
        );
        let left: Vec<_> =
            h.s3.list_objects(ListObjects::new("bkt"))
                .await
                .unwrap()
                .contents
                .into_iter()
                .map(|o| o.key)
                .collect();
        assert_eq!(left, ["b"]);
        let too_many = (0..1001)
            .map(|i| ObjectIdentifier::new(format!("k{i}")))
            .collect();
        let err = h.s3.delete_objects("bkt", too_many).await.unwrap_err();
        assert_eq!(err.code(), "MalformedXML");
        assert_eq!(read(&h, "bkt", "b").await.unwrap(), "b");
    }

    pub async fn copies_are_server_side(h: Harness) {
        h.s3.create_bucket("src").await.unwrap();
        h.s3.create_bucket("dst").await.unwrap();
        let body = big(300 * 1024, 7);
        let put =
            h.s3.put_object(
                PutObject::new("src", "photo", body.clone())
                    .with_content_type("image/png")
                    .with_metadata("m", "1")
                    .with_tag("t", "1"),
            )
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(1));
        let out =
            h.s3.copy_object(CopyObject::new("src", "photo", "dst", "copy"))
                .await
                .unwrap();
        assert_eq!(out.etag, put.etag);
        assert_eq!(out.last_modified, h.clock.now());
        let copy =
            h.s3.get_object(GetObject::new("dst", "copy"))
                .await
                .unwrap();
        assert_eq!(copy.info.headers.content_type.as_deref(), Some("image/png"));
        assert_eq!(copy.info.metadata["m"], "1");
        assert_eq!(copy.body.bytes().await.unwrap(), body);
        // The copy is independent of its source.
        h.s3.delete_object("src", "photo", None).await.unwrap();
        assert_eq!(read(&h, "dst", "copy").await.unwrap(), body);
        assert_eq!(
            h.s3.object_tagging("dst", "copy", None).await.unwrap()["t"],
            "1"
        );

        let replaced =
            h.s3.copy_object(
                CopyObject::new("dst", "copy", "dst", "copy").replacing_metadata(
                    Headers::default(),
                    BTreeMap::from([("m".into(), "2".into())]),
                ),
            )
            .await
            .unwrap();
        assert_eq!(replaced.etag, put.etag);
        let info =
            h.s3.head_object(GetObject::new("dst", "copy"))
                .await
                .unwrap();
        assert_eq!(
            (
                info.metadata["m"].as_str(),
                info.headers.content_type.clone()
            ),
            ("2", None)
        );
        let itself =
            h.s3.copy_object(CopyObject::new("dst", "copy", "dst", "copy"))
                .await
                .unwrap_err();
        assert_eq!(itself.code(), "InvalidRequest");
        let missing =
            h.s3.copy_object(CopyObject::new("src", "photo", "dst", "x"))
                .await
                .unwrap_err();
        assert_eq!(missing.code(), "NoSuchKey");
        let mut guarded = CopyObject::new("dst", "copy", "dst", "other");
        guarded.source_conditions.if_match = Some("\"nope\"".into());
        let err = h.s3.copy_object(guarded).await.unwrap_err();
        assert!(matches!(
            err,
            Error::PreconditionFailed {
                condition: "x-amz-copy-source-if-match"
            }
        ));
        let err =
            h.s3.copy_object(CopyObject::new("dst", "copy", "dst", "copy2").if_none_match_any())
                .await;
        assert!(err.is_ok());
        let err =
            h.s3.copy_object(CopyObject::new("dst", "copy", "dst", "copy2").if_none_match_any())
                .await
                .unwrap_err();
        assert_eq!(err.code(), "PreconditionFailed");
    }

    pub async fn rename_is_atomic(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let body = big(200 * 1024, 3);
        let put =
            h.s3.put_object(PutObject::new("bkt", "tmp/upload", body.clone()))
                .await
                .unwrap();
        h.s3.put_object(PutObject::new("bkt", "final", "taken"))
            .await
            .unwrap();
        let create_only = WriteConditions::none_match_any();
        let err =
            h.s3.rename_object("bkt", "tmp/upload", "final", create_only.clone())
                .await
                .unwrap_err();
        assert_eq!(err.code(), "PreconditionFailed");
        assert_eq!(read(&h, "bkt", "tmp/upload").await.unwrap(), body);
        assert_eq!(read(&h, "bkt", "final").await.unwrap(), "taken");
        let out =
            h.s3.rename_object("bkt", "tmp/upload", "done", create_only)
                .await
                .unwrap();
        assert_eq!(out.etag, put.etag);
        assert_eq!(read(&h, "bkt", "done").await.unwrap(), body);
        assert_eq!(
            read(&h, "bkt", "tmp/upload").await.unwrap_err().code(),
            "NoSuchKey"
        );
        let err =
            h.s3.rename_object("bkt", "tmp/upload", "x", WriteConditions::default())
                .await
                .unwrap_err();
        assert_eq!(err.code(), "NoSuchKey");
    }

    pub async fn list_objects_v2_pages_and_delimiters(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let keys = [
            "photos/2024/a.jpg",
            "photos/2024/b.jpg",
            "photos/2025/c.jpg",
            "photos/index.html",
            "readme",
            "videos/x.mp4",
        ];
        for key in keys {
            h.s3.put_object(PutObject::new("bkt", key, "x"))
                .await
                .unwrap();
        }
        let all = h.s3.list_objects(ListObjects::new("bkt")).await.unwrap();
        assert_eq!(all.key_count, 6);
        assert!(!all.is_truncated);
        assert_eq!(all.contents[0].etag, md5_etag(b"x"));

        let top =
            h.s3.list_objects(ListObjects::new("bkt").with_delimiter("/"))
                .await
                .unwrap();
        assert_eq!(top.common_prefixes, ["photos/", "videos/"]);
        assert_eq!(
            top.contents
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["readme"]
        );
        assert_eq!(top.key_count, 3);

        let photos =
            h.s3.list_objects(
                ListObjects::new("bkt")
                    .with_prefix("photos/")
                    .with_delimiter("/"),
            )
            .await
            .unwrap();
        assert_eq!(photos.common_prefixes, ["photos/2024/", "photos/2025/"]);
        assert_eq!(photos.contents.len(), 1);

        // Common prefixes count against max-keys; pages continue after a rolled-up prefix.
        let page1 =
            h.s3.list_objects(ListObjects::new("bkt").with_delimiter("/").with_max_keys(1))
                .await
                .unwrap();
        assert_eq!(
            (page1.common_prefixes.as_slice(), page1.is_truncated),
            (&["photos/".to_owned()][..], true)
        );
        let token = page1.next_continuation_token.unwrap();
        let page2 =
            h.s3.list_objects(
                ListObjects::new("bkt")
                    .with_delimiter("/")
                    .with_max_keys(1)
                    .with_continuation_token(token),
            )
            .await
            .unwrap();
        assert_eq!(page2.contents[0].key, "readme");
        let token = page2.next_continuation_token.unwrap();
        let page3 =
            h.s3.list_objects(
                ListObjects::new("bkt")
                    .with_delimiter("/")
                    .with_max_keys(1)
                    .with_continuation_token(token),
            )
            .await
            .unwrap();
        assert_eq!(page3.common_prefixes, ["videos/"]);
        assert!(!page3.is_truncated);
        assert_eq!(page3.next_continuation_token, None);

        let after =
            h.s3.list_objects(ListObjects::new("bkt").with_start_after("photos/index.html"))
                .await
                .unwrap();
        assert_eq!(
            after
                .contents
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["readme", "videos/x.mp4"]
        );
        let capped =
            h.s3.list_objects(ListObjects::new("bkt").with_max_keys(5000))
                .await
                .unwrap();
        assert_eq!(capped.key_count, 6);
        let bad =
            h.s3.list_objects(ListObjects::new("bkt").with_continuation_token("!!"))
                .await
                .unwrap_err();
        assert_eq!(bad.code(), "InvalidArgument");
        assert_eq!(
            h.s3.list_objects(ListObjects::new("none"))
                .await
                .unwrap_err()
                .code(),
            "NoSuchBucket"
        );
    }

    pub async fn multipart_uploads_are_listed_in_pages(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        // Three uploads of one key, started a second apart (newest has the smallest id, by
        // luck or not), and one each of keys under two folders.
        let mut of_a = Vec::new();
        for _ in 0..3 {
            of_a.push(
                h.s3.create_multipart_upload(CreateMultipartUpload::new("bkt", "a"))
                    .await
                    .unwrap(),
            );
            h.clock.advance(std::time::Duration::from_secs(1));
        }
        for key in ["b/1", "b/2", "c/1", "d"] {
            h.s3.create_multipart_upload(CreateMultipartUpload::new("bkt", key))
                .await
                .unwrap();
        }
        let list = |request: ListMultipartUploads| {
            let s3 = h.s3.clone();
            async move { s3.list_multipart_uploads(request).await.unwrap() }
        };
        // Everything, by key and then by initiation.
        let all = list(ListMultipartUploads::new("bkt")).await;
        let keys: Vec<&str> = all.uploads.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["a", "a", "a", "b/1", "b/2", "c/1", "d"]);
        let ids: Vec<&str> = all.uploads[..3]
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect();
        assert_eq!(ids, of_a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!all.is_truncated && all.next_key_marker.is_none());
        // Pages of two follow the markers, splitting the uploads of one key.
        let mut seen = Vec::new();
        let mut request = ListMultipartUploads::new("bkt").with_max_uploads(2);
        loop {
            let page = list(request.clone()).await;
            assert!(page.uploads.len() <= 2);
            seen.extend(page.uploads.iter().map(|u| u.upload_id.clone()));
            if !page.is_truncated {
                break;
            }
            request = request.after(page.next_key_marker.unwrap(), page.next_upload_id_marker);
        }
        let expected: Vec<String> = all.uploads.iter().map(|u| u.upload_id.clone()).collect();
        assert_eq!(seen, expected);
        // A key marker alone skips every upload of that key; an upload-id marker without a
        // key marker is ignored, as S3 ignores it.
        let after_a = list(ListMultipartUploads::new("bkt").after("a", None)).await;
        assert_eq!(after_a.uploads[0].key, "b/1");
        let mut ignored = ListMultipartUploads::new("bkt");
        ignored.upload_id_marker = Some(of_a[0].clone());
        assert_eq!(list(ignored).await.uploads.len(), 7);
        // A delimiter rolls keys up into common prefixes, which count against the page and
        // serve as markers.
        let rolled = list(ListMultipartUploads::new("bkt").with_delimiter("/")).await;
        assert_eq!(rolled.common_prefixes, ["b/", "c/"]);
        assert_eq!(rolled.uploads.len(), 4);
        let page = list(
            ListMultipartUploads::new("bkt")
                .with_delimiter("/")
                .with_max_uploads(4),
        )
        .await;
        assert_eq!((page.uploads.len(), page.common_prefixes.len()), (3, 1));
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("b/"));
        let rest = list(
            ListMultipartUploads::new("bkt")
                .with_delimiter("/")
                .after("b/", None),
        )
        .await;
        assert_eq!(rest.common_prefixes, ["c/"]);
        assert_eq!(rest.uploads.len(), 1);
        assert_eq!(rest.uploads[0].key, "d");
        // A prefix, and max-uploads 0.
        let under_b = list(ListMultipartUploads::new("bkt").with_prefix("b/")).await;
        assert_eq!(under_b.uploads.len(), 2);
        let none = list(ListMultipartUploads::new("bkt").with_max_uploads(0)).await;
        assert!(none.uploads.is_empty() && !none.is_truncated);
        // A missing bucket.
        assert_eq!(
            h.s3.list_multipart_uploads(ListMultipartUploads::new("nope"))
                .await
                .unwrap_err()
                .code(),
            "NoSuchBucket"
        );
    }

    pub async fn multipart_uploads(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let upload =
            h.s3.create_multipart_upload(CreateMultipartUpload::new("bkt", "big.bin"))
                .await
                .unwrap();
        let part1 = big(5 * 1024 * 1024, 1);
        let part2 = big(1000, 2);
        let e2 =
            h.s3.upload_part("bkt", "big.bin", &upload, 2, part2.clone().into())
                .await
                .unwrap();
        let e1 =
            h.s3.upload_part("bkt", "big.bin", &upload, 1, part1.clone().into())
                .await
                .unwrap();
        assert_eq!(e1, md5_etag(&part1));
        // Invisible until complete.
        assert_eq!(
            read(&h, "bkt", "big.bin").await.unwrap_err().code(),
            "NoSuchKey"
        );
        assert!(
            h.s3.list_objects(ListObjects::new("bkt"))
                .await
                .unwrap()
                .contents
                .is_empty()
        );
        let parts =
            h.s3.list_parts("bkt", "big.bin", &upload, None, None)
                .await
                .unwrap();
        assert_eq!(
            parts
                .parts
                .iter()
                .map(|p| (p.part_number, p.size))
                .collect::<Vec<_>>(),
            [(1, 5 * 1024 * 1024), (2, 1000)]
        );
        let page =
            h.s3.list_parts("bkt", "big.bin", &upload, Some(1), None)
                .await
                .unwrap();
        assert_eq!(
            (
                page.parts.len(),
                page.is_truncated,
                page.next_part_number_marker
            ),
            (1, true, Some(1))
        );
        let uploads =
            h.s3.list_multipart_uploads(ListMultipartUploads::new("bkt"))
                .await
                .unwrap()
                .uploads;
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].upload_id, upload);

        for (number, code) in [(0, "InvalidArgument"), (10_001, "InvalidArgument")] {
            let err =
                h.s3.upload_part("bkt", "big.bin", &upload, number, "x".into())
                    .await
                    .unwrap_err();
            assert_eq!(err.code(), code);
        }
        let order = vec![
            CompletedPart::new(2, e2.clone()),
            CompletedPart::new(1, e1.clone()),
        ];
        assert_eq!(
            h.s3.complete_multipart_upload(
                "bkt",
                "big.bin",
                &upload,
                order,
                WriteConditions::default()
            )
            .await
            .unwrap_err()
            .code(),
            "InvalidPartOrder"
        );
        let wrong = vec![
            CompletedPart::new(1, e1.clone()),
            CompletedPart::new(2, e1.clone()),
        ];
        assert!(matches!(
            h.s3.complete_multipart_upload(
                "bkt",
                "big.bin",
                &upload,
                wrong,
                WriteConditions::default()
            )
            .await
            .unwrap_err(),
            Error::InvalidPart { part_number: 2 }
        ));
        let small_first = vec![
            CompletedPart::new(2, e2.clone()),
            CompletedPart::new(3, e2.clone()),
        ];
        let err =
            h.s3.complete_multipart_upload(
                "bkt",
                "big.bin",
                &upload,
                small_first,
                WriteConditions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidPart");
        let e3 =
            h.s3.upload_part("bkt", "big.bin", &upload, 3, "tail".into())
                .await
                .unwrap();
        let too_small = vec![CompletedPart::new(2, e2.clone()), CompletedPart::new(3, e3)];
        assert!(matches!(
            h.s3.complete_multipart_upload(
                "bkt",
                "big.bin",
                &upload,
                too_small,
                WriteConditions::default()
            )
            .await
            .unwrap_err(),
            Error::EntityTooSmall {
                part_number: 2,
                size: 1000,
                ..
            }
        ));

        // Part 3 is left out: it is discarded.
        let done =
            h.s3.complete_multipart_upload(
                "bkt",
                "big.bin",
                &upload,
                vec![
                    CompletedPart::new(1, e1.clone()),
                    CompletedPart::new(2, e2.clone()),
                ],
                WriteConditions::default(),
            )
            .await
            .unwrap();
        let mut digests = Vec::new();
        digests.extend_from_slice(&Md5::digest(&part1));
        digests.extend_from_slice(&Md5::digest(&part2));
        let want = format!(
            "\"{}-2\"",
            Md5::digest(&digests)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert_eq!(done.etag, want);
        let got =
            h.s3.get_object(
                GetObject::new("bkt", "big.bin").with_range(ByteRange::Bounded {
                    first: 5 * 1024 * 1024 - 2,
                    last: 5 * 1024 * 1024 + 1,
                }),
            )
            .await
            .unwrap();
        assert_eq!(got.info.parts_count, Some(2));
        assert_eq!(
            got.body.bytes().await.unwrap(),
            [&part1[part1.len() - 2..], &part2[..2]].concat()
        );
        let whole = read(&h, "bkt", "big.bin").await.unwrap();
        assert_eq!(whole.len(), part1.len() + part2.len());
        assert_eq!(&whole[..part1.len()], &part1[..]);
        assert_eq!(
            h.s3.list_parts("bkt", "big.bin", &upload, None, None)
                .await
                .unwrap_err()
                .code(),
            "NoSuchUpload"
        );
        assert!(
            h.s3.list_multipart_uploads(ListMultipartUploads::new("bkt"))
                .await
                .unwrap()
                .uploads
                .is_empty()
        );

        // Abort discards the parts.
        let upload =
            h.s3.create_multipart_upload(CreateMultipartUpload::new("bkt", "gone"))
                .await
                .unwrap();
        h.s3.upload_part("bkt", "gone", &upload, 1, "x".into())
            .await
            .unwrap();
        h.s3.abort_multipart_upload("bkt", "gone", &upload)
            .await
            .unwrap();
        assert_eq!(
            h.s3.abort_multipart_upload("bkt", "gone", &upload)
                .await
                .unwrap_err()
                .code(),
            "NoSuchUpload"
        );
        assert_eq!(
            h.s3.upload_part("bkt", "gone", &upload, 2, "x".into())
                .await
                .unwrap_err()
                .code(),
            "NoSuchUpload"
        );

        // A relaxed service takes small parts.
        let relaxed = h.s3.clone().with_relaxed_part_sizes();
        let upload = relaxed
            .create_multipart_upload(CreateMultipartUpload::new("bkt", "small"))
            .await
            .unwrap();
        let a = relaxed
            .upload_part("bkt", "small", &upload, 1, "ab".into())
            .await
            .unwrap();
        let b = relaxed
            .upload_part("bkt", "small", &upload, 2, "cd".into())
            .await
            .unwrap();
        relaxed
            .complete_multipart_upload(
                "bkt",
                "small",
                &upload,
                vec![CompletedPart::new(1, a), CompletedPart::new(2, b)],
                WriteConditions::default(),
            )
            .await
            .unwrap();
        assert_eq!(read(&h, "bkt", "small").await.unwrap(), "abcd");
    }

    pub async fn versioning_keeps_versions_and_delete_markers(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        assert_eq!(
            h.s3.bucket_versioning("bkt").await.unwrap(),
            Versioning::Unversioned
        );
        assert_eq!(
            h.s3.put_bucket_versioning("bkt", Versioning::Unversioned)
                .await
                .unwrap_err()
                .code(),
            "MalformedXML"
        );
        h.s3.put_object(PutObject::new("bkt", "doc", "v0"))
            .await
            .unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        let v1 =
            h.s3.put_object(PutObject::new("bkt", "doc", "v1"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        let v2 =
            h.s3.put_object(PutObject::new("bkt", "doc", "v2"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        assert_ne!(v1, v2);
        assert_eq!(v1.len(), 32);
        assert_eq!(read(&h, "bkt", "doc").await.unwrap(), "v2");
        for (version, want) in [(v1.as_str(), "v1"), ("null", "v0")] {
            let got =
                h.s3.get_object(GetObject::new("bkt", "doc").with_version(version))
                    .await
                    .unwrap();
            assert_eq!(got.body.bytes().await.unwrap(), want);
        }
        let missing =
            h.s3.get_object(GetObject::new("bkt", "doc").with_version("0".repeat(32)))
                .await
                .unwrap_err();
        assert_eq!(missing.code(), "NoSuchVersion");
        let bad =
            h.s3.get_object(GetObject::new("bkt", "doc").with_version("xyz"))
                .await
                .unwrap_err();
        assert_eq!(bad.code(), "InvalidArgument");

        let deleted = h.s3.delete_object("bkt", "doc", None).await.unwrap();
        assert!(deleted.delete_marker);
        let marker = deleted.version_id.unwrap();
        let err =
            h.s3.get_object(GetObject::new("bkt", "doc"))
                .await
                .unwrap_err();
        assert!(matches!(
            err,
            Error::NoSuchKey {
                delete_marker: true,
                ..
            }
        ));
        let err =
            h.s3.get_object(GetObject::new("bkt", "doc").with_version(marker.clone()))
                .await
                .unwrap_err();
        assert_eq!((err.code(), err.status()), ("MethodNotAllowed", 405));
        assert!(
            h.s3.list_objects(ListObjects::new("bkt"))
                .await
                .unwrap()
                .contents
                .is_empty()
        );

        let versions =
            h.s3.list_object_versions(ListObjectVersions::new("bkt"))
                .await
                .unwrap();
        let listed: Vec<_> = versions
            .versions
            .iter()
            .map(|v| (v.version_id.as_str(), v.is_latest, v.delete_marker))
            .collect();
        assert_eq!(
            listed,
            [
                (marker.as_str(), true, true),
                (v2.as_str(), false, false),
                (v1.as_str(), false, false),
                ("null", false, false)
            ]
        );
        let mut paged = ListObjectVersions::new("bkt");
        paged.max_keys = Some(2);
        let page = h.s3.list_object_versions(paged.clone()).await.unwrap();
        assert!(page.is_truncated);
        paged.key_marker = page.next_key_marker;
        paged.version_id_marker = page.next_version_id_marker;
        let rest = h.s3.list_object_versions(paged).await.unwrap();
        assert_eq!(
            rest.versions
                .iter()
                .map(|v| v.version_id.as_str())
                .collect::<Vec<_>>(),
            [v1.as_str(), "null"]
        );

        // Deleting the marker by version brings the object back.
        let out =
            h.s3.delete_object("bkt", "doc", Some(&marker))
                .await
                .unwrap();
        assert!(out.delete_marker);
        assert_eq!(read(&h, "bkt", "doc").await.unwrap(), "v2");
        // Deleting a version removes it for good.
        h.s3.delete_object("bkt", "doc", Some(&v1)).await.unwrap();
        assert_eq!(
            h.s3.get_object(GetObject::new("bkt", "doc").with_version(v1))
                .await
                .unwrap_err()
                .code(),
            "NoSuchVersion"
        );
        // A versioned delete of a missing key still writes a marker.
        let out = h.s3.delete_object("bkt", "never", None).await.unwrap();
        assert!(out.delete_marker);
        assert_eq!(
            h.s3.delete_bucket("bkt").await.unwrap_err().code(),
            "BucketNotEmpty"
        );
    }

    pub async fn suspended_versioning_writes_null_versions(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        let v1 =
            h.s3.put_object(PutObject::new("bkt", "k", "v1"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Suspended)
            .await
            .unwrap();
        let out =
            h.s3.put_object(PutObject::new("bkt", "k", "n1"))
                .await
                .unwrap();
        assert_eq!(out.version_id.as_deref(), Some("null"));
        h.s3.put_object(PutObject::new("bkt", "k", "n2"))
            .await
            .unwrap();
        let versions =
            h.s3.list_object_versions(ListObjectVersions::new("bkt"))
                .await
                .unwrap();
        let listed: Vec<_> = versions
            .versions
            .iter()
            .map(|v| v.version_id.as_str())
            .collect();
        // The null version was replaced, not stacked.
        assert_eq!(listed, ["null", v1.as_str()]);
        assert_eq!(read(&h, "bkt", "k").await.unwrap(), "n2");
        let out = h.s3.delete_object("bkt", "k", None).await.unwrap();
        assert_eq!(
            (out.delete_marker, out.version_id.as_deref()),
            (true, Some("null"))
        );
        let versions =
            h.s3.list_object_versions(ListObjectVersions::new("bkt"))
                .await
                .unwrap();
        let listed: Vec<_> = versions
            .versions
            .iter()
            .map(|v| (v.version_id.as_str(), v.delete_marker))
            .collect();
        assert_eq!(listed, [("null", true), (v1.as_str(), false)]);
    }

    pub async fn lifecycle_rules_run_on_the_clock(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        assert_eq!(
            h.s3.bucket_lifecycle("bkt").await.unwrap_err().code(),
            "NoSuchLifecycleConfiguration"
        );
        let bad =
            h.s3.put_bucket_lifecycle("bkt", vec![LifecycleRule::new("nothing")])
                .await
                .unwrap_err();
        assert_eq!(bad.code(), "InvalidArgument");
        h.s3.put_bucket_lifecycle(
            "bkt",
            vec![
                LifecycleRule::new("tmp")
                    .with_prefix("tmp/")
                    .expire_after_days(1),
                LifecycleRule::new("old")
                    .expire_noncurrent_after_days(2)
                    .abort_incomplete_uploads_after_days(3),
            ],
        )
        .await
        .unwrap();
        assert_eq!(h.s3.bucket_lifecycle("bkt").await.unwrap().len(), 2);
        // Written at 01:00: one day later is not yet due; the next midnight is.
        h.clock.advance(Duration::from_secs(3600));
        h.s3.put_object(PutObject::new("bkt", "tmp/a", "x"))
            .await
            .unwrap();
        h.s3.put_object(PutObject::new("bkt", "keep/b", "x"))
            .await
            .unwrap();
        let upload =
            h.s3.create_multipart_upload(CreateMultipartUpload::new("bkt", "tmp/big"))
                .await
                .unwrap();
        let task = h.s3.start_lifecycle();
        h.clock.wait_for_timers(1).await;

        // Due at the first midnight after one day: not yet after 24 hours.
        h.clock.advance(Duration::from_secs(86_400));
        // The task woke at the midnight passed, found nothing due, and waits for the next.
        h.clock.wait_for_timers(1).await;
        let report = h.s3.run_lifecycle().await.unwrap();
        assert_eq!(report.expired, 0);
        // The background task runs at midnight of the clock.
        let next_midnight = Timestamp::from_secs((h.clock.now().as_secs() / 86_400 + 1) * 86_400);
        h.clock.advance_to(next_midnight);
        for _ in 0..100_000 {
            if read(&h, "bkt", "tmp/a").await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            read(&h, "bkt", "tmp/a").await.unwrap_err().code(),
            "NoSuchKey"
        );
        assert_eq!(read(&h, "bkt", "keep/b").await.unwrap(), "x");
        task.shutdown().await;

        h.clock.advance(Duration::from_secs(3 * 86_400));
        let report = h.s3.run_lifecycle().await.unwrap();
        assert_eq!(report.uploads_aborted, 1);
        assert_eq!(
            h.s3.list_parts("bkt", "tmp/big", &upload, None, None)
                .await
                .unwrap_err()
                .code(),
            "NoSuchUpload"
        );

        // Noncurrent versions expire days after they became noncurrent.
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        let old =
            h.s3.put_object(PutObject::new("bkt", "doc", "1"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        h.s3.put_object(PutObject::new("bkt", "doc", "2"))
            .await
            .unwrap();
        h.clock.advance(Duration::from_secs(86_400));
        assert_eq!(h.s3.run_lifecycle().await.unwrap().noncurrent_deleted, 0);
        h.clock.advance(Duration::from_secs(2 * 86_400));
        assert_eq!(h.s3.run_lifecycle().await.unwrap().noncurrent_deleted, 1);
        let err =
            h.s3.get_object(GetObject::new("bkt", "doc").with_version(old))
                .await
                .unwrap_err();
        assert_eq!(err.code(), "NoSuchVersion");
        assert_eq!(read(&h, "bkt", "doc").await.unwrap(), "2");
    }

    pub async fn events_reach_the_sink(h: Harness) {
        let (sink, mut events) = ChannelSink::new();
        h.s3.register_target("queue", Arc::new(sink));
        h.s3.create_bucket("bkt").await.unwrap();
        let unknown =
            h.s3.put_bucket_notifications(
                "bkt",
                vec![NotificationRule::new("r", "nobody", ["s3:ObjectCreated:*"])],
            )
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), "InvalidArgument");
        let bad_type =
            h.s3.put_bucket_notifications(
                "bkt",
                vec![NotificationRule::new(
                    "r",
                    "queue",
                    ["s3:ObjectCreated:Post2"],
                )],
            )
            .await
            .unwrap_err();
        assert_eq!(bad_type.code(), "InvalidArgument");
        h.s3.put_bucket_notifications(
            "bkt",
            vec![
                NotificationRule::new("created", "queue", ["s3:ObjectCreated:*"])
                    .with_prefix("in/"),
                NotificationRule::new("removed", "queue", ["s3:ObjectRemoved:*"]),
            ],
        )
        .await
        .unwrap();
        assert_eq!(h.s3.bucket_notifications("bkt").await.unwrap().len(), 2);

        let put =
            h.s3.put_object(PutObject::new("bkt", "in/a b=c.txt", "hello"))
                .await
                .unwrap();
        h.s3.put_object(PutObject::new("bkt", "out/ignored", "x"))
            .await
            .unwrap();
        h.s3.copy_object(CopyObject::new("bkt", "in/a b=c.txt", "bkt", "in/copy"))
            .await
            .unwrap();
        let relaxed = h.s3.clone().with_relaxed_part_sizes();
        let upload = relaxed
            .create_multipart_upload(CreateMultipartUpload::new("bkt", "in/multi"))
            .await
            .unwrap();
        let e = relaxed
            .upload_part("bkt", "in/multi", &upload, 1, "abc".into())
            .await
            .unwrap();
        relaxed
            .complete_multipart_upload(
                "bkt",
                "in/multi",
                &upload,
                vec![CompletedPart::new(1, e)],
                WriteConditions::default(),
            )
            .await
            .unwrap();
        h.s3.delete_object("bkt", "in/copy", None).await.unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        let marker =
            h.s3.delete_object("bkt", "in/multi", None)
                .await
                .unwrap()
                .version_id
                .unwrap();

        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(json(&events.recv().await.unwrap()));
        }
        let names: Vec<_> = got
            .iter()
            .map(|e| e["Records"][0]["eventName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ObjectCreated:Put",
                "ObjectCreated:Copy",
                "ObjectCreated:CompleteMultipartUpload",
                "ObjectRemoved:Delete",
                "ObjectRemoved:DeleteMarkerCreated"
            ]
        );
        let first = &got[0]["Records"][0];
        assert_eq!(first["eventVersion"], "2.1");
        assert_eq!(first["eventSource"], "aws:s3");
        assert_eq!(first["eventTime"], h.clock.now().iso8601());
        assert_eq!(first["s3"]["configurationId"], "created");
        assert_eq!(first["s3"]["bucket"]["name"], "bkt");
        assert_eq!(first["s3"]["bucket"]["arn"], "arn:aws:s3:::bkt");
        assert_eq!(first["s3"]["object"]["key"], "in/a+b%3Dc.txt");
        assert_eq!(first["s3"]["object"]["size"], 5);
        assert_eq!(
            format!("\"{}\"", first["s3"]["object"]["eTag"].as_str().unwrap()),
            put.etag
        );
        let removed = &got[3]["Records"][0];
        assert_eq!(removed["s3"]["configurationId"], "removed");
        assert!(removed["s3"]["object"].get("size").is_none());
        assert_eq!(
            got[4]["Records"][0]["s3"]["object"]["versionId"],
            marker.as_str()
        );
        // Sequencers order the events of one key.
        let seq = |e: &serde_json::Value| {
            e["Records"][0]["s3"]["object"]["sequencer"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(seq(&got[1]) < seq(&got[3]));
        // Accepted events leave the outbox.
        let mut pending = usize::MAX;
        for _ in 0..100_000 {
            pending = h.s3.pending_events("queue").unwrap();
            if pending == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(pending, 0);
        h.s3.shutdown().await;
    }

    pub async fn events_wait_for_their_target_across_restarts(h: Harness) {
        let (sink, _events) = ChannelSink::new();
        h.s3.register_target("fn", Arc::new(sink));
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_bucket_notifications(
            "bkt",
            vec![NotificationRule::new("all", "fn", ["s3:ObjectCreated:*"])],
        )
        .await
        .unwrap();
        h.s3.shutdown().await;
        // No delivery runs now: events wait in the outbox.
        for i in 0..3 {
            h.s3.put_object(PutObject::new("bkt", format!("k{i}"), "x"))
                .await
                .unwrap();
        }
        assert_eq!(h.s3.pending_events("fn").unwrap(), 3);
        let h = h.restart().await;
        assert_eq!(h.s3.pending_events("fn").unwrap(), 3);
        let (sink, mut events) = ChannelSink::new();
        h.s3.register_target("fn", Arc::new(sink));
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(
                json(&events.recv().await.unwrap())["Records"][0]["s3"]["object"]["key"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(keys, ["k0", "k1", "k2"]);
        // The rules survived the restart too.
        h.s3.put_object(PutObject::new("bkt", "k3", "x"))
            .await
            .unwrap();
        assert_eq!(
            json(&events.recv().await.unwrap())["Records"][0]["s3"]["object"]["key"],
            "k3"
        );
        h.s3.shutdown().await;
    }

    pub async fn failed_event_deliveries_retry_on_the_clock(h: Harness) {
        let attempts = Arc::new(AtomicUsize::new(0));
        let (ok, mut delivered) = ChannelSink::new();
        let ok = Arc::new(ok);
        let counter = attempts.clone();
        let flaky = sink_fn(move |message: Message| {
            let (counter, ok) = (counter.clone(), ok.clone());
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(DeliveryError::unavailable("down"));
                }
                cloudlet_core::Sink::deliver(&*ok, message).await
            }
        });
        let s3 =
            h.s3.clone()
                .with_delivery_policy(OutboxPolicy::default().with_backoff(
                    Duration::from_secs(10),
                    Duration::from_secs(60),
                    2,
                ));
        s3.register_target("flaky", Arc::new(flaky));
        s3.create_bucket("bkt").await.unwrap();
        s3.put_bucket_notifications(
            "bkt",
            vec![NotificationRule::new(
                "r",
                "flaky",
                ["s3:ObjectCreated:Put"],
            )],
        )
        .await
        .unwrap();
        s3.put_object(PutObject::new("bkt", "k", "x"))
            .await
            .unwrap();
        while attempts.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        assert!(delivered.try_recv().is_err());
        for _ in 0..2 {
            h.clock.wait_for_timers(1).await;
            h.clock.advance(Duration::from_secs(60));
        }
        let event = json(&delivered.recv().await.unwrap());
        assert_eq!(event["Records"][0]["s3"]["object"]["key"], "k");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        s3.shutdown().await;
    }

    pub async fn large_bodies_stream_and_leave_no_files_behind(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let body = big(3 * 1024 * 1024 + 17, 9);
        // Streamed in odd-sized chunks.
        let chunks: Vec<std::io::Result<Bytes>> = body
            .chunks(77_777)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let put =
            h.s3.put_object(PutObject::new(
                "bkt",
                "big",
                Body::from_stream(futures::stream::iter(chunks)),
            ))
            .await
            .unwrap();
        assert_eq!(put.etag, md5_etag(&body));
        let got = h.s3.get_object(GetObject::new("bkt", "big")).await.unwrap();
        let mut stream = got.body;
        let mut total = Vec::new();
        use futures::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= 1 << 20);
            total.extend_from_slice(&chunk);
        }
        assert_eq!(total, body);
        let files = h.body_files();
        h.s3.put_object(PutObject::new("bkt", "big", big(2 * 1024 * 1024, 1)))
            .await
            .unwrap();
        assert_eq!(h.body_files(), files, "an overwrite replaces the file");
        h.s3.copy_object(CopyObject::new("bkt", "big", "bkt", "big2"))
            .await
            .unwrap();
        h.s3.delete_object("bkt", "big", None).await.unwrap();
        h.s3.delete_object("bkt", "big2", None).await.unwrap();
        assert_eq!(h.body_files(), 0);
        let h = h.restart().await;
        assert_eq!(h.body_files(), 0);
        assert!(
            h.s3.list_objects(ListObjects::new("bkt"))
                .await
                .unwrap()
                .contents
                .is_empty()
        );
    }

    pub async fn a_read_keeps_its_bytes_while_the_object_changes(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let old = big(2 * 1024 * 1024, 4);
        h.s3.put_object(PutObject::new("bkt", "k", old.clone()))
            .await
            .unwrap();
        let reading = h.s3.get_object(GetObject::new("bkt", "k")).await.unwrap();
        h.s3.put_object(PutObject::new("bkt", "k", "new"))
            .await
            .unwrap();
        h.s3.delete_object("bkt", "k", None).await.unwrap();
        assert_eq!(reading.body.bytes().await.unwrap(), old);
        assert_eq!(h.body_files(), 0, "the file goes once the read is done");
    }

    pub async fn tags_and_metadata_are_validated(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_object(PutObject::new("bkt", "k", "v").with_tag("a", "1"))
            .await
            .unwrap();
        let mut too_many = PutObject::new("bkt", "k", "other");
        for i in 0..11 {
            too_many = too_many.with_tag(format!("t{i}"), "v");
        }
        assert_eq!(
            h.s3.put_object(too_many).await.unwrap_err().code(),
            "InvalidTag"
        );
        let long_meta = PutObject::new("bkt", "k", "other").with_metadata("m", "x".repeat(2048));
        let err = h.s3.put_object(long_meta).await.unwrap_err();
        assert!(matches!(
            err,
            Error::MetadataTooLarge {
                size: 2049,
                limit: 2048
            }
        ));
        assert_eq!(read(&h, "bkt", "k").await.unwrap(), "v");
        let tags = BTreeMap::from([
            ("x".to_owned(), "1".to_owned()),
            ("y".to_owned(), "2".to_owned()),
        ]);
        h.s3.put_object_tagging("bkt", "k", None, tags.clone())
            .await
            .unwrap();
        assert_eq!(h.s3.object_tagging("bkt", "k", None).await.unwrap(), tags);
        let bad = BTreeMap::from([("k".repeat(129), String::new())]);
        assert_eq!(
            h.s3.put_object_tagging("bkt", "k", None, bad)
                .await
                .unwrap_err()
                .code(),
            "InvalidTag"
        );
        assert_eq!(h.s3.object_tagging("bkt", "k", None).await.unwrap(), tags);
        assert_eq!(
            h.s3.object_tagging("bkt", "missing", None)
                .await
                .unwrap_err()
                .code(),
            "NoSuchKey"
        );
    }

    pub async fn listings_skip_delete_markers_and_end(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        for key in ["a/1", "a/2", "b", "dir/x"] {
            h.s3.put_object(PutObject::new("bkt", key, "x"))
                .await
                .unwrap();
        }
        h.s3.delete_object("bkt", "dir/x", None).await.unwrap();
        // A prefix holding only delete markers is not listed.
        let top =
            h.s3.list_objects(ListObjects::new("bkt").with_delimiter("/"))
                .await
                .unwrap();
        assert_eq!(top.common_prefixes, ["a/"]);
        assert_eq!(top.key_count, 2);
        // max-keys 0: an empty page that is not truncated.
        let none =
            h.s3.list_objects(ListObjects::new("bkt").with_max_keys(0))
                .await
                .unwrap();
        assert_eq!((none.key_count, none.is_truncated), (0, false));
        // Version listings page through common prefixes and end.
        let mut request = ListObjectVersions::new("bkt");
        request.delimiter = Some("/".into());
        request.max_keys = Some(1);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let page = h.s3.list_object_versions(request.clone()).await.unwrap();
            seen.extend(page.common_prefixes.clone());
            seen.extend(page.versions.iter().map(|v| v.key.clone()));
            if !page.is_truncated {
                break;
            }
            request.key_marker = page.next_key_marker;
            request.version_id_marker = page.next_version_id_marker;
        }
        assert_eq!(seen, ["a/", "b", "dir/"]);
        let mut orphan_marker = ListObjectVersions::new("bkt");
        orphan_marker.version_id_marker = Some("null".into());
        assert_eq!(
            h.s3.list_object_versions(orphan_marker)
                .await
                .unwrap_err()
                .code(),
            "InvalidArgument"
        );
    }

    pub async fn restoring_a_version_by_copying_it_onto_its_key(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        let v1 =
            h.s3.put_object(PutObject::new("bkt", "doc", "first"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        h.s3.put_object(PutObject::new("bkt", "doc", "second"))
            .await
            .unwrap();
        let out =
            h.s3.copy_object(
                CopyObject::new("bkt", "doc", "bkt", "doc").with_source_version(v1.clone()),
            )
            .await
            .unwrap();
        assert_eq!(out.source_version_id, Some(v1));
        assert_eq!(read(&h, "bkt", "doc").await.unwrap(), "first");
        let versions =
            h.s3.list_object_versions(ListObjectVersions::new("bkt"))
                .await
                .unwrap();
        assert_eq!(versions.versions.len(), 3);
        // object_store's copy onto itself in create mode: the destination exists.
        let store = h.s3.bucket_store("bkt");
        let path = object_store::path::Path::from("doc");
        let err = object_store::ObjectStoreExt::copy_if_not_exists(&store, &path, &path)
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "{err}"
        );
    }

    pub async fn lifecycle_spares_a_version_that_became_current(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        h.s3.put_bucket_versioning("bkt", Versioning::Enabled)
            .await
            .unwrap();
        h.s3.put_bucket_lifecycle(
            "bkt",
            vec![LifecycleRule::new("nc").expire_noncurrent_after_days(1)],
        )
        .await
        .unwrap();
        h.s3.put_object(PutObject::new("bkt", "doc", "old"))
            .await
            .unwrap();
        let v2 =
            h.s3.put_object(PutObject::new("bkt", "doc", "new"))
                .await
                .unwrap()
                .version_id
                .unwrap();
        h.clock.advance(Duration::from_secs(3 * 86_400));
        // The current version goes; the old one is current again and must stay.
        h.s3.delete_object("bkt", "doc", Some(&v2)).await.unwrap();
        let report = h.s3.run_lifecycle().await.unwrap();
        assert_eq!(report.noncurrent_deleted, 0);
        assert_eq!(read(&h, "bkt", "doc").await.unwrap(), "old");
    }

    pub async fn a_ranged_read_survives_a_delete_of_other_parts(h: Harness) {
        h.s3.create_bucket("bkt").await.unwrap();
        let relaxed = h.s3.clone().with_relaxed_part_sizes();
        let upload = relaxed
            .create_multipart_upload(CreateMultipartUpload::new("bkt", "mp"))
            .await
            .unwrap();
        let (p1, p2) = (big(300_000, 1), big(300_000, 2));
        let e1 = relaxed
            .upload_part("bkt", "mp", &upload, 1, p1.clone().into())
            .await
            .unwrap();
        let e2 = relaxed
            .upload_part("bkt", "mp", &upload, 2, p2.clone().into())
            .await
            .unwrap();
        relaxed
            .complete_multipart_upload(
                "bkt",
                "mp",
                &upload,
                vec![CompletedPart::new(1, e1), CompletedPart::new(2, e2)],
                WriteConditions::default(),
            )
            .await
            .unwrap();
        // One reader holds part 1 only; another reads everything, then the object goes.
        let first =
            h.s3.get_object(
                GetObject::new("bkt", "mp").with_range(ByteRange::Bounded { first: 0, last: 9 }),
            )
            .await
            .unwrap();
        let whole = h.s3.get_object(GetObject::new("bkt", "mp")).await.unwrap();
        h.s3.delete_object("bkt", "mp", None).await.unwrap();
        assert_eq!(
            whole.body.bytes().await.unwrap(),
            [p1.as_ref(), p2.as_ref()].concat()
        );
        assert_eq!(first.body.bytes().await.unwrap(), p1.slice(..10));
        assert_eq!(h.body_files(), 0);
        assert_eq!(read(&h, "bkt", "mp").await.unwrap_err().code(), "NoSuchKey");
    }
}
