//! Consumers: push subscriptions to a shard (the SubscribeToShard idea) and consumer groups
//! with leases and checkpoints in the engine (what the Kinesis Client Library gives).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cloudlet_core::keys::Tuple;
use cloudlet_core::{Durability, ReadView, Timestamp};
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::service::{ShardInfo, StreamService, parse_shard_id, sequence_number, shard_id};
use crate::types::{Record, StartingPosition};

/// Group, shard → [`Lease`].
pub(crate) const KS_LEASES: &str = "kinesis.leases";

/// Records of one shard, as a subscription or a consumer delivers them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// The shard they come from.
    pub shard_id: String,
    /// In sequence order.
    pub records: Vec<Record>,
    /// How far behind the newest record of the shard this batch is.
    pub millis_behind_latest: u64,
    /// The shard is closed and this batch holds its last records.
    pub end_of_shard: bool,
    /// Where reading continues after this batch.
    next_from: u64,
}

/// A push subscription: batches of records from one shard as they arrive, continuing into
/// the shard's children when it ends. Ends when every shard it follows is closed and read.
pub struct Subscription {
    inner: BoxStream<'static, Result<Batch>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Result<Batch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct SubscriptionState {
    service: StreamService,
    name: String,
    id: u64,
    /// Shards followed, with where to read next.
    cursors: VecDeque<(u64, u64)>,
    started: Vec<u64>,
}

impl StreamService {
    /// Subscribes to `shard` from `position`: a `futures::Stream` of batches that waits for
    /// new records (woken by the puts themselves, not by polling) and, when the shard is
    /// closed and read, continues into its children.
    ///
    /// # Errors
    /// As [`get_shard_iterator`](crate::Streams::get_shard_iterator).
    pub fn subscribe_to_shard(
        &self,
        name: &str,
        shard: &str,
        position: StartingPosition,
    ) -> Result<Subscription> {
        let (id, index, from) = self.start_position(name, shard, position)?;
        let state = SubscriptionState {
            service: self.clone(),
            name: name.to_owned(),
            id,
            cursors: VecDeque::from([(index, from)]),
            started: vec![index],
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let signal = state.service.signal(state.id);
            loop {
                let notified = signal.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let mut moved = false;
                for _ in 0..state.cursors.len() {
                    let Some((index, from)) = state.cursors.pop_front() else {
                        break;
                    };
                    let read =
                        match state
                            .service
                            .read_shard(&state.name, state.id, index, from, 1000)
                        {
                            Ok(read) => read,
                            Err(e) => {
                                // Keep following the shard: the next poll tries again.
                                state.cursors.push_front((index, from));
                                return Some((Err(e), state));
                            }
                        };
                    if read.at_end {
                        moved = true;
                        for child in read.child_indexes {
                            if !state.started.contains(&child) {
                                state.started.push(child);
                                state.cursors.push_back((child, 0));
                            }
                        }
                    } else {
                        state.cursors.push_back((index, read.next_from));
                    }
                    if !read.records.is_empty() {
                        let batch = Batch {
                            shard_id: shard_id(index),
                            records: read.records,
                            millis_behind_latest: read.behind,
                            end_of_shard: read.at_end,
                            next_from: read.next_from,
                        };
                        return Some((Ok(batch), state));
                    }
                }
                if state.cursors.is_empty() {
                    return None;
                }
                // A shard just ended: read its children at once rather than wait for a put.
                if !moved {
                    notified.await;
                }
            }
        });
        Ok(Subscription {
            inner: stream.boxed(),
        })
    }

    /// A worker of consumer group `group` on stream `name`. Workers of one group share the
    /// shards through leases stored in the engine.
    pub fn consumer(
        &self,
        name: &str,
        group: &str,
        worker: &str,
        options: ConsumerOptions,
    ) -> Consumer {
        Consumer {
            service: self.clone(),
            stream: name.to_owned(),
            group: group.to_owned(),
            worker: worker.to_owned(),
            options,
            owned: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            next: 0,
        }
    }
}

/// How a consumer holds its leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// A lease not renewed for this long may be taken by another worker (KCL's
    /// `failoverTimeMillis`). Default 10 seconds.
    pub lease_duration: Duration,
    /// The most records of one batch. Default 100.
    pub batch_size: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(10),
            batch_size: 100,
        }
    }
}

impl ConsumerOptions {
    /// With this lease duration.
    #[must_use]
    pub fn with_lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// With this batch size (1 to 10,000).
    #[must_use]
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.clamp(1, crate::MAX_GET_RECORDS);
        self
    }
}

/// A shard's lease in a consumer group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Lease {
    owner: Option<String>,
    expires: Timestamp,
    /// The next sequence to read: everything below is processed.
    checkpoint: u64,
    /// The shard is closed and read to its end (KCL's `SHARD_END`).
    finished: bool,
}

fn lease_key(stream: u64, group: &str, shard: u64) -> Vec<u8> {
    Tuple::new()
        .u64(stream)
        .str(group)
        .u64(shard)
        .build()
        .to_vec()
}

