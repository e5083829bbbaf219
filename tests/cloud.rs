//! The facade wires one store and one clock into every primitive.
#![allow(clippy::unwrap_used, missing_docs)]

#[cfg(feature = "queue")]
#[tokio::test]
async fn a_durable_cloud_keeps_its_queues_across_a_reopen() {
    use cloudlet::Cloud;
    use cloudlet::queue::{Queues, ReceiveMessage, SendMessage};

    let dir = tempfile::tempdir().unwrap();
    {
        let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
        let url = cloud
            .queues()
            .create_queue("orders", Default::default(), Default::default())
            .await
            .unwrap();
        cloud
            .queues()
            .send_message(&url, SendMessage::new("o-1"))
            .await
            .unwrap();
    }
    let cloud = Cloud::builder().data_dir(dir.path()).build().unwrap();
    let url = cloud.queues().get_queue_url("orders").await.unwrap();
    let got = cloud
        .queues()
        .receive_message(&url, ReceiveMessage::max(1))
        .await
        .unwrap();
    assert_eq!(got[0].body, "o-1");
}

#[tokio::test]
async fn a_memory_cloud_shares_its_clock() {
    use cloudlet::{Clock, Cloud, ManualClock};
    let clock = ManualClock::default();
    let cloud = Cloud::builder().clock(clock.shared()).build().unwrap();
    clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(cloud.clock().now(), clock.now());
    let _ = Cloud::memory();
}
