//! object_store's own integration suite, run against a bucket of each engine.

use cloudlet_objectstore::{BucketStore, Buckets};
use object_store::integration as oi;

use crate::harness::Harness;

async fn bucket(h: &Harness) -> BucketStore {
    h.s3.create_bucket("suite").await.unwrap();
    h.s3.bucket_store("suite")
}

macro_rules! suite {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;

            suite!(@one $open; put_get_delete_list, |s| oi::put_get_delete_list(s));
            suite!(@one $open; put_get_attributes, |s| oi::put_get_attributes(s));
            suite!(@one $open; get_opts, |s| oi::get_opts(s));
            suite!(@one $open; put_opts, |s| oi::put_opts(s, true));
            suite!(@one $open; stream_get, |s| oi::stream_get(s));
            suite!(@one $open; list_uses_directories_correctly, |s| oi::list_uses_directories_correctly(s));
            suite!(@one $open; list_with_delimiter, |s| oi::list_with_delimiter(s));
            suite!(@one $open; list_with_offset_exclusivity, |s| oi::list_with_offset_exclusivity(s));
            suite!(@one $open; rename_and_copy, |s| oi::rename_and_copy(s));
            suite!(@one $open; copy_if_not_exists, |s| oi::copy_if_not_exists(s));
            suite!(@one $open; copy_rename_nonexistent_object, |s| oi::copy_rename_nonexistent_object(s));
            suite!(@one $open; multipart, |s| oi::multipart(s, s));
            suite!(@one $open; multipart_race_condition, |s| oi::multipart_race_condition(s, true));
            suite!(@one $open; multipart_out_of_order, |s| oi::multipart_out_of_order(s));
            suite!(@one $open; list_paginated, |s| oi::list_paginated(s, s));
        }
    };
    (@one $open:expr; $name:ident, |$s:ident| $call:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let h = $open;
            let store = bucket(&h).await;
            let $s = &store;
            $call.await;
        }
    };
}

suite!(memory, Harness::memory());
suite!(redb, Harness::redb());

/// Keys that are not object_store paths (`a//b`, `dir/`) are skipped by the adapter's
/// listings, never an error or a panic, and stay readable through the native API.
#[tokio::test]
async fn keys_that_are_not_paths_are_skipped_by_listings() {
    use cloudlet_objectstore::{GetObject, PutObject};
    use futures::TryStreamExt;
    use object_store::ObjectStore;

    let h = Harness::memory();
    let store = bucket(&h).await;
    for key in ["a//b", "dir/", "ok/x", "/lead"] {
        h.s3.put_object(PutObject::new("suite", key, "v"))
            .await
            .unwrap();
    }
    let listed: Vec<_> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["ok/x"]);
    let top = store.list_with_delimiter(None).await.unwrap();
    assert!(top.objects.is_empty());
    let prefixes: Vec<_> = top
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(prefixes.contains(&"ok".to_owned()), "{prefixes:?}");
    let got =
        h.s3.get_object(GetObject::new("suite", "a//b"))
            .await
            .unwrap();
    assert_eq!(got.body.bytes().await.unwrap(), "v");
}
