//! Background tasks stop on shutdown, and on drop without blocking.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cloudlet_core::BackgroundTask;

#[tokio::test]
async fn shutdown_waits_for_the_task_to_finish() {
    let cleaned_up = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cleaned_up);
    let task = BackgroundTask::spawn("worker", move |mut stop| async move {
        stop.requested().await;
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(task.name(), "worker");
    assert!(!task.is_finished());
    task.shutdown().await;
    assert!(cleaned_up.load(Ordering::SeqCst));
}

#[tokio::test]
async fn dropping_the_handle_asks_the_task_to_stop() {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let task = BackgroundTask::spawn("worker", move |mut stop| async move {
        stop.requested().await;
        assert!(stop.is_requested());
        let _ = done_tx.send(());
    });
    drop(task);
    done_rx.await.unwrap();
}

#[tokio::test]
async fn shutdown_resumes_a_panic_of_the_task() {
    let task = BackgroundTask::spawn("panicky", |_| async { panic!("task failed") });
    let result = tokio::spawn(task.shutdown()).await;
    assert!(result.unwrap_err().is_panic());
}