fn load_lease(view: &impl ReadView, key: &[u8]) -> Result<Option<Lease>> {
    view.get(KS_LEASES, key)?
        .map(|raw| serde_json::from_slice(&raw).map_err(|e| Error::corrupt(KS_LEASES, e)))
        .transpose()
}

fn save_lease(txn: &mut cloudlet_core::WriteTxn<'_>, key: Vec<u8>, lease: &Lease) {
    txn.put(
        KS_LEASES,
        key,
        serde_json::to_vec(lease).unwrap_or_default(),
    );
}

/// One worker of a consumer group. It takes leases on shards nobody holds (or whose holder
/// stopped renewing), at most its share of them, and only on shards whose parents are
/// finished, so records of one partition key are processed in order across resharding.
/// Processing is at least once: a shard taken over resumes at its last checkpoint.
#[derive(Debug)]
pub struct Consumer {
    service: StreamService,
    stream: String,
    group: String,
    worker: String,
    options: ConsumerOptions,
    /// Shards leased, with where this worker reads next.
    owned: BTreeMap<u64, u64>,
    /// The stored checkpoint of each leased shard.
    checkpoints: BTreeMap<u64, u64>,
    /// Round-robin position among the owned shards.
    next: usize,
}

impl Consumer {
    /// The shards this worker holds.
    pub fn shards(&self) -> Vec<String> {
        self.owned.keys().map(|i| shard_id(*i)).collect()
    }

    /// Renews this worker's leases and takes its share of the free ones, in one transaction.
    async fn sync_leases(&mut self) -> Result<()> {
        let (id, shards) = self.service.shard_map(&self.stream)?;
        let (group, worker, duration) = (
            self.group.clone(),
            self.worker.clone(),
            self.options.lease_duration,
        );
        let now = self.service.clock().now();
        let held: Vec<(u64, u64)> = self
            .service
            .store()
            .write(Durability::Durable, move |txn| {
                let mut leases: BTreeMap<u64, Lease> = BTreeMap::new();
                for shard in &shards {
                    let lease =
                        load_lease(txn, &lease_key(id, &group, shard.index))?.unwrap_or_default();
                    leases.insert(shard.index, lease);
                }
                let live = |l: &Lease| l.owner.is_some() && l.expires > now;
                let ready = |s: &ShardInfo, leases: &BTreeMap<u64, Lease>| {
                    s.parents
                        .iter()
                        .all(|p| leases.get(p).is_none_or(|l| l.finished))
                };
                let mut workers: Vec<&str> = leases
                    .values()
                    .filter(|l| live(l))
                    .filter_map(|l| l.owner.as_deref())
                    .collect();
                workers.push(&worker);
                workers.sort_unstable();
                workers.dedup();
                let open_work = shards
                    .iter()
                    .filter(|s| !leases[&s.index].finished && ready(s, &leases))
                    .count();
                let share = open_work.div_ceil(workers.len());
                let mut mine: Vec<u64> = leases
                    .iter()
                    .filter(|(_, l)| !l.finished && l.owner.as_deref() == Some(worker.as_str()))
                    .map(|(i, _)| *i)
                    .collect();
                for shard in &shards {
                    if mine.len() >= share {
                        break;
                    }
                    let lease = &leases[&shard.index];
                    if !lease.finished
                        && !live(lease)
                        && !mine.contains(&shard.index)
                        && ready(shard, &leases)
                    {
                        mine.push(shard.index);
                    }
                }
                // Still short of a fair share: take leases, one at a time, from the worker
                // holding the most beyond its share, as the KCL's lease stealing does.
                while mine.len() < share {
                    let mut counts: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                    for (index, lease) in &leases {
                        if let Some(owner) = lease.owner.as_deref()
                            && live(lease)
                            && !lease.finished
                            && owner != worker
                        {
                            counts.entry(owner).or_default().push(*index);
                        }
                    }
                    let victim = counts
                        .into_values()
                        .filter(|held| held.len() > share)
                        .max_by_key(Vec::len)
                        .and_then(|held| held.last().copied());
                    match victim {
                        Some(index) if !mine.contains(&index) => {
                            mine.push(index);
                            if let Some(lease) = leases.get_mut(&index) {
                                lease.owner = Some(worker.clone());
                            }
                        }
                        _ => break,
                    }
                }
                let mut held = Vec::new();
                for index in mine {
                    let mut lease = leases.remove(&index).unwrap_or_default();
                    lease.owner = Some(worker.clone());
                    lease.expires = now.saturating_add(duration);
                    held.push((index, lease.checkpoint));
                    save_lease(txn, lease_key(id, &group, index), &lease);
                }
                Ok::<_, Error>(held)
            })
            .await?;
        // Keep the read position of shards still held; start taken-over ones at their
        // checkpoint.
        let mut owned = BTreeMap::new();
        for (index, checkpoint) in held {
            // What is stored as processed counts as this worker's own checkpoint: a shard
            // taken over closed and fully checkpointed is finished, not read again from 0.
            let known = self.checkpoints.entry(index).or_insert(checkpoint);
            *known = (*known).max(checkpoint);
            let from = self
                .owned
                .get(&index)
                .copied()
                .unwrap_or(checkpoint)
                .max(checkpoint);
            owned.insert(index, from);
        }
        self.owned = owned;
        Ok(())
    }

