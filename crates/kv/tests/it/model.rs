//! Random operation sequences on both engines agree with a BTreeMap reference model.

use std::collections::BTreeMap;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_kv::{
    CreateTable, DeleteItem, Error, GetItem, Item, KeyAttribute, KvService, PutItem, Query,
    ReturnValues, Tables, TransactWriteItem, TransactWriteItems, UpdateItem, item,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put {
        pk: u8,
        sk: i8,
        v: i16,
        only_new: bool,
    },
    Add {
        pk: u8,
        sk: i8,
        n: i16,
    },
    Delete {
        pk: u8,
        sk: i8,
        only_if_v_above: Option<i16>,
    },
    Get {
        pk: u8,
        sk: i8,
    },
    Query {
        pk: u8,
        from: i8,
        forward: bool,
        limit: u8,
    },
    Transact {
        puts: Vec<(u8, i8, i16)>,
        require_missing: Option<(u8, i8)>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let pk = 0u8..3;
    let sk = -4i8..4;
    prop_oneof![
        (pk.clone(), sk.clone(), any::<i16>(), any::<bool>()).prop_map(|(pk, sk, v, only_new)| {
            Op::Put {
                pk,
                sk,
                v,
                only_new,
            }
        }),
        (pk.clone(), sk.clone(), any::<i16>()).prop_map(|(pk, sk, n)| Op::Add { pk, sk, n }),
        (pk.clone(), sk.clone(), prop::option::of(any::<i16>())).prop_map(
            |(pk, sk, only_if_v_above)| Op::Delete {
                pk,
                sk,
                only_if_v_above
            }
        ),
        (pk.clone(), sk.clone()).prop_map(|(pk, sk)| Op::Get { pk, sk }),
        (pk.clone(), sk.clone(), any::<bool>(), 1u8..4).prop_map(|(pk, from, forward, limit)| {
            Op::Query {
                pk,
                from,
                forward,
                limit,
            }
        }),
        (
            prop::collection::vec((pk.clone(), sk.clone(), any::<i16>()), 1..4),
            prop::option::of((pk, sk))
        )
            .prop_map(|(puts, require_missing)| Op::Transact {
                puts,
                require_missing
            }),
    ]
}

fn key(pk: u8, sk: i8) -> Item {
    item([
        ("pk", format!("p{pk}").into()),
        ("sk", i64::from(sk).into()),
    ])
}

fn full(pk: u8, sk: i8, v: i64) -> Item {
    let mut item = key(pk, sk);
    item.insert("v".to_owned(), v.into());
    item
}

/// What each operation answered, comparable across implementations.
#[derive(Debug, PartialEq)]
enum Answer {
    Done(Option<Item>),
    ConditionFailed,
    Cancelled,
    Items(Vec<Item>),
}

type Model = BTreeMap<(u8, i8), i64>;

fn model_apply(model: &mut Model, op: &Op) -> Answer {
    match op {
        Op::Put {
            pk,
            sk,
            v,
            only_new,
        } => {
            if *only_new && model.contains_key(&(*pk, *sk)) {
                return Answer::ConditionFailed;
            }
            let old = model.insert((*pk, *sk), i64::from(*v));
            Answer::Done(old.map(|o| full(*pk, *sk, o)))
        }
        Op::Add { pk, sk, n } => {
            let value = model.entry((*pk, *sk)).or_insert(0);
            *value += i64::from(*n);
            Answer::Done(Some(full(*pk, *sk, *value)))
        }
        Op::Delete {
            pk,
            sk,
            only_if_v_above,
        } => {
            let current = model.get(&(*pk, *sk)).copied();
            if let Some(floor) = only_if_v_above
                && current.is_none_or(|v| v <= i64::from(*floor))
            {
                return Answer::ConditionFailed;
            }
            model.remove(&(*pk, *sk));
            Answer::Done(current.map(|v| full(*pk, *sk, v)))
        }
        Op::Get { pk, sk } => Answer::Done(model.get(&(*pk, *sk)).map(|v| full(*pk, *sk, *v))),
        Op::Query {
            pk,
            from,
            forward,
            limit,
        } => {
            let mut items: Vec<Item> = model
                .range((*pk, i8::MIN)..=(*pk, i8::MAX))
                .filter(|((_, sk), _)| if *forward { sk >= from } else { sk <= from })
                .map(|((p, s), v)| full(*p, *s, *v))
                .collect();
            if !forward {
                items.reverse();
            }
            items.truncate(usize::from(*limit));
            Answer::Items(items)
        }
        Op::Transact {
            puts,
            require_missing,
        } => {
            let mut keys: Vec<(u8, i8)> = puts.iter().map(|(p, s, _)| (*p, *s)).collect();
            keys.extend(require_missing.iter().copied());
            keys.sort();
            keys.dedup();
            if keys.len() != puts.len() + usize::from(require_missing.is_some()) {
                return Answer::Cancelled; // two actions on one item: rejected up front
            }
            if let Some(k) = require_missing
                && model.contains_key(k)
            {
                return Answer::Cancelled;
            }
            for (p, s, v) in puts {
                model.insert((*p, *s), i64::from(*v));
            }
            Answer::Done(None)
        }
    }
}

async fn service_apply(kv: &dyn Tables, op: &Op) -> Answer {
    let answer = match op {
        Op::Put {
            pk,
            sk,
            v,
            only_new,
        } => {
            let mut put = PutItem::new("model", full(*pk, *sk, i64::from(*v)))
                .with_return_values(ReturnValues::ALL_OLD);
            if *only_new {
                put = put.with_condition("attribute_not_exists(pk)");
            }
            kv.put_item(put).await
        }
        Op::Add { pk, sk, n } => {
            kv.update_item(
                UpdateItem::new("model", key(*pk, *sk), "ADD v :n")
                    .with_value(":n", i64::from(*n))
                    .with_return_values(ReturnValues::ALL_NEW),
            )
            .await
        }
        Op::Delete {
            pk,
            sk,
            only_if_v_above,
        } => {
            let mut delete =
                DeleteItem::new("model", key(*pk, *sk)).with_return_values(ReturnValues::ALL_OLD);
            if let Some(floor) = only_if_v_above {
                delete = delete
                    .with_condition("v > :floor")
                    .with_value(":floor", i64::from(*floor));
            }
            kv.delete_item(delete).await
        }
        Op::Get { pk, sk } => kv.get_item(GetItem::new("model", key(*pk, *sk))).await,
        Op::Query {
            pk,
            from,
            forward,
            limit,
        } => {
            let condition = if *forward {
                "pk = :p AND sk >= :s"
            } else {
                "pk = :p AND sk <= :s"
            };
            let mut query = Query::new("model", condition)
                .with_value(":p", format!("p{pk}"))
                .with_value(":s", i64::from(*from))
                .with_limit(u32::from(*limit));
            if !forward {
                query = query.backwards();
            }
            return Answer::Items(kv.query(query).await.unwrap().items);
        }
        Op::Transact {
            puts,
            require_missing,
        } => {
            let mut actions: Vec<TransactWriteItem> = puts
                .iter()
                .map(|(p, s, v)| {
                    TransactWriteItem::Put(PutItem::new("model", full(*p, *s, i64::from(*v))))
                })
                .collect();
            if let Some((p, s)) = require_missing {
                actions.push(TransactWriteItem::ConditionCheck(
                    cloudlet_kv::ConditionCheck::new(
                        "model",
                        key(*p, *s),
                        "attribute_not_exists(pk)",
                    ),
                ));
            }
            let result = kv
                .transact_write_items(TransactWriteItems {
                    transact_items: actions,
                    client_request_token: None,
                })
                .await;
            return match result {
                Ok(()) => Answer::Done(None),
                Err(Error::TransactionCanceled { .. }) => Answer::Cancelled,
                Err(Error::Validation { message, .. })
                    if message.contains("multiple operations") =>
                {
                    Answer::Cancelled
                }
                Err(other) => panic!("unexpected error {other}"),
            };
        }
    };
    match answer {
        Ok(item) => Answer::Done(item),
        Err(Error::ConditionalCheckFailed { .. }) => Answer::ConditionFailed,
        Err(other) => panic!("unexpected error {other}"),
    }
}

async fn service(store: Store) -> KvService {
    let kv = KvService::new(store, ManualClock::default().shared());
    kv.create_table(
        CreateTable::new("model", KeyAttribute::s("pk")).with_sort_key(KeyAttribute::n("sk")),
    )
    .await
    .unwrap();
    kv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24)
    ))]
    #[test]
    fn both_engines_agree_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let memory = service(Store::memory()).await;
            let redb = service(Store::new(RedbEngine::open(dir.path()).unwrap())).await;
            let mut model = Model::new();
            for op in &ops {
                let expected = model_apply(&mut model, op);
                assert_eq!(service_apply(&memory, op).await, expected, "memory, {op:?}");
                assert_eq!(service_apply(&redb, op).await, expected, "redb, {op:?}");
            }
            let everything = |kv: KvService| async move {
                kv.scan(cloudlet_kv::Scan::new("model")).await.unwrap().items
            };
            let expected: Vec<Item> = model.iter().map(|((p, s), v)| full(*p, *s, *v)).collect();
            let mut from_memory = everything(memory).await;
            let mut from_redb = everything(redb).await;
            let order = |i: &Item| (i["pk"].as_s().unwrap().to_owned(), i["sk"].as_n().unwrap().clone());
            from_memory.sort_by_key(order);
            from_redb.sort_by_key(order);
            assert_eq!(from_memory, expected);
            assert_eq!(from_redb, expected);
        });
    }
}
