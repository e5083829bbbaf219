//! Model test: random sequences of send / receive / delete / change-visibility / advance-clock
//! on both engines agree with a small reference model of a standard queue's rules.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudlet_core::engine::RedbEngine;
use cloudlet_core::{ManualClock, Store};
use cloudlet_queue::{Error, QueueService, Queues, ReceiveMessage, SendMessage};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send { delay: u32 },
    Receive { max: u32, visibility: u32 },
    Delete { handle: usize },
    ChangeVisibility { handle: usize, timeout: u32 },
    Advance { seconds: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..3).prop_map(|delay| Op::Send { delay }),
        3 => (1u32..4, 0u32..6).prop_map(|(max, visibility)| Op::Receive { max, visibility }),
        2 => any::<usize>().prop_map(|handle| Op::Delete { handle }),
        1 => (any::<usize>(), 0u32..6).prop_map(|(handle, timeout)| Op::ChangeVisibility { handle, timeout }),
        2 => (0u64..5).prop_map(|seconds| Op::Advance { seconds }),
    ]
}

/// What an operation returned, comparable across implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Sent,
    Received(Vec<String>),
    Deleted,
    Changed(Result<(), &'static str>),
    Advanced,
}

#[derive(Debug, Clone)]
struct ModelMessage {
    seq: u64,
    body: String,
    visible_at: u64,
    receipt: u32,
}

/// The rules: receive takes visible messages oldest-visible first (ties by send order) and
/// hides them; only a message's latest receipt deletes or changes it; a change needs the
/// message in flight.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    next: u64,
    messages: Vec<ModelMessage>,
    /// Every receipt handed out: (message seq, receipt number).
    handles: Vec<(u64, u32)>,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Send { delay } => {
                self.next += 1;
                self.messages.push(ModelMessage {
                    seq: self.next,
                    body: format!("b{}", self.next),
                    visible_at: self.now + u64::from(delay),
                    receipt: 0,
                });
                Outcome::Sent
            }
            Op::Receive { max, visibility } => {
                let mut visible: Vec<usize> = (0..self.messages.len())
                    .filter(|&i| self.messages[i].visible_at <= self.now)
                    .collect();
                visible.sort_by_key(|&i| (self.messages[i].visible_at, self.messages[i].seq));
                let mut bodies = Vec::new();
                for i in visible.into_iter().take(max as usize) {
                    let m = &mut self.messages[i];
                    m.visible_at = self.now + u64::from(visibility);
                    m.receipt += 1;
                    self.handles.push((m.seq, m.receipt));
                    bodies.push(m.body.clone());
                }
                Outcome::Received(bodies)
            }
            Op::Delete { handle } => {
                if let Some(&(seq, receipt)) = self.pick(handle) {
                    self.messages
                        .retain(|m| !(m.seq == seq && m.receipt == receipt));
                }
                Outcome::Deleted
            }
            Op::ChangeVisibility { handle, timeout } => {
                let Some(&(seq, receipt)) = self.pick(handle) else {
                    return Outcome::Changed(Ok(()));
                };
                let now = self.now;
                let result = match self
                    .messages
                    .iter_mut()
                    .find(|m| m.seq == seq && m.receipt == receipt)
                {
                    Some(m) if m.visible_at > now => {
                        m.visible_at = now + u64::from(timeout);
                        Ok(())
                    }
                    _ => Err("MessageNotInflight"),
                };
                Outcome::Changed(result)
            }
            Op::Advance { seconds } => {
                self.now += seconds;
                Outcome::Advanced
            }
        }
    }

    fn pick(&self, handle: usize) -> Option<&(u64, u32)> {
        (!self.handles.is_empty()).then(|| &self.handles[handle % self.handles.len()])
    }
}

/// The same operations on a real service; receipt handles are kept in the order handed out.
async fn run(
    sqs: &QueueService,
    clock: &ManualClock,
    url: &str,
    handles: &mut Vec<String>,
    op: &Op,
) -> Outcome {
    match *op {
        Op::Send { .. } => unreachable!("check() sends, so bodies match the model's"),
        Op::Receive { max, visibility } => {
            let got = sqs
                .receive_message(
                    url,
                    ReceiveMessage::max(max).with_visibility_timeout(visibility),
                )
                .await
                .unwrap();
            let mut bodies = Vec::new();
            for m in got {
                handles.push(m.receipt_handle.clone());
                bodies.push(String::from_utf8(m.body.to_vec()).unwrap());
            }
            Outcome::Received(bodies)
        }
        Op::Delete { handle } => {
            if !handles.is_empty() {
                sqs.delete_message(url, &handles[handle % handles.len()])
                    .await
                    .unwrap();
            }
            Outcome::Deleted
        }
        Op::ChangeVisibility { handle, timeout } => {
            if handles.is_empty() {
                return Outcome::Changed(Ok(()));
            }
            let result = sqs
                .change_message_visibility(url, &handles[handle % handles.len()], timeout)
                .await;
            Outcome::Changed(match result {
                Ok(()) => Ok(()),
                Err(Error::MessageNotInflight) => Err("MessageNotInflight"),
                Err(e) => panic!("unexpected error {e}"),
            })
        }
        Op::Advance { seconds } => {
            clock.advance(Duration::from_secs(seconds));
            Outcome::Advanced
        }
    }
}

async fn check(ops: &[Op], store: Store) -> Result<(), TestCaseError> {
    let clock = ManualClock::default();
    let sqs = QueueService::new(store, clock.shared());
    let url = sqs
        .create_queue("model", BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    let mut model = Model::default();
    let mut handles = Vec::new();
    let mut sent = 0u64;
    for (n, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let got = match *op {
            Op::Send { delay } => {
                sent += 1;
                sqs.send_message(
                    &url,
                    SendMessage::new(format!("b{sent}")).with_delay_seconds(delay),
                )
                .await
                .unwrap();
                Outcome::Sent
            }
            _ => run(&sqs, &clock, &url, &mut handles, op).await,
        };
        prop_assert_eq!(&got, &expected, "op {} {:?}", n, op);
    }
    let counters = sqs.get_queue_attributes(&url, &["All"]).await.unwrap();
    let visible = model
        .messages
        .iter()
        .filter(|m| m.visible_at <= model.now)
        .count();
    prop_assert_eq!(
        counters["ApproximateNumberOfMessages"].clone(),
        visible.to_string()
    );
    let hidden = model.messages.len() - visible;
    let not_visible: usize = counters["ApproximateNumberOfMessagesNotVisible"]
        .parse()
        .unwrap();
    let delayed: usize = counters["ApproximateNumberOfMessagesDelayed"]
        .parse()
        .unwrap();
    prop_assert_eq!(not_visible + delayed, hidden);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn memory_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        runtime().block_on(check(&ops, Store::memory()))?;
    }

    #[test]
    fn redb_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(check(&ops, Store::new(RedbEngine::open(dir.path()).unwrap())))?;
    }
}
