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