    /// The next batch of records from this worker's shards, waiting for records (or for
    /// leases to become free) as long as it takes; leases are renewed meanwhile, on the
    /// clock, every third of the lease duration.
    ///
    /// # Errors
    /// [`Error::ResourceNotFound`] when the stream is gone; [`Error::Storage`].
    ///
    /// # Cancel safety
    /// Cancel safe: a batch not returned is read again.
    pub async fn next_batch(&mut self) -> Result<Batch> {
        let (id, _) = self.service.shard_map(&self.stream)?;
        let signal = self.service.signal(id);
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.sync_leases().await?;
            let renew_at = self
                .service
                .clock()
                .now()
                .saturating_add(self.options.lease_duration / 3);
            let shards: Vec<(u64, u64)> = self.owned.iter().map(|(i, f)| (*i, *f)).collect();
            let mut again = false;
            for k in 0..shards.len() {
                let (index, from) = shards[(self.next + k) % shards.len()];
                let read = self.service.read_shard(
                    &self.stream,
                    id,
                    index,
                    from,
                    self.options.batch_size,
                )?;
                if !read.records.is_empty() || read.at_end {
                    self.next = (self.next + k + 1) % shards.len().max(1);
                    self.owned.insert(index, read.next_from);
                    if read.records.is_empty() {
                        let checkpoint = self.checkpoints.get(&index).copied().unwrap_or(0);
                        if checkpoint >= from || from == 0 {
                            // Closed, read to its end, and all of it checkpointed: finished.
                            self.finish(index, read.next_from).await?;
                            // Its children may be leased now.
                            again = true;
                        } else {
                            // The shard's last batch was never checkpointed: deliver it again.
                            self.owned.insert(index, checkpoint);
                            again = true;
                        }
                        continue;
                    }
                    return Ok(Batch {
                        shard_id: shard_id(index),
                        records: read.records,
                        millis_behind_latest: read.behind,
                        end_of_shard: read.at_end,
                        next_from: read.next_from,
                    });
                }
            }
            if again {
                continue;
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.service.clock().sleep_until(renew_at) => {}
            }
        }
    }

    /// Records that every record of `batch` is processed: a worker taking the shard over
    /// resumes after it. Checkpointing the last batch of a closed shard finishes the shard,
    /// which lets its children be leased.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this worker no longer holds the shard's lease.
    pub async fn checkpoint(&mut self, batch: &Batch) -> Result<()> {
        let index = parse_shard_id(&batch.shard_id)
            .ok_or_else(|| Error::invalid("ShardId", "not a shard id"))?;
        if batch.end_of_shard {
            return self.finish(index, batch.next_from).await;
        }
        self.save_checkpoint(index, batch.next_from, false).await
    }

    async fn finish(&mut self, index: u64, next_from: u64) -> Result<()> {
        self.save_checkpoint(index, next_from, true).await?;
        self.owned.remove(&index);
        Ok(())
    }

    async fn save_checkpoint(&mut self, index: u64, next_from: u64, finished: bool) -> Result<()> {
        let (id, _) = self.service.shard_map(&self.stream)?;
        let (group, worker) = (self.group.clone(), self.worker.clone());
        let stored = self
            .service
            .store()
            .write(Durability::Durable, move |txn| {
                let key = lease_key(id, &group, index);
                let mut lease = load_lease(txn, &key)?.unwrap_or_default();
                if lease.owner.as_deref() != Some(worker.as_str()) {
                    return Err(Error::invalid(
                        "ShardId",
                        format!("worker {worker} no longer holds the lease on {}; checkpoint {} refused", shard_id(index), sequence_number(next_from, index)),
                    ));
                }
                lease.checkpoint = lease.checkpoint.max(next_from);
                let stored = lease.checkpoint;
                if finished {
                    lease.finished = true;
                    lease.owner = None;
                }
                save_lease(txn, key, &lease);
                Ok(stored)
            })
            .await?;
        self.checkpoints.insert(index, stored);
        Ok(())
    }

    /// Gives up this worker's leases at once, so others need not wait for them to expire.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn shutdown(self) -> Result<()> {
        let (id, _) = self.service.shard_map(&self.stream)?;
        let (group, worker, owned) = (
            self.group.clone(),
            self.worker.clone(),
            self.owned.keys().copied().collect::<Vec<_>>(),
        );
        self.service
            .store()
            .write(Durability::Durable, move |txn| {
                for index in owned {
                    let key = lease_key(id, &group, index);
                    if let Some(mut lease) = load_lease(txn, &key)?
                        && lease.owner.as_deref() == Some(worker.as_str())
                    {
                        lease.owner = None;
                        save_lease(txn, key, &lease);
                    }
                }
                Ok(())
            })
            .await
    }
}
