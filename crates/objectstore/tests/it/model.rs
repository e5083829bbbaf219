//! Model test: random puts, deletes and listings agree with a `BTreeMap`; a paginated
//! listing returns every key and common prefix exactly once, in order, for any page size,
//! prefix and delimiter.

use std::collections::{BTreeMap, BTreeSet};

use cloudlet_core::{ManualClock, Store};
use cloudlet_objectstore::{Buckets, GetObject, ListObjects, ObjectService, PutObject};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(String, u8),
    Delete(String),
    List {
        prefix: String,
        delimiter: bool,
        max_keys: usize,
    },
}

fn key() -> impl Strategy<Value = String> {
    "[ab/]{1,5}"
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => key().prop_map(Op::Delete),
        2 => ("[ab/]{0,2}", any::<bool>(), 1..5usize)
            .prop_map(|(prefix, delimiter, max_keys)| Op::List { prefix, delimiter, max_keys }),
    ]
}

/// What a complete listing should hold: keys, and prefixes rolled up at the first `/` after
/// the prefix, in byte order.
fn expected(model: &BTreeMap<String, u8>, prefix: &str, delimiter: bool) -> Vec<String> {
    let mut out = BTreeSet::new();
    for key in model.keys().filter(|k| k.starts_with(prefix)) {
        match key[prefix.len()..].find('/').filter(|_| delimiter) {
            Some(at) => out.insert(format!("{}/", &key[..prefix.len() + at])),
            None => out.insert(key.clone()),
        };
    }
    out.into_iter().collect()
}

async fn list_all(
    s3: &ObjectService,
    prefix: &str,
    delimiter: bool,
    max_keys: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let mut request = ListObjects::new("model")
            .with_prefix(prefix)
            .with_max_keys(max_keys);
        if delimiter {
            request = request.with_delimiter("/");
        }
        request.continuation_token = token;
        let page = s3.list_objects(request).await.unwrap();
        assert!(page.key_count <= max_keys);
        assert_eq!(
            page.key_count,
            page.contents.len() + page.common_prefixes.len()
        );
        let mut entries: Vec<String> = page.contents.into_iter().map(|o| o.key).collect();
        entries.extend(page.common_prefixes);
        entries.sort();
        out.extend(entries);
        if !page.is_truncated {
            assert!(page.next_continuation_token.is_none());
            return out;
        }
        token = page.next_continuation_token;
        assert!(token.is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn operations_agree_with_a_map(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s3 = ObjectService::new(Store::memory(), ManualClock::default().shared());
            s3.create_bucket("model").await.unwrap();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(key, value) => {
                        s3.put_object(PutObject::new("model", &key, vec![value])).await.unwrap();
                        model.insert(key, value);
                    }
                    Op::Delete(key) => {
                        s3.delete_object("model", &key, None).await.unwrap();
                        model.remove(&key);
                    }
                    Op::List { prefix, delimiter, max_keys } => {
                        let listed = list_all(&s3, &prefix, delimiter, max_keys).await;
                        assert_eq!(listed, expected(&model, &prefix, delimiter), "prefix {prefix:?} delimiter {delimiter} max {max_keys}");
                    }
                }
            }
            for (key, value) in &model {
                let got = s3.get_object(GetObject::new("model", key)).await.unwrap();
                assert_eq!(got.body.bytes().await.unwrap().as_ref(), &[*value]);
            }
            assert_eq!(list_all(&s3, "", false, 1000).await, model.keys().cloned().collect::<Vec<_>>());
        });
    }
}
