//! Crash test: a child process puts, completes multipart uploads and deletes, durably, and
//! reports each acknowledgement; the parent kills it with SIGKILL at random moments. After
//! reopening, every acknowledged object is intact (bytes and ETag), no partial object is
//! visible, no orphan file remains, and every acknowledged change has its event.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ChannelSink, DeliveryError, Store, SystemClock, sink_fn};
use cloudlet_objectstore::{
    Buckets, CompletedPart, CreateMultipartUpload, GetObject, ListObjects, NotificationRule,
    ObjectService, PutObject, WriteConditions,
};
use cloudlet_testkit::crash::{report, run_rounds};
use md5::{Digest, Md5};

const CHILD_DIR: &str = "CLOUDLET_OBJECTSTORE_CRASH_DIR";
const ROUNDS: usize = 6;

/// The bytes of the object called `key`: its size and part count are in its name, its
/// content follows from it, so any object found after a crash can be checked whole.
fn content(key: &str) -> Bytes {
    let size: usize = key
        .split('-')
        .find_map(|p| p.strip_prefix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let seed = key
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..size)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn parts(key: &str) -> usize {
    key.split('-')
        .find_map(|p| p.strip_prefix('m'))
        .and_then(|s| s.parse().ok())
        .unwrap()
}

fn open(dir: &Path) -> (Store, ObjectService) {
    let store = Store::new(RedbEngine::open(dir.join("db")).unwrap());
    let s3 = ObjectService::open(store.clone(), SystemClock::shared(), dir.join("objects"))
        .unwrap()
        .with_relaxed_part_sizes();
    (store, s3)
}

#[test]
#[ignore = "the child process of acknowledged_objects_survive_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        let (_store, s3) = open(Path::new(&dir));
        // A target that accepts nothing: events wait in the outbox for the parent.
        let refuse =
            sink_fn(|_| async { Err(DeliveryError::unavailable("the parent reads these")) });
        s3.register_target("parent", Arc::new(refuse));
        let _ = s3.create_bucket("crash").await;
        s3.put_bucket_notifications(
            "crash",
            vec![NotificationRule::new(
                "all",
                "parent",
                ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            )],
        )
        .await
        .unwrap();
        s3.shutdown().await;
        let pid = std::process::id();
        let mut tasks = Vec::new();
        for worker in 0..3u32 {
            let s3 = s3.clone();
            tasks.push(tokio::spawn(async move {
                let sizes = [1_000usize, 200_000, 700_000];
                let mut mine = Vec::new();
                for n in 0..100_000u32 {
                    let size = sizes[(n as usize + worker as usize) % 3];
                    let multipart = n % 4 == 3;
                    let key = format!(
                        "p{pid}-w{worker}-n{n}-s{size}-m{}",
                        if multipart { 2 } else { 1 }
                    );
                    let body = content(&key);
                    let etag = if multipart {
                        let upload = s3
                            .create_multipart_upload(CreateMultipartUpload::new("crash", &key))
                            .await
                            .unwrap();
                        let half = body.len() / 2;
                        let a = s3
                            .upload_part("crash", &key, &upload, 1, body.slice(..half).into())
                            .await
                            .unwrap();
                        let b = s3
                            .upload_part("crash", &key, &upload, 2, body.slice(half..).into())
                            .await
                            .unwrap();
                        s3.complete_multipart_upload(
                            "crash",
                            &key,
                            &upload,
                            vec![CompletedPart::new(1, a), CompletedPart::new(2, b)],
                            WriteConditions::default(),
                        )
                        .await
                        .unwrap()
                        .etag
                    } else {
                        s3.put_object(PutObject::new("crash", &key, body))
                            .await
                            .unwrap()
                            .etag
                    };
                    report(&format!("acked put {key} {etag}"));
                    mine.push(key);
                    if n % 3 == 2 {
                        let victim = mine.remove(0);
                        report(&format!("begin delete {victim}"));
                        s3.delete_object("crash", &victim, None).await.unwrap();
                        report(&format!("acked delete {victim}"));
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_objects_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut puts: HashMap<String, String> = HashMap::new();
    let mut deleting: HashSet<String> = HashSet::new();
    let mut deleted: HashSet<String> = HashSet::new();
    run_rounds(
        "objectstore crash test",
        ROUNDS,
        (10, 60),
        CHILD_DIR,
        dir.path(),
        |line| {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["acked", "put", key, etag] => {
                    puts.insert((*key).to_owned(), (*etag).to_owned());
                    true
                }
                ["begin", "delete", key] => {
                    deleting.insert((*key).to_owned());
                    false
                }
                ["acked", "delete", key] => {
                    deleted.insert((*key).to_owned());
                    true
                }
                _ => false,
            }
        },
    );
    assert!(!puts.is_empty());

    let (store, s3) = open(dir.path());
    // Every object listed is whole, acknowledged or not; every acknowledged one is there
    // unless a delete of it had begun.
    let mut listed = HashSet::new();
    let mut token = None;
    loop {
        let mut request = ListObjects::new("crash");
        request.continuation_token = token;
        let page = s3.list_objects(request).await.unwrap();
        for object in page.contents {
            let got = s3
                .get_object(GetObject::new("crash", &object.key))
                .await
                .unwrap();
            let bytes = got.body.bytes().await.unwrap();
            let want = content(&object.key);
            assert_eq!(bytes, want, "{} is not whole", object.key);
            if parts(&object.key) == 1 {
                let digest = Md5::digest(&want);
                let etag = format!(
                    "\"{}\"",
                    digest
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                );
                assert_eq!(object.etag, etag);
            }
            if let Some(etag) = puts.get(&object.key) {
                assert_eq!(&object.etag, etag);
            }
            listed.insert(object.key);
        }
        if !page.is_truncated {
            break;
        }
        token = page.next_continuation_token;
    }
    for key in puts.keys() {
        if deleted.contains(key) {
            assert!(!listed.contains(key), "{key} was deleted");
        } else if !deleting.contains(key) {
            assert!(listed.contains(key), "acknowledged {key} is missing");
        }
    }

    // Every acknowledged change has its event.
    let waiting = s3.pending_events("parent").unwrap();
    let (sink, mut events) = ChannelSink::new();
    s3.register_target("parent", Arc::new(sink));
    let mut created = HashSet::new();
    let mut removed = HashSet::new();
    for _ in 0..waiting {
        let message = events.recv().await.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        let record = &event["Records"][0];
        let key = record["s3"]["object"]["key"].as_str().unwrap().to_owned();
        if record["eventName"]
            .as_str()
            .unwrap()
            .starts_with("ObjectCreated")
        {
            created.insert(key);
        } else {
            removed.insert(key);
        }
    }
    for key in puts.keys() {
        assert!(created.contains(key), "no event for the put of {key}");
    }
    for key in &deleted {
        assert!(removed.contains(key), "no event for the delete of {key}");
    }
    s3.shutdown().await;

    // No orphan: once every object is deleted, no body file is left.
    let keys: Vec<_> = listed.into_iter().collect();
    for key in &keys {
        s3.delete_object("crash", key, None).await.unwrap();
    }
    let uploads = s3
        .list_multipart_uploads(cloudlet_objectstore::ListMultipartUploads::new("crash"))
        .await
        .unwrap()
        .uploads;
    for upload in uploads {
        s3.abort_multipart_upload("crash", &upload.key, &upload.upload_id)
            .await
            .unwrap();
    }
    let left: Vec<_> = std::fs::read_dir(dir.path().join("objects/bodies"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{} body files left", left.len());
    assert_eq!(
        std::fs::read_dir(dir.path().join("objects/tmp"))
            .unwrap()
            .count(),
        0
    );
    drop(s3);
    store.close().await;
}
